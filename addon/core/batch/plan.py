"""Planning a batch: rows built from the command line's and a manifest's values, each checked before anything is
baked (audio, transcript, engine, model folder, style, output folder), and no two rows writing the same file."""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..engine import NOT_SHIPPED, BakeOptions
from ..errors import FacePolicyError
from ..facetrack import FaceTrack
from ..fileio import user_path
from ..letters import told_language
from .rows import (
    BakeRow,
    BatchOptions,
    RowResult,
    check_output_name,
    looks_like_path,
    output_paths,
    sidecar_path,
    style_file,
)


@dataclass
class RowDefaults:
    """What the command line says for values a manifest row leaves empty."""

    style: str | None = None
    seed: int = 0
    object: str | None = None
    engine: str = field(default_factory=lambda: BakeOptions().engine)
    transcript: str | None = None
    transcript_language: str | None = None  # a code (core.letters.told_language); None: detected


def _opt_str(v) -> str | None:
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def _resolve(path: str, base: Path) -> str:
    p = user_path(path)
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
    if style and looks_like_path(style):
        style = _resolve(style, base)
    model = _opt_str(values.get("model"))
    language = _opt_str(values.get("transcript_language"))
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
        transcript_language=told_language(language) if language else defaults.transcript_language,
        model=_resolve(model, base) if model else None,
    )


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
    if row.model:
        if row.engine != "neural":
            raise FacePolicyError(f'model folder "{row.model}" is for the neural engine, and this row uses '
                                  f"{row.engine}; leave its model cell empty or set its engine to neural")
        check_model_folder(row.model)
        presets = style_presets(row.model)  # a style preset must be one of the row's own model
    check_style(row.style, presets)
    out_root = Path(opts.out_dir)
    final = out_root / row.output
    if not _inside(final, out_root):
        raise FacePolicyError(f"output {row.output!r} resolves outside the output folder {opts.out_dir!r}")
    _check_writable(final.parent)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def _check_audio_header(path: Path) -> None:
    from ..audio import _soundfile
    from ..movie import is_movie, probe_seconds

    if is_movie(path):
        probe_seconds(path)  # AudioError: no sound track, no video extra, unreadable
        return
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


def check_model_folder(folder: str) -> None:
    """FacePolicyError naming ``folder`` when it is not a model folder the engine can load (its model.json, and
    every file it lists matching its sha256: read_model_files). Each version of a folder's files is checked once,
    however many rows name it."""
    path = Path(folder)
    if not path.is_dir():
        raise FacePolicyError(f'model folder "{folder}" not found' if not path.exists()
                              else f'model folder "{folder}" is a file; give the folder that holds model.json')
    stamp = tuple(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in path.iterdir() if f.is_file()))
    problem = _model_folder_problem(str(path), stamp)
    if problem:
        raise FacePolicyError(problem)


@functools.lru_cache(maxsize=32)
def _model_folder_problem(folder: str, stamp: tuple) -> str:
    """The reason ``folder`` (whose files are ``stamp``) cannot be loaded, or ''."""
    from ..model_files import read_model_files

    try:
        read_model_files(folder)
    except FacePolicyError as exc:
        return str(exc)
    return ""


def style_presets(model_dir: str | None = None) -> list[str]:
    """Names of the style presets of the Neural model in ``model_dir`` (default: the installed one, whose
    assets/models/model.json lists them under "styles")."""
    from ..model_files import MANIFEST, default_model_dir

    path = Path(model_dir or default_model_dir()) / MANIFEST
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
        from ..livelink import read_livelink_csv

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
    path = style_file(style)
    if path is not None:
        if not path.is_file():
            raise FacePolicyError(f'style reference "{style}" not found')
        st = path.stat()
        _check_style_file(str(path.absolute()), st.st_size, st.st_mtime_ns)
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
                                      _labelled(label, str(exc))))
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


def _labelled(label: str, message: str) -> str:
    """``message`` after the row's label, unless the label is the audio file given on the command line ('"x.wav"')
    and the message already starts by naming it ('"x.wav": file not found')."""
    if label.startswith('"') and label.endswith('"'):
        given = label[1:-1]
        if message.startswith((f'"{given}"', f'"{Path(given).name}"', f'"{Path(given).absolute()}"')):
            return message
    return f"{label}: {message}"


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


def finite_positive(value: float, what: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise FacePolicyError(f"{what} must be a positive number, got {value}")
    return value
