"""Tone-numbered Mandarin pinyin → ARPAbet, syllable by syllable ("ba4 ba5", or run together as "ni3hao3").

A syllable is an initial and a final. The initials are the English consonant nearest in the mouth (b p m f exact;
j q x as jh ch sh, z c as t s); the finals are written out below: a as the open aa, o as the rounded ao, e (ɤ) as ah,
ü as the rounded uw, ong as ow ng, and the i after z c s zh ch sh r (a buzz, not a vowel) as ih. Tones do not move
the lips: a syllable written with a tone mark ("wǒ", "míng") is read as with a tone digit ("wo3", "ming2").
"""

from __future__ import annotations

import re
import unicodedata

_INITIALS = {"b": "b", "p": "p", "m": "m", "f": "f", "d": "d", "t": "t", "n": "n", "l": "l", "g": "g", "k": "k",
             "h": "hh", "j": "jh", "q": "ch", "x": "sh", "zh": "jh", "ch": "ch", "sh": "sh", "r": "r", "z": "t s",
             "c": "t s", "s": "s"}
_FINALS = {
    "a": "aa", "o": "ao", "e": "ah", "i": "iy", "u": "uw", "ü": "uw", "ai": "ay", "ei": "ey", "ao": "aw", "ou": "ow",
    "an": "aa n", "en": "ah n", "ang": "aa ng", "eng": "ah ng", "ong": "ow ng", "er": "er",
    "ia": "y aa", "ie": "y eh", "iao": "y aw", "iu": "y ow", "iou": "y ow", "ian": "y eh n", "in": "iy n",
    "iang": "y aa ng", "ing": "iy ng", "iong": "y ow ng",
    "ua": "w aa", "uo": "w ao", "uai": "w ay", "ui": "w ey", "uei": "w ey", "uan": "w aa n", "un": "w ah n",
    "uen": "w ah n", "uang": "w aa ng", "ueng": "w ah ng",
    "üe": "uw eh", "üan": "uw eh n", "ün": "uw n",
}
_BUZZ = {"z", "c", "s", "zh", "ch", "sh", "r"}  # their "i" is the syllabic buzz [ɨ], not [i]
_SYLLABLE = re.compile(r"(zh|ch|sh|[bpmfdtnlgkhjqxrzcsyw])?([aeiouüv]+(?:ng|n|r(?![aeiouüv]))?)")


def syllable(initial: str, final: str) -> list[str] | None:
    """The phones of one syllable; None when it is not one pinyin writes."""
    final = final.replace("v", "ü")
    if initial == "y":  # y spells the i or ü of a final with no initial: ya = ia, yu = ü, yi = i
        initial, final = "", ("ü" + final[1:] if final.startswith("u") else final if final.startswith("i")
                              else "i" + final)
    elif initial == "w":
        initial, final = "", (final if final.startswith("u") else "u" + final)
    elif initial in ("j", "q", "x") and final.startswith("u"):
        final = "ü" + final[1:]
    elif initial in ("n", "l") and final == "ue":  # nüe, lüe written without the dots
        final = "üe"
    erhua = final.endswith("r") and final != "er"  # nar, dianr: the final with an r after it
    if erhua:
        final = final[:-1]
    if initial in _BUZZ and final == "i":
        said = "ih"
    else:
        said = _FINALS.get(final)
    if said is None:
        return None
    return ((_INITIALS[initial] + " ") if initial else "").split() + said.split() + ["r"] * erhua


_TONE_MARKS = {"\u0304", "\u0301", "\u030c", "\u0300"}  # the macron, acute, caron and grave of the four tones


def toneless(word: str) -> str:
    """Pinyin without its tone marks ("wǒ" → "wo", "lǜ" → "lü"): tones do not move the lips."""
    return unicodedata.normalize("NFC", "".join(c for c in unicodedata.normalize("NFD", word) if c not in _TONE_MARKS))


def mandarin(word: str) -> list[str]:
    """The phones of a run of pinyin syllables (tone digits already gone, tone marks allowed); [] when the run is
    not pinyin."""
    word = toneless(word)
    out: list[str] = []
    at = 0
    if word == "r":  # erhua after a tone digit ("dian3r"): the syllable before ends in r
        return ["r"]
    while at < len(word):
        m = _SYLLABLE.match(word, at)
        phones = syllable(m.group(1) or "", m.group(2)) if m else None
        if phones is None:
            return []
        out += phones
        at = m.end()
    return out
