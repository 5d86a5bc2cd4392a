import numpy as np
import pytest
import soundfile as sf

from facepolicy.core import audio
from facepolicy.core.errors import AudioError


def tone(rate, seconds=1.0, freq=440.0, amp=0.1, channels=1):
    t = np.arange(int(rate * seconds)) / rate
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg"])
def test_any_rate_and_format_to_16k_mono(tmp_path, rate, fmt):
    path = tmp_path / f"line.{fmt}"
    sf.write(path, tone(rate, 1.0, channels=2), rate)
    a = audio.load_audio(path)
    assert a.sample_rate == 16000 and a.original_rate == rate and a.original_channels == 2
    assert a.samples.dtype == np.float32 and a.samples.ndim == 1
    assert abs(len(a.samples) - 16000) <= 1
    # loudness normalised to the speech target
    assert audio.rms_db(a.samples) == pytest.approx(audio.TARGET_RMS_DB, abs=0.6)


def test_resample_keeps_a_tone_and_removes_what_cannot_be_represented():
    x = tone(44100, 2.0, 440.0, 0.5)
    y = audio.resample(x, 44100, 16000)
    t = np.arange(len(y)) / 16000
    np.testing.assert_allclose(y[2000:-2000], 0.5 * np.sin(2 * np.pi * 440 * t[2000:-2000]), atol=1e-3)
    alias = audio.resample(tone(44100, 2.0, 12000.0, 0.5), 44100, 16000)
    assert np.max(np.abs(alias[2000:-2000])) < 1e-3


def test_long_audio_resamples_in_blocks_without_seams():
    x = tone(48000, 45.0, 300.0, 0.3)  # more than two 20 s blocks
    y = audio.resample(x, 48000, 16000)
    t = np.arange(len(y)) / 16000
    np.testing.assert_allclose(y[1000:-1000], 0.3 * np.sin(2 * np.pi * 300 * t[1000:-1000]), atol=1e-3)


def test_silence_stays_silent(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(16000, np.float32), 16000)
    a = audio.load_audio(path)
    assert np.all(a.samples == 0)


def test_quiet_noise_is_not_pumped_up():
    x = np.random.default_rng(0).normal(0, 1e-4, 16000).astype(np.float32)  # -80 dBFS
    y = audio.normalise_loudness(x, 16000)
    assert audio.rms_db(y) < -50


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "file not found"),
    (lambda p: p.write_bytes(b""), "the file is empty"),
    (lambda p: p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 8), "could not decode audio"),
    (lambda p: p.mkdir(), "is a folder"),
])
def test_bad_files_get_clear_errors(tmp_path, make, message):
    path = tmp_path / "speech.wav"
    make(path)
    with pytest.raises(AudioError, match=message) as info:
        audio.load_audio(path)
    assert "speech.wav" in str(info.value)


def test_wrong_sample_rate_too_low(tmp_path):
    path = tmp_path / "low.wav"
    sf.write(path, tone(2000, 1.0), 2000)
    with pytest.raises(AudioError, match="too low"):
        audio.load_audio(path)


def test_nan_samples_are_refused(tmp_path):
    path = tmp_path / "nan.wav"
    x = tone(16000, 0.5)
    x[100] = np.nan
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        audio.load_audio(path)


def _cut(path, keep: float):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def test_a_truncated_wav_loads_what_is_there_with_a_warning(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, tone(16000, 3.0), 16000, subtype="PCM_16")
    full = audio.load_audio(path)
    assert full.warnings == []
    _cut(path, 0.2)  # the header still announces 3.0 s
    a = audio.load_audio(path)
    assert a.duration == pytest.approx(0.6, abs=0.01)
    assert a.warnings == ['"cut.wav": the file is truncated; read 0.60 s of the 3.00 s its header announces '
                          "and used that"]


def test_a_damaged_flac_loads_what_decodes_with_a_warning(tmp_path):
    path = tmp_path / "cut.flac"
    sf.write(path, tone(16000, 4.0, channels=2), 16000)
    _cut(path, 0.5)
    a = audio.load_audio(path)
    assert 1.0 < a.duration < 3.0
    (warning,) = a.warnings
    assert warning.startswith('"cut.flac": the file is truncated or damaged (flac decoder lost sync); read ')
    assert warning.endswith("of the 4.00 s its header announces and used that")


def test_a_wav_whose_writer_could_not_fill_in_its_length_is_not_called_truncated(tmp_path):
    path = tmp_path / "piped.wav"
    sf.write(path, tone(22050, 1.0), 22050, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    # What `espeak-ng --stdout > piped.wav` leaves: placeholder RIFF and data sizes.
    data[4:8] = (0x7FFFF024).to_bytes(4, "little")
    data[40:44] = (0x7FFFF000).to_bytes(4, "little")
    assert data[36:40] == b"data"
    path.write_bytes(bytes(data))
    a = audio.load_audio(path)
    assert a.warnings == [] and a.duration == pytest.approx(1.0, abs=1e-3)


def test_resampling_piece_by_piece_equals_resampling_at_once():
    x = tone(44100, 47.0, 300.0, 0.3) + np.random.default_rng(1).normal(0, 0.01, 44100 * 47).astype(np.float32)
    r = audio._Resampler(44100, 16000)
    pieces = []
    for start in range(0, len(x), 12345):
        pieces += r.push(x[start:start + 12345])
    pieces += r.finish()
    np.testing.assert_array_equal(np.concatenate(pieces)[: r.n_out(len(x))], audio.resample(x, 44100, 16000))
