"""Letter-to-sound for transcripts in languages other than English, so they can be force-aligned with pocketsphinx's
English acoustic model: each word's spelling becomes the ARPAbet phones closest to its sounds (bilabials exact, open
vowels open, rounded vowels rounded), which core.align supplies in place of the English dictionary's.

``ALIGNED`` lists the languages whose transcripts are aligned: only those where bench/bench_languages.py showed the
default mode with the transcript beating it without (docs/BENCHMARKS.md): no lower on bilabial, /m/, open and SLCC,
and a jitter no higher than without, or than the teacher's own on the exact phones (fast syllables move the lips that
much when every one of them opens and closes). core.transcript detects the language.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from . import french, germanic, kana, pinyin, portuguese, romance, turkish_polish
from .words import LANGUAGE_NAMES, TONE_DIGIT, is_han

# Language code → the word → phones rules of that language.
_RULES: dict[str, Callable[[str], list[str]]] = {
    "es": romance.spanish,
    "it": romance.italian,
    "tr": turkish_polish.turkish,
    "pl": turkish_polish.polish,
    "zh": pinyin.mandarin,
    "ja": kana.japanese,
    "de": germanic.german,
    "pt": portuguese.portuguese,
    "fr": french.french,
    "nl": germanic.dutch,
    "sv": germanic.swedish,
}
# Language code → how a word's first phones change after the word before it (None: the phrase starts with it).
_JOINS: dict[str, Callable[[list[str] | None, list[str]], list[str]]] = {
    "es": romance.spanish_join,
}
RULE_LANGUAGES = tuple(_RULES)
# The languages whose transcripts are aligned: those of RULE_LANGUAGES whose figures beat recognition's on
# bench/bench_languages.py (the rule in the module docstring). French and Japanese kana close every bilabial and open
# more vowels with their transcripts; their jitter rises (fr 0.579 -> 0.628, ja 0.477 -> 0.511) but stays under the
# teacher's own on the exact phones (0.638, 0.560). Dutch stays refused: its SLCC is lower (--align-also nl).
ALIGNED: tuple[str, ...] = ("es", "it", "de", "fr", "pt", "sv", "pl", "tr", "zh", "ja")

_WORDS = re.compile(r"[^\W\d_]+")
_PHRASE_END = re.compile(r"[.,;:!?¿¡()\u2014\u2026\"、。！？]")


def is_aligned(code: str) -> bool:
    """Whether transcripts in the language ``code`` are aligned: English's, and the ALIGNED languages'."""
    return code == "en" or code in ALIGNED


def aligned_languages(conjunction: str = "and") -> str:
    """The languages whose transcripts are aligned, for a sentence: "English, Spanish and Italian"."""
    names = ["English", *(LANGUAGE_NAMES[code] for code in ALIGNED)]
    return ", ".join(names[:-1]) + f" {conjunction} " + names[-1] if len(names) > 1 else names[0]


# What a user may call a language when setting it (--transcript-language, the manifest's transcript_language column,
# the panel's Language): its code or its English name, any case; AUTO (or nothing) leaves it to
# core.transcript.transcript_language. Every language FacePolicy can tell may be set: a transcript in one that is not
# ALIGNED (Dutch) is then not used, and the line is baked as without one with a one-line note (core.evidence), as
# when the language is detected.
AUTO = "auto"
_OTHER_NAMES = {"mandarin": "zh", "chinese": "zh", "pinyin": "zh"}


def settable_languages() -> tuple[str, ...]:
    """The codes a user may set (the CLI, the manifest, the panel): English, the ALIGNED languages, then the others
    FacePolicy can tell (their transcripts are not aligned)."""
    return ("en", *ALIGNED, *(code for code in LANGUAGE_NAMES if not is_aligned(code)))


def told_language(value: str | None) -> str | None:
    """The language code a user named for a transcript ("es", "Spanish", "ES", "Dutch"), or None for "detect it"
    (None, "", "auto"). FacePolicyError (one sentence listing the choices) for a language FacePolicy does not know."""
    from ..errors import FacePolicyError
    key = (value or "").strip().lower()
    if key in ("", AUTO):
        return None
    names = {**{name.lower(): code for code, name in LANGUAGE_NAMES.items()}, **_OTHER_NAMES}
    code = key if key in LANGUAGE_NAMES else names.get(key)
    choices = f"use {AUTO} (detect it) or one of {', '.join(settable_languages())}"
    if code is None:
        raise FacePolicyError(f"transcript language {value.strip()!r} is not one FacePolicy knows: {choices}")
    return code


def has_rules(code: str) -> bool:
    return code in _RULES


def spoken_words(text: str, code: str = "") -> list[tuple[str, bool]]:
    """The lower-case words of a transcript in another language, accents kept (apostrophes split: "l'acqua"), each
    with whether it starts a phrase (the transcript's start, or after punctuation)."""
    if code == "tr":  # Turkish dotless I and dotted İ
        text = text.replace("I", "ı").replace("İ", "i")
    out = []
    for phrase in _PHRASE_END.split(unicodedata.normalize("NFC", text.lower())):
        out += [(w, k == 0) for k, w in enumerate(_WORDS.findall(phrase))]
    return out


def unspeakable(code: str, text: str) -> str | None:
    """Why ``code``'s rules cannot say all of ``text`` (numbers written as digits, words they cannot read), or
    None."""
    digits = re.sub(TONE_DIGIT, "", text.lower()) if code == "zh" else text  # pinyin's tone digits
    if re.search(r"\d", digits):
        return "writes numbers as digits, which only English transcripts spell out"
    han = list(dict.fromkeys("".join(c if is_han(c) else " " for c in text).split()))
    if han and code == "ja":
        return (f"is written with kanji ({', '.join(han[:3])}), and Japanese transcripts must be written in kana "
                "(hiragana or katakana) to be aligned")
    if han and code == "zh":
        return (f"is written in Chinese characters ({', '.join(han[:3])}), and Mandarin transcripts must be written "
                "in pinyin (tone-numbered, ni3 hao3, or with tone marks) to be aligned")
    unread = [word for word, _ in spoken_words(text, code) if not _RULES[code](word)]
    if unread:
        return f"has words its letter-to-sound rules cannot read ({', '.join(unread[:3])})"
    return None


def pronounce(code: str, text: str) -> list[tuple[str, list[str]]]:
    """Each word of ``text`` with its ARPAbet phones by ``code``'s rules; words with no phones are left out."""
    rules = _RULES[code]
    join = _JOINS.get(code)
    out: list[tuple[str, list[str]]] = []
    for word, starts in spoken_words(text, code):
        phones = rules(word)
        if not phones:
            continue
        if join is not None:
            phones = join(out[-1][1] if out and not starts else None, phones)
        out.append((word, phones))
    return out
