"""Fundamental frequency (F0) and energy of speech at 50 Hz, in numpy: they drive brows, nods and head motion.

F0 uses the YIN cumulative-mean-normalised difference (de Cheveigné & Kawahara 2002), computed with FFTs in blocks
so memory stays bounded on long audio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import spec

RATE = 50  # analysis frames per second (brows and head need no finer resolution)
F0_MIN = 60.0
F0_MAX = 400.0
_DECIMATE = 2  # F0 is searched at 8 kHz: ample for F0 ≤ 400 Hz and four times cheaper
_WIN = 320  # 40 ms at 8 kHz: two periods of the lowest F0
_THRESHOLD = 0.2
_BLOCK = 500  # frames per FFT block: 10 s, about 20 MB of temporaries (each frame is computed on its own)


@dataclass
class Prosody:
    """Per-frame prosody at ``RATE`` frames per second; frame k is centred at k / RATE seconds."""

    f0: np.ndarray      # (N,) Hz, 0 where unvoiced
    voiced: np.ndarray  # (N,) bool
    energy: np.ndarray  # (N,) RMS amplitude (linear) over a 40 ms window

    @property
    def times(self) -> np.ndarray:
        return np.arange(len(self.f0)) / RATE


def frame_signal(x: np.ndarray, hop: int, win: int, n_frames: int, start: int = 0, offset: int = 0) -> np.ndarray:
    """(n_frames, win) frames centred at (start + k) * hop, zero-padded at the edges. ``x`` may be the part of a
    longer signal that begins at sample ``offset`` and holds every sample the frames reach."""
    centres = (start + np.arange(n_frames)) * hop - offset
    idx = centres[:, None] + np.arange(win)[None, :] - win // 2
    valid = (idx >= 0) & (idx < len(x))
    out = np.zeros(idx.shape, np.float32)
    out[valid] = x[idx[valid]]
    return out


def convolve_same(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``np.convolve(x, kernel, mode="same")`` that keeps ``len(x)`` also when ``x`` is shorter than the kernel
    (numpy then returns ``len(kernel)`` values, which broke clips of a few milliseconds)."""
    if len(x) == 0:
        return np.zeros(0, np.result_type(x, kernel))
    lo = (len(kernel) - 1) // 2
    return np.convolve(x, kernel, mode="full")[lo : lo + len(x)]


def rms_envelope(samples: np.ndarray, rate: int, frame_rate: float, window: float = 0.04) -> np.ndarray:
    """RMS amplitude in a Hann window of ``window`` seconds centred on each frame k / frame_rate.

    Works on 5 ms sub-frame energies (summed in blocks), so cost and memory stay small on hours of audio.
    """
    samples = np.asarray(samples, np.float32)
    n = int(np.ceil(len(samples) / rate * frame_rate))
    if len(samples) == 0 or n == 0:
        return np.zeros(n)
    sub = max(1, rate // 200)
    n_sub = len(samples) // sub
    energy = np.empty(n_sub + 1)
    block = sub * 4000  # 20 s of samples in float64 at a time
    for start in range(0, n_sub * sub, block):
        seg = samples[start:min(start + block, n_sub * sub)].astype(np.float64)
        energy[start // sub:start // sub + len(seg) // sub] = np.square(seg).reshape(-1, sub).sum(axis=1)
    tail = samples[n_sub * sub:].astype(np.float64)
    energy[n_sub] = np.square(tail).sum() * sub / len(tail) if len(tail) else (energy[n_sub - 1] if n_sub else 0.0)
    taps = max(1, int(round(window * rate / sub)))
    hann = np.hanning(taps + 2)[1:-1]
    hann /= hann.sum()
    smooth = convolve_same(energy, hann) / sub
    # Sub-frame k covers samples [k·sub, (k+1)·sub): its centre is at (k + 0.5)·sub / rate seconds.
    pos = np.arange(n) / frame_rate * rate / sub - 0.5
    return np.sqrt(np.maximum(np.interp(pos, np.arange(len(smooth)), smooth), 0.0))


def yin_frames(frames: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, win) frames → (f0 Hz, aperiodicity 0..1) per frame."""
    n, win = frames.shape
    tau_min = int(rate / F0_MAX)
    tau_max = min(win // 2, int(rate / F0_MIN))
    half = win // 2
    x = frames.astype(np.float64)
    nfft = 1 << int(np.ceil(np.log2(2 * win)))
    spec_x = np.fft.rfft(x, nfft)
    spec_w = np.fft.rfft(x[:, :half], nfft)
    # Autocorrelation of the first half-window against the whole window at each lag.
    r = np.fft.irfft(spec_x * np.conj(spec_w), nfft)[:, : tau_max + 1]
    sq = np.cumsum(np.concatenate([np.zeros((n, 1)), x**2], axis=1), axis=1)
    e0 = sq[:, half] - sq[:, 0]
    taus = np.arange(tau_max + 1)
    e_tau = sq[:, taus + half] - sq[:, taus]
    d = e0[:, None] + e_tau - 2 * r
    d[:, 0] = 0
    cum = np.cumsum(d[:, 1:], axis=1) / np.arange(1, tau_max + 1)
    cmnd = np.ones_like(d)
    cmnd[:, 1:] = d[:, 1:] / np.maximum(cum, 1e-12)
    search = cmnd[:, tau_min:]
    below = search < _THRESHOLD
    # First dip under the threshold, then walk to its local minimum; otherwise the global minimum.
    first = np.where(below.any(axis=1), below.argmax(axis=1), search.argmin(axis=1))
    for _ in range(8):
        nxt = np.minimum(first + 1, search.shape[1] - 1)
        step = search[np.arange(n), nxt] < search[np.arange(n), first]
        first = np.where(step, nxt, first)
    tau = first + tau_min
    t0 = np.clip(tau, 1, tau_max - 1)
    a, b, c = cmnd[np.arange(n), t0 - 1], cmnd[np.arange(n), t0], cmnd[np.arange(n), t0 + 1]
    denom = a - 2 * b + c
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0.0)
    tau_f = t0 + np.clip(shift, -1, 1)
    return rate / tau_f, np.clip(b, 0, 1)


def estimate_prosody(samples: np.ndarray, rate: int = spec.SAMPLE_RATE, pitch: bool = True,
                     progress: Callable[[float], None] | None = None) -> Prosody:
    """F0, voicing and energy at ``RATE`` frames per second; ``pitch=False``: energy only (no F0, nothing voiced),
    for a caller that needs loudness alone (the F0 search is most of the time). ``progress(fraction)`` after each
    block of the F0 search (an hour takes several seconds)."""
    samples = np.asarray(samples, np.float32)
    n = int(np.ceil(len(samples) / rate * RATE))
    energy = rms_envelope(samples, rate, RATE)[:n]
    if not pitch:
        return Prosody(np.zeros(n, np.float32), np.zeros(n, bool), energy.astype(np.float32))
    n_low = len(samples) // _DECIMATE
    low_rate = rate // _DECIMATE
    hop = low_rate // RATE
    f0 = np.zeros(n)
    aper = np.ones(n)
    loud_floor = max(1e-4, 0.05 * float(np.percentile(energy, 95))) if n else 0.0
    for start in range(0, n, _BLOCK):
        m = min(_BLOCK, n - start)
        active = np.nonzero(energy[start:start + m] > loud_floor)[0]
        if len(active) == 0:
            continue
        # Two-tap average then drop every other sample (a gentle low-pass that keeps the F0 band intact), for the
        # samples this block's frames reach only: the whole decimated signal of an hour would be 115 MB.
        a = max(0, start * hop - _WIN // 2)
        b = min(n_low, (start + m - 1) * hop - _WIN // 2 + _WIN)
        low = samples[a * _DECIMATE : b * _DECIMATE].reshape(-1, _DECIMATE).mean(axis=1)
        frames = frame_signal(low, hop, _WIN, m, start, offset=a)[active]
        f0[start + active], aper[start + active] = yin_frames(frames, low_rate)
        if progress is not None:
            progress((start + m) / n)
    voiced = (aper < 0.35) & (energy > loud_floor) & (f0 >= F0_MIN) & (f0 <= F0_MAX)
    # Remove isolated voiced frames (clicks) and octave jumps against the local median.
    voiced &= convolve_same(voiced.astype(np.int32), np.ones(3, np.int32)) >= 2
    f0 = np.where(voiced, f0, 0.0)
    return Prosody(f0.astype(np.float32), voiced, energy.astype(np.float32))


def semitones(f0: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """F0 in semitones relative to the speaker's median voiced F0 (0 where unvoiced)."""
    if not np.any(voiced):
        return np.zeros(len(f0), np.float32)
    ref = float(np.median(f0[voiced]))
    st = np.zeros(len(f0), np.float32)
    st[voiced] = 12.0 * np.log2(f0[voiced] / ref)
    return st
