"""Audio input: any file libsndfile reads, or a movie's sound track (core.movie) → 16 kHz mono float32,
loudness-normalised."""

from __future__ import annotations

import math
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import spec
from .errors import AudioError
from .movie import MovieSound, is_movie, probe_seconds

# Loudness target for speech (RMS of the active part) and the most gain we apply, so that
# near-silent files are not pumped up into noise.
TARGET_RMS_DB = -20.0
MAX_GAIN_DB = 30.0
SILENCE_RMS_DB = -60.0


# Frames read per call: memory stays at the 16 kHz mono result, whatever the file's rate and channel count.
READ_BLOCK = 1 << 14
# Less missing than one animation frame is a rounding in the container's count, not a truncation.
TRUNCATION_TOLERANCE_S = 1.0 / spec.MODEL_FPS
# A RIFF data size this large (or 0) is the placeholder of a writer that could not seek back to fill it in,
# e.g. `espeak-ng --stdout > line.wav`: the file's length is then unknown, not wrong.
_STREAMING_SIZE = 0x7FFF0000
# A file longer than this is decoded once to a temporary file and animated segment by segment (SpooledAudio), so
# memory does not grow with its length: an hour would otherwise hold 230 MB of samples through the whole bake.
LONG_AUDIO_SECONDS = 15 * 60.0
SEGMENT_SECONDS = 5 * 60.0  # about this long each, cut at the quietest 0.1 s within 20 s of the mark
_CUT_SEARCH_SECONDS = 20.0


@dataclass
class Audio:
    samples: np.ndarray  # (N,) float32 at sample_rate
    sample_rate: int
    source: str = ""
    original_rate: int = 0
    original_channels: int = 0
    warnings: list[str] = field(default_factory=list)  # one line each, naming the file (a truncated file, ...)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    def is_silent(self) -> bool:
        """True when no 50 ms block rises above the silence floor."""
        return _silent(_block_power(self.samples, max(1, self.sample_rate // 20)))


def _silent(power_50ms: np.ndarray) -> bool:
    """The one silence rule: no 50 ms block (its mean square here) above SILENCE_RMS_DB."""
    return not len(power_50ms) or 10 * math.log10(float(np.max(power_50ms)) + 1e-20) < SILENCE_RMS_DB


def _soundfile():
    try:
        import soundfile
    except (ImportError, OSError) as exc:  # OSError: libsndfile itself missing
        raise AudioError(f"the audio reader is not installed (soundfile/libsndfile: {exc})") from None
    return soundfile


def _open(path, sample_rate: int = spec.SAMPLE_RATE):
    """The open soundfile.SoundFile of ``path`` (a movie: its sound track at ``sample_rate``, core.movie), with
    user-facing errors."""
    path = Path(path)
    if not str(path) or str(path) in (".", ""):
        raise AudioError("no audio file was given")
    if not path.exists():
        raise AudioError(f'"{path}": file not found')
    if path.is_dir():
        raise AudioError(f'"{path}": is a folder, not an audio file')
    if path.stat().st_size == 0:
        raise AudioError(f'"{path.name}": the file is empty')
    if is_movie(path):
        return MovieSound(path, sample_rate)
    sf = _soundfile()
    try:
        f = sf.SoundFile(str(path))
    except RuntimeError as exc:  # soundfile.LibsndfileError derives from it
        raise AudioError(
            f'"{path.name}": could not decode audio (libsndfile: {_short(exc)}); try WAV, FLAC, OGG or MP3'
        ) from None
    except OSError as exc:
        raise AudioError(f'"{path.name}": cannot read ({exc.strerror or exc})') from None
    if f.samplerate < 4000:
        f.close()
        raise AudioError(f'"{path.name}": sample rate {f.samplerate} Hz is too low for speech (need ≥ 4000 Hz)')
    return f


def _chunks(fh, endian: str):
    """(id, size, offset of the body) of each chunk of a RIFF or IFF file, from the current position."""
    while True:
        head = fh.read(8)
        if len(head) < 8:
            return
        size = struct.unpack(endian + "I", head[4:])[0]
        body = fh.tell()
        yield head[:4], size, body
        fh.seek(body + size + (size & 1))  # chunks are padded to an even length


def announced_frames(path, container: str) -> int | None:
    """How many frames the file's header says it holds, where the header says so and libsndfile does not tell.

    libsndfile quietly shortens a WAV or AIFF whose data ends early to what is there; the header still has the
    length the writer meant. None when there is no such header or the length was never filled in.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if container in ("WAV", "WAVEX") and head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
                endian = "<" if head[:4] == b"RIFF" else ">"
                block_align = 0
                for kind, size, body in _chunks(fh, endian):
                    if kind == b"fmt " and size >= 16:
                        fh.seek(body + 12)
                        block_align = struct.unpack(endian + "H", fh.read(2))[0]
                    elif kind == b"data":
                        if block_align == 0 or size == 0 or size >= _STREAMING_SIZE:
                            return None
                        return size // block_align
            elif container == "AIFF" and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
                for kind, size, body in _chunks(fh, ">"):
                    if kind == b"COMM" and size >= 6:
                        fh.seek(body + 2)
                        return struct.unpack(">I", fh.read(4))[0]
    except (OSError, struct.error):
        return None
    return None


class _Resampler:
    """``resample`` fed piece by piece: band-limited FFT resampling in overlapping blocks, so a file can be
    resampled while it is read and memory holds a few blocks besides the result."""

    def __init__(self, rate_in: int, rate_out: int, block_seconds: float = 20.0):
        g = math.gcd(rate_in, rate_out)
        self.up, self.down = rate_out // g, rate_in // g
        # Block and context lengths are multiples of `down`, so each maps to a whole number of output samples.
        self.block = self.down * max(1, int(math.ceil(rate_in * block_seconds / self.down)))
        self.ctx = self.down * max(1, int(math.ceil(rate_in * 0.1 / self.down)))
        self._pieces: list[np.ndarray] = [np.zeros(self.ctx, np.float32)]  # silence before the first sample
        self._held = self.ctx  # samples in _pieces
        self._pending = 0  # input samples not yet at the centre of a resampled block

    def push(self, x: np.ndarray) -> list[np.ndarray]:
        """Resampled output that ``x`` completes (possibly none)."""
        self._pieces.append(np.asarray(x, np.float32))
        self._held += len(x)
        self._pending += len(x)
        out = []
        while self._held >= self.block + 2 * self.ctx:
            out.append(self._next_block())
        return out

    def finish(self) -> list[np.ndarray]:
        """The rest of the output, the input padded with silence to whole blocks."""
        out = []
        while self._pending > 0:
            need = self.block + 2 * self.ctx - self._held
            if need > 0:
                self._pieces.append(np.zeros(need, np.float32))
                self._held += need
            out.append(self._next_block())
        return out

    def _next_block(self) -> np.ndarray:
        buf = np.concatenate(self._pieces) if len(self._pieces) > 1 else self._pieces[0]
        seg = buf[: self.block + 2 * self.ctx]
        y = _fft_resample_block(seg, len(seg) * self.up // self.down)
        self._pieces, self._held = [buf[self.block:]], len(buf) - self.block
        self._pending -= self.block
        ctx_out, block_out = self.ctx * self.up // self.down, self.block * self.up // self.down
        return y[ctx_out : ctx_out + block_out]

    def n_out(self, n_in: int) -> int:
        return int(math.ceil(n_in * self.up / self.down))


class _Growing:
    """A float32 array filled block by block: preallocated from the expected length, grown if a file holds more."""

    def __init__(self, capacity: int):
        self.data = np.empty(max(0, capacity), np.float32)
        self.n = 0

    def extend(self, x: np.ndarray) -> None:
        if self.n + len(x) > len(self.data):
            grown = np.empty(max(self.n + len(x), len(self.data) * 3 // 2), np.float32)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n : self.n + len(x)] = x
        self.n += len(x)

    def result(self, n: int) -> np.ndarray:
        out = self.data[: min(n, self.n)]
        return out.copy() if len(out) < len(self.data) // 2 else out  # do not keep a mostly empty buffer alive


def _decode(path, sample_rate: int, spool=None) -> tuple[np.ndarray, int, int, list[str]]:
    """(mono float32 samples at ``sample_rate``, the file's rate, its channels, warnings), read block by block;
    with ``spool`` (a _Spool) the samples go to its file instead and what is returned for them is its result.

    A file that stops early (truncated, or damaged so that decoding stops) gives what could be read and a
    one-line warning saying how much that is.
    """
    name = Path(path).name
    with _open(path, sample_rate) as f:
        rate, channels = f.samplerate, f.channels
        expected = announced_frames(path, f.format) or max(f.frames, 0)
        resampler = _Resampler(rate, sample_rate) if rate != sample_rate else None
        out = spool if spool is not None else _Growing(int(math.ceil(expected * sample_rate / rate)) + 1)
        n_read, damage = 0, ""
        while True:
            try:
                block = f.read(READ_BLOCK, dtype="float32", always_2d=True)
            except RuntimeError as exc:  # the decoder gave up part-way (a damaged or cut compressed stream)
                damage = _short(exc)
                break
            if not len(block):
                break
            if not np.all(np.isfinite(block)):
                raise AudioError(f'"{name}": the audio contains NaN or infinite samples')
            mono = block[:, 0] if channels == 1 else block.mean(axis=1, dtype=np.float32)
            n_read += len(mono)
            for piece in resampler.push(mono) if resampler else [mono]:
                out.extend(piece)
    if n_read == 0:
        if damage:
            reader = "ffmpeg" if is_movie(path) else "libsndfile"
            raise AudioError(f'"{name}": could not decode audio ({reader}: {damage}); try WAV, FLAC, OGG or MP3')
        raise AudioError(f'"{name}": the file holds no audio samples')
    if resampler:
        for piece in resampler.finish():
            out.extend(piece)
    samples = out.result(resampler.n_out(n_read) if resampler else n_read)
    warnings = []
    if damage or (expected - n_read) / rate > getattr(f, "length_tolerance", TRUNCATION_TOLERANCE_S):
        why = f"truncated or damaged ({damage})" if damage else "truncated"
        of = f" of the {expected / rate:.2f} s its header announces" if expected > n_read else ""
        warnings.append(f'"{name}": the file is {why}; read {n_read / rate:.2f} s{of} and used that')
    return samples, rate, channels, warnings


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    # libsndfile's "Error opening 'x.wav': Format not recognised." / "Error : flac decoder lost sync."
    return (text.split(": ", 1)[-1] if text.startswith("Error") else text).rstrip(".")


def _fft_resample_block(seg: np.ndarray, n_out: int) -> np.ndarray:
    """Resample one block by spectrum truncation/zero-padding with a raised-cosine taper at the band edge."""
    spec_in = np.fft.rfft(seg.astype(np.float64))
    n_bins = n_out // 2 + 1
    keep = min(len(spec_in), n_bins)
    spec_out = np.zeros(n_bins, np.complex128)
    spec_out[:keep] = spec_in[:keep]
    # Taper the top 8 % of the shared band so the brick-wall edge does not ring into the output.
    edge = max(1, int(keep * 0.08))
    spec_out[keep - edge : keep] *= 0.5 * (1 + np.cos(np.linspace(0, np.pi, edge)))
    return (np.fft.irfft(spec_out, n_out) * (n_out / len(seg))).astype(np.float32)


def resample(x: np.ndarray, rate_in: int, rate_out: int, block_seconds: float = 20.0) -> np.ndarray:
    """Band-limited rational resampling, done in overlapping FFT blocks so memory stays bounded."""
    x = np.asarray(x, dtype=np.float32)
    if rate_in == rate_out:
        return x
    r = _Resampler(rate_in, rate_out, block_seconds)
    pieces = r.push(x) + r.finish()
    return np.concatenate(pieces)[: r.n_out(len(x))]


def rms_db(x: np.ndarray) -> float:
    if x.size == 0:
        return -math.inf
    r = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return 20 * math.log10(r) if r > 0 else -math.inf


def _block_power(x: np.ndarray, hop: int) -> np.ndarray:
    """Mean square of each whole block of ``hop`` samples, in float64, without a float64 copy of ``x``."""
    n = len(x) // hop
    power = np.empty(n, np.float64)
    step = max(1, (1 << 20) // hop)  # blocks per pass: about 4 MB of float64 at a time
    for i in range(0, n, step):
        part = x[i * hop : min(n, i + step) * hop].reshape(-1, hop).astype(np.float64)
        power[i : i + len(part)] = np.mean(part * part, axis=1)
    return power


def loudness_gain(power: np.ndarray, peak: float | None = None) -> float | None:
    """The gain that puts the active (speech) part at TARGET_RMS_DB, from the mean square of each 10 ms block, and
    held so that ``peak`` (the largest |sample|, when given) stays at 0.99; None for silence (left silent rather
    than amplifying the noise floor) or no block at all."""
    if len(power) == 0:
        return None
    block_db = 10 * np.log10(power + 1e-20)
    peak_db = float(np.max(block_db))
    if peak_db < SILENCE_RMS_DB:
        return None
    active = block_db > max(SILENCE_RMS_DB, peak_db - 30.0)
    active_db = 10 * math.log10(float(np.mean(power[active])) + 1e-20)
    gain = 10 ** (min(MAX_GAIN_DB, TARGET_RMS_DB - active_db) / 20)
    return min(gain, 0.99 / peak) if peak is not None and peak * gain > 0.99 else gain


def normalise_loudness(x: np.ndarray, rate: int, in_place: bool = False) -> np.ndarray:
    """Scale so the active (speech) part sits at TARGET_RMS_DB, with a peak limit and a gain cap.

    ``in_place`` scales ``x`` itself (a float32 array the caller owns): an hour of audio is not copied.
    """
    if x.size == 0:
        return x
    gain = loudness_gain(_block_power(x, max(1, rate // 100)))  # 10 ms blocks
    if gain is None:
        return x
    y = np.multiply(x, np.float32(gain), out=x if in_place else None)
    peak = max(float(np.max(y)), -float(np.min(y)))
    if peak > 0.99:
        y *= np.float32(0.99 / peak)
    return y.astype(np.float32, copy=False)


def to_mono(data: np.ndarray) -> np.ndarray:
    return data.mean(axis=1).astype(np.float32) if data.ndim == 2 else data.astype(np.float32)


def load_audio(path, sample_rate: int = spec.SAMPLE_RATE, normalise: bool = True) -> Audio:
    """Load any supported file as mono float32 at ``sample_rate`` (16 kHz by default).

    A truncated or damaged file loads what could be read, with a warning in ``Audio.warnings``.
    """
    samples, rate, channels, warnings = _decode(path, sample_rate)
    if normalise:
        samples = normalise_loudness(samples, sample_rate, in_place=True)
    return Audio(samples, sample_rate, str(path), rate, channels, warnings)


def from_array(samples: np.ndarray, rate: int, sample_rate: int = spec.SAMPLE_RATE, normalise: bool = True,
               source: str = "<array>") -> Audio:
    """The same conditioning as load_audio, for samples already in memory (tests, the VSE)."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:
        samples = to_mono(samples)
    if samples.size == 0:
        raise AudioError(f"{source}: no audio samples")
    out = resample(samples, rate, sample_rate)
    if normalise:
        out = normalise_loudness(out, sample_rate)
    return Audio(out, sample_rate, source, rate, 1)


# --- long files: decoded once to disk, read back a segment at a time -------------------------------------------------


class _Spool:
    """_decode's sink for a long file: the samples go to an unnamed temporary file; the mean square of every 10 ms
    block and the peak are kept (what the loudness normalisation needs)."""

    def __init__(self, sample_rate: int):
        self.hop = max(1, sample_rate // 100)
        self.file = tempfile.TemporaryFile(prefix="facepolicy-audio-")
        self.n = 0
        self.peak = 0.0
        self._carry = np.zeros(0, np.float32)
        self._powers: list[np.ndarray] = []

    def extend(self, x: np.ndarray) -> None:
        x = np.ascontiguousarray(x, np.float32)
        if not len(x):
            return
        self.file.write(x.tobytes())
        self.n += len(x)
        self.peak = max(self.peak, float(np.max(np.abs(x))))
        y = np.concatenate([self._carry, x])
        whole = len(y) // self.hop * self.hop
        if whole:
            self._powers.append(_block_power(y[:whole], self.hop))
        self._carry = y[whole:]

    def result(self, n: int) -> None:
        self.n = min(n, self.n)  # the resampler's last block may reach past the file's end

    def power(self) -> np.ndarray:
        power = np.concatenate(self._powers) if self._powers else np.zeros(0)
        return power[: self.n // self.hop]


@dataclass
class SpooledAudio:
    """A long file decoded once to a temporary file (16 kHz mono float32, not yet scaled): ``audio(start, stop)``
    reads one segment back as an Audio with the whole file's loudness gain; ``segments()`` says where to cut."""

    spool: _Spool
    sample_rate: int
    source: str
    original_rate: int
    original_channels: int
    warnings: list[str]
    scale: float  # the loudness gain of the whole file, peak limit included (1 without normalisation)

    @property
    def n_samples(self) -> int:
        return self.spool.n

    @property
    def duration(self) -> float:
        return self.n_samples / self.sample_rate

    def segments(self, seconds: float | None = None) -> list[tuple[int, int]]:
        """(start, stop) sample ranges that tile the file, each about ``seconds`` long, cut on a 0.1 s grid (3 frames
        at 30 fps, so the segments' frames tile the whole file's) at the quietest point near each mark."""
        seconds = seconds or SEGMENT_SECONDS
        grid = self.sample_rate // 10
        per_cell = max(1, grid // self.spool.hop)
        power = self.spool.power()
        cells = power[: len(power) // per_cell * per_cell].reshape(-1, per_cell).mean(axis=1)
        n_cells = len(cells)
        step = int(seconds * 10)
        search = min(int(_CUT_SEARCH_SECONDS * 10), step // 4)
        cuts = [0]
        mark = step
        while mark + step // 2 < n_cells:  # the last segment is at least half as long as the others
            lo, hi = max(cuts[-1] + step // 2, mark - search), min(n_cells - step // 2, mark + search)
            if lo >= hi:
                break
            quiet = cells[lo - 1 : hi - 1] + cells[lo:hi]  # the two cells either side of each boundary
            cuts.append(lo + int(np.argmin(quiet)))
            mark = cuts[-1] + step
        bounds = [c * grid for c in cuts] + [self.n_samples]
        return list(zip(bounds[:-1], bounds[1:], strict=True))

    def audio(self, start: int, stop: int) -> Audio:
        """Samples start..stop as an Audio (the file's warnings go with the first segment only)."""
        self.spool.file.seek(4 * start)
        x = np.frombuffer(self.spool.file.read(4 * (stop - start)), np.float32).copy()
        if self.scale != 1.0:
            x *= np.float32(self.scale)
        return Audio(x, self.sample_rate, self.source, self.original_rate, self.original_channels,
                     list(self.warnings) if start == 0 else [])

    def is_silent(self) -> bool:
        """Audio.is_silent for the whole file, from the spool's 10 ms block powers (five to a 50 ms block)."""
        power = self.spool.power()
        return _silent(power[: len(power) // 5 * 5].reshape(-1, 5).mean(axis=1) * self.scale**2)

    def close(self) -> None:
        self.spool.file.close()

    def __enter__(self) -> SpooledAudio:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def file_seconds(path) -> float | None:
    """The length the file says it has, without decoding it (None when it does not say)."""
    if is_movie(path) and Path(path).is_file():
        return probe_seconds(path) or None
    try:
        with _open(path) as f:
            return f.frames / f.samplerate if 0 < f.frames < 2**62 else None
    except AudioError:
        return None


def load_line_audio(path, sample_rate: int = spec.SAMPLE_RATE, normalise: bool = True) -> Audio | SpooledAudio:
    """``load_audio``, or for a file longer than LONG_AUDIO_SECONDS a SpooledAudio (close it when done)."""
    seconds = file_seconds(path)
    if seconds is None or seconds <= LONG_AUDIO_SECONDS:
        return load_audio(path, sample_rate, normalise)
    spool = _Spool(sample_rate)
    try:
        _, rate, channels, warnings = _decode(path, sample_rate, spool)
        gain = loudness_gain(spool.power(), spool.peak) if normalise else None
        scale = 1.0 if gain is None else gain
    except BaseException:
        spool.file.close()
        raise
    return SpooledAudio(spool, sample_rate, str(path), rate, channels, warnings, float(scale))
