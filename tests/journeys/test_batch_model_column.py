"""The batch manifest's `model` column: a studio bakes each performer's lines with that performer's model folder
(one made by `facepolicy finetune`, or any folder holding a model.json) in one batch. Every row bakes with its own
folder, a row naming a missing or corrupt folder fails alone in one sentence naming it while the others bake, and a
model folder that changes makes its rows (and only those) bake again."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
from journey import ARCTIC, ROOT, facepolicy, write_wav

from facepolicy.core import spec

BUNDLED = ROOT / "assets" / "models"
LINE = ARCTIC / "arctic_a0009.wav"
PRESS = ("mouthPressLeft", "mouthPressRight")


def model_copy(root: Path, name: str, change) -> Path:
    folder = root / "models" / name
    shutil.copytree(BUNDLED, folder)
    manifest = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    change(manifest)
    (folder / "model.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def pressing(manifest: dict, press: float = 0.4) -> None:
    """A performer who presses the lips together between lines: the rest face finetune writes from their captures,
    which the mouth takes wherever the audio is not speech."""
    rest = manifest["normalisation"]["rest_state"]
    for name in PRESS:
        rest[spec.CHANNEL_INDEX[name]] = press


def other_speaker(manifest: dict) -> None:
    default = manifest["default_style"]
    manifest["styles"][default] = manifest["styles"][next(n for n in sorted(manifest["styles"]) if n != default)]


def curves(path: Path) -> dict[str, np.ndarray]:
    """A Live Link Face CSV's curves by column name."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    values = np.array([[float(v) for v in row[2:]] for row in rows[1:]])
    return {name.lower(): values[:, k] for k, name in enumerate(rows[0][2:])}


def press_at(track: dict[str, np.ndarray], frames) -> np.ndarray:
    return np.stack([track[name.lower()][frames] for name in PRESS], axis=1)


def row_line(stdout: str, output: str) -> str:
    found = [line for line in stdout.splitlines() if line.split()[1:2] == [output]]
    assert len(found) == 1, stdout
    return found[0]


def test_each_row_bakes_with_its_own_model_folder_and_a_bad_folder_fails_alone(tmp_path):
    work = tmp_path / "project"
    work.mkdir()
    samples, rate = sf.read(str(LINE), dtype="float32")
    silence = np.zeros(rate, np.float32)  # a second before and after the line, where the face rests
    write_wav(work / "line.wav", np.concatenate([silence, samples, silence]), rate)
    model_copy(work, "anna", pressing)
    model_copy(work, "ben", other_speaker)
    broken = model_copy(work, "broken", lambda m: None)
    with (broken / "denoiser.onnx").open("ab") as f:
        f.write(b"\0")
    (work / "manifest.csv").write_text(
        "audio,output,model,engine\n"
        "line.wav,anna,models/anna,\n"
        "line.wav,ben,models/ben,\n"
        "line.wav,bundled,,\n"
        "line.wav,broken,models/broken,\n"
        "line.wav,nobody,models/nobody,\n"
        "line.wav,phonetic,models/anna,phonetic\n",
        encoding="utf-8")
    out = tmp_path / "out"
    done = facepolicy("bake", "--manifest", work / "manifest.csv", "-o", out, "--format", "csv",
                      "--accuracy", "fast", timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    for name in ("anna", "ben", "bundled"):
        assert row_line(done.stdout, name).split()[2] == "ok", done.stdout
    for name, phrase in (("broken", "denoiser.onnx"), ("nobody", "not found"), ("phonetic", "neural engine")):
        said = row_line(done.stdout, name)
        assert said.split()[2] == "failed" and phrase in said, said
        assert not (out / f"{name}.csv").exists()
    assert str(broken) in row_line(done.stdout, "broken")
    assert str(work / "models" / "nobody") in row_line(done.stdout, "nobody")

    anna, ben, bundled = (curves(out / f"{n}.csv") for n in ("anna", "ben", "bundled"))
    # Anna presses her lips at rest: her CSV does before the line, the bundled model's does not.
    first = np.s_[:20]  # the second of silence before the line
    assert press_at(anna, first).min() > press_at(bundled, first).max() + 0.1, (press_at(anna, first),
                                                                              press_at(bundled, first))
    # Ben's model speaks with another speaker's style.
    assert max(np.abs(ben[k] - bundled[k]).max() for k in bundled) > 0.05

    # Run again: every baked row is up to date. Then Anna's model changes: her row alone bakes again.
    again = facepolicy("bake", "--manifest", work / "manifest.csv", "-o", out, "--format", "csv",
                       "--accuracy", "fast", timeout=600)
    for name in ("anna", "ben", "bundled"):
        assert "up to date" in row_line(again.stdout, name), again.stdout
    manifest = json.loads((work / "models" / "anna" / "model.json").read_text(encoding="utf-8"))
    pressing(manifest, 0.2)
    (work / "models" / "anna" / "model.json").write_text(json.dumps(manifest), encoding="utf-8")
    again = facepolicy("bake", "--manifest", work / "manifest.csv", "-o", out, "--format", "csv",
                       "--accuracy", "fast", timeout=600)
    assert row_line(again.stdout, "anna").split()[2] == "ok", again.stdout
    for name in ("ben", "bundled"):
        assert "up to date" in row_line(again.stdout, name), again.stdout
    assert (press_at(curves(out / "anna.csv"), first) < press_at(anna, first) - 0.05).all()


def test_styles_lists_a_model_folders_presets(tmp_path):
    folder = model_copy(tmp_path, "anna", lambda m: m.update(default_style="anna",
                                                              styles={**m["styles"], "anna": m["styles"]["calm"]}))
    done = facepolicy("styles", "--model", folder, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert str(folder) in done.stdout
    assert "  anna  (default" in done.stdout and "  calm" in done.stdout
    bundled = facepolicy("styles", timeout=120)
    assert "anna" not in bundled.stdout
    done = facepolicy("styles", "--model", tmp_path / "nobody", timeout=120)
    assert done.returncode == 1 and str(tmp_path / "nobody") in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr


def test_style_given_for_the_batch_is_checked_against_each_rows_own_model_folder(tmp_path):
    # `--style anna` names the performer preset that only the rows' own folder has (what `finetune` writes): the rows
    # with that folder bake; the row on the bundled model fails alone, saying which presets it has.
    work = tmp_path / "project"
    work.mkdir()
    shutil.copy(LINE, work / "line.wav")
    model_copy(work, "anna", lambda m: m["styles"].update(anna=m["styles"]["calm"]))
    (work / "manifest.csv").write_text("audio,output,model\nline.wav,anna,models/anna\nline.wav,bundled,\n",
                                       encoding="utf-8")
    out = tmp_path / "out"
    done = facepolicy("bake", "--manifest", work / "manifest.csv", "-o", out, "--format", "csv", "--style", "anna",
                      "--accuracy", "fast", timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    assert row_line(done.stdout, "anna").split()[2] == "ok", done.stdout
    said = row_line(done.stdout, "bundled")
    assert said.split()[2] == "failed" and "anna" in said, said
    assert (out / "anna.csv").exists() and not (out / "bundled.csv").exists()


def test_a_model_folders_own_prior_weight_is_what_bake_uses_unless_the_user_gives_one(tmp_path):
    # `finetune` writes the prior weight a performer's model chose into model.json's "sampling"; bake reads it from
    # the folder (the user's --phonetic-prior still wins).
    own = model_copy(tmp_path, "own", lambda m: m.update(sampling={"prior_weight": 0.0}))
    plain = model_copy(tmp_path, "plain", lambda m: None)
    csvs = {}
    for name, args in (("own", ("--model", own)), ("plain0", ("--model", plain, "--phonetic-prior", "0")),
                       ("plain", ("--model", plain)), ("own25", ("--model", own, "--phonetic-prior", "0.25"))):
        csvs[name] = tmp_path / f"{name}.csv"
        done = facepolicy("bake", LINE, "-o", csvs[name], *args, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
    track = {name: curves(path) for name, path in csvs.items()}
    assert all(np.array_equal(track["own"][k], track["plain0"][k]) for k in track["own"])
    assert all(np.array_equal(track["own25"][k], track["plain"][k]) for k in track["own"])
    assert any(not np.array_equal(track["own"][k], track["plain"][k]) for k in track["own"])
