"""The bundled default head (CC0, MakeHuman hm08 + "Face Units" ARKit targets) and its linear vertex decoder.

The head is the canonical template: 52 ARKit weights decode to a vertex trajectory on it (``HeadAsset.decode``).
Metres, +Z up, facing -Y, origin at the base of the neck; the character's left is +X. See assets/heads/default/.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field

import numpy as np

from . import spec
from .assets import asset_path
from .errors import AssetError

HEAD_DIR = "heads/default"

# Landmarks every head asset provides (vertex indices in head.json); users pick the same names on their own meshes.
LANDMARK_NAMES: tuple[str, ...] = (
    "lip_upper_mid", "lip_lower_mid", "lip_upper_left", "lip_lower_left", "lip_upper_right", "lip_lower_right",
    "mouth_corner_left", "mouth_corner_right", "eye_outer_left", "eye_inner_left", "eye_outer_right",
    "eye_inner_right", "eyelid_upper_left", "eyelid_lower_left", "eyelid_upper_right", "eyelid_lower_right",
    "nose_tip", "chin",
)

# Inner-lip pairs the lip-sync metrics measure: the midline and ±25 % of the mouth width.
LIP_PAIRS: tuple[tuple[str, str], ...] = (
    ("lip_upper_mid", "lip_lower_mid"),
    ("lip_upper_left", "lip_lower_left"),
    ("lip_upper_right", "lip_lower_right"),
)
EYELID_PAIRS: dict[str, tuple[str, str]] = {
    "left": ("eyelid_upper_left", "eyelid_lower_left"),
    "right": ("eyelid_upper_right", "eyelid_lower_right"),
}


@dataclass(frozen=True, eq=False)
class HeadAsset:
    """A face mesh with the 52 ARKit shape deltas.

    ``uvs`` are per loop: one (u, v) per entry of ``polygon_vertices`` (the corners of ``polygons`` in order).
    ``faces`` is the triangulation of ``polygons`` (fan per polygon); ``face_polygon[i]`` is the polygon that
    triangle i came from.
    """

    vertices: np.ndarray          # (V, 3) float32, neutral, metres
    polygon_sizes: np.ndarray     # (P,) int32
    polygon_vertices: np.ndarray  # (L,) int32, L = polygon_sizes.sum()
    uvs: np.ndarray               # (L, 2) float32, per loop
    shape_names: tuple[str, ...]  # the 52 ARKit names, in spec.ARKIT_NAMES order
    deltas: np.ndarray            # (52, V, 3) float32
    landmarks: dict[str, int]
    vertex_groups: dict[str, np.ndarray]
    pivots: dict[str, np.ndarray]  # eye_left, eye_right, jaw, head, neck: (3,) metres
    eye_radius: float
    meta: dict = field(default_factory=dict)

    @property
    def num_vertices(self) -> int:
        return len(self.vertices)

    @functools.cached_property
    def polygons(self) -> list[np.ndarray]:
        return np.split(self.polygon_vertices, np.cumsum(self.polygon_sizes)[:-1])

    @functools.cached_property
    def loop_starts(self) -> np.ndarray:
        return (np.cumsum(self.polygon_sizes) - self.polygon_sizes).astype(np.int32)

    @functools.cached_property
    def _triangulation(self) -> tuple[np.ndarray, np.ndarray]:
        tris, owner = [], []
        for size in np.unique(self.polygon_sizes):
            polys = np.nonzero(self.polygon_sizes == size)[0]
            corners = self.loop_starts[polys][:, None] + np.arange(size)[None, :]  # (n, size)
            ids = self.polygon_vertices[corners]
            for k in range(1, size - 1):
                tris.append(np.stack([ids[:, 0], ids[:, k], ids[:, k + 1]], axis=1))
                owner.append(polys)
        tri, own = np.concatenate(tris), np.concatenate(owner)
        order = np.argsort(own, kind="stable")
        return tri[order].astype(np.int32), own[order].astype(np.int32)

    @property
    def faces(self) -> np.ndarray:
        """(F, 3) int32 triangles."""
        return self._triangulation[0]

    @property
    def face_polygon(self) -> np.ndarray:
        return self._triangulation[1]

    @property
    def lip_vertex_indices(self) -> np.ndarray:
        return self.vertex_groups["lips"]

    def delta(self, name: str) -> np.ndarray:
        """(V, 3) displacement of one ARKit shape at weight 1."""
        try:
            return self.deltas[self.shape_names.index(name)]
        except ValueError:
            raise KeyError(f"the default head has no shape {name!r}") from None

    def decode(self, weights: np.ndarray, vertex_indices: np.ndarray | None = None) -> np.ndarray:
        """Vertices for ARKit weights: (T, 52) → (T, V, 3) (or (T, len(vertex_indices), 3)); (52,) → (V, 3).

        Weights with the 59 canonical channels (spec.CHANNEL_NAMES) are accepted; only the 52 shapes are used
        (head and eye rotations are rigid transforms, not shape deltas).
        """
        w = np.asarray(weights, dtype=np.float32)
        single = w.ndim == 1
        w = np.atleast_2d(w)
        if w.shape[-1] == spec.NUM_CHANNELS:
            w = w[:, : spec.NUM_ARKIT]
        if w.shape[-1] != spec.NUM_ARKIT:
            raise ValueError(f"decode expects (T, {spec.NUM_ARKIT}) weights, got {w.shape}")
        base, deltas = self.vertices, self.deltas
        if vertex_indices is not None:
            base, deltas = base[vertex_indices], deltas[:, vertex_indices]
        out = (w @ deltas.reshape(spec.NUM_ARKIT, -1)).reshape(len(w), -1, 3) + base[None]
        return out[0] if single else out

    def landmark_positions(self, vertices: np.ndarray, names: tuple[str, ...] | None = None) -> np.ndarray:
        """(..., V, 3) vertices → (..., K, 3) positions of the named landmarks (all, sorted by name, by default)."""
        names = names or tuple(sorted(self.landmarks))
        return np.asarray(vertices)[..., [self.landmarks[n] for n in names], :]

    def inner_lip_gaps(self, vertices: np.ndarray) -> np.ndarray:
        """(..., V, 3) → (..., 3) distances between the inner-lip pairs of LIP_PAIRS (mid, left, right), metres."""
        v = np.asarray(vertices)
        up = v[..., [self.landmarks[u] for u, _ in LIP_PAIRS], :]
        lo = v[..., [self.landmarks[lo] for _, lo in LIP_PAIRS], :]
        return np.linalg.norm(up - lo, axis=-1)

    def eyelid_gap(self, vertices: np.ndarray, side: str) -> np.ndarray:
        """(..., V, 3) → (...) distance between the upper and lower lid midpoints of one eye, metres."""
        up, lo = EYELID_PAIRS[side]
        v = np.asarray(vertices)
        return np.linalg.norm(v[..., self.landmarks[up], :] - v[..., self.landmarks[lo], :], axis=-1)


def _read(npz_path, json_path) -> HeadAsset:
    try:
        with np.load(npz_path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError) as exc:
        raise AssetError(
            f'the default head asset "{npz_path.name}" could not be read ({exc}); reinstall FacePolicy'
        ) from exc
    names = tuple(str(n) for n in data["shape_names"])
    if names != spec.ARKIT_NAMES:
        raise AssetError("the default head asset does not carry the 52 ARKit shapes in order; reinstall FacePolicy")
    verts = data["vertices"].astype(np.float32)
    deltas = np.zeros((len(names), len(verts), 3), dtype=np.float32)
    starts = np.concatenate([[0], np.cumsum(data["delta_counts"])])
    for k in range(len(names)):
        sl = slice(starts[k], starts[k + 1])
        deltas[k, data["delta_indices"][sl]] = data["delta_values"][sl]
    groups = {k[len("group_"):]: data[k].astype(np.int64) for k in data if k.startswith("group_")}
    return HeadAsset(
        vertices=verts,
        polygon_sizes=data["polygon_sizes"].astype(np.int32),
        polygon_vertices=data["polygon_vertices"].astype(np.int32),
        uvs=data["uvs"].astype(np.float32),
        shape_names=names,
        deltas=deltas,
        landmarks={k: int(v) for k, v in meta["landmarks"].items()},
        vertex_groups=groups,
        pivots={k: np.asarray(v, dtype=np.float32) for k, v in meta["pivots"].items()},
        eye_radius=float(meta["eye_radius"]),
        meta=meta,
    )


@functools.cache
def load_default_head() -> HeadAsset:
    """The bundled default head (cached; treat its arrays as read-only)."""
    head = _read(asset_path(f"{HEAD_DIR}/head.npz"), asset_path(f"{HEAD_DIR}/head.json"))
    for arr in (head.vertices, head.deltas, head.uvs, head.polygon_vertices, head.polygon_sizes):
        arr.flags.writeable = False
    return head
