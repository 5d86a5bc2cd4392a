"""The phone set shared by the corpus, the aligner, the teacher and the metrics: ARPAbet (39) plus silence."""

from __future__ import annotations

from dataclasses import dataclass

# CMU/ARPAbet phones without stress marks, as CMUdict and pocketsphinx's en-us model use them.
ARPABET: tuple[str, ...] = (
    "aa", "ae", "ah", "ao", "aw", "ay", "b", "ch", "d", "dh", "eh", "er", "ey", "f", "g", "hh", "ih", "iy",
    "jh", "k", "l", "m", "n", "ng", "ow", "oy", "p", "r", "s", "sh", "t", "th", "uh", "uw", "v", "w", "y",
    "z", "zh",
)
SIL = "sil"
PHONES: tuple[str, ...] = (SIL,) + ARPABET
PHONE_INDEX: dict[str, int] = {p: i for i, p in enumerate(PHONES)}

BILABIALS = frozenset({"p", "b", "m"})
LABIODENTALS = frozenset({"f", "v"})
ROUNDED = frozenset({"uw", "ow", "w", "oy", "uh", "ao"})
# Vowels the lip-sync metric requires an open mouth for (when ≥ 60 ms long).
OPEN_VOWELS = frozenset({"aa", "ae", "ah", "ao", "aw", "ay", "eh"})
VOWELS = frozenset({"aa", "ae", "ah", "ao", "aw", "ay", "eh", "er", "ey", "ih", "iy", "ow", "oy", "uh", "uw"})


@dataclass(frozen=True)
class PhoneSegment:
    """One phone with its start and end time in seconds."""

    phone: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


_PAUSE_LABELS = frozenset({"", "sil", "sp", "spn", "pau", "h#", "<sil>", "</s>", "<s>", "[noise]", "nsn"})


# Phones of wider ARPAbet/TIMIT-style sets (festival, HTS labels) folded into the 39.
ALIASES: dict[str, str] = {
    "ax": "ah", "axr": "er", "ix": "ih", "ux": "uw", "dx": "d", "nx": "n", "en": "n", "em": "m", "el": "l",
    "eng": "ng", "hv": "hh", "q": "t", "axh": "ah",
}


def normalise_phone(label: str) -> str:
    """ARPAbet label with stress digits and case removed; pauses and noise become ``sil``."""
    p = label.strip().lower().rstrip("012")
    if p in PHONE_INDEX:
        return p
    if p in ALIASES:
        return ALIASES[p]
    if p in _PAUSE_LABELS or p.startswith("+"):
        return SIL
    raise ValueError(f"unknown phone label {label!r}")
