"""The splat rasterizer in numpy: the same 3DGS forward pass as csrc/splat.cpp, used when this platform's compiled
library is missing or cannot be loaded, so the preview still draws (several times slower).

It follows csrc/splat_math.h step by step: the same culling, the same tiles, gaussians in (depth, index) order with
the depth computed in float32 exactly as the library does, the same alpha limits and early stop. The blend is done a
tile at a time over all its gaussians at once: the transmittance in front of each gaussian is a cumulative product,
and a pixel stops where that product would fall below FPS_T_MIN, as the library's per-pixel loop does.
"""

from __future__ import annotations

import numpy as np

TILE = 16
LOWPASS = 0.3
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.99
T_MIN = 1e-4
CHUNK = 2048  # gaussians blended at once per tile: bounds the (gaussians, pixels) temporaries to 4 MB

_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
       1.445305721320277, -0.5900435899266435)


def sh_basis(d: np.ndarray, degree: int) -> np.ndarray:
    """(N, K) real SH basis of unit directions ``d`` (N, 3), in the INRIA ordering of fps_sh_to_rgb."""
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    out = [np.full_like(x, _C0)]
    if degree > 0:
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree > 1:
        xx, yy, zz = x * x, y * y, z * z
        out += [_C2[0] * x * y, _C2[1] * y * z, _C2[2] * (2 * zz - xx - yy), _C2[3] * x * z, _C2[4] * (xx - yy)]
        if degree > 2:
            out += [_C3[0] * y * (3 * xx - yy), _C3[1] * x * y * z, _C3[2] * y * (4 * zz - xx - yy),
                    _C3[3] * z * (2 * zz - 3 * xx - 3 * yy), _C3[4] * x * (4 * zz - xx - yy), _C3[5] * z * (xx - yy),
                    _C3[6] * x * (xx - 3 * yy)]
    return np.stack(out, axis=1)


def _rotation_matrices(q: np.ndarray) -> np.ndarray:
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], 1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], 1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], 1),
    ], 1)


def project(params: np.ndarray, width: int, height: int, means, scales, rotations, opacities, sh, degree: int):
    """fps_project for every gaussian. Returns a dict of arrays for the visible ones, in (depth, index) order:
    u, v (centres in pixels), conic (a, b, c), opacity, rgb, and rect (x0, y0, x1, y1 in tiles)."""
    V32 = params[:16].reshape(4, 4).astype(np.float32)
    fx, fy, cx, cy, near = (float(p) for p in params[16:21])
    tiles_x, tiles_y = -(-width // TILE), -(-height // TILE)
    m32 = means.astype(np.float32)
    # Depth in float32 in the library's order of operations: the same depths give the same sort.
    tz32 = ((V32[2, 0] * m32[:, 0] + V32[2, 1] * m32[:, 1]) + V32[2, 2] * m32[:, 2]) + V32[2, 3]
    V = V32.astype(np.float64)
    m = means.astype(np.float64)
    tx, ty = m @ V[0, :3] + V[0, 3], m @ V[1, :3] + V[1, 3]
    tz = tz32.astype(np.float64)
    qn = np.linalg.norm(rotations, axis=1)
    ok = (tz32 > np.float32(near)) & (qn > 0) & (opacities >= ALPHA_MIN)
    idx = np.flatnonzero(ok)
    tx, ty, tz = tx[idx], ty[idx], tz[idx]
    M = _rotation_matrices(rotations[idx].astype(np.float64)) * scales[idx].astype(np.float64)[:, None, :]
    sigma = M @ M.transpose(0, 2, 1)
    xl, xr = (-0.15 * width - cx) / fx, (1.15 * width - cx) / fx
    yl, yr = (-0.15 * height - cy) / fy, (1.15 * height - cy) / fy
    txc = np.clip(tx / tz, xl, xr) * tz
    tyc = np.clip(ty / tz, yl, yr) * tz
    J = np.zeros((len(idx), 2, 3))
    J[:, 0, 0], J[:, 0, 2] = fx / tz, -fx * txc / (tz * tz)
    J[:, 1, 1], J[:, 1, 2] = fy / tz, -fy * tyc / (tz * tz)
    T = J @ V[:3, :3]
    cov = T @ sigma @ T.transpose(0, 2, 1)
    a, b, c = cov[:, 0, 0] + LOWPASS, cov[:, 0, 1], cov[:, 1, 1] + LOWPASS
    det = a * c - b * b
    with np.errstate(invalid="ignore", divide="ignore"):
        mid = 0.5 * (a + c)
        radius = np.ceil(3.0 * np.sqrt(mid + np.sqrt(np.maximum(0.1, mid * mid - det))))
        u, v = fx * tx / tz + cx, fy * ty / tz + cy
        opacity = opacities[idx].astype(np.float64)
        reach = np.maximum(2.0 * np.log(opacity / ALPHA_MIN), 0.0)
        rx = np.minimum(radius, np.sqrt(reach * a) * 1.001 + 0.01)
        ry = np.minimum(radius, np.sqrt(reach * c) * 1.001 + 0.01)
        x0 = np.clip(np.floor((u - rx) / TILE), 0, tiles_x)
        x1 = np.clip(np.floor((u + rx) / TILE) + 1, 0, tiles_x)
        y0 = np.clip(np.floor((v - ry) / TILE), 0, tiles_y)
        y1 = np.clip(np.floor((v + ry) / TILE) + 1, 0, tiles_y)
    keep = (det > 0) & (x1 > x0) & (y1 > y0)
    idx, keep_idx = idx[keep], np.flatnonzero(keep)
    R = V[:3, :3]
    campos = -R.T @ V[:3, 3]
    d = m[idx] - campos
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-300)
    K = (degree + 1) ** 2
    rgb = np.maximum(np.einsum("nk,nkc->nc", sh_basis(d, degree), sh[idx, :K].astype(np.float64)) + 0.5, 0.0)
    det_k = det[keep_idx]
    order = np.argsort(tz32[idx], kind="stable")  # ties keep index order, like the library's stable radix sort
    k = keep_idx[order]
    return {
        "u": u[k], "v": v[k], "opacity": opacity[k], "rgb": rgb[order],
        "conic": np.stack([c[k] / det_k[order], -b[k] / det_k[order], a[k] / det_k[order]], axis=1),
        "rect": np.stack([x0[k], y0[k], x1[k], y1[k]], axis=1).astype(np.int64),
    }


def _tile_lists(rect: np.ndarray, tiles_x: int, n_tiles: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (tile, gaussian) overlap, grouped by tile with the gaussians in depth order: (entries, starts)."""
    w, h = rect[:, 2] - rect[:, 0], rect[:, 3] - rect[:, 1]
    counts = w * h
    g = np.repeat(np.arange(len(rect)), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    tile = (rect[g, 1] + local // w[g]) * tiles_x + rect[g, 0] + local % w[g]
    order = np.argsort(tile, kind="stable")  # stable: within a tile, gaussians stay in depth order
    starts = np.searchsorted(tile[order], np.arange(n_tiles + 1))
    return g[order], starts


def render(params: np.ndarray, width: int, height: int, means, scales, rotations, opacities, sh, degree: int,
           background) -> tuple[np.ndarray, np.ndarray]:
    """rgb (H, W, 3) and alpha (H, W), float32: what fps_render writes."""
    bg = np.asarray(background, np.float64)
    rgb = np.empty((height, width, 3), np.float32)
    alpha = np.empty((height, width), np.float32)
    tiles_x, tiles_y = -(-width // TILE), -(-height // TILE)
    p = project(params, width, height, means, scales, rotations, opacities, sh, degree)
    entries, starts = _tile_lists(p["rect"], tiles_x, tiles_x * tiles_y)
    for t in range(tiles_x * tiles_y):
        ty, tx = divmod(t, tiles_x)
        y0, x0 = ty * TILE, tx * TILE
        h, w = min(TILE, height - y0), min(TILE, width - x0)
        py, px = np.mgrid[y0:y0 + h, x0:x0 + w].reshape(2, -1) + 0.5
        colour = np.zeros((h * w, 3))
        transmittance = np.ones(h * w)
        alive = np.ones(h * w, bool)
        for begin in range(starts[t], starts[t + 1], CHUNK):
            g = entries[begin:min(begin + CHUNK, starts[t + 1])]
            dx, dy = p["u"][g, None] - px[None], p["v"][g, None] - py[None]  # (G, P)
            conic = p["conic"][g]
            power = -0.5 * (conic[:, 0:1] * dx * dx + conic[:, 2:3] * dy * dy) - conic[:, 1:2] * dx * dy
            a = np.minimum(ALPHA_MAX, p["opacity"][g, None] * np.exp(np.minimum(power, 0.0)))
            a = np.where((power <= 0.0) & (a >= ALPHA_MIN), a, 0.0)
            after = transmittance[None] * np.cumprod(1.0 - a, axis=0)  # transmittance behind each gaussian
            # A pixel stops at the first gaussian that would bring it below T_MIN; the product only falls, so the
            # gaussians it takes are a prefix of the list.
            taken = (after >= T_MIN) & alive[None]
            before = np.vstack([transmittance[None], after[:-1]])
            colour += (a * before * taken).T @ p["rgb"][g]
            n_taken = taken.sum(axis=0)
            transmittance = np.where(n_taken > 0, after[np.maximum(n_taken - 1, 0), np.arange(h * w)], transmittance)
            alive &= n_taken == len(g)
            if not alive.any():
                break
        rgb[y0:y0 + h, x0:x0 + w] = (colour + transmittance[:, None] * bg).reshape(h, w, 3)
        alpha[y0:y0 + h, x0:x0 + w] = (1.0 - transmittance).reshape(h, w)
    return rgb, alpha
