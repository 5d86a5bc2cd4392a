"""Telling a transcript's language (core.transcript.transcript_language) from its distinct words, as a tester met it
(issue 17's review): English lines with a few foreign names, a repeated foreign word, ordinary sentences in the
aligned languages, pinyin with tone marks, Chinese characters."""

import pytest

from facepolicy.core import letters
from facepolicy.core.letters import words
from facepolicy.core.transcript import CHINESE_CHARACTERS, TranscriptLanguage, transcript_language

# A stand-in for the pronouncing dictionary: the English words of these examples.
ENGLISH = set("""take the autobahn to then ask for we met and at fjord mr said gesundheit la land theme song jurgen
    koln soren bjorn muller i love zurich lake in winter""".split())


def known(word: str) -> bool:
    return word in ENGLISH


def test_no_common_word_of_another_language_is_a_common_english_word():
    for code, own in words.OTHER.items():
        assert not own & words.ENGLISH, code
        assert words.SHARED_WITH_ENGLISH[code] <= words.ENGLISH, code
    assert not words.PLAIN_ENGLISH & set().union(*words.SHARED_WITH_ENGLISH.values())


@pytest.mark.parametrize("text", [
    "Take the Autobahn to Köln, then ask for Jürgen.", "We met Søren and Björn at the fjord.",
    "Mr. Müller said: gesundheit!", "I love the Zürich lake in winter."])
def test_an_english_line_with_a_few_foreign_names_is_english(text):
    assert transcript_language(text, known) == TranscriptLanguage("en")


def test_a_repeated_word_votes_once():
    assert transcript_language("The la la land theme song.", known).english  # not es, fr, it with 2 votes each


@pytest.mark.parametrize(("text", "code"), [
    ("Vamos passear no parque depois do almoço.", "pt"),  # "no" and "do" are English and Portuguese alike
    ("A minha avó mora numa casa bonita perto do mar.", "pt"),
    ("Babam her sabah ekmek ve peynir yemeyi sever.", "tr"),  # "her" ("every") is English too
    ("Vi badade i havet varje morgon i somras.", "sv"),  # "i" twice was two English votes
    ("Je voudrais deux croissants, s'il te plaît.", "fr"),
    ("Ich bin so müde, aber wir gehen jetzt nach Hause.", "de"),
])
def test_ordinary_sentences_are_their_language(text, code):
    assert transcript_language(text, lambda word: True).code == code


def test_pinyin_with_tone_marks_is_pinyin_and_reads_as_tone_numbers():
    marked = "wǒ men míng tiān qù gōng yuán"
    assert transcript_language(marked, known).code == "zh"
    assert letters.unspeakable("zh", marked) is None
    assert letters.pronounce("zh", marked) == [
        (m, phones) for m, (_, phones) in zip(marked.split(), letters.pronounce("zh", "wo3 men5 ming2 tian1 qu4 gong1 "
                                                                               "yuan2"), strict=True)]
    assert [p for _, p in letters.pronounce("zh", "lǜ nǚ")] == [p for _, p in letters.pronounce("zh", "lü4 nü3")]
    # acute and grave accents alone are Italian or Spanish, not pinyin
    assert transcript_language("Perché è così più bello?", known).code != "zh"


def test_chinese_characters_say_how_to_write_them():
    han = transcript_language("今天天气很好。", known)
    assert han == TranscriptLanguage(None, CHINESE_CHARACTERS) and not han.undecided
    assert transcript_language("今日は良い天気です。", known).code == "ja"
    assert letters.unspeakable("zh", "今天天气很好。") == (
        "is written in Chinese characters (今天天气很好), and Mandarin transcripts must be written in pinyin "
        "(tone-numbered, ni3 hao3, or with tone marks) to be aligned")
    assert letters.unspeakable("ja", "私は東京に住んでいます。") == (
        "is written with kanji (私, 東京, 住), and Japanese transcripts must be written in kana (hiragana or "
        "katakana) to be aligned")


def test_decomposed_text_is_told_as_its_composed_form():
    # macOS editors may save "ǒ" as o and a combining caron: the same letters, the same language.
    import unicodedata

    from facepolicy.core.align import shared_aligner

    known = shared_aligner().in_dictionary
    for text in ("wǒ men míng tiān qù gōng yuán pá shān.", "Grüße aus Köln, sagte der Mann heute."):
        assert transcript_language(unicodedata.normalize("NFD", text), known) == transcript_language(text, known)
