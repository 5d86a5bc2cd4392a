"""The Neural model's files in one place: a folder's model.json, the sha256 of every file it lists (checked through
core.assets) and the onnxruntime sessions that run them, on CUDA or the CPU."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .assets import asset_root, verify_asset, verify_file
from .errors import AssetError
from .performer_brows import SECTION as BROWS
from .performer_brows import BrowLayer

log = logging.getLogger("facepolicy")

MODEL_DIR = "models"  # under assets/
MANIFEST = "model.json"
SAMPLING = "sampling"  # model.json's section of per-model sampler defaults (ModelFiles.sampling)
_BUNDLED_REMEDY = "reinstall FacePolicy"
_OWN_REMEDY = "copy the model folder again, or export it again with its model.json"


@dataclass
class ModelFiles:
    root: Path
    manifest: dict

    @property
    def policy(self) -> dict:
        return self.manifest["policy"]

    def network(self, name: str) -> Path:
        """The ONNX file of one network ("audio_encoder", "style_encoder" or "denoiser")."""
        return self.root / self.manifest["onnx"][name]

    @property
    def sampling(self) -> dict:
        """The model's own defaults for the sampler, from model.json's "sampling" section (checked when read):
        ``prior_weight`` (0..1, how strongly the accurate mode steers the mouth toward the Phonetic engine's) and
        ``vowel_floor`` (whether the jaw opens at least as far as that mouth inside recognised vowels). A model
        fine-tuned on a performer sets them, because the prior pulls the performer's own articulation (jaw size,
        lip timing) back toward the teacher's; the bundled model sets none. Options the user gives win."""
        return dict(self.manifest.get(SAMPLING) or {})

    @cached_property
    def brows(self) -> BrowLayer | None:
        """The performer's brow layer (core.performer_brows) of a fine-tuned model, from model.json's "brows"
        section (checked when read); None for the bundled model and any model without one."""
        section = self.manifest.get(BROWS)
        return None if section is None else BrowLayer.from_dict(section)


def default_model_dir() -> Path:
    return asset_root() / MODEL_DIR


def read_model_files(root: Path | str | None = None, verify: bool = True) -> ModelFiles:
    """Read the model.json of ``root`` (default: the bundled model) and check every file it lists against the sha256
    it records; the bundled model.json is itself checked against assets/SHA256SUMS. A folder of one's own (a
    fine-tuned model) carries its sums in its model.json only."""
    root = Path(root) if root is not None else default_model_dir()
    manifest_path = root / MANIFEST
    bundled = _bundled_name(manifest_path)
    remedy = _BUNDLED_REMEDY if bundled is not None else _OWN_REMEDY
    if not manifest_path.is_file():
        if bundled is None:
            raise AssetError(f'neural model "{manifest_path}" is missing; a model folder holds an exported model '
                             f"and its {MANIFEST}")
        raise AssetError(f'neural model "{manifest_path}" is missing; the neural engine needs the trained model '
                         "(reinstall FacePolicy, or use --engine phonetic)")
    if verify and bundled is not None:
        verify_asset(bundled)
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = manifest["files"]
        _check_sampling(manifest.get(SAMPLING))
        if manifest.get(BROWS) is not None:
            BrowLayer.from_dict(manifest[BROWS])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AssetError(f'neural model "{manifest_path}" is corrupt ({exc}); {remedy}') from None
    if verify:
        for name, expected in files.items():
            path = root / name
            verify_file(path, expected, f'neural model file "{path}"', remedy)
    return ModelFiles(root, manifest)


def _check_sampling(section) -> None:
    """ValueError unless ``section`` (model.json's "sampling") is absent or holds only a prior_weight in 0..1 and a
    true/false vowel_floor."""
    if section is None:
        return
    if not isinstance(section, dict):
        raise ValueError(f'"{SAMPLING}" must be an object')
    unknown = sorted(set(section) - {"prior_weight", "vowel_floor"})
    if unknown:
        raise ValueError(f'"{SAMPLING}" has unknown key(s) {", ".join(unknown)}')
    weight = section.get("prior_weight", 0.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= weight <= 1.0:
        raise ValueError(f'"{SAMPLING}.prior_weight" must be a number from 0 to 1, got {weight!r}')
    if not isinstance(section.get("vowel_floor", True), bool):
        raise ValueError(f'"{SAMPLING}.vowel_floor" must be true or false, got {section["vowel_floor"]!r}')


def _bundled_name(path: Path) -> str | None:
    """``path`` relative to assets/ when it lies there (SHA256SUMS names it so), else None."""
    try:
        return path.resolve().relative_to(asset_root().resolve()).as_posix()
    except ValueError:
        return None


DEFAULT_THREADS = 1  # onnxruntime threads per model when ``threads`` is 0 (see create_session)


def create_session(path: Path, device: str = "auto", threads: int = 0):
    """An onnxruntime session on CUDA when asked for or available, else the CPU, with ``threads`` CPU threads (0:
    DEFAULT_THREADS); returns (session, provider)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # One thread per model unless told otherwise, and none spin-waiting: the networks are small and run as many
    # short passes with Python between them, so onnxruntime's default (a thread per core, spinning after every run)
    # spent 0.5 CPU-s of a 60 s bake waiting, taken from the phone decoders beside it, and was slower even alone
    # (bench/bench_cores.py, bench/bench_batch.py --speech; the same frames, docs/BENCHMARKS.md).
    opts.intra_op_num_threads = threads if threads > 0 else DEFAULT_THREADS
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # A missing or failing CUDA is the same for every model file: it is said once per process, and after a
    # failure the next files do not try CUDA again.
    cuda_state: set[str] = create_session.__dict__.setdefault("cuda_state", set())
    available = ort.get_available_providers()
    want_cuda = device in ("auto", "cuda") and "CUDAExecutionProvider" in available and "failed" not in cuda_state
    if device == "cuda" and "CUDAExecutionProvider" not in available and "absent" not in cuda_state:
        cuda_state.add("absent")
        log.warning("neural engine: CUDA was asked for but this onnxruntime has no CUDA provider; using the CPU")
    if want_cuda:
        try:
            sess = ort.InferenceSession(str(path), opts, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
            if "CUDAExecutionProvider" in sess.get_providers():
                return sess, "cuda"
            reason = "the CUDA provider did not start"
        except Exception as exc:  # noqa: BLE001 - any CUDA start-up failure falls back to the CPU
            reason = f"CUDA failed ({str(exc).splitlines()[0]})"
        cuda_state.add("failed")
        log.warning("neural engine: %s for %s; using the CPU for this and every later model file", reason, path.name)
    try:
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types for bad files
        raise AssetError(f'neural model file "{path}" could not be loaded ({str(exc).splitlines()[0]}); '
                         "reinstall FacePolicy") from None
    return sess, "cpu"
