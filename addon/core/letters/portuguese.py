"""European Portuguese spelling → ARPAbet: regular letters with context, and the reductions of unstressed vowels.

a is the open aa (the unstressed ɐ of a final a, as the open ah), é ó the open eh ao, ê ô ey ow; a final o (os) is
the rounded uh, a final e (es) the close ih (ɨ), the words "e" and "o" iy and uh. Nasal vowels (ã, ão, õe, and a
vowel before m or n and a consonant) keep their oral vowel's shape: a vowel and n, or m before p and b (the lips
close for the p anyway), and a word's final m is not a closure (bem, um: the vowel is nasal). lh nh are l y, n y;
ch j and a final or pre-consonant s or z are sh zh (ʃ ʒ); s between vowels z; c ç before e i s; qu gu before e i k g.
"""

from __future__ import annotations

from .rules import Rules, collapse_doubles

_CLASSES = {"V": "[aeiouáéíóúâêôãõàü]", "F": "[eiéíêè]", "C": "[bcdfghjklmnpqrstvwxzç]"}

PORTUGUESE = Rules("""
    ão aw
    ãe ay
    ães ay sh
    õe oy
    õ ow
    ã ah
    am ah m / _[pb]
    am aw / _s?#              % falam: -am is the nasal diphthong ɐ̃w̃
    an ah n / _(?!h)C
    a ah / _s?#               % the unstressed final a (ɐ)
    ai ay
    au aw
    a aa
    á aa
    à aa
    â ah
    em ey m / _[pb]
    em ey ng / _s?#           % bem, em: the lips do not close
    ém ey ng / _s?#
    en ey n / _(?!h)C
    ei ey
    eu ey uw
    e iy / #_#                % the word "e" (and)
    e ih / _s?#               % final e reduced to ɨ
    e eh
    é eh
    ê ey
    im iy m / _[pb]
    im iy ng / _s?#
    in iy n / _(?!h)C
    i iy
    í iy
    om ow m / _[pb]
    om ow ng / _s?#
    on ow n / _(?!h)C
    ou ow
    oi oy
    o uh / _s?#               % final o reduced to ʊ (and the word "o")
    o ow
    ó ao
    ô ow
    um uw m / _[pb]
    um uw ng / _s?#
    un uw n / _(?!h)C
    u - / [qg]_F
    u uw
    ú uw
    ü w
    lh l y
    nh n y
    ch sh
    ç s
    c s / _F
    c k
    g zh / _F
    j zh
    h -
    qu k / _F
    qu k w
    q k
    rr r
    ss s
    s z / V_V
    s zh / _[bdgvmnlr]
    s sh / _(?:C|#)
    x sh
    z sh / _#
    y iy
""", _CLASSES, plain="bdfgklmnprstvwz")


def portuguese(word: str) -> list[str]:
    return collapse_doubles(PORTUGUESE.pronounce(word))
