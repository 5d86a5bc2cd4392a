"""Batch baking without Blender's UI: the row model, manifests, validation, resumability and executors.

One dialogue line is one ``BakeRow``. ``bake_row(row, opts)`` turns it into files and is pure and idempotent:
the same row and options always give the same files, a line's files appear all together or not at all (a failed
or interrupted line leaves the folder as it was), and a small hidden sidecar (written last) records what produced
them so that a re-run skips rows that are already up to date.
Executors only decide *where* ``bake_row`` runs (in this process, or in warm worker processes); a cluster
executor plugs in the same way. Formats that need Blender (fbx, glb, blend) are written by a ``SceneExporter``
passed in by the caller, so this module never imports bpy.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from . import spec
from .engine import NOT_SHIPPED, BakeOptions, ProgressFn
from .errors import Cancelled, FacePolicyError
from .facetrack import FaceTrack
from .version import VERSION

FORMATS: tuple[str, ...] = ("csv", "json", "fbx", "glb", "blend")
SCENE_FORMATS = frozenset({"fbx", "glb", "blend"})  # need bpy; csv and json come from core/ alone
SIDECAR_VERSION = 1
BLENDER_HINT = ("install it with 'pip install bpy' (the version matching your Blender) or run the bake inside "
                "Blender: blender -b -c facepolicy bake ...")
MANIFEST_COLUMNS = ("audio", "output", "style", "seed", "object", "engine", "transcript")
# Other spellings accepted in a manifest header or JSON row.
_COLUMN_ALIASES = {"output_name": "output", "name": "output", "out": "output", "file": "audio", "wav": "audio"}


# --- the row model ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BakeRow:
    """One line to bake. Paths are absolute; ``output`` is a relative POSIX stem inside the output folder."""

    index: int  # 1-based, in the order the user gave the lines
    audio: str
    output: str
    source: str = ""  # where the row came from, for messages: 'lines.csv line 4', '"take3.wav"'
    style: str | None = None
    seed: int = 0
    object: str | None = None
    engine: str = field(default_factory=lambda: BakeOptions().engine)
    transcript: str | None = None  # path of a text file

    def label(self) -> str:
        return self.source or f"row {self.index}"


@dataclass(frozen=True)
class BatchOptions:
    """Settings shared by every row of one batch (plain data, so it crosses process boundaries as JSON)."""

    out_dir: str
    formats: tuple[str, ...] = ("csv", "json")
    fps: float = float(spec.MODEL_FPS)
    takes: int = 1
    strength: float = 1.0
    device: str = "auto"
    blend: str | None = None  # a .blend holding the character; None: the bundled default head
    # A one-bone skeleton for characters without an armature: it carries the head rotation, and Unreal imports
    # the FBX as a skeletal mesh with morph targets.
    fbx_armature: bool = True
    accuracy: str | None = None  # fast or accurate; None: the engine's default (Neural accurate, Phonetic fast)
    emotion: str = "neutral"
    emotion_intensity: float = 0.5
    audio_guidance: float = 1.0  # the Neural engine's classifier-free guidance on audio
    steps: int | None = None  # the Neural engine's DDIM steps (None: the model's default)
    prior_weight: float | None = None  # the Neural engine's phonetic prior weight (None: its default)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> BatchOptions:
        data = dict(data)
        data["formats"] = tuple(data.get("formats", ()))
        return cls(**data)

    @property
    def needs_blender(self) -> bool:
        return any(f in SCENE_FORMATS for f in self.formats)


@dataclass
class RowResult:
    index: int
    output: str
    status: str  # "ok" | "skipped" (already up to date) | "failed" | "cancelled"
    message: str = ""
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    audio_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "skipped")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RowResult:
        return cls(**data)


# SceneExporter(tracks, row, opts, targets): write every target {format: final path} for these takes.
# ``tracks[k]`` is take k+1; each target path is ``{format: {take: path}}``. Raises FacePolicyError on bad input.
SceneExporter = Callable[[list[FaceTrack], BakeRow, BatchOptions, dict[str, dict[int, Path]]], None]


# --- output names -------------------------------------------------------------------------------------


def parse_formats(text: str) -> tuple[str, ...]:
    """'csv, fbx' → ('csv', 'fbx'), in the canonical order; FacePolicyError naming the valid ones."""
    items = [t.strip().lower().lstrip(".") for t in str(text).split(",") if t.strip()]
    if not items:
        raise FacePolicyError(f"no output format given; choose from {', '.join(FORMATS)}")
    bad = [t for t in items if t not in FORMATS]
    if bad:
        raise FacePolicyError(f"unknown output format {bad[0]!r}; choose from {', '.join(FORMATS)}")
    return tuple(f for f in FORMATS if f in items)


def check_output_name(name: str) -> str:
    """The normalised relative POSIX stem for a user-given output name, or FacePolicyError.

    Outputs must stay inside the output folder: absolute paths, drive letters, '..' and empty names are refused.
    A trailing extension of a known format is dropped (the formats come from --format).
    """
    raw = str(name).strip()
    if not raw:
        raise FacePolicyError("the output name is empty")
    if "\x00" in raw:
        raise FacePolicyError(f"the output name {raw!r} contains a NUL character")
    text = raw.replace("\\", "/")
    if text.startswith("/") or (len(text) >= 2 and text[1] == ":") or text.startswith("~"):
        raise FacePolicyError(f"output {raw!r} is an absolute path; output names must be relative to -o")
    parts = [p for p in PurePosixPath(text).parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise FacePolicyError(f"output {raw!r} leaves the output folder ('..' is not allowed)")
    if not parts:
        raise FacePolicyError(f"output {raw!r} names no file")
    stem = PurePosixPath(*parts)
    if stem.suffix.lower().lstrip(".") in FORMATS:
        stem = stem.with_suffix("")
    if stem.name.startswith("."):
        raise FacePolicyError(f"output {raw!r} is a hidden name; choose a name that does not start with '.'")
    return stem.as_posix()


def take_stem(output: str, take: int, takes: int) -> str:
    return output if takes == 1 else f"{output}_take{take}"


def output_paths(row: BakeRow, opts: BatchOptions) -> dict[str, dict[int, Path]]:
    """{format: {take: final path}} for one row."""
    out = Path(opts.out_dir)
    return {
        fmt: {k: out / f"{take_stem(row.output, k, opts.takes)}.{fmt}" for k in range(1, opts.takes + 1)}
        for fmt in opts.formats
    }


def sidecar_path(row: BakeRow, opts: BatchOptions) -> Path:
    p = Path(opts.out_dir) / row.output
    return p.with_name(f".{p.name}.facepolicy-bake")


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


# --- manifests ----------------------------------------------------------------------------------------


@dataclass
class ManifestEntry:
    """A manifest row as read, before validation: a dict of raw values, or an error message."""

    source: str
    values: dict = field(default_factory=dict)
    error: str = ""


def _column(name: str) -> str:
    key = str(name).strip().lower().replace(" ", "_").replace("-", "_")
    return _COLUMN_ALIASES.get(key, key)


def read_manifest(path) -> list[ManifestEntry]:
    """The rows of a CSV or JSON manifest. Whole-file problems raise FacePolicyError; row problems are kept."""
    path = Path(path)
    if not path.is_file():
        raise FacePolicyError(f'manifest "{path}": file not found')
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise FacePolicyError(f'manifest "{path.name}": cannot read ({exc})') from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        return _read_json_manifest(text, path.name)
    return _read_csv_manifest(text, path.name)


def _read_json_manifest(text: str, name: str) -> list[ManifestEntry]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FacePolicyError(f'manifest "{name}": not valid JSON ({exc})') from None
    if isinstance(data, dict):
        data = data.get("rows", data.get("lines"))
    if not isinstance(data, list):
        raise FacePolicyError(f'manifest "{name}": expected a list of rows, or {{"rows": [...]}}')
    entries = []
    for i, item in enumerate(data, start=1):
        source = f"{name} row {i}"
        if isinstance(item, str):
            item = {"audio": item}
        if not isinstance(item, dict):
            entries.append(ManifestEntry(source, error=f"expected an object with an 'audio' key, got {item!r}"))
            continue
        values = {_column(k): v for k, v in item.items()}
        unknown = sorted(set(values) - set(MANIFEST_COLUMNS))
        if unknown:
            entries.append(ManifestEntry(source, values, f"unknown key(s) {', '.join(unknown)}; "
                                                         f"allowed: {', '.join(MANIFEST_COLUMNS)}"))
            continue
        entries.append(ManifestEntry(source, values))
    return entries


def _read_csv_manifest(text: str, name: str) -> list[ManifestEntry]:
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise FacePolicyError(f'manifest "{name}": the file has no rows')
    rows = list(csv.reader(io.StringIO("\n".join(line for _, line in lines))))
    header = [_column(h) for h in rows[0]]
    if "audio" not in header:
        raise FacePolicyError(
            f'manifest "{name}": the header (line {lines[0][0]}) needs an "audio" column; '
            f"columns: {', '.join(MANIFEST_COLUMNS)}"
        )
    unknown = [h for h in header if h not in MANIFEST_COLUMNS]
    if unknown:
        raise FacePolicyError(f'manifest "{name}": unknown column(s) {", ".join(unknown)}; '
                              f"allowed: {', '.join(MANIFEST_COLUMNS)}")
    entries = []
    for (line_no, _), cells in zip(lines[1:], rows[1:], strict=True):
        source = f"{name} line {line_no}"
        if len(cells) != len(header):
            entries.append(ManifestEntry(source, error=f"{len(cells)} cells but the header has {len(header)}"))
            continue
        entries.append(ManifestEntry(source, {h: c.strip() for h, c in zip(header, cells, strict=True)}))
    return entries


# --- building and validating rows ----------------------------------------------------------------------


@dataclass
class RowDefaults:
    """What the command line says for values a manifest row leaves empty."""

    style: str | None = None
    seed: int = 0
    object: str | None = None
    engine: str = field(default_factory=lambda: BakeOptions().engine)
    transcript: str | None = None


def _opt_str(v) -> str | None:
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def _resolve(path: str, base: Path) -> str:
    p = Path(path).expanduser()
    return str((p if p.is_absolute() else base / p).absolute())


def row_from_values(index: int, source: str, values: dict, defaults: RowDefaults, base: Path) -> BakeRow:
    """A BakeRow from raw manifest/argument values; FacePolicyError for a malformed row."""
    audio = _opt_str(values.get("audio"))
    if not audio:
        raise FacePolicyError("no audio file given")
    seed_raw = values.get("seed")
    seed = defaults.seed
    if seed_raw is not None and str(seed_raw).strip() != "":
        try:
            seed = int(str(seed_raw).strip())
        except ValueError:
            raise FacePolicyError(f"seed must be a whole number, got {seed_raw!r}") from None
        if not 0 <= seed < 2**32:
            raise FacePolicyError(f"seed must be between 0 and {2**32 - 1}, got {seed}")
    audio_path = _resolve(audio, base)
    output = _opt_str(values.get("output")) or Path(audio).stem
    transcript = _opt_str(values.get("transcript"))
    style = _opt_str(values.get("style")) or defaults.style
    if style and _looks_like_path(style):
        style = _resolve(style, base)
    return BakeRow(
        index=index,
        audio=audio_path,
        output=check_output_name(output),
        source=source,
        style=style,
        seed=seed,
        object=_opt_str(values.get("object")) or defaults.object,
        engine=_opt_str(values.get("engine")) or defaults.engine,
        transcript=_resolve(transcript, base) if transcript else defaults.transcript,
    )


def _looks_like_path(style: str) -> bool:
    return "/" in style or "\\" in style or Path(style).suffix.lower() in (".json", ".csv")


def transcript_for(row: BakeRow) -> Path | None:
    """The row's transcript file: the one given, else a .txt with the audio's stem beside it."""
    if row.transcript:
        return Path(row.transcript)
    beside = Path(row.audio).with_suffix(".txt")
    return beside if beside.is_file() else None


def check_row(row: BakeRow, opts: BatchOptions, engines: Iterable[str], presets: Iterable[str]) -> None:
    """FacePolicyError with a user-facing message if the row cannot be baked as given."""
    audio = Path(row.audio)
    if not audio.exists():
        raise FacePolicyError(f'"{row.audio}": audio file not found')
    if audio.is_dir():
        raise FacePolicyError(f'"{row.audio}": is a folder, not an audio file')
    _check_audio_header(audio)
    if row.transcript and not Path(row.transcript).is_file():
        raise FacePolicyError(f'"{row.transcript}": transcript file not found')
    engines = sorted(engines)
    if row.engine not in engines:
        reason = NOT_SHIPPED.get(row.engine, f"unknown engine {row.engine!r}")
        raise FacePolicyError(f"{reason}; available: {', '.join(engines) or 'none'}")
    check_style(row.style, presets)
    out_root = Path(opts.out_dir)
    final = out_root / row.output
    if not _inside(final, out_root):
        raise FacePolicyError(f"output {row.output!r} resolves outside the output folder {opts.out_dir!r}")
    _check_writable(final.parent)


def _check_audio_header(path: Path) -> None:
    from .audio import _soundfile

    sf = _soundfile()
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile raises several types for undecodable input
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise FacePolicyError(
            f'"{path.name}": could not decode audio ({msg}); try WAV, FLAC, OGG or MP3') from None
    if info.frames == 0:
        raise FacePolicyError(f'"{path.name}": the file holds no audio samples')


def _check_writable(folder: Path) -> None:
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise FacePolicyError(f'cannot write to "{folder}": "{probe}" is a file, not a folder')
    if not os.access(probe, os.W_OK | os.X_OK):
        raise FacePolicyError(f'cannot write to "{folder}": the folder "{probe}" is not writable')


def style_presets() -> list[str]:
    """Names of the style presets the installed Neural model ships (the "styles" of assets/models/model.json)."""
    from .policy import MANIFEST, default_model_dir

    path = default_model_dir() / MANIFEST
    try:
        st = path.stat()
    except OSError:
        return []  # no model installed
    return list(_manifest_styles(str(path), st.st_size, st.st_mtime_ns))


@functools.lru_cache(maxsize=4)
def _manifest_styles(path: str, size: int, mtime_ns: int) -> tuple[str, ...]:
    """The preset names of one version of model.json (the panel asks on every redraw)."""
    try:
        return tuple(sorted(json.loads(Path(path).read_text(encoding="utf-8")).get("styles") or {}))
    except (OSError, ValueError, AttributeError):
        return ()  # a broken model, which the engine reports with its sha256 when used


@functools.lru_cache(maxsize=64)
def _check_style_file(path: str, size: int, mtime_ns: int) -> None:
    """A reference clip must be a FacePolicy .json track or a Live Link Face .csv (read once per version)."""
    p = Path(path)
    if p.suffix.lower() == ".csv":
        from .livelink import read_livelink_csv

        read_livelink_csv(p)
    elif p.suffix.lower() == ".json":
        FaceTrack.load_json(p)
    else:
        raise FacePolicyError(f'style reference "{p.name}" must be a .json track or a Live Link Face .csv')


def check_style(style: str | None, presets: Iterable[str]) -> None:
    """A preset name must exist; a reference file must exist. FacePolicyError lists the valid presets."""
    if not style:
        return
    presets = sorted(presets)
    if _looks_like_path(style) or Path(style).is_file():
        if not Path(style).is_file():
            raise FacePolicyError(f'style reference "{style}" not found')
        st = Path(style).stat()
        _check_style_file(str(Path(style).absolute()), st.st_size, st.st_mtime_ns)
        return
    if style not in presets:
        valid = ", ".join(presets) if presets else "none are installed (they ship with the Neural model)"
        raise FacePolicyError(f"unknown style preset {style!r}; valid presets: {valid}; "
                              "or give a reference file (.json track or Live Link .csv)")


def plan_rows(entries: Sequence[tuple[str, dict]], defaults: RowDefaults, base: Path, opts: BatchOptions,
              engines: Iterable[str], presets: Iterable[str], start: int = 1,
              claimed: dict[str, BakeRow] | None = None) -> tuple[list[BakeRow], list[RowResult]]:
    """Build and validate rows. Returns (rows to bake, failures); a bad row never stops the others.

    ``entries`` is (source, values) per row, or (source, {"__error__": message}) for a row that did not parse.
    Rows are numbered from ``start``; ``claimed`` (output path → row) carries duplicate detection across calls.
    """
    engines, presets = list(engines), list(presets)
    rows: list[BakeRow] = []
    failures: list[RowResult] = []
    claimed = {} if claimed is None else claimed
    for i, (source, values) in enumerate(entries, start=start):
        label = source or f"row {i}"
        if "__error__" in values:
            failures.append(RowResult(i, str(values.get("output") or ""), "failed",
                                      f"{label}: {values['__error__']}"))
            continue
        try:
            row = row_from_values(i, source, values, defaults, base)
            check_row(row, opts, engines, presets)
        except FacePolicyError as exc:
            failures.append(RowResult(i, str(values.get("output") or values.get("audio") or ""), "failed",
                                      f"{label}: {exc}"))
            continue
        dupe = _first_clash(row, opts, claimed)
        if dupe is not None:
            failures.append(RowResult(i, row.output, "failed",
                                      f"{label}: output {row.output!r} is already written by {dupe.label()}"))
            continue
        for key in _claim_keys(row, opts):
            claimed[key] = row
        rows.append(row)
    return rows, failures


def _claim_keys(row: BakeRow, opts: BatchOptions) -> list[str]:
    # Case-folded so that 'Line1' and 'line1' clash as they would on Windows and macOS.
    keys = [str(p.resolve()).casefold() for takes in output_paths(row, opts).values() for p in takes.values()]
    keys.append(str(sidecar_path(row, opts).resolve()).casefold())
    return keys


def _first_clash(row: BakeRow, opts: BatchOptions, claimed: dict[str, BakeRow]) -> BakeRow | None:
    for key in _claim_keys(row, opts):
        if key in claimed:
            return claimed[key]
    return None


# --- resumability ---------------------------------------------------------------------------------------

_hash_cache: dict[tuple[str, int, int], str] = {}


def file_digest(path) -> str:
    """sha256 of a file, cached by (path, size, mtime) so each input is hashed once per process."""
    p = Path(path)
    st = p.stat()
    key = (str(p.absolute()), st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
        _hash_cache[key] = h.hexdigest()
    return _hash_cache[key]


def row_inputs(row: BakeRow, opts: BatchOptions, include_blend: bool = True) -> list[Path]:
    """Every file whose content the row's outputs depend on (the batch's --blend too, unless told not to)."""
    paths = [Path(row.audio)]
    t = transcript_for(row)
    if t is not None:
        paths.append(t)
    if row.style and Path(row.style).is_file():
        paths.append(Path(row.style))
    if include_blend and opts.blend and opts.needs_blender:
        paths.append(Path(opts.blend))
    return paths


def row_fingerprint(row: BakeRow, opts: BatchOptions) -> str:
    """A hash of everything that changes the row's outputs: input contents and every parameter."""
    params = {
        "sidecar": SIDECAR_VERSION,
        "version": VERSION,
        "engine": row.engine,
        "seed": row.seed,
        "style": None if row.style and Path(row.style).is_file() else row.style,
        "object": row.object,
        "fps": opts.fps,
        "takes": opts.takes,
        "strength": opts.strength,
        "accuracy": opts.accuracy,
        "emotion": [opts.emotion, opts.emotion_intensity] if opts.emotion != "neutral" else None,
        "audio_guidance": opts.audio_guidance if opts.audio_guidance != 1.0 else None,
        "steps": opts.steps,
        "prior_weight": opts.prior_weight,
        "fbx_armature": opts.fbx_armature if opts.needs_blender else None,
        "blend": bool(opts.blend) if opts.needs_blender else None,
        "inputs": [file_digest(p) for p in row_inputs(row, opts)],
    }
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def is_up_to_date(row: BakeRow, opts: BatchOptions) -> bool:
    """True when every requested output exists, is newer than every input, and was made with the same
    parameters and input contents (the sidecar's fingerprint)."""
    try:
        side = json.loads(sidecar_path(row, opts).read_text(encoding="utf-8"))
        if side.get("fingerprint") != row_fingerprint(row, opts):
            return False
        made = set(side.get("files", ()))
        newest_input = max(p.stat().st_mtime_ns for p in row_inputs(row, opts))
        for takes in output_paths(row, opts).values():
            for path in takes.values():
                if path.name not in made or path.stat().st_mtime_ns < newest_input:
                    return False
    except (OSError, ValueError, AttributeError):
        return False
    return True


# --- baking one row -----------------------------------------------------------------------------------


def bake_row(row: BakeRow, opts: BatchOptions, scene_exporter: SceneExporter | None = None,
             cancel: threading.Event | None = None, progress: ProgressFn | None = None) -> RowResult:
    """Bake one line into its files. Never raises for a bad row: the failure is in the result.

    All or nothing: the line's files appear together, its sidecar last, or (on a failure or Ctrl-C) the folder
    is left as it was, earlier files of the line included. ``progress(fraction, message)`` is called on this
    thread while the engine works.
    """
    from .engine import animate

    t0 = time.perf_counter()
    result = RowResult(row.index, row.output, "failed")
    try:
        if opts.needs_blender and scene_exporter is None:
            raise FacePolicyError(f"fbx, glb and blend need Blender; {BLENDER_HINT}")
        fingerprint = row_fingerprint(row, opts)
        transcript = _read_transcript(transcript_for(row))
        from .audio import load_audio

        audio = load_audio(row.audio)
        result.audio_seconds = audio.duration
        tracks = []
        for take in range(1, opts.takes + 1):
            options = BakeOptions(engine=row.engine, transcript=transcript, seed=row.seed + take - 1,
                                  style=row.style, strength=opts.strength, device=opts.device,
                                  emotion=opts.emotion, emotion_intensity=opts.emotion_intensity,
                                  extra={"accuracy": opts.accuracy, "audio_guidance": opts.audio_guidance,
                                         "steps": opts.steps, "prior_weight": opts.prior_weight})
            track = animate(audio, options, progress=_take_progress(progress, take, opts.takes), cancel=cancel)
            track.meta["take"] = take
            if abs(track.fps - opts.fps) > 1e-9:
                track = track.resample(opts.fps)
            tracks.append(track)
        if progress is not None:
            progress(1.0, "writing files")
        result.files = _write_outputs(row, opts, tracks, fingerprint, scene_exporter)
        result.status = "ok"
        # What the user should know (a truncated file, a transcript the engine could not align, ...) shows in the
        # summary, one line per row.
        warnings = dict.fromkeys([*audio.warnings, *(str(w) for t in tracks for w in t.meta.get("warnings") or ())])
        result.message = "; ".join(warnings)
    except Cancelled:
        result.status, result.message = "cancelled", "cancelled"
    except FacePolicyError as exc:
        result.message = str(exc)
    except Exception as exc:  # a bug or a bpy failure on one row must not end the batch
        result.message = f"internal error: {type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - t0
    return result


def _take_progress(progress: ProgressFn | None, take: int, takes: int) -> ProgressFn | None:
    """The engine's progress of one take as a fraction of the whole row."""
    if progress is None:
        return None
    return lambda fraction, message: progress((take - 1 + fraction) / takes, message)


def _write_outputs(row: BakeRow, opts: BatchOptions, tracks: list[FaceTrack], fingerprint: str,
                   scene_exporter: SceneExporter | None) -> list[str]:
    """Write every output of the row as one group (fileio.FileGroup), the sidecar last; returns their paths."""
    from .fileio import FileGroup
    from .livelink import write_livelink_csv

    targets = output_paths(row, opts)
    side = sidecar_path(row, opts)
    with FileGroup() as group:
        # The earlier sidecar goes first: while the scene exporter replaces files the line is not up to date.
        group.claim(side)
        for k, track in enumerate(tracks, start=1):
            if "csv" in targets:
                write_livelink_csv(track, group.stage(targets["csv"][k]))
            if "json" in targets:
                track.save_json(group.stage(targets["json"][k]))
        scene_targets = {f: t for f, t in targets.items() if f in SCENE_FORMATS}
        if scene_targets:
            # Blender's exporters name the take after the file, so they write the final paths themselves.
            for takes in scene_targets.values():
                for path in takes.values():
                    group.claim(path)
            scene_exporter(tracks, row, opts, scene_targets)
        files = [p.name for takes in targets.values() for p in takes.values()]
        group.stage_text(side, json.dumps({
            "fingerprint": fingerprint, "files": files, "audio": row.audio, "engine": row.engine,
            "seed": row.seed, "takes": opts.takes, "frames": tracks[0].n_frames, "fps": opts.fps,
        }, indent=1))
        group.commit()
    return [str(p) for takes in targets.values() for p in takes.values()]


def _read_transcript(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8-sig").strip() or None
    except (OSError, UnicodeDecodeError) as exc:
        raise FacePolicyError(f'"{path.name}": cannot read the transcript ({exc})') from None


def remove_partial_files(row: BakeRow, opts: BatchOptions) -> None:
    """Delete the temporary files an interrupted bake of ``row`` may have left (fileio's temporary names)."""
    from .fileio import partial_files

    paths = [p for takes in output_paths(row, opts).values() for p in takes.values()]
    for path in [*paths, sidecar_path(row, opts)]:
        for tmp in partial_files(path):
            tmp.unlink(missing_ok=True)


# --- executors -----------------------------------------------------------------------------------------

ResultFn = Callable[[RowResult], None]


def load_scene_exporter(factory: Callable[[], SceneExporter]) -> SceneExporter:
    """The factory's exporter; if Blender cannot be loaded, an exporter that fails each row with the reason."""
    try:
        return factory()
    except ImportError as exc:
        reason = f"fbx, glb and blend need Blender's bpy module ({exc}); {BLENDER_HINT}"
    except Exception as exc:  # bpy that fails to load its libraries, or a FacePolicyError explaining it
        reason = str(exc) if isinstance(exc, FacePolicyError) else f"{type(exc).__name__}: {exc}"

    def unavailable(tracks, row, opts, targets):
        raise FacePolicyError(reason)

    return unavailable


class Executor:
    """Runs ``bake_row`` for many rows and reports each result as it finishes (in any order)."""

    def run(self, rows: Sequence[BakeRow], opts: BatchOptions, on_result: ResultFn) -> None:
        raise NotImplementedError


class InProcessExecutor(Executor):
    """Bakes rows one after the other in this process (inside Blender, or for --jobs 1).

    ``progress(fraction, message)`` hears how far the line in progress is (the engine's ProgressFn, on this thread).
    """

    def __init__(self, scene_exporter_factory: Callable[[], SceneExporter] | None = None,
                 progress: ProgressFn | None = None):
        self._factory = scene_exporter_factory
        self._exporter: SceneExporter | None = None
        self._progress = progress

    def run(self, rows, opts, on_result):
        for row in rows:
            if opts.needs_blender and self._exporter is None and self._factory is not None:
                self._exporter = load_scene_exporter(self._factory)
            try:
                on_result(bake_row(row, opts, self._exporter, progress=self._progress))
            except BaseException:
                remove_partial_files(row, opts)
                raise


RESULT_PREFIX = "@@facepolicy-result "


class ProcessExecutor(Executor):
    """``jobs`` warm worker processes, each with its own engine and bpy, fed rows over a JSON-lines pipe.

    ``worker_command`` starts one worker (see ``serve``). A worker that crashes costs only the row it was on:
    it is restarted for the next row. On Ctrl-C the workers are stopped, their temporary files removed,
    and KeyboardInterrupt propagates; finished outputs are already complete files.
    """

    def __init__(self, jobs: int, worker_command: Sequence[str], log_dir: str | None = None,
                 env: dict | None = None):
        self.jobs = max(1, int(jobs))
        self.worker_command = list(worker_command)
        self.log_dir = log_dir
        self.env = env

    def _start(self, slot: int, log_dir: Path) -> tuple[subprocess.Popen, Path]:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"worker-{slot}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - the worker owns it for its lifetime
        proc = subprocess.Popen(
            self.worker_command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
            env=self.env, start_new_session=True,  # Ctrl-C reaches only us; we stop the workers cleanly
        )
        log.close()
        return proc, log_path

    def run(self, rows, opts, on_result):
        # Worker logs (Blender's and the engines' chatter) are kept only when a worker crashed.
        log_dir = Path(self.log_dir) if self.log_dir else Path(tempfile.mkdtemp(prefix="facepolicy-workers-"))
        crashed = threading.Event()
        try:
            self._run(rows, opts, on_result, log_dir, crashed)
        finally:
            if not self.log_dir and not crashed.is_set():
                shutil.rmtree(log_dir, ignore_errors=True)

    def _run(self, rows, opts, on_result, log_dir: Path, crashed: threading.Event) -> None:
        todo: queue.Queue = queue.Queue()
        for row in rows:
            todo.put(row)
        done: queue.Queue = queue.Queue()
        stop = threading.Event()
        procs: dict[int, subprocess.Popen] = {}
        in_flight: dict[int, BakeRow] = {}
        payload_opts = opts.to_dict()

        def feed(slot: int) -> None:
            proc, log_path = None, None
            try:
                while not stop.is_set():
                    try:
                        row = todo.get_nowait()
                    except queue.Empty:
                        return
                    if proc is None or proc.poll() is not None:
                        proc, log_path = self._start(slot, log_dir)
                        procs[slot] = proc
                    in_flight[slot] = row
                    line = json.dumps({"row": asdict(row), "opts": payload_opts}) + "\n"
                    result = None
                    try:
                        proc.stdin.write(line.encode())
                        proc.stdin.flush()
                        while True:
                            out = proc.stdout.readline()
                            if not out:
                                break
                            text = out.decode("utf-8", "replace")
                            at = text.find(RESULT_PREFIX)
                            if at >= 0:
                                result = RowResult.from_dict(json.loads(text[at + len(RESULT_PREFIX):]))
                                break
                    except (BrokenPipeError, OSError, ValueError):
                        result = None
                    in_flight.pop(slot, None)
                    if result is None:
                        if stop.is_set():
                            return
                        crashed.set()
                        try:
                            proc.wait(timeout=30)
                        except subprocess.TimeoutExpired:  # closed its output but hangs: it is of no more use
                            proc.kill()
                            proc.wait()
                        result = RowResult(row.index, row.output, "failed",
                                           f"the worker process stopped (exit code {proc.returncode}) "
                                           f"while baking this line; see {log_path}: {_tail(log_path)}")
                        remove_partial_files(row, opts)
                    done.put(result)
            finally:
                done.put(None)

        threads = [threading.Thread(target=feed, args=(s,), daemon=True) for s in range(min(self.jobs, len(rows)))]
        for t in threads:
            t.start()
        finished = 0
        try:
            while finished < len(threads):
                item = done.get()
                if item is None:
                    finished += 1
                else:
                    on_result(item)
        except BaseException:
            stop.set()
            self._stop_workers(procs)
            for row in list(in_flight.values()):
                remove_partial_files(row, opts)
            raise
        self._stop_workers(procs, graceful=True)

    @staticmethod
    def _stop_workers(procs: dict[int, subprocess.Popen], graceful: bool = False) -> None:
        for proc in procs.values():
            if proc.poll() is None:
                try:
                    proc.stdin.close()  # a worker between rows ends at once
                    if not graceful:
                        proc.send_signal(signal.SIGTERM)  # one in the middle of a row stops, cleaning up
                except OSError:
                    pass
        deadline = time.monotonic() + 20
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _tail(path: Path | None, n: int = 3) -> str:
    try:
        lines = [line for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    except (OSError, TypeError):
        return "no log"
    return " | ".join(lines[-n:]) or "no output"


def serve(scene_exporter_factory: Callable[[], SceneExporter] | None = None) -> int:
    """The worker loop: read one JSON row per line on stdin, bake it, answer one result line.

    stdout is kept for the protocol: anything else printed (Blender's exporters are chatty) goes to stderr.
    SIGINT is ignored (the parent decides); SIGTERM stops the current row with its temporary files removed.
    """
    proto = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="utf-8")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def _terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    exporter: SceneExporter | None = None
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            msg = json.loads(line)
            row = BakeRow(**msg["row"])
            opts = BatchOptions.from_dict(msg["opts"])
            if opts.needs_blender and exporter is None and scene_exporter_factory is not None:
                exporter = load_scene_exporter(scene_exporter_factory)
            result = bake_row(row, opts, exporter)
            proto.write(RESULT_PREFIX + json.dumps(result.to_dict()) + "\n")
    except KeyboardInterrupt:
        return 130
    return 0


# --- progress and summary -----------------------------------------------------------------------------


class Progress:
    """The terminal progress bar of a bake: percent done, elapsed and remaining time, lines per minute.

    Drawn with tqdm, only when ``stream`` is a terminal: piped or logged output stays quiet (the summary table
    says everything). tqdm comes with the console script; Blender's Python has none and the bake runs without a
    bar there. ``advance`` moves the bar within the current line (the engine's progress, on the thread that runs
    it); ``update`` counts a finished line.
    """

    def __init__(self, total: int, stream=None):
        self.total = total
        self.done = 0
        self.failed = 0
        self.t0 = time.monotonic()
        self._bar = _terminal_bar(total, stream or sys.stderr)
        self._position = 0.0  # lines done, plus the fraction of the line in progress
        self._logs = None
        if self._bar is not None:
            from tqdm.contrib.logging import logging_redirect_tqdm

            # Log lines (a CUDA warning, ...) are printed above the bar instead of through it.
            self._logs = logging_redirect_tqdm()
            self._logs.__enter__()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def rate(self) -> float:
        """Lines finished per minute so far."""
        minutes = self.elapsed() / 60
        return self.done / minutes if minutes > 0 else 0.0

    def advance(self, fraction: float, message: str) -> None:
        """The line in progress is ``fraction`` done (ProgressFn); ``message`` says what the engine is doing."""
        if self._bar is not None:
            self._bar.set_postfix_str(message if self.total == 1 else f"{self._counts()}, {message}", refresh=False)
            self._move_to(self.done + min(max(fraction, 0.0), 1.0))

    def update(self, result: RowResult) -> None:
        self.done += 1
        self.failed += result.status == "failed"
        if self._bar is not None:
            self._bar.set_postfix_str(self._counts(), refresh=False)
            self._move_to(self.done)

    def _counts(self) -> str:
        return f"{self.done}/{self.total} lines, {self.rate():.1f} lines/min, {self.failed} failed"

    def _move_to(self, position: float) -> None:
        step = position - self._position
        if step > 0:  # a line finished by another worker can be ahead of the one reporting its fraction
            self._position = position
            self._bar.update(step)

    def close(self) -> None:
        if self._bar is not None:
            self._logs.__exit__(None, None, None)
            self._bar.close()


def _terminal_bar(total: int, stream):
    """A tqdm bar on ``stream`` when it is a terminal and tqdm is installed, else None."""
    if total < 1 or not getattr(stream, "isatty", lambda: False)():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, file=stream, dynamic_ncols=True, smoothing=0.1,
                bar_format="{percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}")


def summary_table(results: Sequence[RowResult]) -> str:
    """A plain-text table of every row (sorted as given) and a totals line."""
    results = sorted(results, key=lambda r: r.index)
    head = ("#", "output", "status", "seconds", "message")
    body = [(str(r.index), r.output or "-", "up to date" if r.status == "skipped" else r.status,
             f"{r.seconds:.2f}" if r.status == "ok" else "", r.message) for r in results]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    widths[-1] = 0
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)).rstrip() for b in body]
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "skipped", "failed", "cancelled")}
    lines.append(f"{counts['ok']} baked, {counts['skipped']} up to date, {counts['failed']} failed"
                 + (f", {counts['cancelled']} cancelled" if counts["cancelled"] else ""))
    return "\n".join(lines)


def finite_positive(value: float, what: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise FacePolicyError(f"{what} must be a positive number, got {value}")
    return value
