"""The sound track of a movie or other container libsndfile does not read (.mov, .mp4, .m4a, .mkv, .webm, .avi, .aac):
ffmpeg's binary from the optional `video` extra (imageio-ffmpeg) decodes it to mono float32 at the rate asked for,
read block by block through a pipe, so core.audio treats it like any other file (the same reader for bake, Blender,
live and fine-tuning takes; memory bounded for long files)."""

from __future__ import annotations

import functools
import re
import subprocess
import tempfile
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


def _input(path) -> str:
    """The path as ffmpeg's input: absolute, through its file protocol (a name with a colon is not a protocol)."""
    return "file:" + str(Path(path).absolute())


def _spawn(path, args: list[str], **kwargs) -> subprocess.Popen:
    """ffmpeg with ``args``; no console window on Windows (Blender is a GUI program); AudioError when it cannot
    start."""
    flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    try:
        return subprocess.Popen([ffmpeg_binary(path), *args], stdin=subprocess.DEVNULL, creationflags=flags, **kwargs)
    except OSError as exc:
        raise AudioError(f'"{Path(path).name}": ffmpeg (the video extra) could not start ({exc})') from None


def probe_seconds(path) -> float | None:
    """The length of the file's sound track in seconds from its header (None where the header does not say, as in a
    browser's .webm recording). AudioError when it has no sound track or ffmpeg cannot read it. One ffmpeg run per
    version of a file (the batch's check, the long-file test and the reader all ask)."""
    st = Path(path).stat()
    return _probe(str(Path(path).absolute()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _probe(path: str, _size: int, _mtime_ns: int) -> float | None:
    with _spawn(path, ["-hide_banner", "-i", _input(path)], stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE) as proc:
        text = proc.stderr.read().decode(errors="replace")  # the only pipe: it cannot fill up while we wait
    if not re.search(r"Stream #\S+.*: Audio:", text):
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        known = "Input #" in text
        raise AudioError(f'"{Path(path).name}": ' + ("the file has no sound track" if known else
                                                     f"could not read it ({lines[-1] if lines else 'ffmpeg failed'})"))
    m = _DURATION.search(text)
    return None if m is None else int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


class MovieSound:
    """A movie's sound track as libsndfile's SoundFile reads a file (core.audio's reader): ``samplerate``,
    ``channels`` (1: ffmpeg mixes down), ``frames`` (from the header; 0 where it does not say), ``format``,
    ``read``. ffmpeg's messages go to a temporary file, not a pipe: a damaged stream logs a line per bad packet,
    which would fill a pipe and stop ffmpeg while the sound is still being read. Where ffmpeg fails after some
    sound, the next ``read`` raises RuntimeError, as libsndfile does for a stream damaged part-way."""

    format = "MOVIE"
    channels = 1
    # The header's length is the longest stream's (the picture may run on past the sound) and the audio codec pads
    # its ends, so less than this missing is not a cut file.
    length_tolerance = 0.5

    def __init__(self, path, sample_rate: int):
        self.path = Path(path)
        self.samplerate = int(sample_rate)
        seconds = probe_seconds(self.path)  # no sound, or unreadable: one sentence here
        self.frames = 0 if seconds is None else int(round(seconds * self.samplerate))
        self._log = tempfile.TemporaryFile()
        self._proc = _spawn(self.path, ["-v", "error", "-nostdin", "-i", _input(self.path), "-vn", "-ac", "1", "-ar",
                                        str(self.samplerate), "-f", "f32le", "-"],
                            stdout=subprocess.PIPE, stderr=self._log)
        self._done = False
        self._failure: str | None = None

    def _error(self) -> str:
        self._log.seek(0)
        lines = [ln.strip() for ln in self._log.read().decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1] if lines else f"ffmpeg stopped (exit {self._proc.returncode})"

    def read(self, n: int, dtype: str = "float32", always_2d: bool = True) -> np.ndarray:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise RuntimeError(failure)
        if self._done:
            return np.zeros((0, 1) if always_2d else 0, np.float32)
        data = self._proc.stdout.read(4 * n)
        if len(data) < 4 * n:
            self._done = True
            if self._proc.wait() != 0:
                if not data:
                    raise RuntimeError(self._error())
                self._failure = self._error()  # reported on the next read, after what was decoded
        out = np.frombuffer(data[: len(data) // 4 * 4], np.float32).astype(dtype, copy=True)
        return out[:, None] if always_2d else out

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._proc.stdout.close()
        self._log.close()

    def __enter__(self) -> MovieSound:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
