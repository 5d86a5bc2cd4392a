"""core.features: log-mel, the mel→model-frame map and phone evidence frames."""

import numpy as np
import pytest

from facepolicy.core import features, spec
from facepolicy.core.phones import PHONE_INDEX, PhoneSegment


def _tone(freq, seconds=1.0, amp=0.3):
    t = np.arange(int(seconds * spec.SAMPLE_RATE)) / spec.SAMPLE_RATE
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_shape_and_frame_count():
    x = _tone(440, 1.234)
    mel = features.log_mel(x)
    assert mel.shape == (features.n_mel_frames(len(x)), features.N_MELS) == (124, 80)
    assert mel.dtype == np.float32


def test_tone_energy_lands_in_its_mel_band():
    for freq in (300.0, 1000.0, 4000.0):
        mel = features.log_mel(_tone(freq))
        centre = int(np.argmax(mel[50]))
        edges = features._mel_to_hz(np.linspace(features._hz_to_mel(features.F_MIN),
                                                features._hz_to_mel(features.F_MAX), features.N_MELS + 2))
        assert edges[centre] <= freq <= edges[centre + 2]


def test_silence_is_the_floor_and_louder_is_higher():
    quiet = features.log_mel(np.zeros(8000, np.float32))
    np.testing.assert_allclose(quiet, np.log(features.LOG_FLOOR), rtol=1e-6)
    a = features.log_mel(_tone(1000, amp=0.05))[50].max()
    b = features.log_mel(_tone(1000, amp=0.5))[50].max()
    assert b - a == pytest.approx(2 * np.log(10.0), abs=0.05)  # 20 dB more amplitude = ×100 power


def test_pieces_equal_the_whole_and_outside_is_silence():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(16000 * 3).astype(np.float32) * 0.1
    whole = features.log_mel(x)
    for start, n in ((0, 17), (123, 80), (250, 50)):
        np.testing.assert_allclose(features.log_mel(x, start, n), whole[start : start + n], atol=1e-5)
    before = features.log_mel(x, -10, 5)
    np.testing.assert_allclose(before, np.log(features.LOG_FLOOR), rtol=1e-6)


def test_long_input_is_processed_in_blocks(monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(16000 * 2).astype(np.float32)
    whole = features.log_mel(x)
    monkeypatch.setattr(features, "_BLOCK_FRAMES", 7)
    np.testing.assert_allclose(features.log_mel(x), whole, atol=1e-5)


def test_model_frames_align_with_time():
    assert features.n_model_frames(16000) == 30
    assert features.n_model_frames(1) == 1
    lo, hi, w = features.model_frame_interp(4, 1000)
    # model frame k sits at k/30 s = mel frame k*10/3
    np.testing.assert_allclose(lo + w, [0, 10 / 3, 20 / 3, 10], atol=1e-6)
    assert np.all(hi == np.minimum(lo + 1, 999))
    x = np.arange(20, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    y = features.to_model_rate(x, 6)
    np.testing.assert_allclose(y[:, 0], np.minimum(np.arange(6) * 10 / 3, 19), atol=1e-5)


def test_phone_frames_soft_one_hots():
    segs = [PhoneSegment("sil", 0.0, 0.1), PhoneSegment("m", 0.1, 0.2), ("aa", 0.2, 0.5)]
    f = features.phone_frames(segs, 20, 30)
    np.testing.assert_allclose(f.sum(1), 1.0, atol=1e-6)
    assert f[4, PHONE_INDEX["m"]] == pytest.approx(1.0)
    assert f[3, PHONE_INDEX["m"]] == pytest.approx(0.5, abs=1e-5)  # frame 3 straddles 0.1 s
    assert f[10, PHONE_INDEX["aa"]] == pytest.approx(1.0)
    assert f[19, PHONE_INDEX["sil"]] == pytest.approx(1.0)  # past the last segment: silence
    shifted = features.phone_frames(segs, 10, 30, start=10)
    np.testing.assert_allclose(shifted, f[10:20], atol=1e-6)
    labels = features.phone_labels(segs, 50)
    assert labels[15] == PHONE_INDEX["m"] and labels[30] == PHONE_INDEX["aa"]


def test_log_mel_bits_do_not_depend_on_blas_threads():
    """A Ray worker runs with OMP_NUM_THREADS=1, a local worker with all cores: the same line must give the same
    bytes (a BLAS matrix product gave other bits with one thread than with two)."""
    import os
    import subprocess
    import sys

    code = ("import hashlib, numpy as np; from facepolicy.core import features; "
            "x = np.random.default_rng(3).standard_normal(16000 * 20).astype(np.float32); "
            "print(hashlib.sha256(features.log_mel(x).tobytes()).hexdigest())")
    digests = set()
    for threads in ("1", "2", "4"):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
        digests.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                   check=True).stdout.strip())
    assert len(digests) == 1
