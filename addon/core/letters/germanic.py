"""German spelling → ARPAbet: letters with context (vowel length from the consonants after it, final devoicing).

A vowel before two consonants (or a doubled one) is short and open (a e o as aa eh ao), before one consonant and a
vowel long (e o as ey ow); ä is eh, the front rounded ü and ö stay rounded (uw, ow), ie is iy; ei ai ay, au aw, eu äu
oy; an unstressed final e (and the e of -en -el -es -et -em after an earlier vowel) is the schwa ah, a final -er the
r-coloured er. sch is sh, ch hh (ç and x alike), s before a vowel z, sp and st at a word's start sh p and sh t, z ts,
w v and v f; b d g at a word's end or before a voiceless consonant are p t k (final devoicing), a vowel's h is silent.
"""

from __future__ import annotations

from .rules import Rules, collapse_doubles

_GERMAN_VOWELS = "[aeiouäöüy]"
# C: one consonant letter; a vowel is short before two of them (or one doubled), long before one and a vowel.
_CLASSES = {"V": _GERMAN_VOWELS, "C": "[bcdfghjklmnpqrstvwxzß]"}

GERMAN = Rules("""
    a aa
    ä eh
    ai ay
    ay ay
    au aw
    äu oy
    ee ey
    eh ey / _[^aeiouäöü]
    ei ay
    ey ay
    eu oy
    e ah / V[^#]*_[lnmst]?#     % unstressed final e, -en -el -em -es -et (haben, großes, gebadet)
    e ah / V[^#]*_ns#           % morgens
    er er / V[^#]*_#            % Mutter, immer
    e ah / #[gb]_CV            % the prefixes ge- and be- (gebadet, bekommen)
    e ey / _CV
    e ey / _#
    e eh
    ie iy
    ih iy
    i iy / _r#                  % wir, mir, dir
    i ih
    oo ow
    oh ow / _[^aeiouäöü]
    o ao / _CC
    o ow
    ö ow
    öh ow / _[^aeiouäöü]
    u uh / _CC
    uh uw / _[^aeiouäöü]
    u uw
    ü uw
    üh uw / _[^aeiouäöü]
    y uw
    sch sh
    chs k s
    ch hh
    ck k
    sp sh p / #_
    st sh t / #_
    s z / #_V
    s z / V_V
    ss s
    ß s
    s s
    tz t s
    z t s
    tion t s y ow n
    th t
    ph f
    pf p f
    qu k v
    q k
    w v
    v f
    j y
    h - / V_
    h hh
    b p / _(?:[stkf]|#)
    d t / _(?:[stkf]|#)
    dt t
    g hh / i_#                  % -ig: the ç of König
    g k / _(?:[stf]|#)
    ng ng
    n ng / _k
    x k s
    c t s / _[eiäy]
    c k
    b b
    d d
    f f
    g g
    k k
    l l
    m m
    n n
    p p
    r r
    t t
""", _CLASSES)


def german(word: str) -> list[str]:
    return collapse_doubles(GERMAN.pronounce(word))
