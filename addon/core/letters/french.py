"""French spelling → ARPAbet: silent letters, digraphs and nasal vowels by context.

A word's final e, es, s, t, d, x, z, p and the -ent of a verb after an earlier vowel are silent (final c r f l are
said; -er and -ez are ey); the e of a one-syllable word (le, de, que) and of an open syllable inside a word (petit)
is the schwa ah. é ey, è ê ai eh; au eau o ow, ou uw, oi w aa, the front rounded u as uw, eu œu as ow (ø) or, before
a said consonant, ao (œ). Nasal vowels (an en am em, on om, in ain ein im un, before a consonant or at the end)
keep their oral vowel's shape and add NASAL (below): an as aa, on as ao, in as eh, un as ao, ien as y eh. ch j and g
before e i are sh zh; gn n y; ill after a vowel y; qu k; ç and c before e i s; s between vowels z; h silent.
"""

from __future__ import annotations

from .rules import Rules, collapse_doubles

_CLASSES = {"V": "[aeiouyéèêëàâîïôûùüœ]", "F": "[eiyéèêëîï]", "C": "[bcdfghjklmnpqrstvwxzç]",
            "N": "(?:[^aeiouyéèêëàâîïôûùüœmnh]|#)"}  # N: what ends a nasal vowel (not a vowel, n, m or h)

# What a nasal vowel adds after its oral vowel ("n" or nothing): chosen on bench/bench_languages.py's French set.
NASAL = "n"

_TABLE = """
    % final silent letters (after a vowel somewhere before: a word of one letter is said)
    ment m aa NASAL / V[^#]*_s?#  % moment, vraiment (and the verb aiment, wrongly, keeps its m anyway)
    ent - / V[^#]*[^aeiouyéèê]_#   % -ent of verbs (parlent); souvent and vent lose their vowel too
    es - / V[^#]*_#
    e - / V[^#]*_#
    er ey / V[^#]*_#
    ez ey / V[^#]*_#
    et eh / V[^#]*_#
    est eh / #_#                % the verb est
    ts - / V[^#]*_#             % enfants, temps, nids
    ps - / V[^#]*_#
    ds - / V[^#]*_#
    s - / V[^#]*_#
    t - / V[^#]*_#
    d - / V[^#]*_#
    x - / V[^#]*_#
    z - / V[^#]*_#
    p - / V[^#]*_#
    g - / n_#
    pt t / _#                   % sept
    % vowels
    eaux ow
    eau ow
    aim eh NASAL / _N
    ain eh NASAL / _N
    ein eh NASAL / _N
    ien y eh NASAL / _N
    oin w eh NASAL / _N
    aill aa y
    ail aa y / _#
    eill eh y
    eil eh y / _#
    ouill uw y
    ai eh
    aî eh
    ei eh
    au ow
    am aa NASAL / _N
    an aa NASAL / _N
    a aa
    à aa
    â aa
    em aa NASAL / _N
    en aa NASAL / _N
    eu ao / _[rlf]
    eu ow
    œu ao
    œ ao
    es ey / #[ldmtsc]_#         % les des mes tes ses ces
    e ah / #(?:C+|qu)_#         % le de que ce
    e eh / _(?:CC|x|C#)         % elle, merci, sept, avec
    e ah
    é ey
    è eh
    ê eh
    ë eh
    ille iy y / [^aeiouy]_      % fille (ville and mille are exceptions)
    ill y / V_
    il y / V_#                  % travail, soleil
    im eh NASAL / _N
    in eh NASAL / _N
    i iy
    î iy
    ï iy
    om ao NASAL / _N
    on ao NASAL / _N
    oi w aa
    ou uw
    où uw
    oû uw
    o ow / _[stdxp]*#
    o ao
    ô ow
    um ao NASAL / _N
    un ao NASAL / _N
    u w / _i
    u uw
    û uw
    ù uw
    y iy
    % consonants
    ch sh
    ç s
    cc k s / _F
    c s / _F
    c k
    gn n y
    gu g / _F
    g zh / _F
    ge zh / _[aou]
    j zh
    h -
    ph f
    qu k
    q k
    th t
    tion s y ao NASAL
    ss s
    s z / V_V
    x k s
    w v
"""

# Elided words ("l'eau", "qu'il", "c'est", "j'ai") keep their consonant, which the final-letter rules would drop.
_ELIDED = {"c": ["s"], "j": ["zh"], "qu": ["k"], "l": ["l"], "d": ["d"], "m": ["m"], "n": ["n"], "s": ["s"],
           "t": ["t"]}


def _rules(nasal: str) -> Rules:
    return Rules(_TABLE.replace("NASAL", nasal), _CLASSES, plain="bdfgklmnprstvz")


FRENCH = _rules(NASAL)


def french(word: str) -> list[str]:
    if word in _ELIDED:
        return list(_ELIDED[word])
    return collapse_doubles(FRENCH.pronounce(word))
