"""A performer's brows, as a studio meets them: `facepolicy finetune` learns how the actor's brows follow the voice
(pitch and loudness) and says so; `bake --model` and `live --model` then move the brows closer to the actor's own
on a line the model never saw than the same model without that layer; a damaged layer is refused in one sentence."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from journey import ROOT, facepolicy

if str(ROOT) not in sys.path:  # `model` is a top-level package of the repository, not installed
    sys.path.insert(0, str(ROOT))
pytest.importorskip("torch")
pytest.importorskip("onnx")
synthetic = pytest.importorskip("model.synthetic_performer")

TINY = ("--steps", "4", "--eval-every", "2", "--batch", "4", "--threads", "1")
BROWS = ["browInnerUp", "browOuterUpLeft", "browOuterUpRight"]


@pytest.fixture(scope="module")
def performer(tmp_path_factory):
    """Captures of a synthetic performer (three takes), one more line of theirs never captured, and the model
    folder `finetune` makes of the captures."""
    if shutil.which("flite") is None:
        pytest.skip("flite is not installed (bash run.sh test installs it)")
    root = tmp_path_factory.mktemp("brows")
    takes = [synthetic.performer_lines(synthetic.Performer(), 10.0, seed=seed)[0] for seed in (11, 12, 13)]
    for k, take in enumerate(takes, 1):
        synthetic.write_take(root / "anna", f"take{k}", take["samples"], take["states"])
    line = synthetic.performer_lines(synthetic.Performer(), 12.0, seed=14)[0]
    synthetic.write_take(root / "unseen", "line", line["samples"], line["states"])
    out = root / "models" / "anna"
    done = facepolicy("finetune", root / "anna", "-o", out, "--cache", root / "cache", *TINY, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return root, out, done


def _curves(path: Path, names: list[str]) -> np.ndarray:
    text = path.read_text(encoding="utf-8")
    header = text.splitlines()[0].split(",")
    cols = [header.index(n[0].upper() + n[1:]) for n in names]  # Live Link Face's column names
    return np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, usecols=cols, ndmin=2)


def _brow_error(csv: Path, truth: np.ndarray) -> float:
    got = _curves(csv, BROWS)
    n = min(len(got), len(truth))
    return float(np.abs(got[:n] - truth[:n]).mean())


def test_the_performers_brows_follow_the_voice_in_bake_and_live(tmp_path, performer):
    root, out, done = performer
    assert "brow layer from pitch and loudness" in done.stdout, done.stdout
    manifest = json.loads((out / "model.json").read_text(encoding="utf-8"))
    held = manifest["finetune"]["held_out"]["brows"]
    assert held["kept"] and held["error_after"] < held["error_before"]
    assert "Brow layer" in (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    doctor = facepolicy("doctor", "--no-blender", "--model", out, timeout=300)
    assert "brow layer" in doctor.stdout, doctor.stdout

    # The same folder without its brow layer: what the performer's model would do without it.
    without = tmp_path / "without"
    shutil.copytree(out, without)
    plain = dict(manifest)
    plain.pop("brows")
    (without / "model.json").write_text(json.dumps(plain), encoding="utf-8")

    wav = root / "unseen" / "line.wav"
    truth = _curves(root / "unseen" / "line.csv", BROWS)[::2]  # the capture's 60 fps → the bake's 30
    errors = {}
    for label, folder in (("with", out), ("without", without)):
        baked = tmp_path / f"bake_{label}.csv"
        done = facepolicy("bake", wav, "-o", baked, "--model", folder, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        streamed = tmp_path / f"live_{label}.csv"
        done = facepolicy("live", wav, "--model", folder, "--csv", streamed, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        errors[label] = (_brow_error(baked, truth), _brow_error(streamed, truth))
    assert errors["with"][0] < 0.95 * errors["without"][0], errors  # bake
    assert errors["with"][1] < 0.95 * errors["without"][1], errors  # live
    # Only the brows: the mouth of the two bakes is the same.
    jaw = [_curves(tmp_path / f"bake_{label}.csv", ["jawOpen"]) for label in ("with", "without")]
    assert np.array_equal(*jaw)


def test_a_damaged_brow_layer_is_refused_in_one_sentence(tmp_path, performer):
    _, out, _ = performer
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    manifest = json.loads((broken / "model.json").read_text(encoding="utf-8"))
    manifest["brows"]["weights"] = manifest["brows"]["weights"][:-1]
    (broken / "model.json").write_text(json.dumps(manifest), encoding="utf-8")
    line = ROOT / "tests" / "data" / "arctic" / "arctic_a0009.wav"
    for command in (("bake", line, "-o", tmp_path / "x.csv"), ("live", line, "--csv", tmp_path / "y.csv")):
        done = facepolicy(*command, "--model", broken, timeout=300)
        assert done.returncode != 0
        said = (done.stdout + done.stderr).strip().splitlines()
        assert any("model.json" in s and "brows.weights" in s for s in said), said
        assert not (tmp_path / "x.csv").exists() and not (tmp_path / "y.csv").exists()
