"""`facepolicy finetune CAPTURE_DIR -o MODEL_DIR` as a studio runs it: a folder of Live Link Face takes (CSV at 60 fps
with timecodes, WAV beside each) becomes a model folder that `bake --model` and `doctor --model` accept; every bad
input is refused in sentences naming the file, and MODEL_DIR is not written."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from journey import ARCTIC, ROOT, espeak, facepolicy

if str(ROOT) not in sys.path:  # `model` is a top-level package of the repository, not installed
    sys.path.insert(0, str(ROOT))
pytest.importorskip("torch")
pytest.importorskip("onnx")
synthetic = pytest.importorskip("model.synthetic_performer")

LINE = ARCTIC / "arctic_a0009.wav"
TINY = ("--steps", "4", "--eval-every", "2", "--batch", "4", "--threads", "1")


@pytest.fixture(scope="module")
def lines():
    """Two short takes of a synthetic performer (flite voice, the teacher's face with habits)."""
    if shutil.which("flite") is None:
        pytest.skip("flite is not installed (bash run.sh test installs it)")
    return [synthetic.performer_lines(synthetic.Performer(), 8.0, seed=seed)[0] for seed in (3, 4)]


def capture_folder(root: Path, lines, name: str = "anna", offsets=(0.0, 0.0), fps=(60.0, 60.0)) -> Path:
    folder = root / name
    for k, (line, offset, rate) in enumerate(zip(lines, offsets, fps, strict=False), 1):
        synthetic.write_take(folder, f"take{k}", line["samples"], line["states"], capture_fps=rate, offset=offset)
    return folder


def finetune(folder: Path, out: Path, tmp_path: Path, *extra: str):
    return facepolicy("finetune", folder, "-o", out, "--cache", tmp_path / "cache", *TINY, *extra, timeout=900)


def test_captures_become_a_model_folder_that_bake_and_doctor_accept(tmp_path, lines):
    folder = capture_folder(tmp_path, lines, offsets=(0.0, 0.25))
    out = tmp_path / "models" / "anna"
    done = finetune(folder, out, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # The performer's lips lead the sound by 40 ms: take1 is found 40 ms early and moved onto the sound (the lip
    # sync the model learns is then the sound's); take2, recorded a quarter second late as well, 210 ms late.
    lead_ms = 1000 * synthetic.Habits().lip_lead
    assert _sync_said(done, "take1", "early; corrected") == pytest.approx(lead_ms, abs=10)
    assert _sync_said(done, "take2", "late; corrected") == pytest.approx(250 - lead_ms, abs=10)
    assert "wrote" in done.stdout and "'anna'" in done.stdout and "phonetic prior weight" in done.stdout

    manifest = json.loads((out / "model.json").read_text(encoding="utf-8"))
    assert manifest["default_style"] == "anna" and "anna" in manifest["styles"]
    tuned = manifest["finetune"]
    assert [t["name"] for t in tuned["captures"]["takes"]] == ["take1", "take2"]
    assert [t["sync_corrected"] for t in tuned["captures"]["takes"]] == [True, True]
    assert tuned["base_model"]["name"] == "default" and tuned["steps"] == 4
    assert tuned["settings"]["keep_dynamics"] == 3 and not tuned["settings"]["keep_timing"]
    assert tuned["settings"]["brow_weight"] == 0.5 and tuned["settings"]["keep_closures"] == 0.05
    assert set(tuned["held_out"]["fine-tuned"]) == {"mouth", "brows", "eyes"}
    # The phonetic prior weight that fits the held-out takes best becomes the model's own (the engine's default is
    # 0.25; a performer's articulation may want less of the teacher's mouth).
    weight = manifest["sampling"]["prior_weight"]
    tried = {float(w): e for w, e in tuned["held_out"]["mouth_error_by_prior_weight"].items()}
    assert weight in tried and tried[weight] <= min(tried.values()) * 1.02, (weight, tried)
    card = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "take1" in card and "| fine-tuned |" in card and f"Phonetic prior weight {weight}" in card
    assert not [p for p in out.parent.iterdir() if p.name != "anna"], "the temporary folder must be gone"

    bundled = tmp_path / "bundled.csv"
    mine = tmp_path / "mine.csv"
    for path, extra in ((bundled, ()), (mine, ("--model", out))):
        done = facepolicy("bake", LINE, "-o", path, "--accuracy", "fast", *extra, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    a, b = (np.loadtxt(io.StringIO(p.read_text()), delimiter=",", skiprows=1, usecols=range(2, 63))
            for p in (bundled, mine))
    assert a.shape == b.shape and np.abs(a - b).max() > 0.02, "the performer's model must move the face otherwise"

    # The performer's model carries the shipped ear, which checks a localised line's transcript.
    assert manifest["onnx"]["ear"] == "ear.onnx" and "ear.onnx" in manifest["files"]
    spoken = "Pablo bebe un vaso de agua y come pan con mantequilla."
    localised = tmp_path / "localised"
    localised.mkdir()
    espeak(localised / "npc.wav", spoken, "es")
    (localised / "npc.txt").write_text(spoken + "\n", encoding="utf-8")
    done = facepolicy("bake", localised / "npc.wav", "-o", localised / "out", "--format", "json", "--model", out,
                      timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    said = json.loads((localised / "out" / "npc.json").read_text(encoding="utf-8"))["meta"]["warnings"]
    assert said == ["the transcript was aligned as Spanish (letter-to-sound rules and the English acoustic model)"]

    done = facepolicy("doctor", "--no-blender", "--model", out, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    listed = [line for line in done.stdout.splitlines() if line.startswith("model folder")]
    assert listed and "sha256 ok" in listed[0] and "(default anna)" in listed[0], done.stdout
    assert "on 2 takes" in done.stdout and "held-out error" in done.stdout

    # A corrupt file in the folder is refused by doctor, naming it.
    with (out / "denoiser.onnx").open("ab") as f:
        f.write(b"\0")
    done = facepolicy("doctor", "--no-blender", "--model", out, timeout=300)
    assert done.returncode == 1 and "denoiser.onnx" in done.stdout


def _sync_said(done, take: str, phrase: str) -> float:
    """The offset (ms) the run reported for ``take``, whose sentence must hold ``phrase``."""
    said = [line for line in done.stderr.splitlines() if f'"{take}.csv"' in line and " ms " in line]
    assert said and phrase in said[0], done.stderr
    return float(said[0].split("curves ")[1].split(" ms")[0])


def test_keep_timing_keeps_the_performers_lip_lead(tmp_path, lines):
    """With --keep-timing an offset within 0.1 s is the performer's own timing: reported and left as recorded."""
    folder = capture_folder(tmp_path, lines, offsets=(0.0, 0.25))
    out = tmp_path / "models" / "anna"
    done = finetune(folder, out, tmp_path, "--keep-timing", "--keep-dynamics", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    lead_ms = 1000 * synthetic.Habits().lip_lead
    assert _sync_said(done, "take1", "kept as the performer's own") == pytest.approx(lead_ms, abs=10)
    assert _sync_said(done, "take2", "late; corrected") == pytest.approx(250 - lead_ms, abs=10)
    takes = json.loads((out / "model.json").read_text(encoding="utf-8"))["finetune"]["captures"]["takes"]
    assert [t["sync_corrected"] for t in takes] == [False, True]
    settings = json.loads((out / "model.json").read_text(encoding="utf-8"))["finetune"]["settings"]
    assert settings["keep_timing"] and settings["keep_dynamics"] == 0


def _drop_columns(path: Path, names: set[str]) -> None:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    keep = [i for i, h in enumerate(rows[0]) if h not in names]
    path.write_text("\n".join(",".join(r[i] for i in keep) for r in rows) + "\n", encoding="utf-8")


def _refused(done, out: Path, *phrases: str) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    assert not out.exists(), "MODEL_DIR must not be written when the run does not finish"
    message = done.stderr.split("facepolicy: error: ", 1)[-1]
    for phrase in phrases:
        assert phrase in message, message
    assert "Traceback" not in done.stderr
    return message


def test_bad_captures_are_refused_naming_the_file_and_nothing_is_written(tmp_path, lines):
    out = tmp_path / "out"

    folder = capture_folder(tmp_path, lines, "columns")
    _drop_columns(folder / "take2.csv", {"JawOpen", "MouthClose"})
    _refused(finetune(folder, out, tmp_path), out, '"take2.csv"', "missing columns JawOpen, MouthClose")

    folder = capture_folder(tmp_path, lines, "rates", fps=(60.0, 30.0))
    _refused(finetune(folder, out, tmp_path), out, '"take2.csv": recorded at 30 fps while the other takes are at 60')

    folder = capture_folder(tmp_path, lines, "length")
    samples, rate = sf.read(str(folder / "take1.wav"))
    sf.write(str(folder / "take1.wav"), samples[: len(samples) // 3], rate)
    _refused(finetune(folder, out, tmp_path), out, '"take1.wav": the audio lasts', "another take")

    folder = capture_folder(tmp_path, lines, "silent")
    n = len(sf.read(str(folder / "take2.wav"))[0])
    hum = 0.01 * np.sin(2 * np.pi * 60 * np.arange(n) / 16000) + 0.001 * np.random.default_rng(0).standard_normal(n)
    sf.write(str(folder / "take2.wav"), hum.astype(np.float32), 16000)
    _refused(finetune(folder, out, tmp_path), out, '"take2.wav": no speech heard')

    folder = tmp_path / "unpaired"
    folder.mkdir()
    shutil.copy(capture_folder(tmp_path, lines, "src") / "take1.csv", folder / "take1.csv")
    _refused(finetune(folder, out, tmp_path), out, '"take1.csv": no audio beside it')
    empty = tmp_path / "empty"
    empty.mkdir()
    _refused(finetune(empty, out, tmp_path), out, "no takes found")
    _refused(finetune(empty, out, tmp_path, "--keep-dynamics", "-1"), out, "--keep-dynamics must be 0 or a positive")
    _refused(finetune(empty, out, tmp_path, "--brow-weight", "nan"), out, "--brow-weight must be 0 or a positive")
    _refused(finetune(empty, out, tmp_path, "--keep-closures", "-0.1"), out, "--keep-closures must be 0 or a positive")

    # A model folder that already holds something is not overwritten without --overwrite.
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    done = finetune(capture_folder(tmp_path, lines, "ok"), out, tmp_path)
    assert done.returncode == 1 and "already exists" in done.stderr
    assert (out / "keep.txt").read_text() == "mine"


def test_a_transcript_a_take_does_not_say_is_reported_and_an_unknown_language_refused(tmp_path, lines):
    """A NAME.txt beside a take that is another line's text is not used, and the run says so naming the file (it was
    dropped in silence); a transcript language FacePolicy does not know is one sentence, and nothing is written."""
    folder = capture_folder(tmp_path, lines)
    (folder / "take1.txt").write_text("The baby bumped the bubbles with a pink paddle.\n", encoding="utf-8")
    done = finetune(folder, tmp_path / "out", tmp_path, "--transcript-language", "English")
    assert done.returncode == 0, done.stdout + done.stderr
    said = [line for line in (done.stdout + done.stderr).splitlines() if '"take1.txt": the transcript' in line]
    assert said and "does not match the audio" in said[0], done.stdout + done.stderr
    bad = finetune(folder, tmp_path / "out2", tmp_path, "--transcript-language", "klingon")
    assert bad.returncode != 0
    assert "transcript language 'klingon' is not one FacePolicy knows: use auto (detect it)" in bad.stderr
    assert not (tmp_path / "out2").exists()


def test_a_fine_tune_stopped_by_its_time_limit_resumes_from_its_checkpoint(tmp_path, lines):
    # The stop message promises that the same command resumes; the checkpoint's key is the captures as heard
    # (model.finetune.cache_key), so hearing them the same way again must find it.
    folder = capture_folder(tmp_path, lines)
    out = tmp_path / "models" / "anna"
    first = finetune(folder, out, tmp_path, "--max-minutes", "0.0001")
    assert first.returncode == 1, first.stdout + first.stderr
    assert "run the same command again to resume" in first.stderr and not out.exists()
    again = finetune(folder, out, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming from" in again.stdout + again.stderr, again.stderr
    assert (out / "model.json").is_file()
