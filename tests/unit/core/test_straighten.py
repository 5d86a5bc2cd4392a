"""core.straighten: the taut string through a tube, and the lip gap pulled taut without changing any frame's class."""

from __future__ import annotations

import numpy as np
import pytest

from facepolicy.core import metrics, spec
from facepolicy.core.phones import PhoneSegment
from facepolicy.core.straighten import TUBE, loudness_rank, open_vowels, straighten_lips, taut_string


def _least_bending(lo, hi):
    """The least total |Δ²| of any path through the gates (a linear programme, scipy only in tests)."""
    from scipy.optimize import linprog
    from scipy.sparse import diags, hstack, identity, vstack

    n = len(lo)
    d2 = diags([np.ones(n - 2), -2 * np.ones(n - 2), np.ones(n - 2)], [0, 1, 2], shape=(n - 2, n))
    a = vstack([hstack([d2, -identity(n - 2)]), hstack([-d2, -identity(n - 2)])]).tocsr()
    res = linprog(np.r_[np.zeros(n), np.ones(n - 2)], A_ub=a, b_ub=np.zeros(2 * (n - 2)),
                  bounds=list(zip(lo, hi, strict=True)) + [(0, None)] * (n - 2), method="highs")
    return res.fun


@pytest.mark.parametrize("seed", range(12))
def test_the_taut_string_bends_least_of_any_path_through_the_gates(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    path = np.cumsum(rng.normal(size=n))
    half = rng.uniform(0.05, 1.5, size=n) if seed % 2 else np.full(n, rng.uniform(0.1, 1.0))
    lo, hi = path - half, path + half
    lo[0] = hi[0] = path[0]
    lo[-1] = hi[-1] = path[-1]
    string = taut_string(lo, hi, path[0], path[-1])
    assert np.all(string >= lo - 1e-9) and np.all(string <= hi + 1e-9)
    assert np.abs(np.diff(string, 2)).sum() <= _least_bending(lo, hi) + 1e-7


def test_a_wide_tube_around_a_wobbly_line_gives_the_line():
    t = np.arange(200, dtype=np.float64)
    wobbly = 0.3 * t + np.sin(t)
    string = taut_string(wobbly - 2.0, wobbly + 2.0, wobbly[0], wobbly[-1])
    np.testing.assert_allclose(string, wobbly[0] + (wobbly[-1] - wobbly[0]) * t / t[-1], atol=1e-9)


def test_loudness_ranks_from_quietest_to_loudest():
    np.testing.assert_allclose(loudness_rank(np.array([3.0, 1.0, 2.0]), 4), [1.0, 0.0, 0.5, 0.0])


def test_the_lips_keep_every_frame_class_and_only_the_openers_move():
    geo = metrics.default_geometry()
    rng = np.random.default_rng(0)
    n = 300
    states = np.zeros((n, spec.NUM_CHANNELS), np.float32)
    ci = spec.CHANNEL_INDEX
    t = np.arange(n) / spec.MODEL_FPS
    states[:, ci["jawOpen"]] = np.clip(0.3 + 0.3 * np.sin(2 * np.pi * 4 * t) + 0.05 * rng.normal(size=n), 0, 1)
    states[:, ci["mouthSmileLeft"]] = 0.2
    sealed = np.zeros(n)
    sealed[100:110] = 1.0
    states[100:110, ci["jawOpen"]] = 0.0
    before = states.copy()
    g0 = geo.gap(before[:, :spec.NUM_ARKIT])
    after = straighten_lips(states, loudness=np.abs(np.sin(2 * np.pi * 4 * t)), sealed=sealed)
    g = geo.gap(after[:, :spec.NUM_ARKIT])

    def jitter(x):
        return np.abs(np.diff(x, 2)).mean() / x.std()

    assert jitter(g) < 0.9 * jitter(g0)
    closed, opened = geo.threshold(metrics.CLOSED_FRACTION), geo.threshold(metrics.OPEN_FRACTION)
    assert np.all(g[g0 <= closed] <= g0[g0 <= closed] + 1e-9)  # closed frames never open further
    assert np.all(g[g0 >= opened] >= opened)  # open frames stay open
    assert np.all(g[100:110] <= g0[100:110] + 1e-9)
    moved = np.nonzero(np.any(after != before, axis=0))[0]
    openers = {ci[name] for name in ("jawOpen", "mouthUpperUpLeft", "mouthUpperUpRight", "mouthLowerDownLeft",
                                     "mouthLowerDownRight")}
    assert set(moved.tolist()) <= openers
    assert np.abs(g - g0).max() <= TUBE * geo.range + 1e-9


def test_an_open_vowel_the_evidence_heard_opens_where_the_engine_left_it_just_short():
    """m-a-p at 7 syllables a second: the engine's gap rises to just under the open threshold between the closures;
    the string alone flattens it further, with the vowel among the evidence's open vowels its widest frame opens."""
    geo = metrics.default_geometry()
    ci = spec.CHANNEL_INDEX
    n = 40
    opened = geo.threshold(metrics.OPEN_FRACTION)
    states = np.zeros((n, spec.NUM_CHANNELS), np.float32)
    jaw = np.zeros(n)
    jaw[17:22] = [0.08, 0.18, 0.2, 0.16, 0.06]  # a short peak between two closures
    states[:, ci["jawOpen"]] = jaw
    peak = geo.gap(states[:, :spec.NUM_ARKIT]).max()
    # jawOpen's share of the opening is set so the peak lies just under the open threshold
    states[:, ci["jawOpen"]] *= (opened - 0.02 * geo.range - geo.gap0) / (peak - geo.gap0)
    sealed = np.zeros(n)
    sealed[12:16] = sealed[23:27] = 1.0
    loud = np.r_[np.zeros(17), np.ones(5), np.zeros(n - 22)]
    phones = [PhoneSegment("m", 0.40, 0.53), PhoneSegment("aa", 0.56, 0.74), PhoneSegment("p", 0.76, 0.90)]
    opens = open_vowels(phones, n)
    assert opens == [(17, 23)]
    plain = geo.gap(straighten_lips(states.copy(), loud, sealed)[:, :spec.NUM_ARKIT])
    heard = geo.gap(straighten_lips(states.copy(), loud, sealed, opens=opens)[:, :spec.NUM_ARKIT])
    assert plain[17:23].max() < opened <= heard[17:23].max()
    closed = geo.threshold(metrics.CLOSED_FRACTION)
    assert np.all(heard[12:16] <= closed) and np.all(heard[23:27] <= closed)  # the closures either side stay shut
    # A vowel far below the threshold (its gate does not reach it) is left to the string as it was.
    states[:, ci["jawOpen"]] *= 0.3
    np.testing.assert_array_equal(straighten_lips(states.copy(), loud, sealed, opens=opens),
                                  straighten_lips(states.copy(), loud, sealed))


def test_open_vowels_are_frame_ranges_of_the_heard_ones_at_least_their_middle_frame():
    phones = [PhoneSegment("sil", 0.0, 0.2), PhoneSegment("ah", 0.2, 0.3), PhoneSegment("iy", 0.3, 0.4),
              PhoneSegment("eh", 0.41, 0.43), PhoneSegment("aa", 0.5, 0.6)]
    assert open_vowels(phones, 30) == [(6, 10), (13, 14), (15, 19)]
    assert open_vowels(phones, 30, confidence=[1, 1, 1, 1, 0]) == [(6, 10), (13, 14)]  # the calmed one is not
    assert open_vowels(phones, 17) == [(6, 10), (13, 14), (15, 17)]


def test_the_live_stepper_steadies_a_wobbly_stream_frame_by_frame_without_waiting():
    from facepolicy.core.straighten import LiveStraightener

    geo = metrics.default_geometry()
    rng = np.random.default_rng(1)
    n = 240
    t = np.arange(n) / spec.MODEL_FPS
    frames = np.zeros((n, spec.NUM_CHANNELS), np.float32)
    frames[:, spec.CHANNEL_INDEX["jawOpen"]] = np.clip(0.3 + 0.3 * np.sin(2 * np.pi * 3 * t)
                                                       + 0.04 * rng.normal(size=n), 0, 1)
    loud = np.abs(np.sin(2 * np.pi * 3 * t))
    live = LiveStraightener()
    out = np.stack([live.step(f, v) for f, v in zip(frames, loud, strict=True)])
    again = LiveStraightener()
    prefix = np.stack([again.step(f, v) for f, v in zip(frames[:100], loud[:100], strict=True)])
    np.testing.assert_array_equal(prefix, out[:100])  # a frame depends only on what came before it
    g0, g = geo.gap(frames[:, :spec.NUM_ARKIT]), geo.gap(out[:, :spec.NUM_ARKIT])

    def jitter(x):
        return np.abs(np.diff(x, 2)).mean() / x.std()

    assert jitter(g) < 0.9 * jitter(g0)
    closed, opened = geo.threshold(metrics.CLOSED_FRACTION), geo.threshold(metrics.OPEN_FRACTION)
    assert np.all(g[g0 <= closed] <= g0[g0 <= closed] + 1e-9) and np.all(g[g0 >= opened] >= opened)
