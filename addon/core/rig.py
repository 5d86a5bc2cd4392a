"""Which canonical ARKit channel drives which shape key of a rig, matched by name.

Rigs spell the 52 ARKit shapes in many ways: ``eyeBlinkLeft``, ``EyeBlink_L``, ``eye_blink.L``, ``blendShape1.jawOpen``,
``A25_Jaw_Open`` (Polywink/iClone), ``Eye_Blink_L``/``Brow_Raise_Inner_L`` (Character Creator 4),
``CTRL_expressions_mouthCornerPullL`` (MetaHuman-like), ``Fcl_EYE_Close_L`` (VRoid). A name is reduced to lower-case
words with the side moved to the end, looked up among the ARKit names, then among known synonyms. The user can
override any key; the override is plain JSON so it can be stored on the Blender object.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np

from . import spec
from .errors import RigError
from .facetrack import FaceTrack

# How a key was matched, strongest first. "solve": by the geometric retarget (core.retarget), not by name.
HOW_ORDER = ("user", "exact", "name", "alias", "solve")

_BLENDER_DUPLICATE = re.compile(r"\.\d{3}$")
_PREFIXES = re.compile(
    r"^(?:blend_?shapes?\d*|bs|shapes?|morphs?|targets?|arkit|ctrl_expressions|expressions?|fcl|a\d{1,2}|"
    r"head_?mesh|face_?mesh|head|face)(?:[._\-\s]+|(?=[A-Z]))",
    re.IGNORECASE,
)
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_SIDES = {"l": "left", "left": "left", "lt": "left", "r": "right", "right": "right", "rt": "right"}
# MetaHuman-style upper/lower + side in one word (mouthFunnelUL): the upper and lower parts drive one ARKit shape.
_PART_SIDES = {"ul": "left", "dl": "left", "ur": "right", "dr": "right"}

# Synonyms, as reduced words without the side. Several are approximations (VRoid vowels); the report says "alias".
ALIASES: dict[str, str] = {
    # Character Creator 4 (Extended profile)
    "browraiseinner": "browinnerup", "browraiseouter": "browouterup", "browdrop": "browdown",
    "cheekraise": "cheeksquint", "mouthrollinupper": "mouthrollupper", "mouthrollinlower": "mouthrolllower",
    "mouthdownlower": "mouthlowerdown", "mouthupupper": "mouthupperup", "mouthfunnelup": "mouthfunnel",
    "mouthfunneldown": "mouthfunnel", "mouthpuckerup": "mouthpucker", "mouthpuckerdown": "mouthpucker",
    # MetaHuman-like expression curves
    "browraisein": "browinnerup", "browraiseout": "browouterup", "eyewiden": "eyewide",
    "eyesquintinner": "eyesquint", "eyecheekraise": "cheeksquint", "nosewrinkle": "nosesneer",
    "mouthcornerpull": "mouthsmile", "mouthcornerdepress": "mouthfrown", "mouthlipspurse": "mouthpucker",
    "mouthlowerlipdepress": "mouthlowerdown", "mouthupperlipraise": "mouthupperup", "mouthlipspress": "mouthpress",
    "mouthlowerliprollin": "mouthrolllower", "mouthupperliprollin": "mouthrollupper", "mouthcheekblow": "cheekpuff",
    "jawfwd": "jawforward", "mouthlipstogether": "mouthclose",
    # Ready Player Me legacy and generic names
    "mouthopen": "jawopen", "jawdrop": "jawopen", "blink": "eyeblink", "eyeclose": "eyeblink",
    "eyesclosed": "eyeblink", "eyeclosed": "eyeblink", "smile": "mouthsmile", "frown": "mouthfrown",
    "pucker": "mouthpucker", "funnel": "mouthfunnel", "puff": "cheekpuff", "sneer": "nosesneer",
    # VRoid (Fcl_ prefix removed): eyes closed, and the vowels closest to an ARKit shape
    "mtha": "jawopen", "mthu": "mouthpucker", "mtho": "mouthfunnel", "mthclose": "mouthclose",
}


def _words(name: str) -> list[str]:
    return [w.lower() for part in re.split(r"[^A-Za-z0-9]+", name) for w in _WORDS.findall(part)]


def reduce_name(name: str) -> tuple[str, str]:
    """``name`` → (words without the side, side) in lower case: ``Eye_Blink_L`` → ("eyeblink", "left")."""
    base, side, _ = _reduce(name)
    return base, side


def _identity(name: str) -> str:
    """Names with one identity mean the same key (``jawOpen``, ``Jaw_Open``, ``jawOpen.001``)."""
    return "".join(_reduce(name))


def _reduce(name: str) -> tuple[str, str, str]:
    name = _BLENDER_DUPLICATE.sub("", name.strip())
    for _ in range(3):
        stripped = _PREFIXES.sub("", name, count=1)
        if stripped == name or not stripped:
            break
        name = stripped
    if "." in name:  # namespaces such as "blendShape1.x" or "Wolf3D_Head.x"; keep Blender's ".L"/".R"
        head, _, tail = name.rpartition(".")
        if tail.lower() in _SIDES:
            name = f"{head}_{tail}"
        elif len(tail) > 2:
            name = tail
    words = _words(name)
    sides = [i for i, w in enumerate(words) if w in _SIDES]
    side, part = "", ""
    if len(sides) == 2 and "look" in words:
        # One side is the eye, the other the direction (Eye_L_Look_R, eyeLookLeftL): the word after "look" is
        # the direction. Looking towards the eye's own side is looking out.
        look = words.index("look")
        direction = next((i for i in sides if i == look + 1), sides[1])
        eye = sides[0] if direction == sides[1] else sides[1]
        side = _SIDES[words[eye]]
        words[direction] = "out" if _SIDES[words[direction]] == side else "in"
        words.pop(eye)
    elif sides:
        side = _SIDES[words[sides[-1]]]
        words = [w for i, w in enumerate(words) if i not in sides]
    elif words and words[-1] in _PART_SIDES:
        part = words[-1][0]
        side = _PART_SIDES[words.pop()]
    return "".join(words), side, part


_ARKIT_BY_REDUCED: dict[str, str] = {"".join(reduce_name(n)): n for n in spec.ARKIT_NAMES}
# mouthLeft/mouthRight and jawLeft/jawRight are directions, not the two sides of one shape.
_DIRECTIONS = frozenset({"mouth", "jaw"})


def match_name(name: str) -> tuple[tuple[str, ...], str] | None:
    """The ARKit channel(s) a key name means and how it was matched, or None.

    A sided key of a bilateral ARKit shape (``Brow_Raise_Inner_L`` → browInnerUp) gets that shape; an unsided key
    of a sided pair (``mouthSmile``) gets the mean of both sides.
    """
    if name in spec.CHANNEL_INDEX and name not in spec.ROTATION_CHANNELS:
        return (name,), "exact"
    base, side = reduce_name(name)
    for words, how in ((base, "name"), (ALIASES.get(base), "alias")):
        if not words:
            continue
        if words + side in _ARKIT_BY_REDUCED:
            return (_ARKIT_BY_REDUCED[words + side],), how
        if side and words in _ARKIT_BY_REDUCED:
            return (_ARKIT_BY_REDUCED[words],), how
        if not side and words not in _DIRECTIONS and words + "left" in _ARKIT_BY_REDUCED:
            return (_ARKIT_BY_REDUCED[words + "left"], _ARKIT_BY_REDUCED[words + "right"]), how
    return None


@dataclass(frozen=True)
class KeyMatch:
    key: str
    channels: tuple[str, ...]  # the key's weight is the mean of these channels
    how: str                   # one of HOW_ORDER


@dataclass(frozen=True)
class Collision:
    """Several keys that mean the same thing (``jawOpen`` and ``Jaw_Open``); only ``kept`` is animated."""

    meaning: str
    keys: tuple[str, ...]
    kept: str

    @property
    def message(self) -> str:
        names = ", ".join(f'"{k}"' for k in self.keys)
        return (f"shape keys {names} all mean {self.meaning}; only \"{self.kept}\" will be animated. Rename or "
                "delete the others, or map them by hand")


@dataclass
class RigMapping:
    """Canonical channels → a rig's shape keys (name matches, user overrides), with what did not match."""

    keys: tuple[str, ...]                      # the rig's keys in order, without the reference (Basis) key
    matches: tuple[KeyMatch, ...]
    unmatched_keys: tuple[str, ...]
    unmatched_channels: tuple[str, ...]        # ARKit channels that drive no key
    collisions: tuple[Collision, ...] = ()
    skipped: dict[str, str] = field(default_factory=dict)  # key → why it is not animated although it matched

    @property
    def matched_keys(self) -> tuple[str, ...]:
        return tuple(m.key for m in self.matches)

    def key_map(self) -> dict[str, str]:
        """channel → key for the keys that take exactly one channel (the first such key per channel)."""
        out: dict[str, str] = {}
        for m in self.matches:
            if len(m.channels) == 1:
                out.setdefault(m.channels[0], m.key)
        return out

    def mixing_matrix(self, names: tuple[str, ...]) -> np.ndarray:
        """(C, K) matrix M so that ``values (T, C) @ M`` gives the matched keys' weights (T, K)."""
        index = {n: i for i, n in enumerate(names)}
        mat = np.zeros((len(names), len(self.matches)), np.float32)
        for k, m in enumerate(self.matches):
            present = [index[c] for c in m.channels if c in index]
            for i in present:
                mat[i, k] = 1.0 / len(m.channels)
        return mat

    def to_rig_track(self, track: FaceTrack) -> FaceTrack:
        """A track whose channels are the matched shape keys (weights), then the track's rotation channels."""
        weights = track.values @ self.mixing_matrix(track.names)
        rot = [n for n in track.names if n in spec.ROTATION_CHANNELS]
        values = np.concatenate([weights, track.select(rot).values], axis=1).astype(np.float32)
        meta = dict(track.meta, rig_mapping={m.key: [list(m.channels), m.how] for m in self.matches})
        return FaceTrack(track.fps, self.matched_keys + tuple(rot), values, meta)

    def report(self) -> list[tuple[str, str, str]]:
        """Rows (channel, key or "", how or "unmatched") in ARKit order, for the rig report."""
        rows = []
        for ch in spec.ARKIT_NAMES:
            found = [m for m in self.matches if ch in m.channels]
            rows += [(ch, m.key, m.how) for m in found] or [(ch, "", "unmatched")]
        return rows

    def warnings(self, unmatched_keys_idle: bool = True) -> list[str]:
        """Collisions, skipped keys and (``unmatched_keys_idle``: when nothing else drives them) unmatched keys."""
        out = [c.message for c in self.collisions]
        out += [f'"{k}": {why}' for k, why in self.skipped.items()]
        if self.unmatched_keys and unmatched_keys_idle:
            shown = ", ".join(f'"{k}"' for k in self.unmatched_keys[:8])
            more = f" and {len(self.unmatched_keys) - 8} more" if len(self.unmatched_keys) > 8 else ""
            out.append(f"{len(self.unmatched_keys)} shape keys match no channel ({shown}{more}); they stay as they are")
        return out


def parse_overrides(data) -> dict[str, tuple[str, ...]]:
    """User overrides {key: channel | [channels] | "" (never animate)} from a dict or JSON text, checked."""
    if isinstance(data, str):
        try:
            data = json.loads(data) if data.strip() else {}
        except json.JSONDecodeError as exc:
            raise RigError(f"the shape-key mapping is not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict):
        raise RigError('the shape-key mapping must be an object such as {"Jaw_Down": "jawOpen"}')
    out = {}
    for key, value in data.items():
        chans = [value] if isinstance(value, str) else value
        if not isinstance(chans, list | tuple) or not all(isinstance(c, str) for c in chans):
            raise RigError(f'the mapping for shape key "{key}" must be a channel name or a list of them')
        chans = tuple(c for c in chans if c)
        bad = [c for c in chans if c not in spec.CHANNEL_INDEX or c in spec.ROTATION_CHANNELS]
        if bad:
            raise RigError(f'the mapping for shape key "{key}" names unknown channel "{bad[0]}" '
                           "(use ARKit names such as jawOpen or eyeBlinkLeft)")
        out[str(key)] = chans
    return out


def overrides_to_json(overrides: dict[str, tuple[str, ...]]) -> str:
    return json.dumps({k: (v[0] if len(v) == 1 else list(v)) for k, v in sorted(overrides.items())}, indent=1)


def build_mapping(key_names, reference: str | None = "Basis", overrides=None) -> RigMapping:
    """Match a rig's shape keys to canonical channels by name.

    ``key_names``: the rig's shape keys in order. ``reference``: the rest key (not animated). ``overrides``: user
    mapping (see ``parse_overrides``); it wins over any name match and resolves collisions.
    """
    user = parse_overrides(overrides or {})
    keys = tuple(k for k in key_names if k != reference)
    found: list[KeyMatch] = []
    unmatched: list[str] = []
    ignored: list[str] = []
    for key in keys:
        if key in user:
            if user[key]:
                found.append(KeyMatch(key, user[key], "user"))
            else:
                ignored.append(key)
            continue
        hit = match_name(key)
        if hit is None:
            unmatched.append(key)
        else:
            found.append(KeyMatch(key, hit[0], hit[1]))

    # Keys that reduce to the same meaning collide; the strongest match (then the first) is kept.
    by_meaning: dict[tuple, list[KeyMatch]] = {}
    for m in found:
        if m.how != "user":
            by_meaning.setdefault((m.channels, _identity(m.key)), []).append(m)
    collisions, dropped = [], set()
    for (chans, _), group in by_meaning.items():
        if len(group) > 1:
            keep = min(group, key=lambda m: HOW_ORDER.index(m.how))
            collisions.append(Collision(" + ".join(chans), tuple(m.key for m in group), keep.key))
            dropped.update(m.key for m in group if m is not keep)
    kept = [m for m in found if m.key not in dropped]

    # Synonyms are a fallback: an alias key (Ready Player Me "mouthOpen", VRoid "Fcl_MTH_A") is redundant when its
    # channels already drive keys of their own, and so is a both-sides key (VRoid "Fcl_EYE_Close") next to per-side
    # keys.
    strong = {c for m in kept if m.how in ("user", "exact", "name") for c in m.channels}
    single = {m.channels[0] for m in kept if len(m.channels) == 1}
    skipped = {}
    for m in kept:
        if m.how == "user":
            continue
        if m.how == "alias" and all(c in strong for c in m.channels):
            skipped[m.key] = f"not animated: {' and '.join(m.channels)} already drive keys named for them"
        elif len(m.channels) > 1 and all(c in single for c in m.channels):
            skipped[m.key] = f"not animated: {' and '.join(m.channels)} already have their own keys"
    kept = [m for m in kept if m.key not in skipped]

    driven = {c for m in kept for c in m.channels}
    return RigMapping(
        keys=keys,
        matches=tuple(kept),
        unmatched_keys=tuple(unmatched),
        unmatched_channels=tuple(c for c in spec.ARKIT_NAMES if c not in driven),
        collisions=tuple(collisions),
        skipped=skipped,
    )
