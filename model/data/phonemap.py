"""Every TTS phone set we use, mapped to ARPAbet (39) + ``sil``: espeak-ng IPA and festival/flite "radio" phones.

A phone that is really two ARPAbet phones (a British centring diphthong, a syllabic l) maps to a pair; the
caller splits the segment's time evenly between them.
"""

from __future__ import annotations

from facepolicy.core.phones import PHONE_INDEX, SIL

# espeak-ng phoneme names in IPA mode (espeak_Initialize option 0x2), stress marks removed. Allophones go
# to the ARPAbet phone whose mouth shape they share: a flap [ɾ] and a glottal stop [ʔ] are t-like, dark
# [ɫ] is l, [x] is k.
IPA: dict[str, tuple[str, ...]] = {
    # consonants
    "p": ("p",), "b": ("b",), "t": ("t",), "d": ("d",), "k": ("k",), "ɡ": ("g",), "g": ("g",),
    "f": ("f",), "v": ("v",), "θ": ("th",), "ð": ("dh",), "s": ("s",), "z": ("z",), "ʃ": ("sh",),
    "ʒ": ("zh",), "h": ("hh",), "ɦ": ("hh",), "m": ("m",), "n": ("n",), "ŋ": ("ng",), "l": ("l",),
    "ɫ": ("l",), "ɹ": ("r",), "r": ("r",), "ɾ": ("t",), "ʔ": ("t",), "w": ("w",), "ʍ": ("w",),
    "j": ("y",), "tʃ": ("ch",), "dʒ": ("jh",), "x": ("k",), "ç": ("hh",), "ɬ": ("l",), "n̩": ("n",),
    "l̩": ("l",), "m̩": ("m",), "ʋ": ("v",), "ɣ": ("g",), "ts": ("t", "s"), "dz": ("d", "z"),
    # vowels
    "ə": ("ah",), "ɐ": ("ah",), "ʌ": ("ah",), "ɚ": ("er",), "ɜ": ("er",), "ɝ": ("er",), "æ": ("ae",),
    "a": ("ae",), "ɑ": ("aa",), "ɒ": ("aa",), "ɔ": ("ao",), "ɛ": ("eh",), "e": ("eh",), "ɪ": ("ih",),
    "ᵻ": ("ih",), "ɨ": ("ih",), "i": ("iy",), "ʊ": ("uh",), "u": ("uw",), "ʉ": ("uw",), "o": ("ow",),
    "ɵ": ("ow",), "ø": ("ow",), "y": ("uw",), "ɘ": ("ah",), "ɤ": ("ah",), "ɯ": ("uw",),
    "eɪ": ("ey",), "ei": ("ey",), "aɪ": ("ay",), "ɑɪ": ("ay",), "ʌɪ": ("ay",), "ɐɪ": ("ay",),
    "aʊ": ("aw",), "ɐʊ": ("aw",), "ɑʊ": ("aw",), "æʊ": ("aw",), "ɔɪ": ("oy",), "oɪ": ("oy",),
    "oʊ": ("ow",), "əʊ": ("ow",), "ɔʊ": ("ow",), "ɒʊ": ("ow",), "ʌʊ": ("ow",), "ɜʊ": ("ow",),
    "iə": ("iy", "ah"), "ɪə": ("ih", "ah"), "eə": ("eh", "ah"), "ɛə": ("eh", "ah"), "ʊə": ("uh", "ah"),
    "əu": ("ow",), "ʌʉ": ("ow",), "əʉ": ("ow",), "əɪ": ("ay",), "aa": ("aa",),
    "aɪə": ("ay", "ah"), "aʊə": ("aw", "ah"), "ɔə": ("ao", "ah"),
    "əl": ("ah", "l"), "ən": ("ah", "n"), "əm": ("ah", "m"),
}

# Marks that carry no mouth shape: stress, length, ties, syllabicity and other diacritics.
_IPA_MARKS = set("ˈˌːˑ:͡‿̩̯̪̃ʰʲʷ˞̆")

# Festival and flite English voices use the CMU "radio" phone set: ARPAbet plus these.
RADIO: dict[str, tuple[str, ...]] = {
    "pau": (SIL,), "h#": (SIL,), "brth": (SIL,), "ssil": (SIL,), "#": (SIL,),
    "ax": ("ah",), "axr": ("er",), "ix": ("ih",), "dx": ("t",), "nx": ("n",), "hv": ("hh",),
    "el": ("l",), "em": ("m",), "en": ("n",), "eng": ("ng",),
}


def _strip_marks(name: str) -> str:
    return "".join(ch for ch in name if ch not in _IPA_MARKS)


def ipa_to_arpabet(name: str) -> list[str]:
    """ARPAbet phones for one espeak-ng IPA phoneme name; an empty name (a pause) is ``sil``."""
    key = _strip_marks(name).strip()
    if not key or key in {"_", "|", "||"}:
        return [SIL]
    if key in IPA:
        return list(IPA[key])
    # Rhotic vowels and other compounds: split into the longest known pieces from the left.
    out: list[str] = []
    i = 0
    while i < len(key):
        for j in range(len(key), i, -1):
            if key[i:j] in IPA:
                out.extend(IPA[key[i:j]])
                i = j
                break
        else:
            raise KeyError(f"espeak-ng phoneme {name!r} has no ARPAbet mapping")
    return out


def radio_to_arpabet(name: str) -> list[str]:
    """ARPAbet phones for one festival/flite phone name."""
    key = name.strip().lower()
    if key in RADIO:
        return list(RADIO[key])
    key = key.rstrip("012")
    if key in PHONE_INDEX:
        return [key]
    raise KeyError(f"festival/flite phone {name!r} has no ARPAbet mapping")


def append_radio_phone(labels: list[str], ends: list[float], name: str, start: float, end: float) -> None:
    """Add one festival/flite phone ending at ``end``; a phone that maps to several ARPAbet phones (a diphthong
    split, say) shares its span equally between them."""
    phones = radio_to_arpabet(name)
    step = (end - start) / len(phones)
    for j, ph in enumerate(phones):
        labels.append(ph)
        ends.append(end if j == len(phones) - 1 else start + (j + 1) * step)
