"""Gaussian smoothing along time: the one low-pass used by the articulation teacher (articulator inertia), the
panel's Smoothing slider (core.rigtrack) and the Neural engine's articulation clean-up (core.neural); and the live
stream's blend of consecutive plans (core.stream), which cannot wait for the frames a centred window needs."""

from __future__ import annotations

import math

import numpy as np

BLOCK_FRAMES = 2000  # frames smoothed at a time
# The live stream's frame k: plan k's first frame with this share of plan k - 1's prediction of frame k blended in.
# Plan k - 1 heard one frame less of the audio, so a larger share lags and under-opens vowels (docs/BENCHMARKS.md).
PLAN_BLEND = 0.25


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


def blend_plans(newest: np.ndarray, previous: np.ndarray | None, share: float = PLAN_BLEND,
                columns=None) -> np.ndarray:
    """A live frame from two receding-horizon plans: ``newest`` (C,), the newest plan's prediction of the frame,
    moved toward ``previous`` (C,), the plan before's prediction of the same frame, by ``share`` on ``columns``
    (default all); the other columns are ``newest``'s. Consecutive plans hear the phones differently, and each
    frame from one plan alone trembles with them: the blend is the offline sampler's plan fade-in, made causal.
    ``previous`` None (the first frame): ``newest`` itself."""
    out = np.array(newest, copy=True)
    if previous is None or share <= 0:
        return out
    cols = slice(None) if columns is None else np.asarray(columns, np.int64)
    out[cols] = newest[cols] + np.asarray(share, out.dtype) * (previous[cols] - newest[cols])
    return out
