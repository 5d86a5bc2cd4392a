"""core.movie: a movie's sound track read like any audio file (through the optional video extra)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from facepolicy.core import audio, movie
from facepolicy.core.errors import AudioError


def _movie(tmp_path, seconds: float = 1.5, rate: int = 44100):
    ffmpeg = pytest.importorskip("imageio_ffmpeg").get_ffmpeg_exe()
    t = np.arange(int(seconds * rate)) / rate
    wav = tmp_path / "tone.wav"
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 220 * t) * (t < seconds / 2)).astype(np.float32), rate)
    out = tmp_path / "tone.mov"
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(wav), "-c:a", "pcm_s16le", str(out)], check=True)
    return wav, out


def test_a_movies_sound_reads_as_its_wav_does(tmp_path):
    wav, mov = _movie(tmp_path)
    a, b = audio.load_audio(wav), audio.load_audio(mov)
    assert b.sample_rate == 16000 and b.source == str(mov)
    assert abs(len(a.samples) - len(b.samples)) <= 16
    n = min(len(a.samples), len(b.samples))
    assert np.corrcoef(a.samples[:n], b.samples[:n])[0, 1] > 0.99
    assert audio.file_seconds(mov) == pytest.approx(1.5, abs=0.05)


def test_without_the_video_extra_a_movie_is_one_sentence(tmp_path, monkeypatch):
    path = tmp_path / "line.mp4"
    path.write_bytes(b"\0" * 64)
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails as where the extra is not installed
    with pytest.raises(AudioError, match=r"^\"line\.mp4\": reading the sound of a \.mp4 file needs the video extra "
                                         r"\(pip install 'facepolicy\[video\]'\), or save its sound as a WAV file$"):
        audio.load_audio(path)


def test_only_container_suffixes_go_through_ffmpeg():
    assert movie.is_movie("take.MOV") and movie.is_movie("a/b.m4a") and not movie.is_movie("line.wav")
    assert not movie.is_movie("line.mp3")  # libsndfile reads mp3 itself


def _ffmpeg(*args, stdout=None):
    ffmpeg = pytest.importorskip("imageio_ffmpeg").get_ffmpeg_exe()
    subprocess.run([ffmpeg, "-v", "error", "-y", *map(str, args)], check=True, stdout=stdout)


def _speechlike(tmp_path, seconds: float):
    """A noisy, amplitude-modulated tone (so every AAC frame carries data) as a WAV."""
    rate = 16000
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    x += 0.02 * np.random.default_rng(0).standard_normal(len(t))
    wav = tmp_path / "speech.wav"
    sf.write(wav, x.astype(np.float32), rate)
    return wav


def test_a_damaged_movie_is_read_without_hanging_and_says_so(tmp_path):
    """A stream damaged all through makes ffmpeg log a line per bad packet: far more than a pipe holds. The reader
    must neither stop (it did: ffmpeg blocked on its full message pipe) nor pass the loss over in silence."""
    mkv = tmp_path / "damaged.mkv"
    _ffmpeg("-i", _speechlike(tmp_path, 180.0), "-c:a", "aac", mkv)
    data = bytearray(mkv.read_bytes())
    for k in range(4000, len(data), 300):
        data[k] ^= 0xFF
    mkv.write_bytes(bytes(data))
    code = ("import sys; from facepolicy.core import audio\n"
            "try:\n a = audio.load_audio(sys.argv[1]); print('LOADED', a.duration, a.warnings)\n"
            "except Exception as e: print('REFUSED', e)\n")
    done = subprocess.run([sys.executable, "-c", code, str(mkv)], capture_output=True, text=True, timeout=60)
    out = done.stdout
    assert "REFUSED" in out or "truncated or damaged" in out or "truncated" in out, out + done.stderr


def test_a_cut_movie_loads_what_is_there_with_a_warning(tmp_path):
    mkv = tmp_path / "whole.mkv"
    _ffmpeg("-i", _speechlike(tmp_path, 20.0), "-c:a", "aac", mkv)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(mkv.read_bytes()[: mkv.stat().st_size // 2])
    loaded = audio.load_audio(cut)
    assert 5.0 < loaded.duration < 15.0
    (warning,) = loaded.warnings
    assert warning.startswith('"cut.mkv": the file is truncated')


def test_a_recording_without_a_length_in_its_header_is_read_and_planned(tmp_path):
    """A browser's MediaRecorder .webm (or any file written to a pipe) says "Duration: N/A"."""
    from facepolicy.core.batch.plan import _check_audio_header

    webm = tmp_path / "piped.webm"
    with open(webm, "wb") as f:
        _ffmpeg("-i", _speechlike(tmp_path, 3.0), "-c:a", "libopus", "-f", "webm", "pipe:1", stdout=f)
    assert movie.probe_seconds(webm) is None
    _check_audio_header(webm)  # no "holds no audio samples"
    assert audio.load_audio(webm).duration == pytest.approx(3.0, abs=0.1)


def test_a_relative_name_with_a_colon_is_a_file_not_a_protocol(tmp_path, monkeypatch):
    _wav, mov = _movie(tmp_path)
    named = tmp_path / "10:30 take.mov"
    mov.rename(named)
    monkeypatch.chdir(tmp_path)
    assert audio.load_audio("10:30 take.mov").duration == pytest.approx(1.5, abs=0.05)
