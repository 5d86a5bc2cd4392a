"""A model folder of one's own (`facepolicy bake --model DIR`, the panel's Model Folder preference): the Neural engine
animates with that folder's model, and a folder with a corrupt file is refused in one sentence naming it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from journey import ARCTIC, ROOT, facepolicy

BUNDLED = ROOT / "assets" / "models"
LINE = ARCTIC / "arctic_a0009.wav"


def bake(tmp_path: Path, name: str, *args: str) -> np.ndarray:
    out = tmp_path / f"{name}.csv"
    done = facepolicy("bake", LINE, "-o", out, "--engine", "neural", "--accuracy", "fast", *args, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = out.read_text(encoding="utf-8").splitlines()
    return np.array([[float(v) for v in row.split(",")[2:]] for row in rows[1:]])


@pytest.fixture
def own_model(tmp_path: Path) -> Path:
    folder = tmp_path / "my model"
    shutil.copytree(BUNDLED, folder)
    return folder


def test_a_model_folder_of_ones_own_animates_the_line(tmp_path, own_model):
    bundled = bake(tmp_path, "bundled")
    # A copy of the bundled model gives the same animation: --model reads the folder it names.
    assert np.array_equal(bake(tmp_path, "copy", "--model", own_model), bundled)
    # Its default style preset made another speaker's (model.json lists the networks' sums; a folder outside the
    # installed assets has no SHA256SUMS entry for model.json itself, so there is nothing else to update).
    manifest = json.loads((own_model / "model.json").read_text(encoding="utf-8"))
    default = manifest["default_style"]
    other = next(name for name in sorted(manifest["styles"]) if name != default)
    manifest["styles"][default] = manifest["styles"][other]
    (own_model / "model.json").write_text(json.dumps(manifest), encoding="utf-8")
    mine = bake(tmp_path, "mine", "--model", own_model)
    assert mine.shape == bundled.shape
    assert np.abs(mine - bundled).max() > 0.05, "the folder's own style must change the face"
    # ... and it is the other preset's face, asked for by name from the bundled model.
    assert np.array_equal(mine, bake(tmp_path, "other", "--style", other))


def test_a_model_folder_with_a_corrupt_file_is_refused_naming_it(tmp_path, own_model):
    with (own_model / "denoiser.onnx").open("ab") as f:
        f.write(b"\0")
    out = tmp_path / "line.csv"
    done = facepolicy("bake", LINE, "-o", out, "--model", own_model, timeout=300)
    assert done.returncode != 0
    message = done.stderr.strip()
    assert message.count("\n") == 0 and "denoiser.onnx" in message and "corrupt" in message, message
    assert str(own_model) in message, message
    assert not out.exists()
    (own_model / "model.json").unlink()
    done = facepolicy("bake", LINE, "-o", out, "--model", own_model, timeout=300)
    assert done.returncode != 0 and "model.json" in done.stderr and done.stderr.strip().count("\n") == 0
