"""A transcript's text: its words as spoken (numbers spelled out), letter-to-sound pronunciations for words the
pronouncing dictionary lacks, and which language it is written in: pocketsphinx's bundled model and dictionary are
American English, so a transcript in another language is aligned only where core.letters has its letter-to-sound
rules (core.evidence says which language a line was aligned as, or why its transcript was not used)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from .letters import words as common
from .letters.pinyin import mandarin, toneless
from .letters.words import LANGUAGE_NAMES, TONE_DIGIT, is_han

# --- text → words --------------------------------------------------------------------------------------------

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
         "seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> list[str]:
    """English words for 0 ≤ n < 10^12."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])
    if n < 1000:
        return [_ONES[n // 100], "hundred"] + (number_words(n % 100) if n % 100 else [])
    for size, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if n >= size:
            return number_words(n // size) + [name] + (number_words(n % size) if n % size else [])
    raise ValueError(n)


def transcript_words(text: str) -> list[str]:
    """Lower-case words as spoken: digits spelled out, punctuation dropped (apostrophes kept inside words)."""
    text = plain_ascii(text.lower()).replace("&", " and ").replace("%", " percent ")
    text = re.sub(r"\$(\d+)\.(\d\d)\b", r"\1 dollars and \2 cents", text)
    text = re.sub(r"\$(\d+)", r"\1 dollars", text)
    text = re.sub(r"(\d+)\.(\d+)", lambda m: m.group(1) + " point " + " ".join(m.group(2)), text)
    words: list[str] = []
    for token in re.findall(r"[a-z]+(?:'[a-z]+)*|\d+", text):
        if token.isdigit():
            n = int(token)
            if len(token) == 4 and 1100 <= n <= 2099 and n % 100:  # years: "nineteen eighty four"
                words += number_words(n // 100) + number_words(n % 100)
            elif n < 10**12:
                words += number_words(n)
            else:
                words += [_ONES[int(d)] for d in token]
        else:
            words.append(token)
    return words


# --- letter to sound ----------------------------------------------------------------------------------------------

# Ordered grapheme rules (longest first): spelling → ARPAbet. A compact rule set, good enough for alignment.
_LTS_RULES: tuple[tuple[str, str], ...] = (
    ("tion", "sh ah n"), ("sion", "zh ah n"), ("ough", "ao"), ("augh", "ao"), ("eigh", "ey"), ("igh", "ay"),
    ("tch", "ch"), ("dge", "jh"), ("sch", "s k"), ("chr", "k r"), ("que", "k"),
    ("ph", "f"), ("th", "th"), ("sh", "sh"), ("ch", "ch"), ("ck", "k"), ("ng", "ng"), ("qu", "k w"), ("wh", "w"),
    ("kn", "n"), ("wr", "r"), ("gh", "g"), ("ee", "iy"), ("ea", "iy"), ("oo", "uw"), ("ou", "aw"), ("ow", "ow"),
    ("oi", "oy"), ("oy", "oy"), ("ai", "ey"), ("ay", "ey"), ("ey", "ey"), ("ie", "iy"), ("ei", "ey"), ("au", "ao"),
    ("aw", "ao"), ("ew", "uw"), ("ue", "uw"), ("ar", "aa r"), ("er", "er"), ("ir", "er"), ("ur", "er"),
    ("or", "ao r"), ("ll", "l"), ("ss", "s"), ("tt", "t"), ("dd", "d"), ("ff", "f"), ("pp", "p"), ("bb", "b"),
    ("mm", "m"), ("nn", "n"), ("rr", "r"), ("cc", "k"), ("gg", "g"), ("zz", "z"),
    ("a", "ae"), ("b", "b"), ("c", "k"), ("d", "d"), ("e", "eh"), ("f", "f"), ("g", "g"), ("h", "hh"),
    ("i", "ih"), ("j", "jh"), ("k", "k"), ("l", "l"), ("m", "m"), ("n", "n"), ("o", "aa"), ("p", "p"),
    ("q", "k"), ("r", "r"), ("s", "s"), ("t", "t"), ("u", "ah"), ("v", "v"), ("w", "w"), ("x", "k s"),
    ("y", "iy"), ("z", "z"),
)
_SOFT_C = re.compile(r"c(?=[eiy])")
_SOFT_G = re.compile(r"g(?=[ei])")


def letter_to_sound(word: str) -> list[str]:
    """An ARPAbet pronunciation for a word CMUdict lacks (rules; a final silent e lengthens the vowel before it)."""
    w = re.sub(r"[^a-z]", "", word.lower())
    if not w:
        return []
    magic_e = len(w) > 3 and w.endswith("e") and w[-2] not in "aeiouy" and w[-3] in "aeiou"
    if w.endswith("e") and len(w) > 2 and not w.endswith(("ee", "ie", "ue", "ye")):
        w = w[:-1]
    w = _SOFT_C.sub("s", w)
    w = _SOFT_G.sub("j", w)
    out: list[str] = []
    i = 0
    while i < len(w):
        for graph, phones in _LTS_RULES:
            if w.startswith(graph, i):
                out += phones.split()
                i += len(graph)
                break
        else:
            i += 1
    if w.startswith("y") and out and out[0] == "iy":
        out[0] = "y"
    if magic_e:
        long_vowel = {"ae": "ey", "eh": "iy", "ih": "ay", "aa": "ow", "ah": "uw"}
        for k in range(len(out) - 1, -1, -1):
            if out[k] in long_vowel:
                out[k] = long_vowel[out[k]]
                break
    return out



# --- which language ------------------------------------------------------------------------------------------------

# A transcript is taken for Japanese when most of its letters are kana or kanji and at least one is kana (kanji alone
# may be Chinese), for another language when most of its letters are not Latin, for Mandarin when most of its words are
# pinyin syllables (tone-numbered, or with tone marks), for one of these languages when more of its distinct words are
# common words of it (or spelled with letters only it uses) than common English words that are not also its own (at
# least two; core.letters.words has the lists), for a language not told apart when one word in five is spelled with
# letters English never uses (unless its other words are plainly English: a few names, "Take the Autobahn to Köln"),
# or when most of its words are neither in the pronouncing dictionary nor plain ASCII.
# Letters that only one of these languages spells with: a word with one of them votes for that language too. Not ñ
# or å: English lines keep them in loanwords and names (jalapeño, Muñoz, Håkan), as _FOREIGN_LETTERS leaves ñ out.
_OWN_LETTERS = {"de": frozenset("ß"), "pt": frozenset("ãõ"), "pl": frozenset("łśżźćńąę"), "tr": frozenset("şğı")}
# Letters that rule a language out: Danish and Norwegian spell with them, Swedish never does.
_NOT_LETTERS = {"sv": frozenset("øæ")}
# Letters that English spelling never uses (loanwords such as café, naïve, façade, jalapeño keep theirs out of it):
# a transcript with at least one word in five spelled with them is not English.
_FOREIGN_LETTERS = frozenset("åøöüßłśżźćńąęşğıőűřěůčšžäõã")
_FOREIGN_WORD_SHARE = 0.2
_PINYIN_SYLLABLE = re.compile(r"[a-zü]+" + TONE_DIGIT)  # tone-numbered pinyin: "ba4 ba5 mei3 tian1"
# Pinyin's tone marks; those with a macron or a caron are spelled by none of the other languages (an acute or a
# grave alone, as in Spanish "qué" or Italian "più", does not make a line pinyin).
_TONE_MARKED = frozenset("āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜ")
_PINYIN_ONLY_MARKS = frozenset("āǎēěīǐōǒūǔǖǘǚǜ")
_LETTER_WORDS = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


@dataclass(frozen=True)
class TranscriptLanguage:
    """What a transcript is written in: ``code`` "en", another language's code (LANGUAGE_NAMES), or None where it
    is not English but no one language stands out; ``reason`` says why it is not English ("" when it is)."""

    code: str | None
    reason: str = ""

    @property
    def english(self) -> bool:
        return self.code == "en"

    @property
    def undecided(self) -> bool:
        """Written in Latin letters, not English, but no one language stands out: the user may tell it."""
        return self.code is None and self.reason not in (NOT_LATIN, CHINESE_CHARACTERS)

    @property
    def name(self) -> str:
        return LANGUAGE_NAMES.get(self.code or "", "another language")


ENGLISH = TranscriptLanguage("en")
NOT_LATIN = "is not written in the Latin alphabet"
CHINESE_CHARACTERS = ("is written in Chinese characters (kanji or hanzi), which are not aligned: Japanese must be "
                      "written in kana and Mandarin in pinyin")


def transcript_language(text: str, in_dictionary: Callable[[str], bool]) -> TranscriptLanguage:
    """The language ``text`` is written in: English, one named language ("looks like Spanish"), or not English at
    all. ``in_dictionary(word)``: whether the pronouncing dictionary knows a lower-case ASCII word."""
    text = unicodedata.normalize("NFC", text)  # a letter and its combining accent are one letter
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return ENGLISH
    kana = sum(1 for c in letters if _is_kana(c))
    if kana + sum(1 for c in letters if is_han(c)) >= 0.5 * len(letters):
        return TranscriptLanguage("ja", "looks like Japanese") if kana else TranscriptLanguage(None, CHINESE_CHARACTERS)
    latin = sum(1 for c in letters if c.isascii() or unicodedata.name(c, "").startswith("LATIN"))
    if latin < 0.5 * len(letters):
        return TranscriptLanguage(None, NOT_LATIN)
    tokens = _LETTER_WORDS.findall(text.lower())
    numbered = len(_PINYIN_SYLLABLE.findall(text.lower()))
    marked = sum(1 for w in tokens if _tone_marked_pinyin(w)) if _PINYIN_ONLY_MARKS.intersection(text.lower()) else 0
    if numbered + marked >= 3 and numbered + marked >= 0.5 * len(tokens):
        return TranscriptLanguage("zh", "looks like Mandarin pinyin" if numbered >= marked else
                                  "looks like Mandarin pinyin with tone marks (read as tone numbers)")
    words = set(tokens)  # each word votes once ("la la land")
    english = words & common.ENGLISH
    votes, against = {}, {}
    for code, own_words in common.OTHER.items():
        if _NOT_LETTERS.get(code, frozenset()).intersection("".join(words)):
            votes[code] = 0
            continue
        own = _OWN_LETTERS.get(code, frozenset())
        votes[code] = sum(1 for w in words if w in own_words or own.intersection(w) or _elided(w) in own_words)
        against[code] = len(english - common.SHARED_WITH_ENGLISH[code])
    most = max(votes.values())
    leaders = [code for code, n in votes.items() if n == most]
    if most >= 2 and any(most > against[code] for code in leaders):
        if len(leaders) == 1:
            return TranscriptLanguage(leaders[0], f"looks like {LANGUAGE_NAMES[leaders[0]]}")
        return TranscriptLanguage(None, "is not English")
    foreign = [w for w in tokens if _FOREIGN_LETTERS.intersection(w)]
    plain_english = len(words & common.PLAIN_ENGLISH)
    if (len(foreign) >= _FOREIGN_WORD_SHARE * len(tokens)
            and not (plain_english >= max(2, len(set(foreign))) and plain_english > most)):
        return TranscriptLanguage(None, "is not English")
    known = sum(1 for w in tokens if in_dictionary(plain_ascii(w)))
    if known < 0.5 * len(tokens):
        return TranscriptLanguage(None, "has mostly words that are not English")
    return ENGLISH


def _elided(word: str) -> str:
    """The elided article or pronoun a word starts with ("l'" of "l'acqua", "qu'" of "qu'il"), or ""."""
    head, apostrophe, _ = word.partition("'")
    return head + apostrophe if apostrophe else ""


def _tone_marked_pinyin(word: str) -> bool:
    """Whether a word is pinyin written with tone marks ("wǒ", "míngtiān") that the pinyin rules can read."""
    return (bool(_TONE_MARKED.intersection(word)) and all(c.isascii() or c in _TONE_MARKED or c == "ü" for c in word)
            and bool(mandarin(toneless(word))))


def language_as_told(code: str) -> TranscriptLanguage:
    """The TranscriptLanguage of a language the user named (told_language's code): no detection."""
    return ENGLISH if code == "en" else TranscriptLanguage(code, f"was set to {LANGUAGE_NAMES[code]}")


def _is_kana(c: str) -> bool:
    return "\u3041" <= c <= "\u30ff" and c not in "\u30fb"  # hiragana and katakana (the middle dot is not)


def plain_ascii(text: str) -> str:
    """Latin letters without their accents ("café" → "cafe"), typographic apostrophes as "'"."""
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
