"""Gaussians bound to mesh triangles, so they follow the animated head (as in GaussianAvatars / GaussianTalker).

Each gaussian lives in the local frame of one triangle: a barycentric position on it plus an offset, a rotation and
a log-scale, both relative to the triangle frame. The frame of triangle (v0, v1, v2) has axes t = unit(v1 - v0),
n = unit normal, b = n x t, and a size k = sqrt(2 * area). For each frame:

    centre   = b0 v0 + b1 v1 + b2 v2 + k (R_tri @ offset)     (offset is 0 for gaussians made from the mesh)
    rotation = q_tri * q_local
    scale    = k * exp(log_scale_local)

Colours (SH) stay in world space: a face mostly deforms, it rarely turns far enough for that to matter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import FacePolicyError
from .cloud import GaussianCloud, matrix_to_quat, quat_multiply, quat_to_matrix, rgb_to_sh_dc

DEFAULT_SKIN = (0.80, 0.62, 0.52)


class BindingError(FacePolicyError):
    """Splats could not be bound to, or aligned with, a mesh."""


def _check_mesh(vertices, faces) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
        raise BindingError(f"mesh vertices must be (V, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise BindingError(f"mesh faces must be triangles (F, 3), got {faces.shape}")
    if not np.issubdtype(faces.dtype, np.integer) or faces.min() < 0 or faces.max() >= len(vertices):
        raise BindingError(f"mesh face indices must be integers in 0..{len(vertices) - 1}")
    if not np.isfinite(vertices).all():
        raise BindingError("mesh vertices hold NaN or Inf values")
    return vertices, faces.astype(np.int64)


def triangle_frames(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per triangle: rotation (F, 3, 3) whose columns are t, b, n, and size k (F,), float64.

    A degenerate triangle (no area) gets the world axes as its frame and a tiny size instead of NaNs.
    """
    v = np.asarray(vertices, np.float64)
    v0, v1, v2 = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    e0 = v1 - v0
    n = _cross(e0, v2 - v0)
    area2 = np.sqrt((n * n).sum(1))
    e0n = np.sqrt((e0 * e0).sum(1))
    ok = (area2 > 1e-300) & (e0n > 1e-300)
    k = np.sqrt(np.maximum(area2, 1e-24))
    if ok.all():
        n /= area2[:, None]
        t = e0 / e0n[:, None]
    else:
        n = np.where(ok[:, None], n / np.where(ok, area2, 1.0)[:, None], [0.0, 0.0, 1.0])
        t = np.where(ok[:, None], e0 / np.where(ok, e0n, 1.0)[:, None], [1.0, 0.0, 0.0])
    b = _cross(n, t)
    return np.stack([t, b, n], axis=2), k


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross product of (N, 3) arrays (np.cross is several times slower on small rows)."""
    out = np.empty_like(a)
    out[:, 0] = a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1]
    out[:, 1] = a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2]
    out[:, 2] = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    return out


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3), float64."""
    v = np.asarray(vertices, np.float64)
    tri = v[faces]
    fn = _cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 * area
    normals = np.zeros_like(v)
    for corner in range(3):
        for axis in range(3):
            normals[:, axis] += np.bincount(faces[:, corner], weights=fn[:, axis], minlength=len(v))
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def barycentric_points(vertices: np.ndarray, faces: np.ndarray, face_index: np.ndarray,
                       bary: np.ndarray) -> np.ndarray:
    """b0 v0 + b1 v1 + b2 v2 in float64 (the one formula, shared with the tests' expectation)."""
    v = np.asarray(vertices, np.float64)
    f = faces[face_index]
    b = np.asarray(bary, np.float64)
    return b[:, 0:1] * v[f[:, 0]] + b[:, 1:2] * v[f[:, 1]] + b[:, 2:3] * v[f[:, 2]]


@dataclass
class BoundSplats:
    """Gaussians bound to a triangle mesh with ``n_vertices`` vertices and triangles ``faces`` (F, 3).

    face_index (N,) · bary (N, 3) · offsets (N, 3) in triangle-frame units · local_rotations (N, 4) w x y z ·
    local_log_scales (N, 3) · opacity_logits (N,) · sh (N, K, 3).
    """

    n_vertices: int
    faces: np.ndarray
    face_index: np.ndarray
    bary: np.ndarray
    offsets: np.ndarray
    local_rotations: np.ndarray
    local_log_scales: np.ndarray
    opacity_logits: np.ndarray
    sh: np.ndarray

    @property
    def n(self) -> int:
        return int(len(self.face_index))

    def _check_vertices(self, vertices) -> np.ndarray:
        vertices = np.asarray(vertices, np.float64)
        if vertices.shape != (self.n_vertices, 3):
            raise BindingError(f"these splats are bound to a mesh of {self.n_vertices} vertices; got vertex array "
                               f"{vertices.shape} (did the mesh topology change?)")
        return vertices

    def centres(self, vertices) -> np.ndarray:
        """Gaussian centres (N, 3) float64 on the mesh posed with ``vertices`` (V, 3)."""
        vertices = self._check_vertices(vertices)
        centres = barycentric_points(vertices, self.faces, self.face_index, self.bary)
        if np.any(self.offsets):
            R, k = triangle_frames(vertices, self.faces)
            Rg, kg = R[self.face_index], k[self.face_index]
            centres = centres + kg[:, None] * np.einsum("nij,nj->ni", Rg, self.offsets.astype(np.float64))
        return centres

    def _posed_frames(self, vertices):
        """Per gaussian: its triangle's rotation as a quaternion (N, 4) and size k (N,)."""
        R, k = triangle_frames(vertices, self.faces)
        used = self._cached("used_faces", lambda: np.unique(self.face_index))
        q_tri = np.zeros((len(self.faces), 4))
        q_tri[used] = matrix_to_quat(R[used])
        return quat_multiply(q_tri[self.face_index], self.local_rotations), k[self.face_index]

    def _cached(self, name, make):
        cache = self.__dict__.setdefault("_derived", {})
        if name not in cache:
            cache[name] = make()
        return cache[name]

    def cloud(self, vertices) -> GaussianCloud:
        """The world-space gaussians for the mesh posed with ``vertices`` (V, 3)."""
        vertices = self._check_vertices(vertices)
        rotations, kg = self._posed_frames(vertices)
        log_scales = self.local_log_scales + np.log(kg)[:, None]
        return GaussianCloud(self.centres(vertices), log_scales, rotations, self.opacity_logits, self.sh)

    def render_arrays(self, vertices) -> tuple[np.ndarray, ...]:
        """What Renderer.render takes, for the mesh posed with ``vertices``: means, linear scales, unit rotations,
        opacities and SH, without building a GaussianCloud (the per-frame path of the preview)."""
        vertices = self._check_vertices(vertices)
        rotations, kg = self._posed_frames(vertices)
        local_scales = self._cached("local_scales", lambda: np.exp(self.local_log_scales))
        opacities = self._cached("opacities", lambda: (1.0 / (1.0 + np.exp(-self.opacity_logits))).astype(np.float32))
        return (self.centres(vertices).astype(np.float32), (local_scales * kg[:, None]).astype(np.float32),
                rotations.astype(np.float32), opacities, np.ascontiguousarray(self.sh, np.float32))

    def subset(self, mask) -> BoundSplats:
        m = np.asarray(mask)
        return BoundSplats(self.n_vertices, self.faces, self.face_index[m], self.bary[m], self.offsets[m],
                           self.local_rotations[m], self.local_log_scales[m], self.opacity_logits[m], self.sh[m])


def icosphere(subdivisions: int = 2, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A unit-sphere triangle mesh (vertices (V, 3), faces (F, 3)): a stand-in head for tests and benchmarks."""
    t = (1 + 5**0.5) / 2
    verts = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
             (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
             (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
             (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = [np.array(v, float) / np.linalg.norm(v) for v in verts]
    for _ in range(subdivisions):
        cache, new_faces = {}, []

        def mid(a, b, cache=cache):
            key = (min(a, b), max(a, b))
            if key not in cache:
                m = verts[a] + verts[b]
                verts.append(m / np.linalg.norm(m))
                cache[key] = len(verts) - 1
            return cache[key]

        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new_faces += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new_faces
    return np.array(verts) * radius, np.array(faces)


# -- initialisation from a mesh ---------------------------------------------------------------------------------------


def _sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup of (H, W, C>=3) ``texture`` at Blender UVs (origin bottom-left, wrapping)."""
    tex = np.asarray(texture)
    if tex.ndim != 3 or tex.shape[2] < 3:
        raise BindingError(f"texture must be an (H, W, 3 or 4) image, got {tex.shape}")
    scale = 255.0 if np.issubdtype(tex.dtype, np.integer) else 1.0
    tex = tex[..., :3].astype(np.float32) / scale
    h, w = tex.shape[:2]
    x = (uv[:, 0] % 1.0) * w - 0.5
    y = (1.0 - uv[:, 1] % 1.0) * h - 0.5
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, x1 = x0 % w, (x0 + 1) % w
    y0, y1 = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    top = tex[y0, x0] * (1 - fx) + tex[y0, x1] * fx
    bottom = tex[y1, x0] * (1 - fx) + tex[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def _corner_values(values: np.ndarray, faces: np.ndarray, n_vertices: int, what: str, width: int) -> np.ndarray:
    """Per-vertex (V, width) or per-corner (F, 3, width) values -> per-corner (F, 3, width)."""
    values = np.asarray(values, np.float64)
    if values.shape == (n_vertices, width):
        return values[faces]
    if values.shape == (len(faces), 3, width):
        return values
    raise BindingError(f"{what} must be per vertex ({n_vertices}, {width}) or per face corner "
                       f"({len(faces)}, 3, {width}), got {values.shape}")


# Overlap of the gaussians made from one triangle: their covariance is the triangle's own (that of a uniform
# distribution over it) times OVERLAP / per_triangle. Lower leaves holes between random samples; higher blurs
# edges such as the eyelids over the eyes.
OVERLAP = 2.5
THICKNESS = 0.1  # the smallest axis, across the surface, relative to the smaller in-plane one
# A vertex's gaussian relative to the mean of its triangles' (per axis): a little smaller, because it only fills the
# corners between them, and a larger one blurs the eyelids and lips.
VERTEX_SPREAD = 0.8
# How far past an open edge a gaussian may reach, in sigmas across it: at 1.5 sigma it still covers 30 % there, so
# the surface stays opaque up to its edge and fades just past it (3 sigma would leave a dark seam along the edge).
EDGE_SIGMAS = 2.0
EDGE_FLOOR = 0.2  # the least a gaussian keeps of its width across an open edge it sits on
MIN_ASPECT = 0.3  # a triangle's gaussian is at least this wide for its length


def _triangle_shaped(vertices, faces, per_triangle: int) -> tuple[np.ndarray, np.ndarray]:
    """Per triangle: the local rotation (about the normal) and local log-scales of gaussians that follow the
    triangle's own shape: long thin triangles give long (but not needle-thin) gaussians."""
    R, k = triangle_frames(vertices, faces)
    v = np.asarray(vertices, np.float64)[faces]
    edges = np.stack([v[:, 0] - v[:, 1], v[:, 1] - v[:, 2], v[:, 2] - v[:, 0]], axis=1)  # (F, 3, 3)
    planar = np.einsum("fej,fjk->fek", edges, R[:, :, :2])  # edges in (t, b) coordinates
    cov = np.einsum("fei,fej->fij", planar, planar) / 36.0 * (OVERLAP / per_triangle)
    evals, evecs = np.linalg.eigh(cov)  # ascending
    sig = np.sqrt(np.maximum(evals, 1e-30))
    # Sliver triangles would give needles with gaps between them (stripes): no gaussian is thinner than this.
    sig[:, 0] = np.maximum(sig[:, 0], MIN_ASPECT * sig[:, 1])
    major = evecs[:, :, 1]
    angle = np.arctan2(major[:, 1], major[:, 0])
    half = angle / 2
    rot = np.stack([np.cos(half), np.zeros_like(half), np.zeros_like(half), np.sin(half)], axis=1)
    scales = np.stack([sig[:, 1], sig[:, 0], THICKNESS * sig[:, 0]], axis=1) / k[:, None]
    return rot, np.log(np.maximum(scales, 1e-12))


def _vertex_shaped(vertices, faces, vertex_ids, face_index) -> tuple[np.ndarray, np.ndarray]:
    """Local rotation and log-scales (relative to triangle ``face_index``'s frame) of a flat gaussian at each vertex
    in ``vertex_ids``: the mean shape of the triangles around it (their covariances, as _triangle_shaped makes them
    for one gaussian per triangle), laid into the vertex's own tangent plane (its area-weighted normal). Shaped like
    one of its triangles instead, it would lean out of a curved surface and poke through the silhouette as a spike."""
    v = np.asarray(vertices, np.float64)
    tri = v[faces]
    edges = np.stack([tri[:, 0] - tri[:, 1], tri[:, 1] - tri[:, 2], tri[:, 2] - tri[:, 0]], axis=1)  # (F, 3, 3)
    cov = np.einsum("fei,fej->fij", edges, edges) / 36.0 * OVERLAP  # each triangle's gaussian, in world axes
    total = np.zeros((len(v), 3, 3))
    for corner in range(3):
        np.add.at(total, faces[:, corner], cov)
    count = np.bincount(faces.ravel(), minlength=len(v))
    normals = vertex_normals(v, faces)[vertex_ids]
    P = np.eye(3) - normals[:, :, None] * normals[:, None, :]
    mean = total[vertex_ids] / np.maximum(count[vertex_ids], 1)[:, None, None]
    evals, evecs = np.linalg.eigh(P @ mean @ P)  # ascending; the normal has eigenvalue 0
    major = evecs[:, :, 2]
    frame = np.stack([major, _cross(normals, major), normals], axis=2)
    in_plane = np.sqrt(np.maximum(np.einsum("nij,nik,nkj->nj", frame, P @ mean @ P, frame)[:, :2], 1e-30))
    R, k = triangle_frames(v, faces)
    R, k = R[face_index], k[face_index]
    rot = matrix_to_quat(np.einsum("nji,njk->nik", R, frame))  # R_tri^T @ frame
    sig = VERTEX_SPREAD * in_plane
    scales = np.stack([sig[:, 0], sig[:, 1], THICKNESS * sig.min(1)], axis=1) / k[:, None]
    return rot, np.log(np.maximum(scales, 1e-12))


def splats_from_mesh(vertices, faces, per_triangle: int = 1, *, per_vertex: bool = True, uvs=None, texture=None,
                     vertex_colors=None, opacity: float = 0.95, seed: int = 0) -> BoundSplats:
    """Flat gaussians shaped like their triangles: ``per_triangle`` on every triangle (one sits at the centroid,
    more are spread at random) and, with ``per_vertex``, one round gaussian on every vertex that a triangle uses, in
    the surface's tangent plane there, which fills the corners between triangles. Coloured from the texture at their
    UV, else the vertex colours, else a neutral skin tone. Deterministic for a given ``seed``."""
    vertices, faces = _check_mesh(vertices, faces)
    if not isinstance(per_triangle, (int, np.integer)) or not 1 <= per_triangle <= 64:
        raise BindingError(f"per_triangle must be an integer in 1..64, got {per_triangle!r}")
    if not 0 < opacity < 1:
        raise BindingError(f"opacity must be in (0, 1), got {opacity}")
    n_faces = len(faces)
    rng = np.random.default_rng(seed)
    face_index = np.repeat(np.arange(n_faces), per_triangle)
    if per_triangle == 1:
        bary = np.full((n_faces, 3), 1.0 / 3.0)
    else:
        # Uniform samples of the triangle (the square-root warp).
        r1, r2 = rng.random(len(face_index)), rng.random(len(face_index))
        s = np.sqrt(r1)
        bary = np.stack([1 - s, s * (1 - r2), s * r2], axis=1)
    n_triangle_splats = len(face_index)
    if per_vertex:
        # Each used vertex once, bound to the first triangle that has it, at barycentric (1, 0, 0) rotated; not on
        # an open edge, where half of it would lie past the end of the surface.
        corner_of = faces.reshape(-1)
        used, first = np.unique(corner_of, return_index=True)
        inner = ~np.isin(used, _open_edges(faces))
        used, first = used[inner], first[inner]
        face_index = np.concatenate([face_index, first // 3])
        bary = np.concatenate([bary, np.eye(3)[first % 3]])
    n = len(face_index)

    if texture is not None:
        if uvs is None:
            raise BindingError("a texture needs UVs")
        corner_uv = _corner_values(uvs, faces, len(vertices), "uvs", 2)[face_index]
        rgb = _sample_texture(texture, np.einsum("nk,nkc->nc", bary, corner_uv))
    elif vertex_colors is not None:
        vc = np.asarray(vertex_colors)
        width = vc.shape[-1] if vc.ndim >= 2 and vc.shape[-1] in (3, 4) else 3
        corner = _corner_values(vc, faces, len(vertices), "vertex_colors", width)[..., :3]
        rgb = np.einsum("nk,nkc->nc", bary, corner[face_index])
    else:
        rgb = np.broadcast_to(np.asarray(DEFAULT_SKIN), (n, 3))
    rgb = np.clip(rgb, 0.0, 1.0)

    local_rot, local_log_scales = _triangle_shaped(vertices, faces, per_triangle)
    local_rot, local_log_scales = local_rot[face_index], local_log_scales[face_index]
    if per_vertex:
        at_vertex = slice(n_triangle_splats, n)
        local_rot[at_vertex], local_log_scales[at_vertex] = _vertex_shaped(vertices, faces, used,
                                                                           face_index[at_vertex])
    _trim_at_open_edges(vertices, faces, face_index, bary, local_rot, local_log_scales)
    logit = np.log(opacity / (1 - opacity))
    return BoundSplats(len(vertices), faces, face_index.astype(np.int64), bary, np.zeros((n, 3)), local_rot,
                       local_log_scales, np.full(n, logit), rgb_to_sh_dc(rgb)[:, None, :])


def _open_edges(faces) -> np.ndarray:
    """(E, 2) the edges only one triangle has (vertex ids in ascending order)."""
    undirected = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    edges, counts = np.unique(undirected, axis=0, return_counts=True)
    return edges[counts == 1]


def _trim_at_open_edges(vertices, faces, face_index, bary, local_rot, local_log_scales) -> None:
    """Where the mesh ends (an edge of one triangle: a neck cut, a hole), nothing lies beyond the gaussians that
    reach past it, and they would show as a fringe of spikes. Each gaussian of a triangle touching such an edge is
    squeezed across it until its EDGE_SIGMAS reach ends at the edge's line (never below EDGE_FLOOR of its width, for
    the ones sitting on the edge). In place, on the rest pose."""
    open_edges = _open_edges(faces)
    if len(open_edges) == 0:
        return
    v = np.asarray(vertices, np.float64)
    # The triangle that owns each open edge, and the edge's outward direction within that triangle's plane.
    owner_of = {tuple(e): f for f, tri in enumerate(np.sort(faces, axis=1))
                for e in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[0], tri[2]))}
    R, k = triangle_frames(v, faces)
    owner = np.array([owner_of[tuple(e)] for e in open_edges])
    a, b = v[open_edges[:, 0]], v[open_edges[:, 1]]
    along = (b - a) / np.maximum(np.linalg.norm(b - a, axis=1, keepdims=True), 1e-300)
    out = _cross(along, R[owner, :, 2])
    inside = v[faces[owner]].mean(1)
    out *= np.where(((inside - a) * out).sum(1) > 0, -1.0, 1.0)[:, None]
    # Gaussians of the triangles that touch an open edge's ends.
    touching = {}
    for e, (i, j) in enumerate(open_edges):
        touching.setdefault(i, []).append(e)
        touching.setdefault(j, []).append(e)
    tri_edges = [sorted({e for c in tri for e in touching.get(c, ())}) for tri in faces]
    centres = barycentric_points(v, faces, face_index, bary)
    frames = np.einsum("nij,njk->nik", R[face_index], quat_to_matrix(local_rot))
    for g in np.flatnonzero([bool(tri_edges[f]) for f in face_index]):
        sig = np.exp(local_log_scales[g]) * k[face_index[g]]
        cov = frames[g] @ np.diag(sig**2) @ frames[g].T
        normal = frames[g][:, 2]
        for e in tri_edges[face_index[g]]:
            u = out[e] - (out[e] @ normal) * normal
            norm = np.linalg.norm(u)
            if norm < 1e-9:
                continue
            u /= norm
            reach = EDGE_SIGMAS * np.sqrt(max(u @ cov @ u, 1e-300))
            room = (a[e] - centres[g]) @ u
            if reach > room:
                squeeze = max(room / reach, EDGE_FLOOR)
                A = np.eye(3) + (squeeze - 1.0) * np.outer(u, u)
                cov = A @ cov @ A.T
        evals, evecs = np.linalg.eigh(cov)
        evecs = evecs[:, ::-1] * np.where(np.linalg.det(evecs[:, ::-1]) < 0, -1.0, 1.0)
        local_rot[g] = matrix_to_quat((R[face_index[g]].T @ evecs)[None])[0]
        local_log_scales[g] = np.log(np.sqrt(np.maximum(evals[::-1], 1e-30)) / k[face_index[g]])


# -- alignment and binding of an imported cloud ---------------------------------------------------------------------


def similarity_from_landmarks(source, target) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale s, rotation R, translation t minimising sum |s R src + t - dst|^2 (Umeyama, no reflection)."""
    src = np.asarray(source, np.float64)
    dst = np.asarray(target, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3:
        raise BindingError(f"landmarks must be two (L, 3) arrays of the same shape, got {src.shape} and {dst.shape}")
    if len(src) < 3:
        raise BindingError(f"alignment needs at least 3 landmark pairs, got {len(src)}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise BindingError("landmarks hold NaN or Inf values")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    var_s = (xs**2).sum() / len(src)
    cov = xd.T @ xs / len(src)
    U, S, Vt = np.linalg.svd(cov)
    if var_s <= 0 or S[1] <= 1e-9 * max(S[0], 1e-300):
        raise BindingError("the landmarks are collinear or coincide; pick at least 3 points that span a triangle")
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1
    R = U @ D @ Vt
    s = float(np.trace(np.diag(S) @ D) / var_s)
    t = mu_d - s * R @ mu_s
    return s, R, t


def similarity_from_matrix(matrix) -> tuple[float, np.ndarray, np.ndarray]:
    """Split a 4x4 (or 3x4) rotation + uniform scale + translation matrix; shear or mirroring is refused."""
    M = np.asarray(matrix, np.float64)
    if M.shape not in ((4, 4), (3, 4)) or not np.isfinite(M).all():
        raise BindingError(f"the manual transform must be a finite 4x4 matrix, got shape {M.shape}")
    if M.shape == (4, 4) and not np.allclose(M[3], [0, 0, 0, 1]):
        raise BindingError("the manual transform must not have a projective part (last row 0 0 0 1)")
    A = M[:3, :3]
    s = float(np.cbrt(np.linalg.det(A)))
    if not s > 0:
        raise BindingError("the manual transform mirrors or collapses space; use a rotation, a positive uniform "
                           "scale and a translation")
    R = A / s
    if np.abs(R @ R.T - np.eye(3)).max() > 1e-4:
        raise BindingError("the manual transform has shear or a non-uniform scale; only rotation, uniform scale "
                           "and translation are supported")
    return s, R, M[:3, 3].copy()


def bind_cloud(cloud: GaussianCloud, vertices, faces, renderer=None, max_distance: float | None = None
               ) -> BoundSplats:
    """Bind every gaussian of ``cloud`` (already aligned to the mesh) to its nearest triangle.

    ``max_distance`` (in mesh units) drops gaussians farther than that from the surface (floaters); None keeps all.
    """
    from .raster import cpu_renderer

    vertices, faces = _check_mesh(vertices, faces)
    bad = cloud.non_finite()
    if bad:
        raise BindingError("the splat holds NaN or Inf values: " + ", ".join(f"{k} ({v})" for k, v in bad.items()))
    renderer = renderer or cpu_renderer()
    face, bary, dist = renderer.nearest_triangles(cloud.means, vertices, faces)
    keep = np.ones(cloud.n, bool) if max_distance is None else dist <= max_distance
    if not keep.any():
        raise BindingError(f"no gaussian lies within {max_distance} of the mesh; is the splat aligned to the head?")
    face, bary = face[keep].astype(np.int64), bary[keep].astype(np.float64)
    bary /= bary.sum(1, keepdims=True)
    R, k = triangle_frames(vertices, faces)
    Rg, kg = R[face], k[face]
    means = cloud.means[keep].astype(np.float64)
    on_surface = barycentric_points(vertices, faces, face, bary)
    offsets = np.einsum("nji,nj->ni", Rg, means - on_surface) / kg[:, None]  # R^T (p - q) / k
    q_tri_inv = matrix_to_quat(Rg) * [1.0, -1.0, -1.0, -1.0]
    local_rot = quat_multiply(q_tri_inv, cloud.rotations[keep].astype(np.float64))
    local_log_scales = cloud.log_scales[keep].astype(np.float64) - np.log(kg)[:, None]
    return BoundSplats(len(vertices), faces, face, bary, offsets, local_rot, local_log_scales,
                       cloud.opacity_logits[keep].astype(np.float64), cloud.sh[keep])
