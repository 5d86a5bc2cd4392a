"""Gaussian smoothing along time: the one low-pass used by the articulation teacher (articulator inertia), the
panel's Smoothing slider (core.rigtrack) and the Neural engine's articulation clean-up (core.neural)."""

from __future__ import annotations

import math

import numpy as np

BLOCK_FRAMES = 2000  # frames smoothed at a time


def gaussian_kernel(sigma: float, radius: int) -> np.ndarray:
    """(2 radius + 1,) float64 weights of a Gaussian with standard deviation ``sigma`` samples, summing to 1."""
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return k / k.sum()


def gaussian_smooth(x: np.ndarray, sigma: float, *, radius: int | None = None, dtype=None, columns=None,
                    in_place: bool = False) -> np.ndarray:
    """``x`` (frames, C) low-passed along its frames by ``gaussian_kernel(sigma, radius)``, the first and last
    frames held beyond the ends; ``sigma`` is in frames and ``radius`` defaults to ceil(3 sigma).

    Each column is one ``np.convolve`` in ``dtype`` (default: ``x``'s), written back in ``x``'s dtype, so a caller
    that asks for float64 on float32 frames gets the float64 sum rounded once. Only ``columns`` (indices, default
    all) change; the others are copied. ``in_place`` writes into ``x`` itself. Either way the work is done
    BLOCK_FRAMES at a time, so an hour of frames needs no whole-length temporaries. With ``sigma`` <= 0 or fewer
    than 2 frames, ``x`` itself is returned.
    """
    if sigma <= 0 or len(x) < 2:
        return x
    r = int(math.ceil(3 * sigma)) if radius is None else int(radius)
    dtype = x.dtype if dtype is None else np.dtype(dtype)
    kernel = gaussian_kernel(sigma, r).astype(dtype)
    cols = np.arange(x.shape[1]) if columns is None else np.asarray(columns, np.int64)
    out = x if in_place else x.copy()
    n = len(x)
    # In place, a block is written only once the next block has read the unsmoothed frames it needs; blocks at
    # least as long as the radius keep those frames inside the block held back.
    block = max(BLOCK_FRAMES, r)
    pending = None
    for a in range(0, n, block):
        b = min(n, a + block)
        rows = np.clip(np.arange(a - r, b + r), 0, n - 1)  # the edges held
        slab = np.ascontiguousarray(x[rows].T[cols], dtype)  # (columns, frames): each column contiguous
        smoothed = np.empty((len(cols), b - a), dtype)
        for j, column in enumerate(slab):
            smoothed[j] = np.convolve(column, kernel, mode="valid")
        if pending is not None:
            out[pending[0] : pending[1], cols] = pending[2].T
        pending = (a, b, smoothed)
    out[pending[0] : pending[1], cols] = pending[2].T
    return out
