"""Audio and phone features for the neural engine, in numpy: the ONE implementation used by training and runtime.

Log-mel frames run at 100 Hz (10 ms hop); the face runs at ``spec.MODEL_FPS``. ``mel_window`` and
``model_frame_interp`` give the fixed windows and linear map from the (strided) encoder grid to model frames, so
the torch training graph and the numpy runtime align audio to faces identically. Phone evidence (from exact
corpus timings, a forced alignment or a recognizer) becomes per-frame soft one-hots over ``phones.PHONES``.
"""

from __future__ import annotations

import math

import numpy as np

from . import spec
from .phones import PHONE_INDEX, PHONES, PhoneSegment

MEL_RATE = 100  # mel frames per second
HOP = spec.SAMPLE_RATE // MEL_RATE  # 160 samples
WIN = 400  # 25 ms analysis window
N_FFT = 512
N_MELS = 80
F_MIN = 20.0
F_MAX = 7600.0
LOG_FLOOR = 1e-6
NUM_PHONES = len(PHONES)
# Frames per block when computing long inputs, so memory stays bounded: 10 s of audio per block needs about 16 MB
# of temporaries (60 s needed 100 MB). Every frame is computed on its own, so the block size never changes a bit.
_BLOCK_FRAMES = 1000


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, rate: int = spec.SAMPLE_RATE,
                   f_min: float = F_MIN, f_max: float = F_MAX) -> np.ndarray:
    """(n_fft//2+1, n_mels) triangular HTK-mel filters with unit area, so loudness does not depend on band width."""
    freqs = np.arange(n_fft // 2 + 1) * rate / n_fft
    edges = _mel_to_hz(np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - lo) / (mid - lo)
    down = (hi - freqs[None, :]) / (hi - mid)
    tri = np.maximum(0.0, np.minimum(up, down))  # (n_mels, bins)
    tri *= 2.0 / (hi - lo)
    return tri.T.astype(np.float32)


_FILTERS = mel_filterbank()
# Each filter's non-zero bins: the projection is done filter by filter with numpy's own (single-threaded, pairwise)
# sums, not with a BLAS matrix product, whose result depends on how many threads BLAS uses (OMP_NUM_THREADS=1 in a
# Ray worker gave other bits than a local worker).
_FILTER_SPANS = [(int(nz[0]), int(nz[-1]) + 1) for nz in (np.nonzero(_FILTERS[:, m])[0] for m in range(N_MELS))]
_WINDOW = np.hanning(WIN + 1)[:-1].astype(np.float32)  # periodic Hann


def n_mel_frames(n_samples: int) -> int:
    """Mel frame i is centred on sample i*HOP; frames cover the whole signal."""
    return max(1, int(math.ceil(n_samples / HOP)))


def n_model_frames(n_samples: int, fps: float = spec.MODEL_FPS) -> int:
    """Face frames for a clip: round(duration * fps), at least 1 (a FaceTrack covers n_frames / fps seconds)."""
    return max(1, int(round(n_samples * fps / spec.SAMPLE_RATE)))


def log_mel(samples: np.ndarray, start_frame: int = 0, n_frames: int | None = None) -> np.ndarray:
    """(n_frames, N_MELS) float32 natural-log mel energies of 16 kHz mono ``samples``.

    Frames ``start_frame .. start_frame+n_frames`` of the whole signal's grid are computed, so a long file can be
    processed piecewise and every piece equals the same rows of the full computation. Outside the signal is zeros.
    """
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"log_mel needs mono samples, got shape {x.shape}")
    if n_frames is None:
        n_frames = n_mel_frames(len(x)) - start_frame
    out = np.empty((max(0, n_frames), N_MELS), np.float32)
    for b0 in range(0, n_frames, _BLOCK_FRAMES):
        nb = min(_BLOCK_FRAMES, n_frames - b0)
        f0 = start_frame + b0
        # Samples [f0*HOP - WIN/2, (f0+nb-1)*HOP + WIN/2) with zeros outside the signal.
        s0 = f0 * HOP - WIN // 2
        seg_len = (nb - 1) * HOP + WIN
        seg = np.zeros(seg_len, np.float32)
        a, b = max(0, s0), min(len(x), s0 + seg_len)
        if b > a:
            seg[a - s0 : b - s0] = x[a:b]
        idx = np.arange(nb)[:, None] * HOP + np.arange(WIN)[None, :]
        frames = seg[idx] * _WINDOW
        power = np.abs(np.fft.rfft(frames, n=N_FFT, axis=1)).astype(np.float32) ** 2
        power_t = np.ascontiguousarray(power.T)
        for m, (lo, hi) in enumerate(_FILTER_SPANS):
            out[b0 : b0 + nb, m] = (power_t[lo:hi] * _FILTERS[lo:hi, m, None]).sum(axis=0)
        out[b0 : b0 + nb] = np.log(out[b0 : b0 + nb] + LOG_FLOOR)
    return out


def model_frame_interp(n_frames: int, n_src: int, fps: float = spec.MODEL_FPS, start: int = 0, stride: int = 1,
                       offset: int = 0):
    """Linear interpolation from a feature grid to model frames ``start .. start+n_frames``.

    The grid runs at MEL_RATE/stride: its frame j pools mel frames stride*j .. stride*j+stride-1 and sits at
    their centre (a stride-2 encoder has frames at (2j + 0.5) / MEL_RATE s). ``offset`` is the grid index of the
    first row the caller holds, and there are ``n_src`` rows. Returns (lo, hi, w) with
    model frame k = (1-w[k]) * src[lo[k]] + w[k] * src[hi[k]], indices clamped to ``[0, n_src)``.
    """
    mel_pos = np.arange(start, start + n_frames, dtype=np.float64) * (MEL_RATE / fps)
    pos = np.clip((mel_pos - (stride - 1) / 2) / stride - offset, 0.0, n_src - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_src - 1)
    w = (pos - lo).astype(np.float32)
    return lo, hi, w


def to_model_rate(x: np.ndarray, n_frames: int, fps: float = spec.MODEL_FPS, start: int = 0, stride: int = 1,
                  offset: int = 0) -> np.ndarray:
    """Resample (n_src, D) grid features to (n_frames, D) model-rate features (see model_frame_interp)."""
    lo, hi, w = model_frame_interp(n_frames, x.shape[0], fps, start, stride, offset)
    w = w[:, None]
    return ((1.0 - w) * x[lo] + w * x[hi]).astype(np.float32)


def mel_window(start: int, n_frames: int, margin: int, stride: int = 1,
               fps: float = spec.MODEL_FPS) -> tuple[int, int]:
    """(first mel frame, mel frame count) an encoder needs for model frames start..start+n_frames with ``margin``
    mel frames of context each side; both are multiples of ``stride``, so windows share the whole file's grid."""
    ratio = MEL_RATE / fps
    m0 = int(np.floor(start * ratio)) - margin
    m1 = int(np.ceil((start + n_frames - 1) * ratio)) + 1 + margin
    m0 = stride * int(np.floor(m0 / stride))
    m1 = stride * int(np.ceil(m1 / stride))
    return m0, m1 - m0


def phone_frames(segments, n_frames: int, fps: float, start: int = 0) -> np.ndarray:
    """(n_frames, NUM_PHONES) soft one-hots: the share of each frame's interval that each phone covers.

    Frame k covers [(k-0.5)/fps, (k+0.5)/fps). Time no segment covers counts as silence, so rows sum to 1.
    """
    out = np.zeros((n_frames, NUM_PHONES), np.float32)
    if n_frames <= 0:
        return out
    t0 = (np.arange(start, start + n_frames, dtype=np.float64) - 0.5) / fps
    t1 = t0 + 1.0 / fps
    for seg in segments:
        phone, s, e = _segment_fields(seg)
        if e <= s:
            continue
        k0 = max(0, int(math.floor(s * fps - 0.5)) - start)
        k1 = min(n_frames, int(math.ceil(e * fps + 0.5)) - start + 1)
        if k1 <= k0:
            continue
        overlap = np.minimum(t1[k0:k1], e) - np.maximum(t0[k0:k1], s)
        out[k0:k1, PHONE_INDEX[phone]] += np.maximum(0.0, overlap) * fps
    covered = out.sum(axis=1)
    out[:, PHONE_INDEX["sil"]] += np.maximum(0.0, 1.0 - covered)
    out /= np.maximum(out.sum(axis=1, keepdims=True), 1e-6)
    return out


def phone_labels(segments, n_frames: int, fps: float = MEL_RATE, start: int = 0) -> np.ndarray:
    """(n_frames,) int64 index of the phone covering most of each frame (silence where none does)."""
    return phone_frames(segments, n_frames, fps, start).argmax(axis=1).astype(np.int64)


def _segment_fields(seg) -> tuple[str, float, float]:
    if isinstance(seg, PhoneSegment):
        return seg.phone, float(seg.start), float(seg.end)
    phone, s, e = seg
    return str(phone), float(s), float(e)
