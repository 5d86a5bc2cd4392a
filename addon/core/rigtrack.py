"""A FaceTrack shaped to one rig's own shape keys: the single rule of "map by name, else solve by geometry".

Decided per channel, here and nowhere else: an ARKit channel that a key name covers (``core.rig``: exact, name,
alias or the user's own mapping) drives that key; every other channel is solved from the geometry
(``core.retarget``) over the keys no name claimed. So an ARKit rig is driven by name, a viseme or FLAME rig by the
solve, and a mixed rig (visemes plus a ``Blink`` key, FLAME's expressions plus ``jawOpen``) by both. The keyframe
writer, the rig report, the bake worker and the FLAME importer all read the same ``RigPlan``.

Pure numpy; the Blender side only gathers ``RigGeometry`` from a mesh and writes curves.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

import numpy as np

from . import spec
from .errors import RigError
from .facetrack import FaceTrack
from .head import LIP_PAIRS, load_default_head
from .metrics import LipGeometry
from .retarget import Correspondence, KeySolver, fit_correspondence, transfer_deltas
from .rig import RigMapping
from .smoothing import gaussian_smooth

NAME, SOLVE, NONE = "name", "solve", "none"
POOR_FIT = 0.6  # median relative residual above which the solve is reported as a poor fit

MAX_SMOOTHING_SECONDS = 0.06  # smoothing = 1 is a Gaussian with this standard deviation


# --- the canonical track as the user asked for it ---------------------------------------------------------------


def _smooth(values: np.ndarray, fps: float, amount: float) -> np.ndarray:
    """Zero-phase Gaussian smoothing along time; ``amount`` 0..1 scales up to MAX_SMOOTHING_SECONDS."""
    sigma = float(np.clip(amount, 0.0, 1.0)) * MAX_SMOOTHING_SECONDS * fps
    if sigma < 0.3:  # narrower than this, it barely reaches the neighbouring frames
        return values
    return gaussian_smooth(values, sigma, dtype=np.float64)


def shape_track(track: FaceTrack, fps: float, options) -> FaceTrack:
    """The canonical track with the user's toggles, intensities and smoothing applied, resampled to ``fps``.

    ``options`` has ``channels`` (spec.TOGGLE_GROUPS switched on), ``intensity`` (spec.INTENSITY_GROUPS → scale)
    and ``smoothing`` (0..1).
    """
    full = track.select(spec.CHANNEL_NAMES)
    values = _smooth(full.values, full.fps, options.smoothing)
    scale = np.ones(spec.NUM_CHANNELS, np.float32)
    for region, names in spec.INTENSITY_GROUPS.items():
        factor = float(options.intensity.get(region, 1.0))
        for n in names:
            scale[spec.CHANNEL_INDEX[n]] = factor
    values = values * scale
    values[:, : spec.NUM_ARKIT] = np.clip(values[:, : spec.NUM_ARKIT], 0.0, 1.0)
    keep = [n for g in sorted(options.channels & spec.ALL_TOGGLES) for n in spec.TOGGLE_GROUPS[g]]
    shaped = FaceTrack(full.fps, spec.CHANNEL_NAMES, values, dict(full.meta))
    return shaped.resample(fps).select([n for n in spec.CHANNEL_NAMES if n in set(keep)])


# --- the rule ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RigPlan:
    """How each ARKit channel reaches this rig: by name (``mapping``), by the solve, or not at all."""

    mapping: RigMapping
    solved_channels: tuple[str, ...]  # channels no key name covers, solved over ``solve_keys``
    solve_keys: tuple[str, ...]       # keys no name claimed (and the user did not switch off)

    @property
    def needs_solve(self) -> bool:
        return bool(self.solved_channels and self.solve_keys)

    @property
    def method(self) -> str:
        """"name", "solve", "name + solve", or "none" (nothing drives any key)."""
        parts = [m for m, used in ((NAME, bool(self.mapping.matches)), (SOLVE, self.needs_solve)) if used]
        return " + ".join(parts) or NONE

    @property
    def driven_keys(self) -> tuple[str, ...]:
        return self.mapping.matched_keys + (self.solve_keys if self.needs_solve else ())

    @property
    def undriven_channels(self) -> tuple[str, ...]:
        """ARKit channels that move no key: no name covers them and the rig has no free key to solve with."""
        return () if self.needs_solve else self.mapping.unmatched_channels

    def rows(self) -> list[tuple[str, str, str]]:
        """(channel, key(s), how) per ARKit channel, in ARKit order: exactly what a bake will do."""
        solved = set(self.solved_channels) if self.needs_solve else set()
        keys = f"{len(self.solve_keys)} free keys" if len(self.solve_keys) != 1 else f"{self.solve_keys[0]}"
        rows = []
        for ch in spec.ARKIT_NAMES:
            named = [(ch, m.key, m.how) for m in self.mapping.matches if ch in m.channels]
            rows += named or [(ch, keys, SOLVE) if ch in solved else (ch, "", "unmatched")]
        return rows

    def summary(self) -> str:
        """One line for the report and the importer: how many channels go which way."""
        def count(n: int, word: str) -> str:
            return f"{n} {word}" + ("" if n == 1 else "s")

        n_named = spec.NUM_ARKIT - len(self.mapping.unmatched_channels)
        parts = []
        if self.mapping.matches:
            parts.append(f"{count(n_named, 'ARKit channel')} by key name ({count(len(self.mapping.matches), 'key')})")
        if self.needs_solve:
            parts.append(f"{count(len(self.solved_channels), 'channel')} by the geometric solve over "
                         f"{count(len(self.solve_keys), 'key')} no name claims")
        if not parts:
            return "no shape key is driven"
        return "; ".join(parts)

    def warnings(self) -> list[str]:
        """The mapping's warnings, less "these keys stay as they are" when the solve drives those keys."""
        return self.mapping.warnings(unmatched_keys_idle=not self.needs_solve)


def plan_rig(mapping: RigMapping) -> RigPlan:
    """The per-channel rule (module docstring) for a rig whose names gave ``mapping``."""
    return RigPlan(mapping, tuple(mapping.unmatched_channels), tuple(mapping.unmatched_keys))


# --- the geometric solve, cached per rig ------------------------------------------------------------------------


@dataclass
class RigGeometry:
    """A rig's rest shape and key deltas as plain arrays: what the geometric solve needs, safe for a worker thread."""

    key_names: tuple[str, ...]
    vertices: np.ndarray  # (V, 3) the reference key, object space
    deltas: np.ndarray  # (K, V, 3) each key minus the key it is relative to
    landmarks: dict[str, int] = field(default_factory=dict)  # picked by the user (4 or more guide the fit)

    def fingerprint(self) -> str:
        h = hashlib.blake2b(digest_size=16)
        h.update("\0".join(self.key_names).encode())
        h.update(repr(sorted(self.landmarks.items())).encode())
        h.update(np.ascontiguousarray(self.vertices, np.float32).tobytes())
        h.update(np.ascontiguousarray(self.deltas, np.float32).tobytes())
        return h.hexdigest()

    def key_deltas(self, names) -> np.ndarray:
        index = {n: i for i, n in enumerate(self.key_names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise RigError(f'the rig has no shape key "{missing[0]}" to solve for')
        return self.deltas[[index[n] for n in names]]


@dataclass(frozen=True)
class _Transfer:
    correspondence: Correspondence
    transferred: np.ndarray  # (52, V, 3) the canonical deltas carried onto the rig


_CACHE_SIZE = 4
_transfers: dict[str, _Transfer] = {}
_solvers: dict[tuple, KeySolver] = {}
_lock = threading.Lock()


def _remember(cache: dict, key, value) -> None:
    with _lock:
        if len(cache) >= _CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[key] = value


def _transfer(geometry: RigGeometry) -> _Transfer:
    fingerprint = geometry.fingerprint()
    with _lock:
        found = _transfers.get(fingerprint)
    if found is None:
        head = load_default_head()
        picked = geometry.landmarks if len(geometry.landmarks) >= 4 else None
        corr = fit_correspondence(head.vertices, geometry.vertices, head.landmarks, picked,
                                  src_triangles=head.faces)
        found = _Transfer(corr, transfer_deltas(head.deltas, corr))
        _remember(_transfers, fingerprint, found)
    return found


def solver_for(geometry: RigGeometry, keys=None, channels=None) -> KeySolver:
    """The solver of ``channels`` (default: all ARKit) over ``keys`` (default: all of the rig's), cached.

    The correspondence fit (the slow part) is shared by every key and channel subset of the same rig.
    """
    keys = tuple(keys) if keys is not None else geometry.key_names
    channels = tuple(channels) if channels is not None else spec.ARKIT_NAMES
    if not keys:
        raise RigError("the rig has no shape keys to solve for")
    cache_key = (geometry.fingerprint(), keys, channels)
    with _lock:
        solver = _solvers.get(cache_key)
    if solver is None:
        transfer = _transfer(geometry)
        rows = [spec.ARKIT_NAMES.index(c) for c in channels]
        solver = KeySolver(keys, geometry.key_deltas(keys), transfer.transferred[rows],
                           transfer.correspondence.confidence)
        _remember(_solvers, cache_key, solver)
    return solver


# --- the track in the rig's own channels ------------------------------------------------------------------------


def rig_track(shaped: FaceTrack, plan: RigPlan, geometry: RigGeometry | None = None,
              smoothness: float = 0.02) -> FaceTrack:
    """``shaped`` (canonical channels, those switched on) → the rig's key weights, then the rotation channels.

    Named keys take their channels' weights; when the plan solves, the free keys are solved for the switched-on
    channels that no name covers (``geometry`` is then required). A key is in the result only when something
    switched on drives it. ``meta["rig"]`` says how many channels went which way and the solve's fit error.
    """
    on = set(shaped.names)
    mapping = plan.mapping
    named = mapping.to_rig_track(shaped).select([m.key for m in mapping.matches if on.intersection(m.channels)])
    parts, names = [named.values], list(named.names)
    info: dict = {"method": plan.method, "named_channels": spec.NUM_ARKIT - len(mapping.unmatched_channels)}
    channels = tuple(c for c in plan.solved_channels if c in on)
    if plan.needs_solve and channels:
        if geometry is None:
            raise RigError("this rig is solved from its geometry, but no geometry was given")
        solver = solver_for(geometry, plan.solve_keys, channels)
        source = shaped.select(channels).values
        weights, solve = solver.solve(source, smoothness)
        parts.append(weights.astype(np.float32))
        names += list(solver.key_names)
        info.update(solved_channels=len(channels), iterations=solve.iterations, converged=solve.converged,
                    fit_error=float(np.median(solver.fit_error(source, weights))))
    rot = [n for n in shaped.names if n in spec.ROTATION_CHANNELS]
    parts.append(shaped.select(rot).values)
    values = np.concatenate(parts, axis=1).astype(np.float32)
    meta = dict(shaped.meta, rig=info, rig_mapping={m.key: [list(m.channels), m.how] for m in mapping.matches})
    return FaceTrack(shaped.fps, tuple(names) + tuple(rot), values, meta)


def solve_message(track: FaceTrack) -> str | None:
    """The one line a user reads about the solve of ``track`` (made by ``rig_track``), or None without a solve."""
    info = track.meta.get("rig", {})
    if "fit_error" not in info:
        return None
    fit = info["fit_error"]
    how = ("no shape-key names match ARKit, so the keys were solved from their shapes" if info["named_channels"] == 0
           else f"{info['solved_channels']} channels no key name covers were solved from the other keys' shapes")
    advice = "; a poor fit: map the keys by name for better results" if fit > POOR_FIT else ""
    return f"{how} (fit error {fit:.2f}{advice})"


def lip_geometry(geometry: RigGeometry, plan: RigPlan) -> LipGeometry:
    """The lip gap measured on the rig's own lips, as a function of its own key weights (``core.metrics``).

    The inner-lip pairs are the rig's vertices nearest to the default head's lip landmarks once the head is fitted
    onto the rig, and "vertical" is the head's up axis carried into the rig's frame; the open threshold comes from
    the rig's own response to ARKit jawOpen = 1 through ``plan``. So the same lip-sync metrics score a FLAME head
    or any rig on its own mesh.
    """
    head = load_default_head()
    corr = _transfer(geometry).correspondence
    placed = corr.scale * head.vertices @ corr.rotation.T + corr.translation

    def nearest(name: str) -> int:
        return int(np.argmin(np.linalg.norm(geometry.vertices - placed[head.landmarks[name]], axis=1)))

    up_axis = corr.rotation @ np.array([0.0, 0.0, 1.0])
    ups = [nearest(u) for u, _ in LIP_PAIRS]
    los = [nearest(lo) for _, lo in LIP_PAIRS]
    offset = (geometry.vertices[ups] - geometry.vertices[los]) @ up_axis
    slope = (geometry.deltas[:, ups] - geometry.deltas[:, los]) @ up_axis  # (K, 3)
    wide = FaceTrack.zeros(1)
    wide.values[0, spec.CHANNEL_INDEX["jawOpen"]] = 1.0
    opened = rig_track(wide, plan, geometry).select(geometry.key_names).values[0]
    return LipGeometry(offset.astype(np.float64), slope.astype(np.float64), geometry.key_names,
                       opened.astype(np.float64))
