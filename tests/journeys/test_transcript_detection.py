"""Which language a transcript is taken for, as a tester met it: espeak-ng lines baked by the console script with
their exact text beside them. English lines with a few foreign names or a repeated foreign word are English; ordinary
Portuguese and Turkish sentences are aligned as their language (not as English); pinyin written with tone marks is
read as tone-numbered pinyin; a Japanese transcript with kanji, or one in Chinese characters alone, is one sentence
saying how to write it. What the user looks at: the bake's summary line, the JSON track's meta.warnings and evidence,
the lips in the Live Link CSV."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from journey import facepolicy, write_wav

RECOGNITION = "so this line was animated from phone recognition of the audio instead"


def aligned_as(name: str) -> list[str]:
    return [f"the transcript was aligned as {name} (letter-to-sound rules and the English acoustic model)"]


def spoken(folder: Path, name: str, voice: str, said: str, transcript: str | None = None):
    """An espeak-ng line saying ``said`` with ``transcript`` (default: the same text) beside it; its phone timings."""
    from model.data import espeak as espeak_lib
    from model.data import languages

    if not espeak_lib.available():
        pytest.skip("the espeak-ng library is not installed (bash run.sh test installs it)")
    utt = languages.synthesize(said, espeak_lib.EspeakVoice(voice, "", 175, 50))
    write_wav(folder / f"{name}.wav", utt.samples)
    (folder / f"{name}.txt").write_text((transcript or said) + "\n", encoding="utf-8")
    return utt


def bake(folder: Path, *args) -> tuple[subprocess.CompletedProcess, Path]:
    out = folder / "out"
    done = facepolicy("bake", *sorted(folder.glob("*.wav")), "-o", out, "--format", "csv,json", *args, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done, out


def meta(out: Path, name: str) -> dict:
    return json.loads((out / f"{name}.json").read_text(encoding="utf-8"))["meta"]


def closes_every_bilabial(out: Path, name: str, utt) -> None:
    from facepolicy.core import metrics
    from facepolicy.core.livelink import read_livelink_csv

    s = metrics.score_clip(read_livelink_csv(out / f"{name}.csv"), utt.phones, utt.samples)
    assert s.bilabial_total >= 2 and s.bilabial_hits == s.bilabial_total, f"{name}: lips missed {s.missed}"


# English lines a tester wrote: two names spelled with letters English never uses were one word in five and made the
# line "not English"; "la la" gave Spanish, French and Italian two votes each (a tie: "not English").
ENGLISH_LINES = {
    "autobahn": "Take the Autobahn to Köln, then ask for Jürgen.",
    "fjord": "We met Søren and Björn at the fjord.",
    "mueller": "Mr. Müller said: gesundheit!",
    "la_la": "The la la land theme song.",
}


def test_english_lines_with_foreign_names_or_a_repeated_foreign_word_use_their_transcript(tmp_path):
    for name, text in ENGLISH_LINES.items():
        spoken(tmp_path, name, "en-us", text)
    done, out = bake(tmp_path)
    assert f"{len(ENGLISH_LINES)} baked" in done.stdout
    for name in ENGLISH_LINES:
        m = meta(out, name)
        assert not any("not English" in w or "aligned as" in w for w in m["warnings"]), (name, m["warnings"])
        assert m["neural"]["evidence"] == "transcript alignment", (name, m["warnings"])


# Ordinary sentences the tester's lines were aligned with English phones (the common-word lists were too small).
LOCALISED = [("pt", "pt", "A minha avó mora numa casa bonita perto do mar.", "Portuguese"),
             ("tr", "tr", "Babam her sabah ekmek ve peynir yemeyi sever.", "Turkish")]


@pytest.mark.parametrize(("name", "voice", "text", "language"), LOCALISED, ids=[c[0] for c in LOCALISED])
def test_an_ordinary_portuguese_or_turkish_sentence_is_aligned_as_its_language(tmp_path, name, voice, text,
                                                                               language):
    utt = spoken(tmp_path, name, voice, text)
    done, out = bake(tmp_path)
    m = meta(out, name)
    assert m["warnings"] == aligned_as(language)
    assert m["warnings"][0] in done.stdout
    assert m["neural"]["evidence"] == "transcript alignment"
    closes_every_bilabial(out, name, utt)


PINYIN_SAID = "wo3 men5 ming2 tian1 qu4 gong1 yuan2 pa2 shan1"
PINYIN_MARKED = "wǒ men míng tiān qù gōng yuán pá shān"


def test_pinyin_with_tone_marks_is_aligned_as_pinyin_detected_or_set(tmp_path):
    utt = spoken(tmp_path, "zh_line", "cmn-latn-pinyin", PINYIN_SAID, PINYIN_MARKED)
    for told in ((), ("--transcript-language", "zh")):
        done, out = bake(tmp_path, *told)
        m = meta(out, "zh_line")
        assert m["warnings"] == aligned_as("Mandarin pinyin"), told
        assert m["neural"]["evidence"] == "transcript alignment"
        closes_every_bilabial(out, "zh_line", utt)


def test_a_transcript_in_kanji_says_in_one_sentence_that_japanese_is_written_in_kana(tmp_path):
    spoken(tmp_path, "ja_kanji", "ja", "きょうは いい てんき です。", "今日は良い天気です。")
    spoken(tmp_path, "han_only", "cmn-latn-pinyin", "jin1 tian1 tian1 qi4 hen3 hao3", "今天天气很好。")
    done, out = bake(tmp_path)
    assert "2 baked" in done.stdout
    (kanji,) = meta(out, "ja_kanji")["warnings"]
    assert kanji == ("the transcript looks like Japanese but is written with kanji (今日, 良, 天気), and Japanese "
                     f"transcripts must be written in kana (hiragana or katakana) to be aligned, {RECOGNITION}")
    (han,) = meta(out, "han_only")["warnings"]
    assert han == ("the transcript is written in Chinese characters (kanji or hanzi), which are not aligned: Japanese "
                   f"must be written in kana and Mandarin in pinyin, {RECOGNITION}")
    assert "Latin alphabet" not in han
    for name in ("ja_kanji", "han_only"):
        assert meta(out, name)["neural"]["evidence"] == "phone recognition"
    # set to Japanese, the kanji are still named (not the whole sentence around them)
    done, out = bake(tmp_path, "--transcript-language", "ja")
    assert meta(out, "han_only")["warnings"] == [
        "the transcript was set to Japanese but is written with kanji (今天天气很好), and Japanese transcripts must be "
        f"written in kana (hiragana or katakana) to be aligned, {RECOGNITION}"]
