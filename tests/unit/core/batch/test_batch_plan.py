"""core.batch.plan: every bad row gets its own error, good rows go on; duplicates, folders, styles."""

from __future__ import annotations

import envelope_engine
import pytest
from batch_helpers import ENGINES, plan, write_line

from facepolicy.core import batch
from facepolicy.core.errors import FacePolicyError
from facepolicy.core.facetrack import FaceTrack

envelope_engine.register()


def test_symlink_out_of_the_output_folder_is_refused(tmp_path):
    wav = write_line(tmp_path / "a.wav")
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "link").symlink_to(elsewhere, target_is_directory=True)
    rows, failures, _ = plan([{"audio": str(wav), "output": "link/a"}], tmp_path)
    assert not rows and "outside the output folder" in failures[0].message


def test_every_bad_row_gets_its_own_error_and_good_rows_go_on(tmp_path):
    good = write_line(tmp_path / "good.wav")
    write_line(tmp_path / "good2.wav")
    (tmp_path / "garbage.wav").write_bytes(b"RIFF not really a wave file" * 10)
    (tmp_path / "blocker").write_text("a file where a folder is needed")
    rows, failures, _ = plan([
        {"audio": "good.wav", "output": "one"},
        {"audio": "missing.wav"},
        {"audio": "garbage.wav"},
        {"audio": "good.wav", "output": "../../escape"},
        {"audio": "good.wav", "output": "ONE"},  # same output as row 1 on a case-insensitive file system
        {"audio": "good.wav", "output": "x", "seed": "abc"},
        {"audio": "good.wav", "output": "y", "engine": "neural-v9"},
        {"audio": "good.wav", "output": "z", "style": "grumpy"},
        {"audio": "good2.wav", "output": "../out/blocker/q"},
        {"audio": ""},
        {"audio": "good2.wav", "output": "two", "__error__": "3 cells but the header has 2"},
        {"audio": str(good), "output": "sub/three", "seed": "5", "style": "calm"},
    ], tmp_path)
    (tmp_path / "out").mkdir()
    assert [r.output for r in rows] == ["one", "sub/three"]
    assert rows[1].seed == 5 and rows[1].style == "calm" and rows[1].engine == "envelope"
    messages = {f.index: f.message for f in failures}
    assert "missing.wav" in messages[2] and "not found" in messages[2]
    assert "garbage.wav" in messages[3] and "could not decode audio" in messages[3]
    assert "leaves the output folder" in messages[4]
    assert "already written by line 2" in messages[5]
    assert "seed must be a whole number" in messages[6]
    assert "unknown engine 'neural-v9'; available: envelope, neural, phonetic" in messages[7]
    assert "unknown style preset 'grumpy'; valid presets: calm" in messages[8]
    assert "leaves the output folder" in messages[9]
    assert "no audio file given" in messages[10]
    assert "3 cells" in messages[11]
    assert all(m.startswith(f"line {i + 1}:") for i, m in messages.items())


def test_output_folder_that_is_not_writable(tmp_path):
    wav = write_line(tmp_path / "a.wav")
    (tmp_path / "file").write_text("x")
    opts = batch.BatchOptions(out_dir=str(tmp_path / "file" / "out"))
    rows, failures = batch.plan_rows([("arg", {"audio": str(wav)})], batch.RowDefaults(engine="envelope"),
                                     tmp_path, opts, ENGINES, [])
    assert not rows and "is a file, not a folder" in failures[0].message


def test_style_without_presets_explains_why(tmp_path):
    with pytest.raises(FacePolicyError, match="none are installed"):
        batch.check_style("calm", [])
    ref = tmp_path / "ref.json"
    FaceTrack.zeros(4).save_json(ref)
    batch.check_style(str(ref), [])
    with pytest.raises(FacePolicyError, match="not found"):
        batch.check_style(str(tmp_path / "nope.csv"), [])
    (tmp_path / "bad.csv").write_text("not,a,take\n1,2,3\n", encoding="utf-8")
    with pytest.raises(FacePolicyError, match="not a Live Link Face CSV"):
        batch.check_style(str(tmp_path / "bad.csv"), [])
    (tmp_path / "bad.json").write_text("{}", encoding="utf-8")
    with pytest.raises(FacePolicyError, match="not a FacePolicy track"):
        batch.check_style(str(tmp_path / "bad.json"), [])
