"""F0 and energy for brows and head motion."""

import numpy as np
import pytest

from facepolicy.core import spec
from facepolicy.core.pitch import RATE, estimate_prosody, rms_envelope, semitones


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
