"""Telling a transcript's language: a short localised line ("Mama kupiła mleko.") has too few words for its language
to be told from them, so without help its transcript is refused; the user sets the language (`--transcript-language`,
the manifest's transcript_language column, the panel's Language) and the line is aligned in it. What the user looks
at: the bake's one line per row, the files written, the lips in the Live Link CSV, the operator's report."""

from __future__ import annotations

import contextlib
import json

import pytest
from journey import default_head_with_audio, facepolicy, write_wav

LINE = "Mama kupiła mleko."  # Polish: "Mum bought milk."; four bilabials
ALIGNED = "the transcript was aligned as Polish (letter-to-sound rules and the English acoustic model)"


def polish_line(folder, name: str = "npc", transcript: bool = True, text: str = LINE, voice: str = "pl"):
    """The line spoken by espeak-ng's Polish voice (or ``text`` in ``voice``), its transcript beside it; the voice's
    own phone timings."""
    from model.data import espeak as espeak_lib
    from model.data import languages

    if not espeak_lib.available():
        pytest.skip("the espeak-ng library is not installed (bash run.sh test installs it)")
    utt = languages.synthesize(text, espeak_lib.EspeakVoice(voice, "", 175, 50))
    wav = write_wav(folder / f"{name}.wav", utt.samples)
    if transcript:
        (folder / f"{name}.txt").write_text(text + "\n", encoding="utf-8")
    return wav, utt


@contextlib.contextmanager
def animated_from_the_panel(wav, line: str, language: str, capfd):
    """The default head animated by the real operator with ``line`` in a text block as the transcript and the panel's
    Language set to ``language``: (the head, what the operator reported)."""
    import bpy

    with default_head_with_audio(wav) as (obj, settings):
        text = bpy.data.texts.new("line.txt")
        text.write(line)
        settings.transcript_source, settings.transcript_text = "TEXT", text
        settings.transcript_language = language
        capfd.readouterr()
        assert bpy.ops.facepolicy.animate_from_audio() == {"FINISHED"}
        reported = capfd.readouterr()
        yield obj, reported.out + reported.err


def warnings_of(out, name: str = "npc") -> list[str]:
    return json.loads((out / f"{name}.json").read_text(encoding="utf-8"))["meta"]["warnings"]


def test_a_short_line_is_aligned_in_the_language_the_user_sets(tmp_path):
    from facepolicy.core import metrics
    from facepolicy.core.livelink import read_livelink_csv

    wav, utt = polish_line(tmp_path)
    out = tmp_path / "out"
    told = facepolicy("bake", wav, "-o", out, "--format", "csv,json", timeout=600)
    assert told.returncode == 0, told.stdout + told.stderr
    (refused,) = warnings_of(out)
    assert refused.startswith("the transcript is not English, and transcripts are aligned only in")
    assert "(set the transcript's language if it is one of them)" in refused and refused in told.stdout
    for engine in ("neural", "phonetic"):
        # the same output folder: the language is part of what the outputs were made with, so nothing is "up to
        # date" when it changes
        done = facepolicy("bake", wav, "-o", out, "--format", "csv,json", "--engine", engine,
                          "--transcript-language", "Polish", timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "1 baked, 0 up to date" in done.stdout
        assert warnings_of(out) == [ALIGNED] and ALIGNED in done.stdout, engine
        s = metrics.score_clip(read_livelink_csv(out / "npc.csv"), utt.phones, utt.samples)
        assert s.bilabial_total == 4
        assert s.bilabial_hits == 4, (engine, f"lips missed {s.missed}")


def test_the_manifest_sets_each_rows_language_and_an_unknown_one_fails_only_its_row(tmp_path):
    polish_line(tmp_path, "pl_line", transcript=False)
    polish_line(tmp_path, "bad_line", transcript=False)
    (tmp_path / "line.txt").write_text(LINE + "\n", encoding="utf-8")
    manifest = tmp_path / "lines.csv"
    manifest.write_text("audio,transcript,transcript_language\n"
                        "pl_line.wav,line.txt,pl\n"
                        "bad_line.wav,line.txt,klingon\n", encoding="utf-8")
    out = tmp_path / "out"
    done = facepolicy("bake", "--manifest", manifest, "-o", out, "--format", "csv,json", timeout=600)
    assert done.returncode == 1, "a failed row fails the batch"
    assert "1 baked, 0 up to date, 1 failed" in done.stdout
    assert "transcript language 'klingon' is not one FacePolicy knows: use auto (detect it) or one of en, es" \
        in done.stdout + done.stderr
    assert warnings_of(out, "pl_line") == [ALIGNED]
    assert not list(out.glob("bad_line*")), "the failed row wrote nothing"


def test_an_unknown_language_on_the_command_line_is_one_sentence_and_bakes_nothing(tmp_path):
    wav, _ = polish_line(tmp_path)
    done = facepolicy("bake", wav, "-o", tmp_path / "out", "--transcript-language", "xx", timeout=120)
    assert done.returncode != 0
    assert "transcript language 'xx' is not one FacePolicy knows" in done.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.blender
def test_the_panels_language_aligns_a_text_block_transcript(tmp_path, capfd):
    """Animate from Audio with the transcript in a text block and Language set to Polish (the real operator, the
    default engine): the report says the line was aligned as Polish, and the take closes the lips."""
    pytest.importorskip("bpy")
    from facepolicy.blender import compat

    wav, _ = polish_line(tmp_path, transcript=False)
    with animated_from_the_panel(wav, LINE, "pl", capfd) as (obj, reported):
        assert ALIGNED in reported
        take = obj.data.shape_keys.animation_data.action
        close = next(fc for fc in compat.action_fcurves(take) if '"mouthClose"' in fc.data_path)
        assert max(k.co[1] for k in close.keyframe_points) > 0.1, "the lips close on the line's bilabials"


DUTCH = "Mijn moeder maakt met plezier een beetje boterbrood."  # "My mother happily makes some bread and butter."


def test_a_language_whose_transcripts_are_not_aligned_bakes_as_when_it_is_detected(tmp_path):
    """Setting Dutch, whose transcripts are not aligned, is no error: the line is baked as a detected Dutch one is
    (from recognition, the same take), and its row says in one sentence that the transcript was not used and why."""
    from facepolicy.core.letters import aligned_languages

    wav, _ = polish_line(tmp_path, text=DUTCH, voice="nl")
    instead = (f"and transcripts are aligned only in {aligned_languages()}, so this line was animated from phone "
               "recognition of the audio instead")
    told = facepolicy("bake", wav, "-o", tmp_path / "told", "--format", "csv,json", "--transcript-language", "Dutch",
                      timeout=600)
    assert told.returncode == 0, told.stdout + told.stderr
    assert "1 baked, 0 up to date" in told.stdout
    assert warnings_of(tmp_path / "told") == [f"the transcript was set to Dutch, {instead}"]
    assert f"the transcript was set to Dutch, {instead}" in told.stdout
    detected = facepolicy("bake", wav, "-o", tmp_path / "detected", "--format", "csv,json", timeout=600)
    assert detected.returncode == 0, detected.stdout + detected.stderr
    assert warnings_of(tmp_path / "detected") == [f"the transcript looks like Dutch, {instead}"]
    assert (tmp_path / "told" / "npc.csv").read_bytes() == (tmp_path / "detected" / "npc.csv").read_bytes()


def test_setting_a_language_does_not_rebake_lines_without_a_transcript(tmp_path):
    """A batch re-run with --transcript-language leaves the lines that have no transcript up to date: the language
    cannot change them."""
    wav, _ = polish_line(tmp_path, transcript=False)
    out = tmp_path / "out"
    first = facepolicy("bake", wav, "-o", out, timeout=600)
    assert first.returncode == 0 and "1 baked" in first.stdout, first.stdout + first.stderr
    again = facepolicy("bake", wav, "-o", out, "--transcript-language", "pl", timeout=600)
    assert again.returncode == 0 and "0 baked, 1 up to date" in again.stdout, again.stdout + again.stderr


@pytest.mark.blender
def test_the_panels_language_can_be_a_language_whose_transcripts_are_not_aligned(tmp_path, capfd):
    """Language set to Dutch in the panel (its tooltip says such transcripts are not aligned): the operator animates
    the line from recognition and its report says the transcript was not used, and why."""
    pytest.importorskip("bpy")
    from facepolicy.ui.props import TRANSCRIPT_LANGUAGES

    (dutch,) = [item for item in TRANSCRIPT_LANGUAGES if item[0] == "nl"]
    assert dutch[1] == "Dutch" and "not aligned" in dutch[2]
    wav, _ = polish_line(tmp_path, text=DUTCH, voice="nl", transcript=False)
    with animated_from_the_panel(wav, DUTCH, "nl", capfd) as (obj, reported):
        assert "the transcript was set to Dutch, and transcripts are aligned only in" in reported
        assert obj.data.shape_keys.animation_data.action is not None
