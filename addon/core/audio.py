"""Audio input: any file libsndfile reads → 16 kHz mono float32, loudness-normalised."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import spec
from .errors import AudioError

# Loudness target for speech (RMS of the active part) and the most gain we apply, so that
# near-silent files are not pumped up into noise.
TARGET_RMS_DB = -20.0
MAX_GAIN_DB = 30.0
SILENCE_RMS_DB = -60.0


@dataclass
class Audio:
    samples: np.ndarray  # (N,) float32 at sample_rate
    sample_rate: int
    source: str = ""
    original_rate: int = 0
    original_channels: int = 0

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def _soundfile():
    try:
        import soundfile
    except (ImportError, OSError) as exc:  # OSError: libsndfile itself missing
        raise AudioError(f"the audio reader is not installed (soundfile/libsndfile: {exc})") from None
    return soundfile


def read_audio_file(path) -> tuple[np.ndarray, int]:
    """Raw samples (frames, channels) float32 and the file's rate, with user-facing errors."""
    path = Path(path)
    if not str(path) or str(path) in (".", ""):
        raise AudioError("no audio file was given")
    if not path.exists():
        raise AudioError(f'"{path}": file not found')
    if path.is_dir():
        raise AudioError(f'"{path}": is a folder, not an audio file')
    if path.stat().st_size == 0:
        raise AudioError(f'"{path.name}": the file is empty')
    sf = _soundfile()
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except RuntimeError as exc:  # soundfile.LibsndfileError derives from it
        raise AudioError(
            f'"{path.name}": could not decode audio (libsndfile: {_short(exc)}); try WAV, FLAC, OGG or MP3'
        ) from None
    except OSError as exc:
        raise AudioError(f'"{path.name}": cannot read ({exc.strerror or exc})') from None
    if data.shape[0] == 0:
        raise AudioError(f'"{path.name}": the file holds no audio samples')
    if rate < 4000:
        raise AudioError(f'"{path.name}": sample rate {rate} Hz is too low for speech (need ≥ 4000 Hz)')
    return data, int(rate)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return text.split(": ", 1)[-1] if "Error opening" in text else text


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
    g = math.gcd(rate_in, rate_out)
    up, down = rate_out // g, rate_in // g
    n_out = int(math.ceil(len(x) * up / down))
    # Block and context lengths are multiples of `down`, so each maps to a whole number of output samples.
    block = down * max(1, int(math.ceil(rate_in * block_seconds / down)))
    ctx = down * max(1, int(math.ceil(rate_in * 0.1 / down)))
    total = block * int(math.ceil(len(x) / block))
    xp = np.zeros(ctx + total + ctx, np.float32)
    xp[ctx : ctx + len(x)] = x
    out = np.empty(total * up // down, np.float32)
    ctx_out = ctx * up // down
    block_out = block * up // down
    for b in range(total // block):
        seg = xp[b * block : b * block + block + 2 * ctx]
        y = _fft_resample_block(seg, len(seg) * up // down)
        out[b * block_out : (b + 1) * block_out] = y[ctx_out : ctx_out + block_out]
    return out[:n_out]


def rms_db(x: np.ndarray) -> float:
    if x.size == 0:
        return -math.inf
    r = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return 20 * math.log10(r) if r > 0 else -math.inf


def normalise_loudness(x: np.ndarray, rate: int) -> np.ndarray:
    """Scale so the active (speech) part sits at TARGET_RMS_DB, with a peak limit and a gain cap."""
    if x.size == 0:
        return x
    hop = max(1, rate // 100)  # 10 ms blocks
    n = len(x) // hop
    if n == 0:
        return x
    blocks = x[: n * hop].reshape(n, hop).astype(np.float64)
    block_db = 10 * np.log10(np.mean(blocks**2, axis=1) + 1e-20)
    peak_db = float(np.max(block_db))
    if peak_db < SILENCE_RMS_DB:
        return x  # silence: leave it silent rather than amplifying the noise floor
    active = block_db > max(SILENCE_RMS_DB, peak_db - 30.0)
    active_db = 10 * math.log10(float(np.mean(blocks[active] ** 2)) + 1e-20)
    gain_db = min(MAX_GAIN_DB, TARGET_RMS_DB - active_db)
    y = x * np.float32(10 ** (gain_db / 20))
    peak = float(np.max(np.abs(y)))
    if peak > 0.99:
        y *= np.float32(0.99 / peak)
    return y.astype(np.float32, copy=False)


def to_mono(data: np.ndarray) -> np.ndarray:
    return data.mean(axis=1).astype(np.float32) if data.ndim == 2 else data.astype(np.float32)


def load_audio(path, sample_rate: int = spec.SAMPLE_RATE, normalise: bool = True) -> Audio:
    """Load any supported file as mono float32 at ``sample_rate`` (16 kHz by default)."""
    data, rate = read_audio_file(path)
    if not np.all(np.isfinite(data)):
        raise AudioError(f'"{Path(path).name}": the audio contains NaN or infinite samples')
    mono = to_mono(data)
    samples = resample(mono, rate, sample_rate)
    if normalise:
        samples = normalise_loudness(samples, sample_rate)
    return Audio(samples, sample_rate, str(path), rate, int(data.shape[1]))


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
