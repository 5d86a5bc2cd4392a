"""A transcript's text: its words as spoken (numbers spelled out), letter-to-sound pronunciations for words the
pronouncing dictionary lacks, and which language it is written in: pocketsphinx's bundled model and dictionary are
American English, so a transcript in another language is aligned only where core.letters has its letter-to-sound
rules (core.evidence says which language a line was aligned as, or why its transcript was not used)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

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

# A transcript is taken for Japanese when most of its letters are kana, for another language when most of its letters
# are not Latin, for Mandarin when most of its words are tone-numbered pinyin syllables, for one of these languages
# when more of its words are common words of it (or spelled with letters only it uses) than common English words
# (at least two), for a language not told apart when one word in five is spelled with
# letters English never uses, or when most of its words are neither in the pronouncing dictionary nor plain ASCII.
# Words that are also English words ("a", "in", "no", "son", "die", "was", "er", "ma", "hoe") are left out of the
# other lists.
_ENGLISH_WORDS = frozenset("""
    the a an and or but of to in on at for with by from is are was were be been being it its this that these those
    i you he she we they me him us them my your his her our their not no yes do does did have has had will would
    can could shall should may might must what where when who why how which there here all some any just so if
    then than up out about into over now oh well hey hello please thank thanks okay ok let let's i'm you're it's
    don't can't won't isn't""".split())
LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "fr": "French", "de": "German", "it": "Italian",
                  "pt": "Portuguese", "nl": "Dutch", "sv": "Swedish", "pl": "Polish", "tr": "Turkish",
                  "zh": "tone-numbered Mandarin pinyin", "ja": "Japanese"}
_OTHER_WORDS = {
    "es": frozenset("""el la los las del que y en un una unos unas por con para es está están estoy pero
        como cómo más muy yo tú usted ustedes nosotros ellos ella su sus mi mis tu qué dónde cuando cuándo porque
        hay estar tengo tiene quiero hola gracias sí también ahora aquí bueno buenos buenas señor señora de nos
        algo antes después siempre nunca puedo puedes puede""".split()),
    "fr": frozenset("""le la les de des du et un une est sont je tu il elle nous vous ils elles pas que qui
        avec pour dans sur mais ou où très c'est bonjour merci oui suis avons êtes ce cette""".split()),
    "de": frozenset("""der das und ist ich nicht zu ein eine einen mit für wo bitte sehr heute sind wir sie
        es auf den dem auch noch nur wie kein keine haben habe danke ja nein guten ihr mein dein im am vom zum zur
        beim""".split()),
    "it": frozenset("""il la le gli di che non un una per con sono è mi si ti ci molto della del al dove
        questo questa quella grazie ciao buongiorno anche io tu lui lei abbiamo siamo ho hai nel nella sul sulla
        bella bello ogni mio sempre domani oggi""".split()),
    "pt": frozenset("""os de que não um uma eu meu minha você ele ela nós com para por muito onde
        obrigado obrigada sim isso este esta está é da dos das vamos na amanhã hoje também""".split()),
    "nl": frozenset("""de het een en ik je jij van niet waar wat dat met voor op zijn wij ze hij maar ook nog
        graag dank ja nee goed bij hebben heb heeft geen vaak""".split()),
    "sv": frozenset("""och på är det en med inte som för jag du vi hon han ett att av varje mycket
        här där också""".split()),
    "pl": frozenset("""nie się jest na że z po ja ty jak tak ale czy nad przez bardzo tylko jutro""".split()),
    "tr": frozenset("""bir ve bu da için çok ne ile değil yok""".split()),
}
# Letters that only one of these languages spells with: a word with one of them votes for that language too. Not ñ
# or å: English lines keep them in loanwords and names (jalapeño, Muñoz, Håkan), as _FOREIGN_LETTERS leaves ñ out.
_OWN_LETTERS = {"de": frozenset("ß"), "pt": frozenset("ãõ"), "pl": frozenset("łśżźćńąę"), "tr": frozenset("şğı")}
# Letters that rule a language out: Danish and Norwegian spell with them, Swedish never does.
_NOT_LETTERS = {"sv": frozenset("øæ")}
# Letters that English spelling never uses (loanwords such as café, naïve, façade, jalapeño keep theirs out of it):
# a transcript with at least one word in five spelled with them is not English.
_FOREIGN_LETTERS = frozenset("åøöüßłśżźćńąęşğıőűřěůčšžäõã")
_FOREIGN_WORD_SHARE = 0.2
TONE_DIGIT = r"(?<=[a-zü])[1-5](?!\d)"  # a tone number after a pinyin syllable, in lower case ("ba4", not "b12")
_PINYIN_SYLLABLE = re.compile(r"[a-zü]+" + TONE_DIGIT)  # tone-numbered pinyin: "ba4 ba5 mei3 tian1"
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
        return self.code is None and self.reason != NOT_LATIN

    @property
    def name(self) -> str:
        return LANGUAGE_NAMES.get(self.code or "", "another language")


ENGLISH = TranscriptLanguage("en")
NOT_LATIN = "is not written in the Latin alphabet"


def transcript_language(text: str, in_dictionary: Callable[[str], bool]) -> TranscriptLanguage:
    """The language ``text`` is written in: English, one named language ("looks like Spanish"), or not English at
    all. ``in_dictionary(word)``: whether the pronouncing dictionary knows a lower-case ASCII word."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return ENGLISH
    if sum(1 for c in letters if _is_kana(c)) >= 0.5 * len(letters):
        return TranscriptLanguage("ja", "looks like Japanese")
    latin = sum(1 for c in letters if c.isascii() or unicodedata.name(c, "").startswith("LATIN"))
    if latin < 0.5 * len(letters):
        return TranscriptLanguage(None, NOT_LATIN)
    pinyin = len(_PINYIN_SYLLABLE.findall(text.lower()))
    if pinyin >= 3 and pinyin >= 0.5 * len(_LETTER_WORDS.findall(text)):
        return TranscriptLanguage("zh", f"looks like {LANGUAGE_NAMES['zh']}")
    words = _LETTER_WORDS.findall(text.lower())
    english = sum(1 for w in words if w in _ENGLISH_WORDS)
    votes = {}
    for code, common in _OTHER_WORDS.items():
        if _NOT_LETTERS.get(code, frozenset()).intersection("".join(words)):
            votes[code] = 0
            continue
        own = _OWN_LETTERS.get(code, frozenset())
        votes[code] = sum(1 for w in words if w in common or own.intersection(w))
    most = max(votes.values())
    if most >= 2 and most > english:
        leaders = [code for code, n in votes.items() if n == most]
        if len(leaders) == 1:
            return TranscriptLanguage(leaders[0], f"looks like {LANGUAGE_NAMES[leaders[0]]}")
        return TranscriptLanguage(None, "is not English")
    if sum(1 for w in words if _FOREIGN_LETTERS.intersection(w)) >= _FOREIGN_WORD_SHARE * len(words):
        return TranscriptLanguage(None, "is not English")
    known = sum(1 for w in words if in_dictionary(plain_ascii(w)))
    if known < 0.5 * len(words):
        return TranscriptLanguage(None, "has mostly words that are not English")
    return ENGLISH


def language_as_told(code: str) -> TranscriptLanguage:
    """The TranscriptLanguage of a language the user named (told_language's code): no detection."""
    return ENGLISH if code == "en" else TranscriptLanguage(code, f"was set to {LANGUAGE_NAMES[code]}")


def _is_kana(c: str) -> bool:
    return "\u3041" <= c <= "\u30ff" and c not in "\u30fb"  # hiragana and katakana (the middle dot is not)


def plain_ascii(text: str) -> str:
    """Latin letters without their accents ("café" → "cafe"), typographic apostrophes as "'"."""
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
