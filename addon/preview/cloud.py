"""GaussianCloud: a set of 3D gaussians in world space, stored with the INRIA 3DGS parameterisation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SH_C0 = 0.28209479177387814


def sh_coeff_count(degree: int) -> int:
    return (degree + 1) ** 2


def sh_degree_of(count: int) -> int:
    """The SH degree whose coefficient count is ``count`` (1, 4, 9 or 16)."""
    for degree in range(4):
        if sh_coeff_count(degree) == count:
            return degree
    raise ValueError(f"{count} SH coefficients per colour channel is not a degree 0-3 layout (1, 4, 9 or 16)")


def rgb_to_sh_dc(rgb: np.ndarray) -> np.ndarray:
    """The degree-0 coefficient that renders as ``rgb`` (the renderer adds 0.5 after the SH sum)."""
    return (np.asarray(rgb, np.float32) - 0.5) / SH_C0


@dataclass
class GaussianCloud:
    """N gaussians. Arrays are float32, C-contiguous.

    means (N, 3) · log_scales (N, 3) · rotations (N, 4) quaternions w, x, y, z (not necessarily unit) ·
    opacity_logits (N,) · sh (N, K, 3) with K = (degree + 1)^2, coefficient 0 is the DC term.
    """

    means: np.ndarray
    log_scales: np.ndarray
    rotations: np.ndarray
    opacity_logits: np.ndarray
    sh: np.ndarray

    def __post_init__(self) -> None:
        self.means = np.ascontiguousarray(self.means, np.float32)
        self.log_scales = np.ascontiguousarray(self.log_scales, np.float32)
        self.rotations = np.ascontiguousarray(self.rotations, np.float32)
        self.opacity_logits = np.ascontiguousarray(self.opacity_logits, np.float32).reshape(-1)
        self.sh = np.ascontiguousarray(self.sh, np.float32)
        n = self.means.shape[0] if self.means.ndim == 2 else -1
        expected = {
            "means": (self.means, (n, 3)),
            "log_scales": (self.log_scales, (n, 3)),
            "rotations": (self.rotations, (n, 4)),
            "opacity_logits": (self.opacity_logits, (n,)),
        }
        for name, (arr, shape) in expected.items():
            if arr.shape != shape:
                raise ValueError(f"GaussianCloud.{name} must have shape {shape}, got {arr.shape}")
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3:
            raise ValueError(f"GaussianCloud.sh must have shape ({n}, K, 3), got {self.sh.shape}")
        sh_degree_of(self.sh.shape[1])

    @property
    def n(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        return sh_degree_of(self.sh.shape[1])

    @property
    def scales(self) -> np.ndarray:
        return np.exp(self.log_scales)

    @property
    def opacities(self) -> np.ndarray:
        return (1.0 / (1.0 + np.exp(-self.opacity_logits.astype(np.float64)))).astype(np.float32)

    @property
    def unit_rotations(self) -> np.ndarray:
        norm = np.linalg.norm(self.rotations, axis=1, keepdims=True)
        return (self.rotations / np.maximum(norm, 1e-12)).astype(np.float32)

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.means, self.log_scales, self.rotations, self.opacity_logits, self.sh))

    def non_finite(self) -> dict[str, int]:
        """Attribute name -> number of gaussians with a NaN or Inf in it (only the offending ones)."""
        bad = {}
        for name in ("means", "log_scales", "rotations", "opacity_logits", "sh"):
            arr = getattr(self, name).reshape(self.n, -1)
            count = int(np.count_nonzero(~np.isfinite(arr).all(axis=1)))
            if count:
                bad[name] = count
        return bad

    def transformed(self, scale: float, rotation: np.ndarray, translation: np.ndarray) -> GaussianCloud:
        """The cloud after x -> scale * R x + t, with rotations, scales and view-dependent colour carried along."""
        R = np.asarray(rotation, np.float64)
        means = scale * (self.means.astype(np.float64) @ R.T) + np.asarray(translation, np.float64)
        rot = quat_multiply(matrix_to_quat(R[None])[0][None], self.rotations.astype(np.float64))
        sh = rotate_sh(self.sh, R)
        return GaussianCloud(means, self.log_scales + np.float32(np.log(scale)), rot, self.opacity_logits, sh)


# -- rotation helpers (vectorised, float64 inside) -------------------------------------------------------------------


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of (..., 4) w, x, y, z quaternions (broadcasting)."""
    aw, ax, ay, az = np.moveaxis(np.asarray(a, np.float64), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b, np.float64), -1, 0)
    return np.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=-1)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (normalised here) -> (..., 3, 3) rotation matrices."""
    q = np.asarray(q, np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-300)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def matrix_to_quat(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions w, x, y, z with w >= 0 (Shepperd's method)."""
    R = np.asarray(R, np.float64)
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    trace = m00 + m11 + m22
    # Four candidate formulas; pick the numerically largest pivot per matrix.
    cand = np.stack([
        np.stack([1 + trace, R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0],
                  R[..., 1, 0] - R[..., 0, 1]], -1),
        np.stack([R[..., 2, 1] - R[..., 1, 2], 1 + m00 - m11 - m22, R[..., 0, 1] + R[..., 1, 0],
                  R[..., 0, 2] + R[..., 2, 0]], -1),
        np.stack([R[..., 0, 2] - R[..., 2, 0], R[..., 0, 1] + R[..., 1, 0], 1 - m00 + m11 - m22,
                  R[..., 1, 2] + R[..., 2, 1]], -1),
        np.stack([R[..., 1, 0] - R[..., 0, 1], R[..., 0, 2] + R[..., 2, 0], R[..., 1, 2] + R[..., 2, 1],
                  1 - m00 - m11 + m22], -1),
    ], -2)  # (..., 4 candidates, 4)
    pivot = np.argmax(np.stack([1 + trace, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1), -1)
    q = np.take_along_axis(cand, pivot[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


# -- spherical harmonics ----------------------------------------------------------------------------------------------


def sh_basis(dirs: np.ndarray, degree: int) -> np.ndarray:
    """Real SH basis (the INRIA ordering and signs) at unit directions (M, 3) -> (M, (degree+1)^2), float64."""
    d = np.asarray(dirs, np.float64)
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    out = [np.full_like(x, SH_C0)]
    if degree > 0:
        c1 = 0.4886025119029199
        out += [-c1 * y, c1 * z, -c1 * x]
    if degree > 1:
        xx, yy, zz = x * x, y * y, z * z
        out += [1.0925484305920792 * x * y, -1.0925484305920792 * y * z, 0.31539156525252005 * (2 * zz - xx - yy),
                -1.0925484305920792 * x * z, 0.5462742152960396 * (xx - yy)]
    if degree > 2:
        out += [-0.5900435899266435 * y * (3 * xx - yy), 2.890611442640554 * x * y * z,
                -0.4570457994644658 * y * (4 * zz - xx - yy), 0.3731763325901154 * z * (2 * zz - 3 * xx - 3 * yy),
                -0.4570457994644658 * x * (4 * zz - xx - yy), 1.445305721320277 * z * (xx - yy),
                -0.5900435899266435 * x * (xx - 3 * yy)]
    return np.stack(out, axis=1)


def sh_rotation_matrix(R: np.ndarray, degree: int) -> np.ndarray:
    """M with sh_basis(R^T d) = sh_basis(d) @ M for all unit d: rotating an object by R maps its SH
    coefficients c (K, 3) to M @ c. Solved by least squares on fixed directions (the map is exactly linear)."""
    rng = np.random.default_rng(0)
    d = rng.normal(size=(64, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    Y = sh_basis(d, degree)
    Y_rot = sh_basis(d @ np.asarray(R, np.float64), degree)  # rows are R^T d
    M, *_ = np.linalg.lstsq(Y, Y_rot, rcond=None)
    return M


def rotate_sh(sh: np.ndarray, R: np.ndarray) -> np.ndarray:
    """SH coefficients (N, K, 3) of gaussians rotated by R (the DC term is unchanged)."""
    degree = sh_degree_of(sh.shape[1])
    if degree == 0:
        return np.array(sh, np.float32, copy=True)
    M = sh_rotation_matrix(R, degree)
    return np.einsum("kj,njc->nkc", M, sh.astype(np.float64)).astype(np.float32)
