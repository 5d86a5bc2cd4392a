"""F0 and energy for brows and head motion."""

import numpy as np
import pytest

from facepolicy.core import spec
from facepolicy.core.pitch import RATE, convolve_same, estimate_prosody, rms_envelope, semitones


def test_f0_of_a_gliding_voice_and_no_f0_in_noise_or_silence():
    rate = spec.SAMPLE_RATE
    t = np.arange(2 * rate) / rate
    f0 = 110 + 90 * t  # 110 → 290 Hz
    voice = (np.sign(np.sin(2 * np.pi * np.cumsum(f0) / rate)) * 0.2).astype(np.float32)
    p = estimate_prosody(voice, rate)
    assert len(p.f0) == 2 * RATE
    k = np.arange(5, len(p.f0) - 5)
    assert p.voiced[k].mean() > 0.95
    assert np.median(np.abs(p.f0[k] / (110 + 90 * k / RATE) - 1)) < 0.03
    noise = (np.random.default_rng(0).standard_normal(rate) * 0.2).astype(np.float32)
    assert estimate_prosody(noise, rate).voiced.mean() < 0.1
    silent = estimate_prosody(np.zeros(rate, np.float32), rate)
    assert not silent.voiced.any() and np.all(silent.energy == 0)
    assert semitones(p.f0, p.voiced)[p.voiced].std() > 3


def test_rms_envelope_follows_loudness_at_any_frame_rate():
    rate = spec.SAMPLE_RATE
    x = np.zeros(3 * rate, np.float32)
    x[rate:2 * rate] = 0.5 * np.sin(2 * np.pi * 200 * np.arange(rate) / rate)
    for fps in (24000 / 1001, 30.0, 100.0):
        env = rms_envelope(x, rate, fps)
        assert len(env) == int(np.ceil(3 * fps))
        assert env[int(1.5 * fps)] == pytest.approx(0.5 / np.sqrt(2), rel=0.02)
        assert env[int(0.5 * fps)] == 0 and env[int(2.5 * fps)] == 0


@pytest.mark.parametrize("n", [1, 10, 100, 160, 320, 480, 640])
def test_clips_of_a_few_milliseconds_give_one_value_per_frame(n):
    # np.convolve(mode="same") returns len(kernel) values for a shorter input; that broke clips under 40 ms.
    x = (0.3 * np.sin(2 * np.pi * 150 * np.arange(n) / spec.SAMPLE_RATE)).astype(np.float32)
    frames = int(np.ceil(n / spec.SAMPLE_RATE * RATE))
    p = estimate_prosody(x, spec.SAMPLE_RATE)
    assert len(p.f0) == len(p.voiced) == len(p.energy) == frames
    env = rms_envelope(x, spec.SAMPLE_RATE, 30.0)
    assert len(env) == int(np.ceil(n / spec.SAMPLE_RATE * 30)) and np.all(np.isfinite(env))


def test_convolve_same_is_numpys_same_mode_whenever_numpy_keeps_the_length():
    rng = np.random.default_rng(3)
    for n, taps in ((3, 3), (8, 8), (50, 15), (1001, 8)):
        x, k = rng.random(n), rng.random(taps)
        assert convolve_same(x, k).tobytes() == np.convolve(x, k, mode="same").tobytes()
    assert len(convolve_same(rng.random(2), np.ones(15))) == 2
    assert len(convolve_same(np.zeros(0), np.ones(3))) == 0


def test_energy_alone_is_the_same_energy_without_the_f0_search():
    t = np.arange(spec.SAMPLE_RATE) / spec.SAMPLE_RATE
    voice = (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
    full = estimate_prosody(voice)
    loud = estimate_prosody(voice, pitch=False)
    assert full.voiced.mean() > 0.8
    np.testing.assert_array_equal(loud.energy, full.energy)
    assert not loud.voiced.any() and not loud.f0.any() and len(loud.f0) == len(full.f0)
