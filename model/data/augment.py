"""Audio augmentation for the corpus: tempo, pitch, EQ, reverb, noise, gain and codec artefacts.

Every step keeps phone times valid: filters are zero-phase, the reverb's direct path arrives at t=0, codec
delay is measured and removed, and a tempo change returns the factor by which the caller scales its phone
times. Each step is chosen and parameterised by the caller's numpy Generator, so a clip's augmentation is
reproducible and recorded.
"""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np

from facepolicy.core import spec

SR = spec.SAMPLE_RATE


def _sox(samples: np.ndarray, *effect: str) -> np.ndarray:
    """Run one sox effect chain on float32 mono samples (no dither, so the result is deterministic)."""
    if shutil.which("sox") is None:
        raise RuntimeError("sox not found; apt-get install sox")
    cmd = ["sox", "-D", "-t", "f32", "-r", str(SR), "-c", "1", "-", "-t", "f32", "-", *effect]
    proc = subprocess.run(cmd, input=np.asarray(samples, np.float32).tobytes(), capture_output=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"sox {' '.join(effect)} failed: {proc.stderr.decode()[:200]}")
    return np.frombuffer(proc.stdout, dtype=np.float32).copy()


def tempo(samples: np.ndarray, factor: float) -> np.ndarray:
    """Speed up (factor > 1) or slow down without changing pitch (WSOLA tuned for speech)."""
    return _sox(samples, "tempo", "-s", f"{factor:.4f}")


def pitch_shift(samples: np.ndarray, cents: float) -> np.ndarray:
    out = _sox(samples, "pitch", f"{cents:.1f}")
    return _fit_length(out, len(samples))


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    return x[:n] if len(x) >= n else np.concatenate([x, np.zeros(n - len(x), np.float32)])


def random_eq(samples: np.ndarray, rng: np.random.Generator, max_db: float = 9.0) -> tuple[np.ndarray, dict]:
    """A smooth random frequency response (log-spaced control points), applied zero-phase in the FFT domain."""
    n_points = 8
    gains_db = rng.uniform(-max_db, max_db, n_points)
    lo, hi = 0.0, 0.0
    if rng.random() < 0.25:  # telephone-like band limit
        lo, hi = float(rng.uniform(200, 400)), float(rng.uniform(3000, 3800))
    n = _fast_len(len(samples))  # pocketfft is slow on lengths with large prime factors
    spec_x = np.fft.rfft(samples, n=n)
    freqs = np.fft.rfftfreq(n, 1.0 / SR)
    ctrl = np.geomspace(60.0, SR / 2, n_points)
    curve_db = np.interp(np.log(np.maximum(freqs, 1.0)), np.log(ctrl), gains_db)
    gain = 10.0 ** (curve_db / 20.0)
    if hi > 0:
        gain *= 1.0 / (1.0 + (lo / np.maximum(freqs, 1.0)) ** 4) / (1.0 + (freqs / hi) ** 8)
    out = np.fft.irfft(spec_x * gain, n=n)[: len(samples)].astype(np.float32)
    return out, {"gains_db": [round(float(g), 2) for g in gains_db], "band": [round(lo), round(hi)]}


def random_reverb(samples: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Convolve with a synthetic room: direct path at t=0, exponentially decaying diffuse tail."""
    from scipy.signal import fftconvolve

    rt60 = float(rng.uniform(0.15, 0.8))
    wet = float(rng.uniform(0.1, 0.6))
    n = int(rt60 * SR)
    t = np.arange(n) / SR
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    tail[: int(0.003 * SR)] = 0.0  # first reflections arrive a few ms after the direct sound
    tail /= np.sqrt(np.sum(tail**2)) + 1e-9
    ir = wet * tail
    ir[0] += 1.0
    out = fftconvolve(samples, ir)[: len(samples)].astype(np.float32)
    return out, {"rt60": round(rt60, 3), "wet": round(wet, 3)}


def _fast_len(n: int) -> int:
    from scipy.fft import next_fast_len

    return int(next_fast_len(n, real=True))


def _coloured_noise(n: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    m = _fast_len(n)
    white = rng.standard_normal(m)
    if colour == "white":
        return white[:n]
    f = np.fft.rfftfreq(m, 1.0 / SR)
    power = {"pink": 1.0, "brown": 2.0, "blue": -1.0}[colour]
    shape = 1.0 / np.maximum(f, 20.0) ** (power / 2.0)
    return np.fft.irfft(np.fft.rfft(white) * shape, n=m)[:n]


def active_rms(samples: np.ndarray) -> float:
    """RMS over the louder half of 20 ms frames (ignores pauses)."""
    frame = SR // 50
    k = len(samples) // frame
    if k == 0:
        return float(np.sqrt(np.mean(samples**2) + 1e-12))
    e = np.mean(samples[: k * frame].reshape(k, frame) ** 2, axis=1)
    top = np.sort(e)[k // 2:]
    return float(np.sqrt(np.mean(top) + 1e-12))


def add_noise(samples: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    colour = str(rng.choice(["white", "pink", "brown", "blue"]))
    snr_db = float(rng.uniform(5.0, 35.0))
    noise = _coloured_noise(len(samples), colour, rng)
    hum = 0.0
    if rng.random() < 0.2:  # mains hum with harmonics
        f0 = float(rng.choice([50.0, 60.0]))
        t = np.arange(len(samples)) / SR
        noise = noise + 3.0 * sum(np.sin(2 * np.pi * f0 * h * t) / h for h in (1, 2, 3))
        hum = f0
    noise *= active_rms(samples) / (np.sqrt(np.mean(noise**2)) + 1e-12) * 10 ** (-snr_db / 20)
    return (samples + noise).astype(np.float32), {"colour": colour, "snr_db": round(snr_db, 2), "hum_hz": hum}


def random_gain(samples: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Level change; sometimes driven into clipping, as a hot microphone would be."""
    peak = float(np.max(np.abs(samples))) + 1e-9
    target_peak_db = float(rng.uniform(-30.0, 0.0)) if rng.random() > 0.1 else float(rng.uniform(0.0, 8.0))
    out = samples * (10 ** (target_peak_db / 20.0) / peak)
    return np.clip(out, -1.0, 1.0).astype(np.float32), {"peak_db": round(target_peak_db, 2)}


CODECS = ("mp3", "vorbis", "opus", "ulaw8k", "gsm8k")


def codec_roundtrip(samples: np.ndarray, codec: str, quality: float = 0.5) -> np.ndarray:
    """Encode and decode through a lossy codec; the codec's delay is found by cross-correlation and removed."""
    import soundfile as sf

    x = np.clip(samples, -1.0, 1.0).astype(np.float32)
    buf = io.BytesIO()
    rate = SR
    if codec == "mp3":
        sf.write(buf, x, SR, format="MP3", subtype="MPEG_LAYER_III", compression_level=quality)
    elif codec == "vorbis":
        sf.write(buf, x, SR, format="OGG", subtype="VORBIS", compression_level=quality)
    elif codec == "opus":
        sf.write(buf, x, SR, format="OGG", subtype="OPUS", compression_level=quality)
    elif codec in ("ulaw8k", "gsm8k"):
        from scipy.signal import resample_poly

        rate = 8000
        x8 = resample_poly(x, 1, 2).astype(np.float32)
        sf.write(buf, np.clip(x8, -1, 1), rate, format="WAV", subtype="ULAW" if codec == "ulaw8k" else "GSM610")
    else:
        raise ValueError(f"unknown codec {codec!r}")
    buf.seek(0)
    y, r = sf.read(buf, dtype="float32")
    if y.ndim > 1:
        y = y.mean(axis=1)
    if r != SR:
        from scipy.signal import resample_poly

        y = resample_poly(y, SR, r).astype(np.float32)
    return _fit_length(_remove_delay(x, y), len(x))


def _remove_delay(ref: np.ndarray, y: np.ndarray, max_lag: int = 4000) -> np.ndarray:
    """Shift ``y`` so it lines up with ``ref`` (codecs add encoder/decoder padding)."""
    from scipy.signal import fftconvolve

    n = min(len(ref), len(y))
    if n < 64:
        return y
    c = fftconvolve(y[:n], ref[:n][::-1], mode="full")  # c[k + n - 1] = sum y[t + k] ref[t]
    mid = n - 1
    window = c[mid - min(max_lag, mid): mid + max_lag + 1]
    lag = int(np.argmax(window)) - min(max_lag, mid)
    if lag > 0:
        return y[lag:]
    if lag < 0:
        return np.concatenate([np.zeros(-lag, np.float32), y])
    return y


def augment(samples: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> tuple[np.ndarray, dict, float]:
    """A random chain of augmentations. Returns (samples, record, time_scale): multiply phone times by time_scale.

    ``strength`` scales how often each step is applied (0: never).
    """
    rec: dict = {}
    x = np.asarray(samples, np.float32)
    time_scale = 1.0

    def p(base: float) -> bool:
        return rng.random() < base * strength

    if p(0.2):
        factor = float(rng.uniform(0.88, 1.14))
        n = len(x)
        x = tempo(x, factor)
        time_scale = len(x) / n
        rec["tempo"] = round(factor, 4)
    if p(0.25):
        cents = float(rng.uniform(-300.0, 300.0))
        x = pitch_shift(x, cents)
        rec["pitch_cents"] = round(cents, 1)
    if p(0.35):
        x, rec["eq"] = random_eq(x, rng)
    if p(0.3):
        x, rec["reverb"] = random_reverb(x, rng)
    if p(0.4):
        x, rec["noise"] = add_noise(x, rng)
    if p(0.5):
        x, rec["gain"] = random_gain(x, rng)
    if p(0.2):
        codec = str(rng.choice(CODECS))
        quality = float(rng.uniform(0.3, 0.95))
        x = codec_roundtrip(x, codec, quality)
        rec["codec"] = {"name": codec, "compression": round(quality, 2)}
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 1.0:
        x = x / peak
    return x.astype(np.float32), rec, time_scale
