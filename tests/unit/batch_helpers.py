"""Helpers of the batch, bake and Ray tests: test lines, rows planned from raw values, the command of a batch worker
process and the context of a Ray task, both knowing the test engine."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from facepolicy.core import batch

UNIT = Path(__file__).resolve().parent
ENGINES = ["envelope", "neural", "phonetic"]


def write_line(path: Path, seconds: float = 1.0, freq: float = 180.0, rate: int = 22050) -> Path:
    """A speech-like test line: a tone with a 3 Hz syllable envelope."""
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * freq * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) ** 2
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.astype(np.float32), rate)
    return path


def write_tone(path: Path, seconds: float = 0.5, freq: float = 180.0) -> Path:
    """A plain 16 kHz tone: the test line of the Ray tests."""
    t = np.arange(int(seconds * 16000)) / 16000
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)
    return path


def ray_ctx(opts: batch.BatchOptions) -> dict:
    """What the Ray driver puts in the object store for every task (core/batch/ray_tasks.py), with the test engine."""
    from facepolicy.blender.worker import scene_exporter

    return {"opts": opts.to_dict(), "engines": {"envelope": ["envelope_engine", "EnvelopeEngine"]},
            "scene_exporter": scene_exporter}


def plan(values_list, tmp_path, formats=("csv", "json"), base=None, **defaults):
    """Rows planned from raw values (sources "line 2", "line 3", ...) with the envelope engine by default."""
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=tuple(formats))
    entries = [(f"line {i}", v) for i, v in enumerate(values_list, start=2)]
    d = batch.RowDefaults(engine="envelope", **defaults)
    rows, failures = batch.plan_rows(entries, d, base or tmp_path, opts, ENGINES, ["calm"])
    return rows, failures, opts


WORKER = [sys.executable, "-c",
          f"import sys; sys.path.insert(0, {str(UNIT)!r}); import envelope_engine; envelope_engine.register(); "
          "from facepolicy.core.batch import serve; sys.exit(serve())"]
