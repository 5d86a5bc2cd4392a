"""Turkish and Polish spelling → ARPAbet: one letter (or a fixed digraph) per sound in both.

Their open-mid o is the open, rounded ao and e the open eh (as espeak-ng's voices say them: ɔ, ɛ); Turkish ı and
Polish y are the unrounded ih, ö the rounded ow, ü and ó the rounded uw; Polish ł is w, w is v (lips narrowed, not
closed), and the soft consonants (ś ć ź ń, and s c z n dz before i) are sh ch zh, n y and jh.
"""

from __future__ import annotations

from .rules import Rules, collapse_doubles

TURKISH = Rules("""
    a aa
    â aa
    e eh
    ı ih
    i iy
    î iy
    o ao
    ö ow
    u uw
    ü uw
    û uw
    c jh
    ç ch
    ş sh
    ğ -                 % lengthens the vowel before it
    j zh
    h hh
    n ng / _[kg]
""", plain="bdfgklmnprstvyz")

_POLISH_VOWELS = "[aąeęioóuy]"
POLISH = Rules("""
    a aa
    ą ao / _#
    ą ao m / _[pb]
    ą ao n
    e eh
    ę eh / _#
    ę eh m / _[pb]
    ę eh n
    i - / (?:s|c|z|n|dz)_V    % si, ci, zi, ni before a vowel: the i only softens the consonant
    i y / [bpmfwkgchlrt]_V    % and after other consonants it is a glide
    i iy
    o ao
    ó uw
    u uw
    y ih
    ch hh
    cz ch
    ci ch / _V
    ci ch iy
    ć ch
    c t s
    dzi jh / _V
    dzi jh iy
    dź jh
    dż jh
    dz d z
    h hh
    j y
    ł w
    ń n y
    ni n y / _V
    n ng / _[kg]
    rz zh
    sz sh
    si sh / _V
    si sh iy
    ś sh
    w f / [ptkcsf]_      % after a voiceless consonant (otwórz, twój)
    w v
    zi zh / _V
    zi zh iy
    ź zh
    ż zh
""", {"V": _POLISH_VOWELS}, plain="bdfgklmnprstz")


def turkish(word: str) -> list[str]:
    return collapse_doubles(TURKISH.pronounce(word))


def polish(word: str) -> list[str]:
    return collapse_doubles(POLISH.pronounce(word))
