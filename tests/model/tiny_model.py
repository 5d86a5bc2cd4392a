"""The tiny-config model, trained and exported once per test process (about 30 s of CPU) into a temporary
folder that is removed at exit. Test artefact only: never committed."""

from __future__ import annotations

import atexit
import functools
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `model` and `export_onnx` are top-level packages of the repository
    sys.path.insert(0, str(ROOT))

TINY_CONFIG = ROOT / "model" / "configs" / "tiny.json"


@functools.cache
def workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="facepolicy-tiny-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@functools.cache
def tiny_clips():
    from model_synthetic import make_clips

    return make_clips(24, styles=4, voices=4)


@functools.cache
def trained_tiny() -> Path:
    """Run directory of a full tiny-config training (checkpoint.pt, loss.png, history.json)."""
    from model.train import Trainer, load_config

    out = workdir() / "run"
    Trainer(load_config(TINY_CONFIG), tiny_clips(), out, log=lambda *_: None).run()
    return out


@functools.cache
def exported_tiny() -> Path:
    """Model directory (3 ONNX files, model.json, MODEL_CARD.md) exported from trained_tiny()."""
    from export_onnx.export import write_model_dir

    out = workdir() / "models"
    write_model_dir(trained_tiny() / "checkpoint.pt", out, tiny_clips(), command="tests: tiny config", metrics={})
    return out
