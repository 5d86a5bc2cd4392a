"""Japanese kana (hiragana and katakana) → ARPAbet, one mora at a time; kanji cannot be read without a dictionary.

The five vowels a i u e o are aa iy uh ey ow (u is the compressed, slightly rounded ɯ), ふ is f (the lips narrow for
ɸ), the flap r is d, a small ゃ ゅ ょ turns the mora before it into its y-form (きゃ kya, しゃ sha), a small っ doubles
the next consonant (one closure, held) and ー lengthens the vowel before it; ん is n.
"""

from __future__ import annotations

_VOWELS = {"a": "aa", "i": "iy", "u": "uh", "e": "ey", "o": "ow"}
# Each hiragana row: its consonant, and the five kana of the row in the order a i u e o ("" where none exists).
_ROWS = (
    ("", "あいうえお"), ("k", "かきくけこ"), ("g", "がぎぐげご"), ("s", "さしすせそ"), ("z", "ざじずぜぞ"),
    ("t", "たちつてと"), ("d", "だぢづでど"), ("n", "なにぬねの"), ("hh", "はひふへほ"), ("b", "ばびぶべぼ"),
    ("p", "ぱぴぷぺぽ"), ("m", "まみむめも"), ("y", "や\0ゆ\0よ"), ("d", "らりるれろ"), ("w", "わ\0\0\0を"),
)
# Moras whose consonant is not the row's: shi, ji, chi, tsu, dzu, fu, and を (said o).
_SPECIAL = {"し": "sh iy", "じ": "jh iy", "ち": "ch iy", "つ": "t s uh", "ぢ": "jh iy", "づ": "z uh", "ふ": "f uh",
            "を": "ow", "ん": "n", "ゔ": "v uh"}
_SMALL_VOWELS = {"ぁ": "aa", "ぃ": "iy", "ぅ": "uh", "ぇ": "ey", "ぉ": "ow"}
_SMALL_Y = {"ゃ": "aa", "ゅ": "uh", "ょ": "ow"}
_SOKUON, _LONG = "っ", "ー"

_MORA: dict[str, tuple[str, ...]] = {}
for consonant, row in _ROWS:
    for kana, vowel in zip(row, "aiueo", strict=True):
        if kana != "\0":
            _MORA[kana] = tuple(([consonant] if consonant else []) + [_VOWELS[vowel]])
_MORA.update({k: tuple(v.split()) for k, v in _SPECIAL.items()})
_MORA.update({k: (v,) for k, v in _SMALL_VOWELS.items()})
_MORA["ゎ"] = ("w", "aa")
KANA = frozenset(_MORA) | frozenset(_SMALL_Y) | {_SOKUON, _LONG}
_VOWEL_PHONES = frozenset(_SMALL_VOWELS.values())


def hiragana(text: str) -> str:
    """Katakana as the hiragana of the same sound (ア → あ); everything else unchanged."""
    return "".join(chr(ord(c) - 0x60) if "\u30a1" <= c <= "\u30f6" else c for c in text)


def japanese(word: str) -> list[str]:
    """The phones of a run of kana; [] when it holds anything else (kanji, Latin letters)."""
    word = hiragana(word)
    if not word or any(c not in KANA for c in word):
        return []
    out: list[str] = []
    for c in word:
        if c in _SMALL_Y and out and out[-1] == "iy":  # きゃ: the i of ki becomes y (after sh ch jh: nothing)
            out.pop()
            if out and out[-1] not in ("sh", "ch", "jh"):
                out.append("y")
            out.append(_SMALL_Y[c])
        elif c in _SMALL_Y:
            out += ["y", _SMALL_Y[c]]
        elif c in _SMALL_VOWELS and out and out[-1] in _VOWEL_PHONES:  # ティ ファ ウィ: the small vowel replaces
            last = out.pop()
            if not out or out[-1] in _VOWEL_PHONES:  # after a bare vowel, a glide (ウィ: w iy, イェ: y ey)
                out.append("w" if last == "uh" else "y")
            out.append(_SMALL_VOWELS[c])
        elif c not in (_SOKUON, _LONG):
            out += _MORA[c]
    return out
