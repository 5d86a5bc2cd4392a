"""Geometric retarget: ARKit weights on the canonical head → weights of any rig's own shape keys.

1. ``fit_correspondence``: a similarity alignment (landmarks when given, else PCA axes + ICP), then a smooth
   non-rigid warp (biharmonic RBF on control points), then each target vertex takes an inverse-distance blend of
   its nearest warped canonical vertices.
2. ``transfer_deltas``: the canonical shape deltas carried onto the target (rotated and scaled into its frame).
3. ``KeySolver``: for all frames at once, the target key weights X (T, K) in [0, 1] minimising
   Σ_t |A x_t − y_t|² + λ Σ_t |x_{t+1} − x_t|², where A holds the target's key deltas and y_t the transferred
   displacement of frame t. Everything reduces to K × K and K × 52 matrices, so the per-frame cost does not depend
   on the vertex count. The bounded QP is solved with a linearised ADMM whose step is one (T, K) @ (K, K) product.

Only numpy; no scipy (Blender does not ship it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import spec
from .errors import RigError
from .facetrack import FaceTrack

# ---------------------------------------------------------------------------------------------------------------
# nearest neighbours (brute force, chunked: meshes here have ~10⁴ vertices)


def nearest(points: np.ndarray, queries: np.ndarray, k: int = 1, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Indices (Q, k) of the k nearest ``points`` to each query, and the distances (Q, k), nearest first."""
    p = np.asarray(points, np.float32)
    q = np.asarray(queries, np.float32)
    pn = (p * p).sum(axis=1)
    idx = np.empty((len(q), k), np.int64)
    for s in range(0, len(q), chunk):
        qq = q[s:s + chunk]
        d2 = qq @ p.T
        d2 *= -2.0
        d2 += pn[None, :]
        if k == 1:
            idx[s:s + chunk, 0] = d2.argmin(axis=1)
        else:
            part = np.argpartition(d2, k - 1, axis=1)[:, :k]
            order = np.argsort(np.take_along_axis(d2, part, axis=1), axis=1)
            idx[s:s + chunk] = np.take_along_axis(part, order, axis=1)
    dist = np.linalg.norm(np.asarray(points, np.float64)[idx] - np.asarray(queries, np.float64)[:, None], axis=2)
    return idx, dist


# ---------------------------------------------------------------------------------------------------------------
# alignment


def similarity_from_pairs(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None):
    """(scale, R, t) minimising Σ w |s R src + t − dst|² (Umeyama), with det R = +1."""
    w = np.ones(len(src)) if weights is None else np.asarray(weights, float)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    xs, xd = src - mu_s, dst - mu_d
    cov = (xd * w[:, None]).T @ xs
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(u @ vt)) or 1.0
    rot = u @ np.diag(d) @ vt
    var_s = (w * (xs * xs).sum(axis=1)).sum()
    scale = float((sig * d).sum() / var_s) if var_s > 0 else 1.0
    return scale, rot, mu_d - scale * rot @ mu_s


def _pca_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    mu = points.mean(axis=0)
    x = points - mu
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return mu, vt, float(np.sqrt((x * x).sum(axis=1).mean()))


def _icp(src: np.ndarray, dst: np.ndarray, scale, rot, t, iters: int = 30):
    """Refine a similarity src → dst with symmetric nearest-neighbour pairs; returns (scale, R, t, rms)."""
    rms = np.inf
    for _ in range(iters):
        moved = scale * src @ rot.T + t
        i_fwd, d_fwd = nearest(dst, moved)
        i_bwd, d_bwd = nearest(moved, dst)
        pairs_src = np.concatenate([src, src[i_bwd[:, 0]]])
        pairs_dst = np.concatenate([dst[i_fwd[:, 0]], dst])
        d = np.concatenate([d_fwd[:, 0], d_bwd[:, 0]])
        cut = 3.0 * np.median(d) + 1e-12
        keep = d <= cut
        scale, rot, t = similarity_from_pairs(pairs_src[keep], pairs_dst[keep])
        new_rms = float(np.sqrt(np.mean(d * d)))
        if abs(rms - new_rms) < 1e-6 * (1.0 + new_rms):
            rms = new_rms
            break
        rms = new_rms
    return scale, rot, t, rms


def _subsample(n: int, m: int, seed: int = 0) -> np.ndarray:
    if n <= m:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, m, replace=False))


def align_similarity(src: np.ndarray, dst: np.ndarray, src_landmarks=None, dst_landmarks=None,
                     prealigned: bool = False):
    """Similarity (scale, R, t) taking the canonical head ``src`` onto the target ``dst``, and the ICP rms.

    With ≥ 4 landmark pairs the landmarks give the start; else the start is the better of "as is" and the
    proper rotations between the two point clouds' PCA frames (``prealigned`` keeps only "as is").
    """
    ss, sd = _subsample(len(src), 1500, 1), _subsample(len(dst), 1500, 2)
    cs, cd = _subsample(len(src), 400, 3), _subsample(len(dst), 400, 4)
    starts = []
    if src_landmarks is not None and dst_landmarks is not None and len(src_landmarks) >= 4:
        starts.append(similarity_from_pairs(np.asarray(src_landmarks, float), np.asarray(dst_landmarks, float)))
    else:
        mu_s, ax_s, r_s = _pca_frame(src)
        mu_d, ax_d, r_d = _pca_frame(dst)
        scale = r_d / r_s
        starts.append((scale, np.eye(3), mu_d - scale * mu_s))
        if not prealigned:  # PCA axes are defined up to sign: every proper sign flip is a candidate
            for signs in np.array(np.meshgrid([1, -1], [1, -1], [1, -1])).T.reshape(-1, 3):
                rot = ax_d.T @ np.diag(signs) @ ax_s
                if np.linalg.det(rot) > 0:
                    starts.append((scale, rot, mu_d - scale * rot @ mu_s))
    best = None
    for scale, rot, t in starts:
        fit = _icp(src[cs], dst[cd], scale, rot, t, iters=8)
        if best is None or fit[3] < best[3]:
            best = fit
    return _icp(src[ss], dst[sd], *best[:3], iters=30)


# ---------------------------------------------------------------------------------------------------------------
# non-rigid warp


def _farthest_points(points: np.ndarray, m: int, first: int = 0) -> np.ndarray:
    chosen = [first]
    d = np.linalg.norm(points - points[first], axis=1)
    for _ in range(min(m, len(points)) - 1):
        chosen.append(int(d.argmax()))
        d = np.minimum(d, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return np.array(chosen)


def _rbf_fit(ctrl: np.ndarray, target: np.ndarray, reg: float):
    """Smoothing biharmonic spline (kernel −r, conditionally positive definite in 3-D) plus an affine part."""
    n = len(ctrl)
    kern = -np.linalg.norm(ctrl[:, None] - ctrl[None], axis=2)
    poly = np.concatenate([np.ones((n, 1)), ctrl], axis=1)
    system = np.zeros((n + 4, n + 4))
    system[:n, :n] = kern + reg * np.eye(n)
    system[:n, n:], system[n:, :n] = poly, poly.T
    rhs = np.zeros((n + 4, 3))
    rhs[:n] = target - ctrl
    coef = np.linalg.lstsq(system, rhs, rcond=None)[0]

    def warp(points):
        k = -np.linalg.norm(points[:, None] - ctrl[None], axis=2)
        return points + k @ coef[:n] + np.concatenate([np.ones((len(points), 1)), points], axis=1) @ coef[n:]

    return warp


def nonrigid_warp(src: np.ndarray, dst: np.ndarray, fixed: dict[int, np.ndarray] | None = None,
                  n_ctrl: int = 160, iters: int = 6) -> np.ndarray:
    """``src`` (already aligned) deformed smoothly towards the surface sampled by ``dst``; ``fixed`` pins
    src vertex → target position (landmarks). Stiff at first, softer later."""
    fixed = fixed or {}
    ctrl_ids = np.unique(np.concatenate([_farthest_points(src, n_ctrl), np.array(list(fixed), dtype=int)]))
    scale = float(np.sqrt(((src - src.mean(axis=0)) ** 2).sum(axis=1).mean()))
    current = src.copy()
    for it in range(iters):
        moved_ctrl = current[ctrl_ids]
        idx, d = nearest(dst, moved_ctrl)
        goal = dst[idx[:, 0]]
        far = d[:, 0] > 3.0 * np.median(d[:, 0]) + 1e-12
        goal[far] = moved_ctrl[far]  # no believable match: stay
        for j, vid in enumerate(ctrl_ids):
            if int(vid) in fixed:
                goal[j] = fixed[int(vid)]
        reg = scale * (2.0 * 0.5 ** it)
        current = _rbf_fit(src[ctrl_ids], goal, reg)(src)
    return current


def _closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray):
    """Closest points of triangles (a, b, c) to points p, all (..., 3): barycentric weights (..., 3), distances."""
    ab, ac, ap = b - a, c - a, p - a
    d00, d01, d11 = (ab * ab).sum(-1), (ab * ac).sum(-1), (ac * ac).sum(-1)
    d20, d21 = (ap * ab).sum(-1), (ap * ac).sum(-1)
    den = np.maximum(d00 * d11 - d01 * d01, 1e-30)
    v = (d11 * d20 - d01 * d21) / den
    w = (d00 * d21 - d01 * d20) / den
    bary = np.stack([1.0 - v - w, v, w], axis=-1)
    inside = (bary >= 0.0).all(axis=-1)
    best_bary = np.where(inside[..., None], bary, 0.0)
    best_d = np.where(inside, np.linalg.norm(p - (bary[..., :1] * a + bary[..., 1:2] * b + bary[..., 2:] * c),
                                             axis=-1), np.inf)
    for i, j in ((0, 1), (1, 2), (2, 0)):  # outside: the nearest point of the three edges
        pts = (a, b, c)
        e0, e1 = pts[i], pts[j]
        seg = e1 - e0
        t = np.clip(((p - e0) * seg).sum(-1) / np.maximum((seg * seg).sum(-1), 1e-30), 0.0, 1.0)
        d = np.linalg.norm(p - (e0 + t[..., None] * seg), axis=-1)
        better = ~inside & (d < best_d)
        edge_bary = np.zeros_like(bary)
        edge_bary[..., i], edge_bary[..., j] = 1.0 - t, t
        best_bary = np.where(better[..., None], edge_bary, best_bary)
        best_d = np.where(better, d, best_d)
    return best_bary, best_d


def project_to_surface(vertices: np.ndarray, triangles: np.ndarray, points: np.ndarray, k: int = 4,
                       chunk: int = 4096):
    """For each point, the nearest point on the triangle mesh among the triangles around its k nearest vertices.

    Returns (triangle vertex ids (Q, 3), barycentric weights (Q, 3), distances (Q,)).
    """
    tris = np.asarray(triangles, np.int64)
    n_v = len(vertices)
    order = np.argsort(tris.ravel(), kind="stable")
    counts = np.bincount(tris.ravel(), minlength=n_v)
    starts = np.concatenate([[0], np.cumsum(counts)])
    deg = max(int(counts.max()), 1)
    ring = np.full((n_v, deg), -1, np.int64)  # vertex → incident triangles, padded
    flat_tri = order // 3
    slot = np.arange(len(order)) - np.repeat(starts[:-1], counts)
    ring[np.repeat(np.arange(n_v), counts), slot] = flat_tri
    near_v, _ = nearest(vertices, points, k=k)
    out_ids = np.empty((len(points), 3), np.int64)
    out_w = np.empty((len(points), 3))
    out_d = np.empty(len(points))
    for s in range(0, len(points), chunk):
        cand = ring[near_v[s:s + chunk]].reshape(len(near_v[s:s + chunk]), -1)    # (q, k·deg)
        valid = cand >= 0
        cand_t = tris[np.where(valid, cand, 0)]                                      # (q, C, 3)
        p = points[s:s + chunk, None, :]
        bary, dist = _closest_on_triangles(p, vertices[cand_t[..., 0]], vertices[cand_t[..., 1]],
                                           vertices[cand_t[..., 2]])
        dist = np.where(valid, dist, np.inf)
        best = dist.argmin(axis=1)
        rows = np.arange(len(best))
        out_ids[s:s + chunk] = cand_t[rows, best]
        out_w[s:s + chunk] = bary[rows, best]
        out_d[s:s + chunk] = dist[rows, best]
    return out_ids, out_w, out_d


# ---------------------------------------------------------------------------------------------------------------
# correspondence and transfer


@dataclass(frozen=True)
class Correspondence:
    """Target vertex j ≈ Σ_i weights[j, i] · canonical vertex indices[j, i] (after the similarity and warp)."""

    indices: np.ndarray        # (Vt, k) int: a triangle's 3 vertices, or the k nearest vertices
    weights: np.ndarray        # (Vt, k) float, rows sum to 1
    scale: float               # target = scale · R · canonical + t
    rotation: np.ndarray       # (3, 3)
    translation: np.ndarray    # (3,)
    confidence: np.ndarray     # (Vt,) in (0, 1]: low where the target has no canonical counterpart
    rms: float                 # rms nearest distance after the warp, target units


def fit_correspondence(src_vertices, dst_vertices, src_landmarks: dict[str, int] | None = None,
                       dst_landmarks: dict[str, int] | None = None, prealigned: bool = False,
                       nonrigid: bool = True, src_triangles: np.ndarray | None = None) -> Correspondence:
    """Correspondence from the canonical head to a target mesh (vertex positions in its own frame).

    Landmarks (name → vertex index) on both meshes guide the fit when at least 4 names are shared. With
    ``src_triangles`` each target vertex takes the barycentric blend of its nearest canonical surface point
    (exact on re-meshed copies; no bleeding across the lip slit); without, an inverse-distance blend of 4 vertices.
    """
    src = np.asarray(src_vertices, np.float64)
    dst = np.asarray(dst_vertices, np.float64)
    if len(dst) < 4:
        raise RigError("the target mesh has fewer than 4 vertices; nothing to retarget onto")
    shared = sorted(set(src_landmarks or {}) & set(dst_landmarks or {}))
    src_lm = src[[src_landmarks[n] for n in shared]] if len(shared) >= 4 else None
    dst_lm = dst[[dst_landmarks[n] for n in shared]] if len(shared) >= 4 else None
    scale, rot, t, _ = align_similarity(src, dst, src_lm, dst_lm, prealigned)
    aligned = scale * src @ rot.T + t
    if nonrigid:
        fixed = {src_landmarks[n]: dst[dst_landmarks[n]] for n in shared} if src_lm is not None else {}
        aligned = nonrigid_warp(aligned, dst, fixed)
    if src_triangles is not None:
        idx, w, d0 = project_to_surface(aligned, src_triangles, dst)
    else:
        idx, dist = nearest(aligned, dst, k=4)
        w = 1.0 / (dist + 1e-9 + 1e-6 * scale) ** 2
        w /= w.sum(axis=1, keepdims=True)
        d0 = dist[:, 0]
    radius = float(np.sqrt(((dst - dst.mean(axis=0)) ** 2).sum(axis=1).mean()))
    sigma = max(3.0 * float(np.median(d0)), 0.02 * radius, 1e-12)
    confidence = np.exp(-((d0 / sigma) ** 2))
    return Correspondence(idx, w, scale, rot, t, confidence, float(np.sqrt(np.mean(d0 * d0))))


def transfer_deltas(deltas: np.ndarray, corr: Correspondence) -> np.ndarray:
    """Canonical deltas (S, Vs, 3) → (S, Vt, 3) on the target, in the target's frame and units."""
    blended = np.einsum("jk,sjkc->sjc", corr.weights, deltas[:, corr.indices])
    return (corr.scale * blended @ corr.rotation.T).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# bounded least squares over all frames


@dataclass
class SolveInfo:
    iterations: int
    primal_residual: float
    converged: bool


def _path_laplacian(x: np.ndarray, lam: float) -> np.ndarray:
    """λ L x over time (axis 0), L the path-graph Laplacian: 2x_t − x_{t−1} − x_{t+1}, one neighbour at the ends."""
    out = 2.0 * x
    out[0] -= x[0]
    out[-1] -= x[-1]
    out[1:] -= x[:-1]
    out[:-1] -= x[1:]
    out *= lam
    return out


def solve_bounded_smooth(hessian: np.ndarray, linear: np.ndarray, smoothness: float = 0.0, lower: float = 0.0,
                         upper: float = 1.0, tol: float = 1e-4, max_iter: int = 2000) -> tuple[np.ndarray, SolveInfo]:
    """argmin_X ½ Σ_t x_tᵀ H x_t − Σ_t b_tᵀ x_t + ½ λ Σ_t |x_{t+1} − x_t|²  s.t. lower ≤ X ≤ upper.

    ``hessian`` H (K, K) symmetric PSD, ``linear`` B (T, K) with rows b_t; returns X (T, K) float32.
    Linearised ADMM on X = Z (Z boxed): the smoothness term is linearised with a proximal weight τ ≥ λ‖L‖ = 4λ,
    so the X-step is one (T, K) @ (K, K) product with a precomputed (H + (ρ + τ) I)⁻¹. ρ adapts by residual
    balancing. ``tol`` bounds |X − Z| and the last change of Z (weights are 0..1, so 1e-4 is far below visible).
    """
    h = 0.5 * (np.asarray(hessian, np.float64) + np.asarray(hessian, np.float64).T)
    n_t, n_k = np.shape(linear)
    if n_t == 0 or n_k == 0:
        return np.zeros((n_t, n_k), np.float32), SolveInfo(0, 0.0, True)
    b = np.asarray(linear, np.float32)
    sig, u = np.linalg.eigh(h)
    sig = np.maximum(sig, 0.0)
    top = max(float(sig.max()), 1e-12)
    lam = float(smoothness)
    tau = 4.04 * lam
    rho = 0.25 * max(float(np.sqrt(top * max(float(np.median(sig)), 1e-6 * top))), 1e-12)

    def step_matrix(rho):
        return ((u / (sig + rho + tau)) @ u.T).astype(np.float32)

    m = step_matrix(rho)
    x = np.clip(b @ ((u / (sig + 1e-9 * top)) @ u.T).astype(np.float32), lower, upper)  # clipped free solution
    z = x.copy()
    dual = np.zeros_like(z)
    alpha = np.float32(1.6)  # over-relaxation
    info = SolveInfo(max_iter, np.inf, False)
    for it in range(1, max_iter + 1):
        x = (b + tau * x - _path_laplacian(x, lam) + rho * (z - dual)) @ m
        relaxed = alpha * x + (1 - alpha) * z
        z_prev = z
        z = np.clip(relaxed + dual, lower, upper)
        dual += relaxed - z
        if it % 5:
            continue
        primal = float(np.abs(x - z).max())
        change = float(np.abs(z - z_prev).max())
        info = SolveInfo(it, primal, False)
        if primal < tol and change < tol:
            info = SolveInfo(it, primal, True)
            break
        if it % 10 == 0 and (primal > 10.0 * change or change > 10.0 * primal):
            factor = 2.0 if primal > change else 0.5
            rho *= factor
            dual /= factor
            m = step_matrix(rho)
    return z.astype(np.float32), info


class KeySolver:
    """Solves for a rig's key weights given canonical ARKit weights (see the module docstring)."""

    def __init__(self, key_names, key_deltas: np.ndarray, transferred: np.ndarray,
                 vertex_weight: np.ndarray | None = None, ridge: float = 1e-3):
        """``key_deltas`` (K, Vt, 3): the rig's keys; ``transferred`` (52, Vt, 3): canonical deltas on the rig."""
        self.key_names = tuple(key_names)
        a = np.asarray(key_deltas, np.float64).reshape(len(self.key_names), -1)         # (K, 3Vt)
        g = np.asarray(transferred, np.float64).reshape(len(transferred), -1)           # (S, 3Vt)
        m = np.ones(a.shape[1]) if vertex_weight is None else np.repeat(np.asarray(vertex_weight, float), 3)
        am = a * m
        h = am @ a.T                                                                      # (K, K)
        self.norm = float(np.trace(h) / max(len(h), 1)) or 1.0
        # the ridge is relative to each key's own energy, so weak keys (a squint) are not biased more than strong ones
        self.hessian = (h + ridge * np.diag(np.diag(h))) / self.norm + 1e-9 * np.eye(len(h))
        self.cross = (am @ g.T) / self.norm                                               # (K, S)
        self.source_energy = (g * m) @ g.T / self.norm                                    # (S, S)

    def solve(self, source_weights: np.ndarray, smoothness: float = 0.02, tol: float = 1e-4,
              max_iter: int = 2000) -> tuple[np.ndarray, SolveInfo]:
        """(T, S) canonical weights → (T, K) key weights in [0, 1]."""
        w = np.asarray(source_weights, np.float64)
        return solve_bounded_smooth(self.hessian, w @ self.cross.T, smoothness, tol=tol, max_iter=max_iter)

    def fit_error(self, source_weights: np.ndarray, key_weights: np.ndarray) -> np.ndarray:
        """Per-frame relative residual |A x − y| / |y| (0: exact; 1: nothing explained)."""
        w = np.asarray(source_weights, np.float64)
        x = np.asarray(key_weights, np.float64)
        yy = np.einsum("ts,su,tu->t", w, self.source_energy, w)
        xy = np.einsum("tk,ks,ts->t", x, self.cross, w)
        xx = np.einsum("tk,kl,tl->t", x, self.hessian, x)
        res = np.maximum(yy - 2 * xy + xx, 0.0)
        return np.sqrt(res / np.maximum(yy, 1e-12))


def build_key_solver(head, target_vertices, key_names, key_deltas, target_landmarks=None, prealigned=False,
                     nonrigid=True) -> tuple[KeySolver, Correspondence]:
    """Everything needed to drive a rig's own keys from canonical weights (``head``: core.head.HeadAsset)."""
    key_deltas = np.asarray(key_deltas, np.float32)
    if key_deltas.ndim != 3 or key_deltas.shape[0] != len(key_names) or key_deltas.shape[1] != len(target_vertices):
        raise RigError(f"shape-key deltas must be (keys, vertices, 3), got {key_deltas.shape}")
    if not len(key_names):
        raise RigError("the rig has no shape keys to solve for")
    corr = fit_correspondence(head.vertices, target_vertices, head.landmarks, target_landmarks, prealigned, nonrigid,
                              src_triangles=head.faces)
    transferred = transfer_deltas(head.deltas, corr)
    return KeySolver(key_names, key_deltas, transferred, corr.confidence), corr


def retarget_track(track: FaceTrack, solver: KeySolver, smoothness: float = 0.02) -> FaceTrack:
    """A track whose channels are the rig's keys (solved), then the input's rotation channels unchanged."""
    arkit = track.select(spec.ARKIT_NAMES).values
    weights, info = solver.solve(arkit, smoothness)
    rot = [n for n in track.names if n in spec.ROTATION_CHANNELS]
    values = np.concatenate([weights, track.select(rot).values], axis=1).astype(np.float32)
    meta = dict(track.meta, retarget={"method": "geometric", "iterations": info.iterations,
                                      "converged": info.converged,
                                      "fit_error": float(np.median(solver.fit_error(arkit, weights)))})
    return FaceTrack(track.fps, solver.key_names + tuple(rot), values, meta)
