"""German, Dutch and Swedish spelling → ARPAbet: letters with context (a vowel's length from the consonants after
it, final devoicing). Dutch and Swedish have their tables below.

German: a vowel before two consonants (or a doubled one) is short and open (a e o as aa eh ao), before one consonant and
a vowel long (e o as ey ow); ä is eh, the front rounded ü and ö stay rounded (uw, ow), ie is iy; ei ai ay, au aw, eu äu
oy; an unstressed final e (and the e of -en -el -es -et -em after an earlier vowel) is the schwa ah, a final -er the
r-coloured er. sch is sh, ch hh (ç and x alike), s before a vowel z, sp and st at a word's start sh p and sh t, z ts, w
v and v f; b d g at a word's end or before a voiceless consonant are p t k (final devoicing), a vowel's h is silent.
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
""", _CLASSES, plain="bdfgklmnprst")


def german(word: str) -> list[str]:
    return collapse_doubles(GERMAN.pronounce(word))


# Dutch: short vowels before two consonants (a e i o u as aa eh ih ao uh), long before one and a vowel or doubled
# (aa ee oo uu as aa ey ow uw); oe uw, ie iy, eu the rounded ow (ø), ij ei ey, ui oy, ou au aw; an unstressed e (de,
# een, -en -er -el -e, ge- be- ver-) is the schwa ah; g and ch are hh (ɣ x), sch s hh, w and v v, j y, final b d p t.
DUTCH = Rules("""
    aa aa
    a aa
    ee ey
    e ah / #[dtwmjz]?_#            % de, te, we, me, je, ze
    een ah n / #_#                 % the article
    e ah / V[^#]*_(?:[lnrst]|ns)?#
    e ah / #(?:g|b|v|t)_C          % ge-, be-, ver-, te- prefixes
    e ey / _CV
    e eh
    eu ow
    ei ey
    ij ey
    ie iy
    i ih
    oe uw
    oo ow
    ou aw
    au aw
    o ao / _CC
    o ao / _C#
    o ow
    uu uw
    ui oy
    u uh / _CC
    u uw
    y iy
    sch s hh
    ch hh
    g hh
    tje ch ah
    sj sh
    j y
    w v
    ng ng
    n ng / _k
    b p / _#
    d t / _#
    c s / _[eiy]
    c k
    qu k w
    x k s
    h hh
""", {"V": "[aeiouy]", "C": "[bcdfghjklmnpqrstvwxz]"}, plain="bdfklmnprstvz")

# Swedish: a aa, å ow, ä eh, ö ow (ao before two consonants), o and u uw (ao and ow before two consonants), y uw, e ey
# (eh before two consonants, the unstressed ah at a word's end and in -en -er -et -el); sj skj stj and sk before a
# front vowel sh (ɧ), tj kj and k before a front vowel sh (ɕ), g before a front vowel and gj dj hj lj y, ck k.
SWEDISH = Rules("""
    a aa
    å ow
    ä eh
    ö ao / _CC
    ö ow
    o ao / _CC
    o uw
    u ow / _CC
    u uw
    y uw
    e ah / V[^#]*_[lnrt]?#
    e eh / _CC
    e ey
    i ih / _CC
    i iy
    och ao k / #_#
    skj sh
    stj sh
    sj sh
    sk sh / _[eiyäö]
    tj sh
    kj sh
    k sh / #_[eiyäö]
    gj y
    dj y
    hj y
    lj y
    g y / #_[eiyäö]
    ck k
    ng ng
    n ng / _k
    j y
    w v
    x k s
    z s
    c s / _[eiy]
    c k
    h hh
    q k
""", {"V": "[aeiouyåäö]", "C": "[bcdfghjklmnpqrstvwxz]"}, plain="bdfgklmnprstv")


def dutch(word: str) -> list[str]:
    return collapse_doubles(DUTCH.pronounce(word))


def swedish(word: str) -> list[str]:
    return collapse_doubles(SWEDISH.pronounce(word))
