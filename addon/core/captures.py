"""Live Link Face capture takes for fine-tuning: find every ``NAME.csv`` with its audio beside it, read the curves
strictly, check each take (columns, frame rate from the timecodes, dropped or repeated timecodes, audio against
curve length, flat or clipped curves) and put the curves on the audio's clock at the model rate.

Every problem is one sentence naming the file (CaptureProblem); nothing here trains or writes anything. The speech
check and the sync check need the audio's phones and live in core.capture_sync.
"""

from __future__ import annotations

import csv
import io
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import spec
from .audio import load_audio
from .errors import FacePolicyError
from .fileio import read_user_text
from .livelink import _guess_timecode_rate, parse_timecode
from .movie import MOVIE_SUFFIXES

# Audio the product reads beside a take, in the order one is picked when several exist (core.audio: libsndfile).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")
# Columns a take must have: the 52 ARKit curves, head rotation and the eyes' yaw and pitch (the eyes' roll
# carries no channel, so its absence loses nothing).
REQUIRED_COLUMNS = ("Timecode", "BlendShapeCount", *spec.LIVELINK_ARKIT_COLUMNS,
                    *(c for c, ch in spec.LIVELINK_EXTRA_TO_CHANNEL.items() if ch is not None))
MIN_FPS = 24.0  # below this a lip closure of two model frames can fall between samples
# Dropped and repeated timecodes: a few are interpolated over (the iPhone drops frames under load); more than this
# share of the take, or one gap longer than MAX_GAP_S, and the take is refused.
MAX_DROPPED_SHARE = 0.05
MAX_REPEATED_SHARE = 0.05
MAX_GAP_S = 0.25
# Audio and curves of one take are recorded together: more apart than this and the audio is another take's.
MAX_LENGTH_MISMATCH_S = 1.0
FLAT_STD = 0.002  # the face's most moving curve moves less than this: tracking was lost
CLIP_SHARE = 0.2  # a curve at its ceiling (≥ 0.999) on more than this share of frames is clipped
MIN_SECONDS = 2.0


@dataclass
class CaptureProblem:
    """One thing wrong with one file, as a sentence that names it."""

    path: Path
    sentence: str

    def __str__(self) -> str:
        return self.sentence


@dataclass
class TakeFiles:
    name: str
    csv: Path
    audio: Path
    transcript: Path | None = None


@dataclass
class Curves:
    """A take's curves as recorded: (rows, NUM_CHANNELS) values at capture times (seconds from the first row)."""

    times: np.ndarray
    values: np.ndarray
    fps: float
    start_timecode: float  # seconds since midnight of the first row's timecode
    dropped: int = 0
    repeated: int = 0


@dataclass
class Take:
    """One checked take, ready to learn from: 16 kHz audio and the curves at MODEL_FPS on the audio's clock."""

    files: TakeFiles
    samples: np.ndarray
    states: np.ndarray  # (n_model_frames, NUM_CHANNELS) float32
    fps: float  # the capture's own frame rate
    curve_start: float  # audio time (s) of the first captured row, from the timecodes (0 without an audio timecode)
    warnings: list[str] = field(default_factory=list)
    evidence: object = None  # core.evidence.Evidence of the audio (recognised phones, or the transcript's)
    sync: object = None  # core.capture_sync.SyncCheck
    curves: Curves | None = None

    @property
    def name(self) -> str:
        return self.files.name

    @property
    def seconds(self) -> float:
        return len(self.samples) / spec.SAMPLE_RATE


class CaptureError(FacePolicyError):
    """The capture folder cannot be fine-tuned on; ``problems`` lists every take's problems."""

    def __init__(self, problems: list[CaptureProblem], preface: str = ""):
        self.problems = problems
        lines = [p.sentence for p in problems]
        super().__init__((preface + "\n" if preface else "") + "\n".join(lines))


# --- finding the takes ----------------------------------------------------------------------------------------------

def find_takes(folder: Path | str) -> tuple[list[TakeFiles], list[CaptureProblem]]:
    """Every ``NAME.csv`` of ``folder`` with the audio beside it (``NAME.wav``, or any audio core.audio reads, or a
    ``.mov``/``.mp4`` take); a CSV without audio is a problem. Raises FacePolicyError when the folder is missing or
    holds no pair at all."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FacePolicyError(f'"{folder}": capture folder not found')
    takes, problems = [], []
    csvs = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    for path in csvs:
        beside = {p.suffix.lower(): p for p in folder.iterdir() if p.is_file() and p.stem == path.stem}
        audio = next((beside[s] for s in AUDIO_SUFFIXES + MOVIE_SUFFIXES if s in beside), None)
        if audio is None:
            problems.append(CaptureProblem(path, f'"{path.name}": no audio beside it (expected {path.stem}.wav, or '
                                           f"another audio file or a .mov/.mp4 take named {path.stem})"))
            continue
        txt = beside.get(".txt")
        takes.append(TakeFiles(path.stem, path, audio, txt))
    if not takes and not problems:
        raise FacePolicyError(f'"{folder}": no takes found; a take is NAME.csv (Live Link Face) with NAME.wav '
                              "beside it")
    if not takes:
        raise CaptureError(problems, f'"{folder}": no take has both its curves and its audio:')
    return takes, problems


# --- the curves -----------------------------------------------------------------------------------------------------

def read_curves(path: Path) -> Curves:
    """The take's curves with its frame rate from the timecodes; CaptureProblem (raised as CaptureError) when the
    file is not a usable Live Link Face CSV."""
    def fail(sentence: str):
        raise CaptureError([CaptureProblem(path, f'"{path.name}": {sentence}')])

    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot be read ({exc})")
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if not rows:
        fail("the file is empty")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        fail(f"not a complete Live Link Face CSV: missing column{'s' if len(missing) > 1 else ''} {shown}")
    col = {h: i for i, h in enumerate(header)}
    data = rows[1:]
    if len(data) < 2:
        fail("holds fewer than two rows of curves")
    channels = list(zip(spec.LIVELINK_ARKIT_COLUMNS, spec.ARKIT_NAMES, strict=True))
    channels += [(c, ch) for c, ch in spec.LIVELINK_EXTRA_TO_CHANNEL.items() if ch is not None]
    idx = np.array([col[c] for c, _ in channels])
    dest = np.array([spec.CHANNEL_INDEX[ch] for _, ch in channels])
    values = np.zeros((len(data), spec.NUM_CHANNELS), np.float32)
    for r, row in enumerate(data):
        if len(row) < len(header):
            fail(f"line {r + 2} has {len(row)} cells but the header has {len(header)}")
        try:
            values[r, dest] = np.array([row[i] for i in idx], np.float64)
        except ValueError:
            fail(f"line {r + 2} holds a value that is not a number")
    if not np.isfinite(values).all():
        fail("holds values that are not finite numbers")
    codes = [row[col["Timecode"]] for row in data]
    rate = _guess_timecode_rate(codes)
    try:
        t = np.array([parse_timecode(c, rate) for c in codes])
    except ValueError as exc:
        fail(str(exc))
    if t[-1] < t[0]:  # the take ran over midnight
        t = np.where(t < t[0], t + 86400.0, t)
    return _regularise(path, t, values)


def _regularise(path: Path, t: np.ndarray, values: np.ndarray) -> Curves:
    """Frame rate from the timecodes' usual step; repeated timecodes kept once, dropped ones counted."""
    dt = np.diff(t)
    step = float(np.median(dt[dt > 0])) if (dt > 0).any() else 0.0
    if step <= 0:
        raise CaptureError([CaptureProblem(path, f'"{path.name}": the timecodes do not advance')])
    fps = _snap_fps(1.0 / step)
    keep = np.concatenate([[True], dt > 0.25 * step])
    repeated = int((~keep).sum())
    t, values = t[keep], values[keep]
    gaps = np.round(np.diff(t) * fps).astype(int)
    if (np.diff(t) < 0).any():
        raise CaptureError([CaptureProblem(path, f'"{path.name}": the timecodes go backwards')])
    dropped = int(np.clip(gaps - 1, 0, None).sum())
    return Curves(t - t[0], values, fps, float(t[0]), dropped, repeated)


def _snap_fps(fps: float) -> float:
    """The nearest common rate within 1 % (timecodes in whole milliseconds blur 29.97 and 30), else ``fps``."""
    common = min(spec.COMMON_FPS + (120.0,), key=lambda c: abs(fps - c))
    return float(common) if abs(fps - common) / common < 0.01 else round(fps, 2)


def check_curves(path: Path, curves: Curves) -> tuple[list[CaptureProblem], list[str]]:
    """(problems, warnings) of a take's curves on their own: frame rate, dropped and repeated timecodes, flat
    and clipped curves."""
    name = f'"{path.name}"'
    problems, warnings = [], []
    n = len(curves.times) + curves.dropped
    if curves.fps < MIN_FPS:
        problems.append(f"{name}: recorded at {curves.fps:g} fps; fine-tuning needs at least {MIN_FPS:g} fps")
    gaps = np.diff(curves.times)
    longest = float(gaps.max()) if len(gaps) else 0.0
    if curves.dropped > MAX_DROPPED_SHARE * n or longest > MAX_GAP_S:
        problems.append(f"{name}: {curves.dropped} of {n} frames are missing from the timecodes (the longest gap "
                        f"{longest:.2f} s); the tracking stalled, so record this take again")
    elif curves.dropped:
        warnings.append(f"{name}: {curves.dropped} dropped frame(s) filled in from their neighbours")
    if curves.repeated > MAX_REPEATED_SHARE * n:
        problems.append(f"{name}: {curves.repeated} of {n} rows repeat the timecode before them; the capture app "
                        "wrote frames twice, so record this take again")
    elif curves.repeated:
        warnings.append(f"{name}: {curves.repeated} repeated timecode(s) skipped")
    shapes = curves.values[:, : spec.NUM_ARKIT]
    if float(shapes.std(axis=0).max()) < FLAT_STD:
        problems.append(f"{name}: the curves do not move (flat); the face tracking was probably lost")
    else:
        top = (shapes >= 0.999).mean(axis=0)
        worst = int(top.argmax())
        if top[worst] > CLIP_SHARE:
            problems.append(f"{name}: {spec.ARKIT_NAMES[worst]} sits at its ceiling 1.0 on {top[worst]:.0%} of the "
                            "frames (clipped); recalibrate the face in the capture app and record again")
    return [CaptureProblem(path, p) for p in problems], warnings


def folder_rate_problems(takes: list[tuple[TakeFiles, Curves]]) -> list[CaptureProblem]:
    """Takes recorded at another frame rate than most of the folder."""
    rates = [c.fps for _, c in takes]
    if not rates:
        return []
    values, counts = np.unique(rates, return_counts=True)
    usual = float(values[counts == counts.max()].max())  # a tie goes to the higher rate (the app's default is 60)
    return [CaptureProblem(f.csv, f'"{f.csv.name}": recorded at {c.fps:g} fps while the other takes are at '
                                  f"{usual:g} fps; record every take of a performer with the same capture settings")
            for f, c in takes if c.fps != usual]


# --- the audio ------------------------------------------------------------------------------------------------------

def read_take_audio(files: TakeFiles) -> tuple[np.ndarray, list[str]]:
    """16 kHz mono samples of the take's audio (a .mov/.mp4 take's sound track through core.movie) and the reader's
    warnings."""
    audio = load_audio(files.audio)
    return audio.samples, list(audio.warnings)


def audio_timecode(path: Path) -> float | None:
    """Seconds since midnight at which a Broadcast WAV's first sample was recorded (its bext chunk's time
    reference), or None when the file carries none."""
    if path.suffix.lower() != ".wav":
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            rate = None
            reference = None
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    break
                cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                body = f.read(min(size, 1 << 16)) if cid in (b"fmt ", b"bext") else None
                if body is None:
                    f.seek(size + (size & 1), 1)
                    continue
                if cid == b"fmt " and len(body) >= 8:
                    rate = struct.unpack("<I", body[4:8])[0]
                elif cid == b"bext" and len(body) >= 346:
                    reference = struct.unpack("<Q", body[338:346])[0]
                f.seek(size - len(body) + (size & 1), 1)
    except OSError:
        return None
    if not rate or reference is None:
        return None
    return reference / rate


# --- one take, checked and on the audio's clock -------------------------------------------------------------------

def place_on_audio(curves: Curves, n_frames: int, curve_start: float) -> np.ndarray:
    """(n_frames, NUM_CHANNELS) states at MODEL_FPS on the audio's clock: the captured row at ``curve_start`` + its
    time, linearly interpolated (dropped frames filled in), the first and last rows held outside the capture."""
    t = np.arange(n_frames) / spec.MODEL_FPS - curve_start
    src = curves.times
    out = np.empty((n_frames, spec.NUM_CHANNELS), np.float32)
    for c in range(spec.NUM_CHANNELS):
        out[:, c] = np.interp(t, src, curves.values[:, c])
    return out


def check_lengths(files: TakeFiles, curves: Curves, audio_seconds: float, curve_start: float) -> list[CaptureProblem]:
    curve_seconds = float(curves.times[-1]) + 1.0 / curves.fps
    problems = []
    if abs(curve_start + curve_seconds - audio_seconds) > MAX_LENGTH_MISMATCH_S and \
            abs(curve_seconds - audio_seconds) > MAX_LENGTH_MISMATCH_S:
        problems.append(CaptureProblem(files.audio, f'"{files.audio.name}": the audio lasts {audio_seconds:.1f} s but '
                                       f'the curves in "{files.csv.name}" last {curve_seconds:.1f} s; is it the audio '
                                       "of another take?"))
    elif audio_seconds < MIN_SECONDS:
        problems.append(CaptureProblem(files.audio, f'"{files.audio.name}": lasts {audio_seconds:.1f} s; a take needs '
                                       f"at least {MIN_SECONDS:g} s"))
    return problems


def load_take(files: TakeFiles, curves: Curves) -> tuple[Take | None, list[CaptureProblem]]:
    """The take with its audio read and its curves placed by the timecodes (the audio's own timecode when it
    carries one, else both start together), or its problems."""
    samples, warnings = read_take_audio(files)
    start = 0.0
    audio_tc = audio_timecode(files.audio)
    if audio_tc is not None:
        start = curves.start_timecode - audio_tc
        if abs(start) > MAX_LENGTH_MISMATCH_S + len(samples) / spec.SAMPLE_RATE:
            warnings.append(f'"{files.audio.name}": its timecode is {start:+.1f} s from the curves\', so it is '
                            "ignored and both are taken to start together")
            start = 0.0
    problems = check_lengths(files, curves, len(samples) / spec.SAMPLE_RATE, start)
    if problems:
        return None, problems
    from .features import n_model_frames

    states = place_on_audio(curves, n_model_frames(len(samples)), start)
    return Take(files, samples, states, curves.fps, start, warnings, curves=curves), []


# --- the whole folder -----------------------------------------------------------------------------------------------

MIN_SPEECH_S = 1.0  # a take with less recognised speech than this teaches the mouth nothing


def speech_seconds(evidence) -> float:
    """Seconds of recognised phones other than silence."""
    if evidence is None or evidence.alignment is None:
        return 0.0
    return float(sum(p.end - p.start for p in evidence.alignment.phones if p.phone != "sil"))


def listen(take: Take, listener=None, language: str | None = None) -> list[CaptureProblem]:
    """The take's phone evidence (its NAME.txt transcript when one is beside it, in ``language`` when set, else
    phone recognition) and the speech check. What the evidence stage says about the transcript (aligned as another
    language, not used and why) joins the take's warnings, naming the file."""
    from .evidence import gather_evidence

    text = None
    if take.files.transcript is not None:
        try:  # one rule with the bake: UTF-8, UTF-16/32 with a BOM, Windows-1252; anything else refuses the take
            text = read_user_text(take.files.transcript)
        except FacePolicyError as exc:
            return [CaptureProblem(take.files.transcript, str(exc))]
    take.evidence = gather_evidence(take.samples, text, "phones", listener, language=language)
    named = take.files.transcript or take.files.audio
    take.warnings += [f'"{named.name}": {w}' for w in take.evidence.warnings]
    if speech_seconds(take.evidence) < MIN_SPEECH_S:
        return [CaptureProblem(take.files.audio, f'"{take.files.audio.name}": no speech heard (less than '
                               f"{MIN_SPEECH_S:g} s of phones); a take must be the performer speaking")]
    return []


def sync(take: Take, keep_timing: bool = False) -> list[CaptureProblem]:
    """The sync check of a listened take, which moves the curves when they are late or early (core.capture_sync):
    beyond the check's precision, or with ``keep_timing`` beyond the performer's own timing (0.1 s)."""
    from .capture_sync import KEEP_S, PERFORMER_TIMING_S, check_sync
    from .phonetic import phonetic_prior_take

    reference = phonetic_prior_take(take.evidence.alignment, take.samples, take.seconds)
    jaw = spec.CHANNEL_INDEX["jawOpen"]
    take.sync = check_sync(take.samples, take.states[:, jaw], np.asarray(reference[0 : len(take.states)])[:, jaw],
                           keep=PERFORMER_TIMING_S if keep_timing else KEEP_S)
    if take.sync.refused:
        return [CaptureProblem(take.files.csv, take.sync.sentence(take.files.csv.name))]
    if take.sync.corrected:
        take.curve_start -= take.sync.offset
        take.states = place_on_audio(take.curves, len(take.states), take.curve_start)
    take.warnings.append(take.sync.sentence(take.files.csv.name))
    return []


def listen_and_sync(take: Take, listener=None, keep_timing: bool = False,
                    language: str | None = None) -> list[CaptureProblem]:
    """listen, then sync."""
    return listen(take, listener, language) or sync(take, keep_timing)


def check_folder(folder: Path | str, listener=None, progress=None,
                 keep_timing: bool = False, language: str | None = None) -> tuple[list[Take], list[str]]:
    """Every take of ``folder`` read, checked, listened to (``language``: the transcripts' language as the user set
    it, core.letters.told_language) and put in sync (``keep_timing``: offsets within 0.1 s
    kept as the performer's own timing); returns (takes, warnings). Raises
    CaptureError listing every problem of every take when any take has one (nothing is half used)."""
    progress = progress or (lambda fraction, message: None)
    files, problems = find_takes(folder)
    read: list[tuple[TakeFiles, Curves]] = []
    warnings: list[str] = []
    for f in files:
        try:
            curves = read_curves(f.csv)
        except CaptureError as exc:
            problems += exc.problems
            continue
        found, said = check_curves(f.csv, curves)
        problems += found
        warnings += said
        if not found:
            read.append((f, curves))
    problems += folder_rate_problems(read)
    bad = {p.path for p in problems}
    takes = []
    for k, (f, curves) in enumerate(read):
        progress(k / max(1, len(read)), f"reading {f.csv.name}")
        if f.csv in bad:
            continue
        take, found = load_take(f, curves)
        problems += found
        if take is None:
            continue
        found = listen_and_sync(take, listener, keep_timing, language)
        problems += found
        if not found:
            takes.append(take)
            warnings += take.warnings
    if problems:
        raise CaptureError(problems, f"{len(problems)} problem(s) in the captures; nothing was trained:")
    progress(1.0, "takes checked")
    return takes, warnings
