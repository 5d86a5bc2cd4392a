"""The one Gaussian smoother: what it does to a signal, and the same bits as each of the three it replaced.

The reference functions below are the smoothers as they were before core.smoothing (the teacher's articulator
inertia, the panel's Smoothing slider in core.rigtrack, the Neural engine's articulation clean-up in core.neural),
copied verbatim apart from their names; each caller's parameters must give their results bit for bit.
"""

import math

import numpy as np
import pytest

from facepolicy.core import smoothing, spec
from facepolicy.core.smoothing import gaussian_kernel, gaussian_smooth

# --- the smoothers before, verbatim ------------------------------------------------------------------------------


def reference_teacher(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    if sigma_frames <= 0 or len(x) < 2:
        return x
    half = int(3 * sigma_frames) + 1
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma_frames) ** 2)
    k /= k.sum()
    padded = np.pad(x, ((half, half), (0, 0)), mode="edge")
    return np.stack([np.convolve(padded[:, j], k, mode="valid") for j in range(x.shape[1])], axis=1)


def reference_rigtrack(values: np.ndarray, fps: float, amount: float) -> np.ndarray:
    sigma = float(np.clip(amount, 0.0, 1.0)) * 0.06 * fps
    if sigma < 0.3 or len(values) < 2:
        return values
    radius = int(math.ceil(3 * sigma))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (t / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values.astype(np.float64), ((radius, radius), (0, 0)), mode="edge")
    out = np.empty_like(values, dtype=np.float64)
    for c in range(values.shape[1]):
        out[:, c] = np.convolve(padded[:, c], kernel, mode="valid")
    return out.astype(np.float32)


ARTICULATION = [spec.CHANNEL_INDEX[n] for n in (
    "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "mouthStretchLeft", "mouthStretchRight", "tongueOut")]


def reference_policy(states: np.ndarray, sigma: float = 0.015, fps: float = 30, in_place: bool = False,
                     block_frames: int = 2000) -> np.ndarray:
    s = sigma * fps
    if s <= 0 or len(states) < 2:
        return states
    out = states if in_place else states.copy()
    r = int(np.ceil(3 * s))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / s) ** 2)
    k /= k.sum()
    n = len(out)
    pending = None
    for a in range(0, n, block_frames):
        b = min(n, a + block_frames)
        x = out[np.clip(np.arange(a - r, b + r), 0, n - 1)[:, None], ARTICULATION]
        smoothed = sum(k[i] * x[i : i + b - a] for i in range(len(k)))
        if pending is not None:
            out[pending[0] : pending[1], ARTICULATION] = pending[2]
        pending = (a, b, smoothed)
    out[pending[0] : pending[1], ARTICULATION] = pending[2]
    return out


# --- each caller's parameters give the same bits ------------------------------------------------------------------

LENGTHS = (2, 3, 9, 250, 4321)  # shorter than the kernel, and several blocks


@pytest.mark.parametrize("n", LENGTHS)
def test_the_teachers_inertia_is_unchanged_bit_for_bit(n):
    rng = np.random.default_rng(n)
    x = rng.random((n, 6))
    # The teacher's sigmas: 20 or 35 ms at its 200 Hz grid, over its motion tempo range (0.8-1.25).
    for sigma in (0.02 * 200 / 1.25, 4.0, 0.02 * 200 / 0.8, 0.035 * 200, 0.035 * 200 / 0.8, 2.5 + rng.random()):
        got = gaussian_smooth(x, sigma, radius=int(3 * sigma) + 1)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, reference_teacher(x, sigma))


@pytest.mark.parametrize("n", LENGTHS)
def test_the_panels_smoothing_is_unchanged_bit_for_bit(n):
    rng = np.random.default_rng(100 + n)
    values = rng.random((n, spec.NUM_CHANNELS)).astype(np.float32)
    for fps in spec.COMMON_FPS:
        for amount in (0.2, 0.5, 0.77, 1.0):
            sigma = amount * 0.06 * fps
            if sigma < 0.3:  # rigtrack's own threshold: too little to see
                continue
            got = gaussian_smooth(values, sigma, dtype=np.float64)
            assert got.dtype == np.float32 and got is not values
            np.testing.assert_array_equal(got, reference_rigtrack(values, fps, amount))


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("in_place", [False, True])
def test_the_neural_articulation_smoothing_is_unchanged_bit_for_bit(n, in_place):
    rng = np.random.default_rng(200 + n)
    states = rng.standard_normal((n, spec.NUM_CHANNELS)).astype(np.float32)
    for fps in spec.COMMON_FPS:
        want = reference_policy(states.copy(), fps=fps)
        mine = states.copy()
        got = gaussian_smooth(mine, 0.015 * fps, columns=ARTICULATION, in_place=in_place)
        assert (got is mine) == in_place and got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
        if not in_place:
            np.testing.assert_array_equal(mine, states)  # the input is left alone


# --- what it does --------------------------------------------------------------------------------------------------


def test_kernel_is_a_normalised_symmetric_gaussian():
    k = gaussian_kernel(2.0, 6)
    assert k.shape == (13,) and k.sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_array_equal(k, k[::-1])
    assert np.argmax(k) == 6 and k[6 + 2] / k[6] == pytest.approx(math.exp(-0.5))  # one sigma from the centre


def test_an_impulse_spreads_into_the_kernel_and_a_held_pose_stays_put():
    x = np.zeros((101, 2))
    x[50, 0] = 1.0
    x[:, 1] = 0.4
    out = gaussian_smooth(x, 3.0)
    np.testing.assert_allclose(out[41:60, 0], gaussian_kernel(3.0, 9), atol=1e-15)
    assert out[:41, 0].max() == 0 and out[60:, 0].max() == 0  # nothing beyond the radius, ceil(3 sigma)
    np.testing.assert_allclose(out[:, 1], 0.4, atol=1e-15)


def test_edges_are_held_not_pulled_to_zero():
    x = np.linspace(0.5, 1.0, 40)[:, None]
    out = gaussian_smooth(x, 4.0)
    # Beyond the ends the first and last frames repeat: an end moves by a fraction of the ramp's slope times sigma
    # (0.05 here), not halfway to zero as with zeros beyond the ends.
    assert out[0, 0] == pytest.approx(0.5, abs=0.03) and out[-1, 0] == pytest.approx(1.0, abs=0.03)
    assert np.all(np.diff(out[:, 0]) >= 0)  # a ramp stays monotone


def test_nothing_to_smooth_returns_the_input_itself():
    x = np.arange(12.0).reshape(6, 2)
    assert gaussian_smooth(x, 0.0) is x
    one = x[:1]
    assert gaussian_smooth(one, 5.0) is one


def test_only_the_chosen_columns_change():
    rng = np.random.default_rng(3)
    x = rng.random((300, 5)).astype(np.float32)
    out = gaussian_smooth(x, 2.0, columns=[1, 3])
    np.testing.assert_array_equal(out[:, [0, 2, 4]], x[:, [0, 2, 4]])
    assert np.abs(np.diff(out[:, 1])).mean() < 0.5 * np.abs(np.diff(x[:, 1])).mean()


@pytest.mark.parametrize("sigma", [1.0, 5.0])
def test_block_boundaries_leave_no_trace(monkeypatch, sigma):
    """Blocks shorter than the radius (sigma 5: radius 15) and longer: the same bits as one block, in place too."""
    rng = np.random.default_rng(4)
    x = rng.random((97, 3))
    whole = gaussian_smooth(x, sigma)
    monkeypatch.setattr(smoothing, "BLOCK_FRAMES", 7)
    np.testing.assert_array_equal(gaussian_smooth(x, sigma), whole)
    y = x.copy()
    assert gaussian_smooth(y, sigma, in_place=True) is y
    np.testing.assert_array_equal(y, whole)
