"""A long file decoded once to disk (core.audio.SpooledAudio): its segments tile the file on the 0.1 s grid, are cut
in pauses, and hold exactly the samples load_audio gives (resampled, mixed down and loudness-normalised alike)."""

import numpy as np
import pytest
import soundfile as sf

from facepolicy.core import audio as A


@pytest.fixture
def long_file(tmp_path, monkeypatch):
    monkeypatch.setattr(A, "LONG_AUDIO_SECONDS", 10.0)
    rate = 44100
    t = np.arange(45 * rate) / rate
    speech = (np.sin(2 * np.pi * t / 3.1) > -0.2).astype(np.float32)  # 2.3 s of "speech", 0.8 s of pause
    x = np.random.default_rng(0).standard_normal((len(t), 2)).astype(np.float32) * 0.05 * speech[:, None]
    path = tmp_path / "long.wav"
    sf.write(str(path), x, rate)
    return path, speech[:: rate // 100]


def test_segments_tile_the_file_on_the_frame_grid_and_hold_load_audios_samples(long_file):
    path, _ = long_file
    whole = A.load_audio(path)
    with A.load_line_audio(path) as long:
        assert isinstance(long, A.SpooledAudio) and long.n_samples == len(whole.samples)
        segments = long.segments(seconds=8.0)
        assert segments[0][0] == 0 and segments[-1][1] == long.n_samples
        assert all(a == b for (_, a), (b, _) in zip(segments, segments[1:], strict=False))
        assert all(start % 1600 == 0 for start, _ in segments)  # 0.1 s: 3 frames at 30 fps
        assert all(stop - start >= 4 * 16000 for start, stop in segments)
        joined = np.concatenate([long.audio(a, b).samples for a, b in segments])
    np.testing.assert_allclose(joined, whole.samples, rtol=0, atol=1e-6)


def test_cuts_fall_in_pauses(long_file):
    path, speech = long_file
    with A.load_line_audio(path) as long:
        for start, _ in long.segments(seconds=8.0)[1:]:
            centi = start // 160
            assert not speech[centi - 2 : centi + 2].any(), start / 16000


def test_a_short_file_loads_whole(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(str(path), np.zeros(16000, np.float32), 16000)
    assert isinstance(A.load_line_audio(path), A.Audio)
