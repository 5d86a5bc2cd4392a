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
