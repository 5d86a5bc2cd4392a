"""The row model of a batch: one line to bake, the options of the batch, a row's result, its output names and the
files it reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from .. import spec
from ..engine import BakeOptions
from ..errors import FacePolicyError
from ..facetrack import FaceTrack

FORMATS: tuple[str, ...] = ("csv", "json", "fbx", "glb", "blend")
SCENE_FORMATS = frozenset({"fbx", "glb", "blend"})  # need bpy; csv and json come from core/ alone
BLENDER_HINT = ("install it with 'pip install bpy' (the version matching your Blender) or run the bake inside "
                "Blender: blender -b -c facepolicy bake ...")


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
    transcript_language: str | None = None  # its language's code as the user set it (None: detected from the text)
    model: str | None = None  # the Neural engine's model folder for this row (None: the batch's --model)

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
    model_dir: str | None = None  # the Neural engine's model folder (None: the bundled model)

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
# ``tracks[k]`` is take k+1; each target path is ``{format: {take: path}}``. Raises FacePolicyError on bad input;
# returns what the user should know about files it wrote all the same (e.g. a .blend without its sound strip).
SceneExporter = Callable[[list[FaceTrack], BakeRow, BatchOptions, dict[str, dict[int, Path]]], "list[str] | None"]


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


# --- the files a row reads -------------------------------------------------------------------------------


def transcript_for(row: BakeRow) -> Path | None:
    """The row's transcript file: the one given, else a .txt with the audio's stem beside it."""
    if row.transcript:
        return Path(row.transcript)
    beside = Path(row.audio).with_suffix(".txt")
    return beside if beside.is_file() else None


def looks_like_path(style: str) -> bool:
    """A style spelled as a path (a folder separator, or the suffix of a reference file), not a preset name."""
    return "/" in style or "\\" in style or Path(style).suffix.lower() in (".json", ".csv")


def style_file(style: str | None) -> Path | None:
    """The reference file a style names, or None for a preset name (or no style).

    A style spelled as a path, or naming a file that exists, is a reference file even where it cannot be seen: a
    Ray node without the file says so instead of taking its path for a preset name.
    """
    if style and (looks_like_path(style) or Path(style).is_file()):
        return Path(style)
    return None


def row_model_dir(row: BakeRow, opts: BatchOptions) -> str | None:
    """The Neural model folder the row bakes with: its manifest's ``model``, else the batch's --model, else None
    (the bundled model)."""
    return row.model or opts.model_dir


def row_inputs(row: BakeRow, opts: BatchOptions, include_blend: bool = True) -> list[Path]:
    """Every file whose content the row's outputs depend on (the batch's --blend too, unless told not to)."""
    paths = [Path(row.audio)]
    t = transcript_for(row)
    if t is not None:
        paths.append(t)
    style = style_file(row.style)
    if style is not None:
        paths.append(style)
    if include_blend and opts.blend and opts.needs_blender:
        paths.append(Path(opts.blend))
    return paths
