"""The sound track of a movie or other container libsndfile does not read (.mov, .mp4, .m4a, .mkv, .webm, .avi, .aac):
ffmpeg's binary from the optional `video` extra (imageio-ffmpeg) decodes it to mono float32 at the rate asked for,
read block by block through a pipe, so core.audio treats it like any other file (the same reader for bake, Blender,
live and fine-tuning takes; memory bounded for long files)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np

from .errors import AudioError

MOVIE_SUFFIXES = (".mov", ".mp4", ".m4a", ".mkv", ".webm", ".avi", ".aac")
_DURATION = re.compile(r"Duration:\s*(\d+):(\d\d):(\d\d(?:\.\d+)?)")


def is_movie(path) -> bool:
    return Path(path).suffix.lower() in MOVIE_SUFFIXES


def ffmpeg_binary(path) -> str:
    """ffmpeg's binary from imageio-ffmpeg; AudioError (one sentence naming the file) when the extra is missing."""
    name = Path(path).name
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:  # RuntimeError: the package is there but its binary is not
        why = "" if isinstance(exc, ImportError) else f" ({exc})"
        raise AudioError(f'"{name}": reading the sound of a {Path(path).suffix.lower()} file needs the video extra '
                         f"(pip install 'facepolicy[video]'){why}, or save its sound as a WAV file") from None


def available() -> bool:
    """Whether ffmpeg's binary (the video extra) is installed."""
    try:
        ffmpeg_binary("")
    except AudioError:
        return False
    return True


def probe_seconds(path) -> float:
    """The length of the file's sound track in seconds, from ffmpeg's reading of its header. AudioError when it
    has no sound track or ffmpeg cannot read it."""
    done = subprocess.run([ffmpeg_binary(path), "-hide_banner", "-i", str(path)], capture_output=True)
    text = done.stderr.decode(errors="replace")
    if not re.search(r"Stream #\S+.*: Audio:", text):
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        known = "Input #" in text
        raise AudioError(f'"{Path(path).name}": ' + ("the file has no sound track" if known else
                                                     f"could not read it ({lines[-1] if lines else 'ffmpeg failed'})"))
    m = _DURATION.search(text)
    return 0.0 if m is None else int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


class MovieSound:
    """A movie's sound track as libsndfile's SoundFile reads a file (core.audio's reader): ``samplerate``,
    ``channels`` (1: ffmpeg mixes down), ``frames`` (0: not known until read), ``format``, ``read``."""

    format = "MOVIE"
    channels = 1
    frames = 0

    def __init__(self, path, sample_rate: int):
        self.path = Path(path)
        self.samplerate = int(sample_rate)
        probe_seconds(self.path)  # a file without sound, or one ffmpeg cannot read, fails here with one sentence
        cmd = [ffmpeg_binary(path), "-v", "error", "-nostdin", "-i", str(self.path), "-vn", "-ac", "1", "-ar",
               str(self.samplerate), "-f", "f32le", "-"]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._done = False

    def read(self, n: int, dtype: str = "float32", always_2d: bool = True) -> np.ndarray:
        if self._done:
            return np.zeros((0, 1), np.float32)
        data = self._proc.stdout.read(4 * n)
        if len(data) < 4 * n:
            self._done = True
            if self._proc.wait() != 0 and not data:
                err = self._proc.stderr.read().decode(errors="replace").strip().splitlines()
                raise RuntimeError(err[-1] if err else "ffmpeg stopped")
        out = np.frombuffer(data[: len(data) // 4 * 4], np.float32).astype(dtype, copy=True)
        return out[:, None] if always_2d else out

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        for pipe in (self._proc.stdout, self._proc.stderr):
            pipe.close()

    def __enter__(self) -> MovieSound:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
