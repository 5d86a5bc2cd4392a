"""Spanish and Italian spelling → ARPAbet: both spell their sounds regularly, so a page of rules covers them.

Each sound becomes the English phone closest to it in the mouth: the five vowels a e i o u as aa ey iy ow uw
(Italian e as the open eh, since its spelling does not say which of e and ɛ is meant, and ò as the open ao); Spanish
b/v after a vowel or another consonant than a nasal as the lip-narrowing v (the language's β, not a closure), also
across words; a tap between vowels as d (the English flap); ñ and gn as n y. What the lips do is what counts; the
acoustic model only needs the phones close enough to find the word boundaries.
"""

from __future__ import annotations

from .rules import Rules, collapse_doubles

_CLASSES = {"V": "[aeiouáéíóúàèìòùü]", "F": "[eiéíèì]"}

SPANISH = Rules("""
    a aa
    á aa
    e ey
    é ey
    i y / [^#]_[aeouáéóú]
    i iy
    í iy
    o ow
    ó ow
    u - / [qg]_F            % que, gui: the u is silent
    u w / _[aeioáéíó]
    u uw
    ú uw
    ü w
    y iy / _#
    b b / #_
    b b / [mn]_
    b v
    v b / #_
    v b / [mn]_
    c th / _F
    ch ch
    cc k s
    c k
    d d / #_
    d d / [nl]_
    d dh
    g hh / _F
    h -
    j hh
    ll y
    ñ n y
    n m / _[bvpm]
    qu k
    q k
    rr r
    r d / V_V               % the tap between vowels is an English flap
    x k s
    z th
""", _CLASSES, plain="fgklmnprstvwy")

ITALIAN = Rules("""
    a aa
    à aa
    e eh                    % open or close e: the open one is the one the lips must show
    é ey
    è eh
    i - / (?:sc|[cg])_[aouàòóù]   % ciao, giorno, lascia: the i only softens the consonant
    i y / [^#]_[aeouàèéòóù]
    i iy
    ì iy
    í iy
    o ow
    ó ow
    ò ao
    u w / [^#]_[aeioàèéìòó]
    u uw
    ù uw
    ch k / _F
    c ch / _F
    cq k
    c k
    gh g / _F
    gli l y / _V
    gl l y / _i
    gn n y
    g jh / _F
    sch s k
    sc sh / _F
    h -
    qu k w
    q k
    zz t s
    z t s
    x k s
    j y
""", _CLASSES, plain="bdfgklmnprstvwy")


def spanish(word: str) -> list[str]:
    return SPANISH.pronounce(word)


def italian(word: str) -> list[str]:
    return collapse_doubles(ITALIAN.pronounce(word))


def spanish_join(before: list[str] | None, phones: list[str]) -> list[str]:
    """A word-initial b/v is a stop only at the start of a phrase or after a nasal; after any other sound it is the
    lip-narrowing β (v), as inside words ("el barco", "de vino")."""
    if phones[0] == "b" and before is not None and before[-1] not in ("m", "n"):
        return ["v", *phones[1:]]
    return phones
