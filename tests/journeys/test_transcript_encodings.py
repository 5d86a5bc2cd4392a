"""Transcripts as editors save them: Windows Notepad's "Unicode" (UTF-16 with a byte-order mark), UTF-8 with a BOM,
Windows-1252 (Latin-1 letters) and UTF-32 are read and the line bakes with its transcript, in the console script,
the panel and the fine-tune's captures alike; bytes that are not text (UTF-16 saved without a BOM) fail the line in
one sentence naming the file. And the end of a bake: no speed is claimed for lines that were not baked, and an
unknown --transcript-language is a usage error (exit 2) like any other bad argument."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from journey import ROOT, espeak, facepolicy

from facepolicy.core.letters import settable_languages

GERMAN = "Fünf schöne Bälle für Bärbel, bitte bring mir morgen ein Paket."
ALIGNED = "the transcript was aligned as German (letter-to-sound rules and the English acoustic model)"


def german_line(folder: Path, name: str, encoding: str, text: str = GERMAN) -> Path:
    """The German line spoken by espeak-ng with its transcript beside it, saved in ``encoding``."""
    wav = espeak(folder / f"{name}.wav", text, "de")
    (folder / f"{name}.txt").write_bytes((text + "\n").encode(encoding))
    return wav


def rows(stdout: str) -> dict[str, str]:
    """The summary table's rows: output name -> the rest of its line."""
    found = {}
    for line in stdout.splitlines():
        cells = line.split(None, 2)
        if len(cells) == 3 and cells[0].isdigit():
            found[cells[1]] = cells[2]
    return found


def test_transcripts_saved_as_utf16_utf32_bom_or_windows_1252_bake_with_them(tmp_path):
    encodings = {"notepad_unicode": "utf-16", "utf8_bom": "utf-8-sig", "windows": "cp1252", "utf32": "utf-32"}
    wavs = [german_line(tmp_path, name, enc) for name, enc in encodings.items()]
    assert (tmp_path / "notepad_unicode.txt").read_bytes()[:2] == b"\xff\xfe"
    out = tmp_path / "out"
    done = facepolicy("bake", *wavs, "-o", out, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    table = rows(done.stdout)
    for name in encodings:
        assert table[name].startswith("ok") and ALIGNED in table[name], done.stdout
        meta = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))["meta"]
        assert meta["neural"]["evidence"] == "transcript alignment" and meta["warnings"] == [ALIGNED]


def test_a_utf16_transcript_without_a_bom_fails_its_line_in_one_sentence(tmp_path):
    """Plain ASCII text in UTF-16 decodes as UTF-8 full of NULs: it was taken as a transcript that did not match the
    audio, and the line baked without it."""
    bad = german_line(tmp_path, "bad", "utf-16-le", "Bitte bring mir morgen ein Paket.")
    good = german_line(tmp_path, "good", "utf-8")
    out = tmp_path / "out"
    done = facepolicy("bake", bad, good, "-o", out, timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    table = rows(done.stdout)
    assert table["bad"] == ('failed           "bad.txt": cannot read the transcript: it holds NUL bytes, as UTF-16 '
                            "saved without a byte-order mark does; save it as UTF-8 text"), done.stdout
    assert table["good"].startswith("ok") and ALIGNED in table["good"]
    assert (out / "good.csv").is_file() and not list(out.glob("*bad*")), "the failed line wrote nothing"
    assert "Traceback" not in done.stderr


def test_the_end_of_a_bake_claims_no_speed_for_lines_not_baked(tmp_path):
    """A line refused while it is baked (its transcript is not text) was counted as done at thousands of lines a
    minute."""
    refused = german_line(tmp_path, "refused", "utf-8")
    (tmp_path / "refused.txt").write_bytes(b"\x81\x8d\x8f\x90\x9d")  # neither UTF-8 nor Windows-1252
    failed = facepolicy("bake", refused, "-o", tmp_path / "out", timeout=600)
    assert failed.returncode == 1 and "0 baked, 0 up to date, 1 failed" in failed.stdout, failed.stdout
    assert '"refused.txt": cannot read the transcript' in failed.stdout
    assert "lines/min" not in failed.stdout and " in 0.0s" not in failed.stdout, failed.stdout

    good = german_line(tmp_path, "good", "utf-8")
    done = facepolicy("bake", good, refused, "-o", tmp_path / "out", timeout=600)
    assert done.returncode == 1 and "1 baked, 0 up to date, 1 failed" in done.stdout, done.stdout
    speed = [line for line in done.stdout.splitlines() if "lines/min" in line]
    assert len(speed) == 1 and speed[0].startswith("1 line baked in "), done.stdout


@pytest.mark.parametrize("value, why", [("xx", "is not one FacePolicy knows"),
                                        ("Klingon", "is not one FacePolicy knows")])
def test_a_transcript_language_the_cli_does_not_accept_is_a_usage_error(tmp_path, value, why):
    """Exit 1 means failed lines (the help says so); a bad argument exits 2 with argparse's error line, which lists
    the codes the help lists."""
    wav = german_line(tmp_path, "line", "utf-8")
    done = facepolicy("bake", wav, "-o", tmp_path / "out", "--transcript-language", value, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith(f"facepolicy bake: error: argument --transcript-language: transcript language '{value}'")
    assert why in error and error.endswith(f"use auto (detect it) or one of {', '.join(settable_languages())}")
    assert not (tmp_path / "out").exists()
    # finetune takes the same argument the same way, before it reads any capture.
    done = facepolicy("finetune", tmp_path / "no captures here", "-o", tmp_path / "model", "--transcript-language",
                      value, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"facepolicy finetune: error: argument --transcript-language: transcript language '{value}'")
    assert not (tmp_path / "model").exists()


@pytest.mark.blender
def test_the_panel_reads_a_notepad_unicode_transcript_file(tmp_path, capfd):
    """Animate from Audio with Transcript set to a file Notepad saved as "Unicode": the line is aligned with it."""
    pytest.importorskip("bpy")
    import bpy
    from journey import default_head_with_audio

    wav = german_line(tmp_path, "line", "utf-16")
    with default_head_with_audio(wav) as (obj, settings):
        settings.transcript_source, settings.transcript_path = "FILE", str(tmp_path / "line.txt")
        capfd.readouterr()
        assert bpy.ops.facepolicy.animate_from_audio() == {"FINISHED"}
        reported = capfd.readouterr()
        assert ALIGNED in reported.out + reported.err
        assert obj.data.shape_keys.animation_data.action is not None


@pytest.fixture(scope="module")
def performer():
    """Two short takes of a synthetic performer (flite voice, the teacher's face), with the text each speaks."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    if shutil.which("flite") is None:
        pytest.skip("flite is not installed (bash run.sh test installs it)")
    if str(ROOT) not in sys.path:  # `model` is a top-level package of the repository, not installed
        sys.path.insert(0, str(ROOT))
    synthetic = pytest.importorskip("model.synthetic_performer")
    lines = [synthetic.performer_lines(synthetic.Performer(), 8.0, seed=seed)[0] for seed in (3, 4)]
    return synthetic, lines


def capture_folder(root: Path, performer, encoding: str) -> Path:
    """Two Live Link Face takes; take1.txt, its transcript, saved in ``encoding``."""
    synthetic, lines = performer
    folder = root / "captures"
    for k, line in enumerate(lines, 1):
        synthetic.write_take(folder, f"take{k}", line["samples"], line["states"])
    (folder / "take1.txt").write_bytes((lines[0]["text"] + "\n").encode(encoding))
    return folder


def finetune(folder: Path, out: Path, tmp_path: Path):
    return facepolicy("finetune", folder, "-o", out, "--cache", tmp_path / "cache", "--steps", "2",
                      "--eval-every", "1", "--batch", "4", "--threads", "1", "--transcript-language", "en",
                      timeout=900)


def test_a_capture_transcript_saved_as_notepad_unicode_is_aligned(tmp_path, performer):
    out = tmp_path / "model"
    done = finetune(capture_folder(tmp_path, performer, "utf-16"), out, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"take1.txt"' not in done.stdout + done.stderr
    takes = json.loads((out / "model.json").read_text(encoding="utf-8"))["finetune"]["captures"]["takes"]
    assert [t["evidence"] for t in takes] == ["transcript alignment", "phone recognition"]


def test_a_capture_transcript_that_is_not_text_refuses_the_run_naming_it(tmp_path, performer):
    """It was read with its NULs and bytes replaced and dropped as not matching the audio; now it is one sentence
    and nothing is trained."""
    out = tmp_path / "model"
    done = finetune(capture_folder(tmp_path, performer, "utf-16-be"), out, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert ('"take1.txt": cannot read the transcript: it holds NUL bytes, as UTF-16 saved without a byte-order mark '
            "does; save it as UTF-8 text") in done.stderr
    assert not out.exists() and "Traceback" not in done.stderr


@pytest.mark.parametrize("encoding", ["cp1252", "utf-16"])
def test_a_manifest_saved_by_excel_or_notepad_bakes_its_rows(tmp_path, encoding):
    """Excel's "CSV" is Windows-1252, Notepad's "Unicode" UTF-16 with a byte-order mark: a manifest in either is read
    as a transcript is (core.fileio.read_user_text), accented output names and all."""
    german_line(tmp_path, "line", "utf-8")
    (tmp_path / "lines.csv").write_bytes("audio,output\r\nline.wav,café\r\n".encode(encoding))
    done = facepolicy("bake", "--manifest", tmp_path / "lines.csv", "-o", tmp_path / "out/", "--format", "csv",
                      timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "out" / "café.csv").is_file()
