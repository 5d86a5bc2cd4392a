"""Rhubarb Lip Sync measured on our clips with our metrics: a head-to-head, not figures copied from elsewhere.

Rhubarb (https://github.com/DanielSWolf/rhubarb-lip-sync, MIT) is not part of FacePolicy and is never shipped: build
it yourself and pass its binary with --rhubarb. It runs on the real clips of model.evaluate (ARCTIC + LibriVox;
--testdata: the second real set; --tts N: the held-out festival/flite sentences of `model.evaluate --tts N`), with
its default recognizer (pocketSphinx) and, with --phonetic, its phonetic recognizer; --dialog adds runs with the
clip's transcript as its dialog file (-d; the phonetic recognizer ignores the dialog, so it gets no such run).

Its output is a step track of mouth shapes (TSV: ``time<TAB>shape``; the last line is the end of the recording).
Each shape becomes an ARKit pose (POSE_TABLES below; the channel mapping is the teacher's, core.teacher.mouth), the
track is sampled at 30 fps (frame i shows the cue active at i/30 s, as Rhubarb's output is meant to be played) and
scored by core.metrics.score_clip against the clips' reference phones, the same function model.evaluate and
bench_live use for our tracks. Closed shapes are A (P/B/M, sealed exactly as our bilabials: mouthClose = jawOpen)
and X (rest: the neutral face); every other shape parts the lips past the "closed" threshold in the main table, so
bilabial and /m/ depend only on where Rhubarb puts A and X. --ours adds our tracks on the same clips: the offline
default (Neural accurate, in process as model.evaluate runs it), offline fast, and the live stream (`facepolicy
live -` per clip, its CSV scored, as bench_live --quality does).

    .venv/bin/python bench/bench_rhubarb.py --rhubarb /path/to/rhubarb [--phonetic] [--dialog] [--ours]
        [--testdata | --tts N] [--tables main,narrow,teacher] [--blend 0.05] [--per-clip]
    .venv/bin/python bench/bench_rhubarb.py --rhubarb /path/to/rhubarb --speed [--runs 3]   # 60 s wall time
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from facepolicy.core import metrics, spec  # noqa: E402
from facepolicy.core.facetrack import FaceTrack  # noqa: E402
from facepolicy.core.phones import BILABIALS  # noqa: E402

FPS = 30  # the frame rate our tracks are scored at (bench_live's CSVs, the engines' MODEL_FPS)
SHAPES = "ABCDEFGHX"
RECOGNIZERS = {"pocketSphinx": "pocketSphinx", "phonetic": "phonetic"}


# --- Rhubarb's TSV -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cue:
    start: float
    shape: str


def parse_tsv(text: str, source: str = "Rhubarb output") -> list[Cue]:
    """Cues from Rhubarb's TSV export: one ``seconds<TAB>shape`` per line, times non-decreasing, the first at 0 and
    the last the end of the recording (README, "Tab-separated values"). Bad input: one ValueError sentence."""
    cues: list[Cue] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise ValueError(f"{source}, line {n}: expected 'seconds<TAB>shape', got {line!r}")
        try:
            t = float(parts[0])
        except ValueError:
            raise ValueError(f"{source}, line {n}: {parts[0]!r} is not a time in seconds") from None
        shape = parts[1].strip()
        if shape not in SHAPES or len(shape) != 1:
            raise ValueError(f"{source}, line {n}: {shape!r} is not one of Rhubarb's mouth shapes {SHAPES}")
        if not np.isfinite(t) or t < 0 or (cues and t < cues[-1].start):
            raise ValueError(f"{source}, line {n}: time {parts[0]} is negative or goes back in time")
        cues.append(Cue(t, shape))
    if not cues:
        raise ValueError(f"{source}: no mouth cues")
    return cues


# --- shapes → ARKit ------------------------------------------------------------------------------------------------

def pose(jaw=0.0, lips=0.0, spread=0.0, pucker=0.0, funnel=0.0, tongue=0.0, tuck=0.0, sealed=False,
         press=0.0) -> dict[str, float]:
    """ARKit weights of an articulator pose, through the teacher's channel mapping (core.teacher.mouth.lower_face
    at unit amplitude, no asymmetry): lips part the lips beyond the jaw; ``sealed`` closes them whatever the jaw does
    (mouthClose = jawOpen, as our bilabials); ``tuck`` rolls the lower lip under the upper teeth (f/v)."""
    w: dict[str, float] = {"jawOpen": jaw * (1 - 0.7 * tuck)}
    lips = 0.0 if sealed else lips * (1 - tuck)
    funnel = 0.0 if sealed else funnel * (1 - tuck)
    if sealed:
        w["mouthClose"] = w["jawOpen"]
    w["mouthFunnel"] = funnel
    w["mouthPucker"] = pucker
    for side in ("Left", "Right"):
        w[f"mouthUpperUp{side}"] = 0.55 * lips + 0.25 * tuck
        w[f"mouthLowerDown{side}"] = 0.7 * lips
        w[f"mouthStretch{side}"] = 0.45 * spread
        w[f"mouthSmile{side}"] = 0.2 * spread
        w[f"mouthDimple{side}"] = 0.1 * spread
        w[f"mouthPress{side}"] = press
    w["mouthRollLower"] = 0.55 * tuck + (0.12 if sealed else 0.0)
    w["mouthRollUpper"] = 0.08 * tuck + (0.1 if sealed else 0.0)
    w["mouthShrugUpper"] = 0.12 * tuck
    w["tongueOut"] = 0.0 if sealed else tongue
    return {k: v for k, v in w.items() if v}


# The shapes as Rhubarb's README draws them. A: closed for P/B/M, slight pressure; B: slightly open, teeth clenched
# (most consonants, EE); C: open (EH, AE); D: wide open (AA); E: slightly rounded, not wider than C (AO, ER); F:
# puckered (UW, OW, W); G: upper teeth on the lower lip (F, V); H: tongue raised for long L, open at least as C and
# less than D; X: idle, lips closed and relaxed.
POSE_TABLES: dict[str, dict[str, dict[str, float]]] = {
    # main: A and X closed, everything else parted past the closed threshold (B and G by about 1.3x it); the open
    # vowels' shapes at our teacher's conversational openings (C = eh, D = aa; E and H between C and B).
    "main": {
        "A": pose(jaw=0.05, sealed=True, press=0.3),
        "B": pose(jaw=0.13, lips=0.15, spread=0.35),
        "C": pose(jaw=0.34, lips=0.30, spread=0.25),
        "D": pose(jaw=0.50, lips=0.35, spread=0.05),
        "E": pose(jaw=0.22, lips=0.15, pucker=0.25, funnel=0.35),
        "F": pose(jaw=0.16, lips=0.05, pucker=0.85, funnel=0.45),
        "G": pose(jaw=0.16, lips=0.15, tuck=0.3),
        "H": pose(jaw=0.36, lips=0.25, tongue=0.30),
        "X": pose(),
    },
    # narrow: the same closed set, every opening smaller (a subtle rig): C, E and H just past the open threshold,
    # B and G just past the closed one.
    "narrow": {
        "A": pose(jaw=0.0, sealed=True, press=0.15),
        "B": pose(jaw=0.10, lips=0.15, spread=0.30),
        "C": pose(jaw=0.24, lips=0.15, spread=0.25),
        "D": pose(jaw=0.38, lips=0.25, spread=0.05),
        "E": pose(jaw=0.16, lips=0.08, pucker=0.30, funnel=0.40),
        "F": pose(jaw=0.10, lips=0.08, pucker=0.85, funnel=0.45),
        "G": pose(jaw=0.14, lips=0.12, tuck=0.3),
        "H": pose(jaw=0.26, lips=0.12, tongue=0.30),
        "X": pose(),
    },
    # teacher: each shape is our teacher's own target for the first phone Rhubarb's README gives it (A m, B t, C eh,
    # D aa, E ao, F uw, G f, H l opened to C as the README asks, X rest). Our t and f poses measure "closed" (lip
    # gap under 0.12 of the range), so B and G count as closures here: a bound on how much bilabial and /m/ move
    # when the clenched-teeth and teeth-on-lip shapes are drawn nearly shut.
    "teacher": {
        "A": pose(jaw=0.05, sealed=True, press=0.3),
        "B": pose(jaw=0.07, lips=0.05, spread=0.15, tongue=0.12),
        "C": pose(jaw=0.34, lips=0.30, spread=0.25),
        "D": pose(jaw=0.50, lips=0.35, spread=0.05),
        "E": pose(jaw=0.44, lips=0.25, pucker=0.25, funnel=0.35),
        "F": pose(jaw=0.16, lips=0.05, pucker=0.85, funnel=0.45),
        "G": pose(jaw=0.08, spread=0.05, tuck=1.0),
        "H": pose(jaw=0.34, lips=0.20, spread=0.10, tongue=0.18),
        "X": pose(),
    },
}


def pose_vector(weights: dict[str, float]) -> np.ndarray:
    v = np.zeros(spec.NUM_CHANNELS, np.float32)
    for name, x in weights.items():
        v[spec.CHANNEL_INDEX[name]] = x
    return v


def closed_shapes(table: dict[str, dict[str, float]]) -> str:
    """The shapes whose pose the metric scores as closed lips (gap ≤ the bilabial threshold)."""
    g = metrics.default_geometry()
    closed = g.threshold(metrics.CLOSED_FRACTION)
    return "".join(s for s in SHAPES if g.gap(pose_vector(table[s])[: spec.NUM_ARKIT]) <= closed)


def opening(weights: dict[str, float]) -> float:
    """Lip gap of a pose as a fraction of the full jaw opening (0: neutral; the metric's thresholds: closed ≤ 0.12,
    pause-closed ≤ 0.18, open ≥ 0.25)."""
    g = metrics.default_geometry()
    return (float(g.gap(pose_vector(weights)[: spec.NUM_ARKIT])) - g.gap0) / g.range


def cues_to_track(cues: list[Cue], duration: float, table: dict[str, dict[str, float]], fps: float = FPS,
                  blend: float = 0.0) -> FaceTrack:
    """A FaceTrack of ``round(duration × fps)`` frames: frame i holds the pose of the cue active at i/fps (the last
    cue holds to the end). ``blend`` > 0 fades from the previous pose over that many seconds after each cue starts
    (at most half the cue), a smoothed variant of the step track Rhubarb delivers."""
    n = max(1, int(round(duration * fps)))
    times = np.arange(n) / fps
    starts = np.array([c.start for c in cues])
    poses = np.stack([pose_vector(table[c.shape]) for c in cues])
    k = np.clip(np.searchsorted(starts, times + 1e-9, side="right") - 1, 0, len(cues) - 1)
    values = poses[k].copy()
    if blend > 0:
        ends = np.append(starts[1:], max(duration, starts[-1]))
        for i in range(1, len(cues)):
            span = min(blend, 0.5 * (ends[i] - starts[i]))
            if span <= 0:
                continue
            m = (k == i) & (times < starts[i] + span)
            a = ((times[m] - starts[i]) / span)[:, None]
            values[m] = (1 - a) * poses[i - 1] + a * poses[i]
    return FaceTrack(fps, spec.CHANNEL_NAMES, values.astype(np.float32), {"source": "rhubarb"})


# --- running Rhubarb -----------------------------------------------------------------------------------------------

def check_binary(path: str | None) -> Path:
    if not path:
        raise SystemExit("bench_rhubarb: give the Rhubarb Lip Sync binary with --rhubarb PATH (build it from "
                         "https://github.com/DanielSWolf/rhubarb-lip-sync; it is not shipped with FacePolicy)")
    exe = Path(path)
    if not exe.is_file():
        raise SystemExit(f"bench_rhubarb: {exe} is not a file; give the Rhubarb binary with --rhubarb PATH")
    return exe


def run_rhubarb(exe: Path, wav: Path, recognizer: str, dialog: Path | None, out: Path) -> float:
    """Runs Rhubarb on ``wav``; returns its wall time in seconds."""
    cmd = [str(exe), "-q", "-f", "tsv", "-r", recognizer, "-o", str(out)]
    if dialog is not None:
        cmd += ["-d", str(dialog)]
    t0 = time.perf_counter()
    r = subprocess.run([*cmd, str(wav)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(f"rhubarb failed on {wav.name}: {(r.stderr or r.stdout).strip()[-1500:]}")
    return wall


def write_clip(clip, folder: Path) -> Path:
    wav = folder / f"{clip.name}.wav"
    if clip.audio.source and Path(clip.audio.source).suffix.lower() == ".wav":
        shutil.copy(clip.audio.source, wav)
    else:  # goforward.raw, the TTS clips: 16-bit PCM written here
        sf.write(str(wav), clip.audio.samples, clip.audio.sample_rate, subtype="PCM_16")
    return wav


def load_clips(testdata: bool, tts: int):
    from model import evaluate_phonetic as ep

    if tts:
        return ep.tts_clips(tts), f"held-out TTS ({tts})"
    if testdata:
        return ep.testdata_clips(), "second real set"
    return ep.arctic_clips() + ep.librivox_clips(), "real clips (ARCTIC + LibriVox)"


# --- our tracks on the same clips ----------------------------------------------------------------------------------

def our_tracks(clips, wavs: list[Path], folder: Path) -> dict[str, list[FaceTrack]]:
    """Offline Neural accurate (the default) and fast, in process as model.evaluate runs them (no transcript), and
    the live stream's CSV per clip as bench_live --quality makes it (phones heard live, the default)."""
    from bench_live import console

    from facepolicy.core.audio import Audio
    from facepolicy.core.engine import BakeOptions
    from facepolicy.core.livelink import read_livelink_csv
    from facepolicy.core.neural import NeuralEngine

    engine = NeuralEngine(str(ROOT / "assets" / "models"))
    out: dict[str, list[FaceTrack]] = {"ours: offline accurate (default)": [], "ours: offline fast": [],
                                       "ours: live stream (default)": []}
    for clip, wav in zip(clips, wavs, strict=True):
        audio = Audio(clip.audio.samples, clip.audio.sample_rate, "")
        for mode, key in (("accurate", "ours: offline accurate (default)"), ("fast", "ours: offline fast")):
            out[key].append(engine.animate(audio, BakeOptions(engine="neural", accuracy=mode, seed=0),
                                           lambda f, m: None, None))
        x, rate = sf.read(str(wav), dtype="int16")
        csv = folder / f"{wav.stem}.live.csv"
        r = subprocess.run([console(), "live", "-", "--input-rate", str(rate), "--csv", str(csv)],
                           input=x.astype("<i2").tobytes(), capture_output=True)
        if r.returncode:
            raise SystemExit(r.stderr.decode()[-2000:])
        out["ours: live stream (default)"].append(read_livelink_csv(csv, fps=FPS))
    return out


# --- report --------------------------------------------------------------------------------------------------------

def _counts(s: dict) -> str:
    c = s["counts"]
    return (f"bilabial {c['bilabial_hits']}/{c['bilabial_total']}, /m/ {c['m_hits']}/{c['m_total']}, "
            f"open {c['open_hits']}/{c['open_total']}, SLCC {s['slcc']:.3f}, jitter {s['jitter']:.3f}")


def _closure_misses(clip, score) -> str:
    """Which reference p, b, m the track left open, with the phones around each."""
    phones = clip.reference
    out = []
    for phone, start in score.missed:
        if phone not in BILABIALS:
            continue
        i = next(j for j, p in enumerate(phones) if p.phone == phone and abs(p.start - start) < 1e-9)
        ctx = " ".join(p.phone for p in phones[max(0, i - 2):i]) + f" [{phone}] " + " ".join(
            p.phone for p in phones[i + 1:i + 3])
        out.append(f"{phone} {start:.2f} s ({ctx.strip()})")
    return ", ".join(out)


def speed(exe: Path, runs: int, recognizers: list[str]) -> list[str]:
    from bench_phonetic import speech

    x, text = speech(60.0)
    lines = []
    with tempfile.TemporaryDirectory(prefix="bench_rhubarb_") as tmp:
        wav = Path(tmp) / "speech.wav"
        sf.write(str(wav), x, spec.SAMPLE_RATE, subtype="PCM_16")
        dialog = Path(tmp) / "speech.txt"
        dialog.write_text(text + "\n", encoding="utf-8")
        for rec in recognizers:
            for dlg in ((None, dialog) if rec == "pocketSphinx" else (None,)):
                walls = [run_rhubarb(exe, wav, rec, dlg, Path(tmp) / "out.tsv") for _ in range(runs)]
                lines.append(f"rhubarb speed, {len(x) / spec.SAMPLE_RATE:.1f} s of real speech (bench_neural's "
                             f"clip), {rec}{' with dialog' if dlg else ''}: {statistics.median(walls):.2f} s wall, "
                             f"median of {runs} ({', '.join(f'{w:.2f}' for w in walls)})")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rhubarb", metavar="PATH", help="the Rhubarb Lip Sync binary (res/ beside it)")
    ap.add_argument("--phonetic", action="store_true", help="also its phonetic recognizer")
    ap.add_argument("--dialog", action="store_true", help="also pocketSphinx with the clip's transcript (-d)")
    ap.add_argument("--testdata", action="store_true", help="the second real set instead of the real clips")
    ap.add_argument("--tts", type=int, default=0, metavar="N", help="N held-out TTS sentences instead")
    ap.add_argument("--tables", default="main,narrow,teacher", help=f"pose tables, of {','.join(POSE_TABLES)}")
    ap.add_argument("--blend", type=float, default=0.0, metavar="S",
                    help="also score the main table with S seconds of fade into each shape")
    ap.add_argument("--ours", action="store_true", help="also our offline and live tracks on the same clips")
    ap.add_argument("--per-clip", action="store_true", help="per clip /m/ hits and the /m/ each track misses")
    ap.add_argument("--speed", action="store_true", help="only Rhubarb's wall time on 60 s of real speech")
    ap.add_argument("--runs", type=int, default=3, help="with --speed: runs per recognizer (median)")
    args = ap.parse_args(argv)
    exe = check_binary(args.rhubarb)
    recognizers = ["pocketSphinx"] + (["phonetic"] if args.phonetic else [])
    if args.speed:
        for line in speed(exe, args.runs, recognizers):
            print(line, flush=True)
        return 0
    tables = [t.strip() for t in args.tables.split(",") if t.strip()]
    unknown = [t for t in tables if t not in POSE_TABLES]
    if unknown:
        raise SystemExit(f"bench_rhubarb: unknown pose table {unknown[0]!r}; choose from {', '.join(POSE_TABLES)}")
    clips, label = load_clips(args.testdata, args.tts)
    if not clips:
        raise SystemExit("bench_rhubarb: no clips found (install pocketsphinx-testdata, flite and festival)")
    for t in tables:
        shapes = " ".join(f"{s} {opening(POSE_TABLES[t][s]):.2f}" for s in SHAPES)
        print(f"pose table {t}: closed shapes {closed_shapes(POSE_TABLES[t])}; lip opening (fraction of jawOpen=1) "
              f"{shapes}", flush=True)
    rows: dict[str, list] = {}  # name → per-clip ClipScores
    seconds = sum(c.audio.duration for c in clips)
    walls: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench_rhubarb_") as tmp:
        tmp = Path(tmp)
        wavs = [write_clip(c, tmp) for c in clips]
        runs = [(rec, False) for rec in recognizers] + ([("pocketSphinx", True)] if args.dialog else [])
        for rec, with_dialog in runs:
            name = f"Rhubarb {rec}{' + dialog' if with_dialog else ''}"
            cue_lists, walls[name] = [], 0.0
            for clip, wav in zip(clips, wavs, strict=True):
                dialog = None
                if with_dialog:
                    dialog = tmp / f"{clip.name}.dialog.txt"
                    dialog.write_text((clip.transcript or "") + "\n", encoding="utf-8")
                out = tmp / f"{clip.name}.{rec}.{int(with_dialog)}.tsv"
                walls[name] += run_rhubarb(exe, wav, rec, dialog, out)
                cue_lists.append(parse_tsv(out.read_text(encoding="utf-8"), str(out.name)))
            for t in tables:
                rows[f"{name} [{t}]"] = [metrics.score_clip(cues_to_track(cues, c.audio.duration, POSE_TABLES[t]),
                                                            c.reference, c.audio.samples)
                                         for cues, c in zip(cue_lists, clips, strict=True)]
            if args.blend > 0:
                rows[f"{name} [main, {args.blend * 1000:.0f} ms fade]"] = [
                    metrics.score_clip(cues_to_track(cues, c.audio.duration, POSE_TABLES["main"], blend=args.blend),
                                       c.reference, c.audio.samples) for cues, c in zip(cue_lists, clips, strict=True)]
        if args.ours:
            for name, tracks in our_tracks(clips, wavs, tmp).items():
                rows[name] = [metrics.score_clip(tr, c.reference, c.audio.samples)
                              for tr, c in zip(tracks, clips, strict=True)]
    print(f"\n{label}: {len(clips)} clips, {seconds:.1f} s; Rhubarb 1.14 at {FPS} fps through the pose tables\n")
    print(metrics.TABLE_HEADER)
    for name, scores in rows.items():
        print(metrics.format_row(name, metrics.aggregate(scores)))
    print()
    for name, scores in rows.items():
        print(f"{name}: {_counts(metrics.aggregate(scores))}")
    for name, wall in walls.items():
        print(f"{name}: {wall:.1f} s wall for the {len(clips)} clips ({seconds:.1f} s of audio)")
    if args.per_clip:
        print("\nper clip /m/ and p/b/m hits (misses: phone, reference start, phones around it)")
        for name, scores in rows.items():
            if "[" in name and not name.endswith("[main]"):
                continue  # closures depend on a table only through which shapes it closes
            print(f"  {name}")
            for c, s in zip(clips, scores, strict=True):
                if s.bilabial_total:
                    miss = _closure_misses(c, s)
                    print(f"    {c.name}: /m/ {s.m_hits}/{s.m_total}, p/b/m {s.bilabial_hits}/{s.bilabial_total}"
                          + (f"; missed {miss}" if miss else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
