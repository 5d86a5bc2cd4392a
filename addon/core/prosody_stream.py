"""Per-frame prosody computed as the audio comes, the same whether a line arrives whole or in chunks: the
features of the performer's brow layer (core.performer_brows), offline and live alike.

Every 20 ms analysis frame (core.pitch's rate) is computed once, as soon as the 40 ms around it has arrived: its F0
and aperiodicity by core.pitch's YIN on the audio decimated to 8 kHz, and its loudness as a Hann-weighted RMS. It
is voiced where YIN finds a period between F0_MIN and F0_MAX with aperiodicity under 0.35 and it is louder than 5 %
of the loudness heard so far (95th percentile). Pitch is then in semitones from the median voiced F0 heard so far and
loudness over that 95th percentile: both from histograms of everything heard, so a frame's features depend only on
the audio up to 20 ms after it and memory stays flat on a session of hours. Model frame k (k / MODEL_FPS seconds)
interpolates the two analysis frames around it.
"""

from __future__ import annotations

import math

import numpy as np

from . import spec
from .features import n_model_frames
from .pitch import F0_MAX, F0_MIN, RATE, yin_frames

FEATURES = ("semitones", "rise", "voiced", "loudness", "prominence")
_HOP = spec.SAMPLE_RATE // RATE  # 320 samples per analysis frame
_HALF = spec.SAMPLE_RATE // 50  # 20 ms each side of an analysis frame's centre
_WINDOW = np.hanning(2 * _HALF + 2)[1:-1]
_ST_BINS = np.arange(0.0, 12 * math.log2(F0_MAX / F0_MIN) + 0.1, 0.1)  # F0 above F0_MIN in 0.1 semitones
_DB_BINS = np.arange(-120.0, 0.01, 0.25)  # loudness in dB of full scale
_BLOCK = 500  # analysis frames per YIN call (10 s: bounded temporaries on a whole line)
_PROMINENCE = int(0.5 * spec.MODEL_FPS)  # model frames of voiced pitch before a frame that its prominence compares


class ProsodyStream:
    """``push(samples)`` 16 kHz mono audio as it comes; ``row(k)`` model frame k's features (len(FEATURES),) once
    it exists (k < ``ready``); ``finish()`` at the end of the audio: every frame it covers (features.n_model_frames),
    as if silence followed. ``keep``: model frames kept before the newest (None: all, for a whole line).
    ``reference_f0``: the speaker's usual F0 (Hz) that pitch is measured from (None: the median heard so far)."""

    def __init__(self, keep: int | None = None, reference_f0: float | None = None) -> None:
        self.keep = keep
        self.reference = None if reference_f0 is None else 12.0 * math.log2(reference_f0 / F0_MIN)
        self._audio = np.zeros(0, np.float32)  # samples from absolute sample _base
        self._base = 0
        self.samples_in = 0
        self._st_hist = np.zeros(len(_ST_BINS), np.int64)
        self._db_hist = np.zeros(len(_DB_BINS), np.int64)
        self._n = 0  # analysis frames computed
        self._frame_base = 0  # analysis frame of _analysis[0]
        self._analysis: list[tuple[float, float, float]] = []  # (semitones, voiced, loudness) per analysis frame
        self._row_base = 0  # model frame of _rows[0]
        self._rows: list[np.ndarray] = []
        self._voiced_pitch: list[float] = []  # semitones of the last _PROMINENCE model frames (nan: unvoiced)
        self._finished = False

    @property
    def ready(self) -> int:
        """Model frames whose features exist."""
        return self._row_base + len(self._rows)

    def push(self, samples: np.ndarray) -> None:
        if self._finished:
            raise ValueError("the prosody stream has finished")
        x = np.nan_to_num(np.asarray(samples, np.float32).reshape(-1), nan=0.0, posinf=0.0, neginf=0.0)
        self._audio = np.concatenate([self._audio, x])
        self.samples_in += len(x)
        self._analyse(self.samples_in)

    def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        end = self.samples_in
        self._audio = np.concatenate([self._audio, np.zeros(2 * _HALF + _HOP, np.float32)])
        self._analyse(end + 2 * _HALF + _HOP, frames=n_model_frames(end) if end else 0)

    def row(self, k: int) -> np.ndarray:
        """Model frame ``k``'s features, ``k`` clamped into the frames that exist (the first and the last frame
        stand for those before and after the line)."""
        if not self._rows:
            return np.zeros(len(FEATURES))
        k = min(max(k, 0), self.ready - 1)
        if k < self._row_base:
            raise ValueError(f"prosody of frame {k} was forgotten (kept from {self._row_base})")
        return self._rows[k - self._row_base]

    def rows(self, n: int) -> np.ndarray:
        """(n, len(FEATURES)): the first ``n`` frames (a stream that keeps them all)."""
        return np.stack([self.row(k) for k in range(n)]) if n else np.zeros((0, len(FEATURES)))

    @property
    def pitch_histogram(self) -> np.ndarray:
        """Counts of the voiced frames heard in 0.1-semitone bins from F0_MIN (see median_f0)."""
        return self._st_hist.copy()

    # --- analysis ----------------------------------------------------------------------------------------------

    def _analyse(self, available: int, frames: int | None = None) -> None:
        """Analysis frames whose 40 ms have arrived (``available`` samples, zeros past the end when finishing), then
        the model frames they complete; ``frames``: when finishing, the line's model frames."""
        last = (available - _HALF) // _HOP  # analysis frame j reads samples up to j * HOP + HALF
        for j0 in range(self._n, last + 1, _BLOCK):
            self._frames(j0, min(last + 1, j0 + _BLOCK))
        while frames is None or self.ready < frames:
            k = self.ready
            pos = k * RATE / spec.MODEL_FPS
            lo, hi = int(math.floor(pos)), int(math.ceil(pos))
            if hi >= self._n:
                break
            self._add_row(lo, hi, pos - lo)
        self._forget()

    def _frames(self, j0: int, j1: int) -> None:
        a = j0 * _HOP - _HALF
        b = (j1 - 1) * _HOP + _HALF
        x = self._audio[max(a, self._base) - self._base : b - self._base]
        x = np.concatenate([np.zeros(max(0, self._base - a), np.float32), x])  # before the audio: silence
        idx = np.arange(j1 - j0)[:, None] * _HOP + np.arange(2 * _HALF)[None, :]
        frames = x[idx].astype(np.float64)
        rms = np.sqrt((frames**2 * _WINDOW).sum(axis=1) / _WINDOW.sum())
        f0, aper = yin_frames(frames.reshape(len(frames), -1, 2).mean(axis=2), spec.SAMPLE_RATE // 2)
        for r, f, ap in zip(rms, f0, aper, strict=True):
            self._db_hist[_bin(_DB_BINS, 20.0 * math.log10(max(r, 1e-6)))] += 1
            top = 10.0 ** (_percentile(self._db_hist, _DB_BINS, 0.95) / 20.0)
            voiced = bool(ap < 0.35 and F0_MIN <= f <= F0_MAX and r > max(1e-4, 0.05 * top))
            st = 0.0
            if voiced:
                pitch = 12.0 * math.log2(f / F0_MIN)
                self._st_hist[_bin(_ST_BINS, pitch)] += 1
                ref = self.reference if self.reference is not None else _percentile(self._st_hist, _ST_BINS, 0.5)
                st = float(np.clip(pitch - ref, -6.0, 12.0))
            self._analysis.append((st, float(voiced), float(min(r / top, 1.5))))
        self._n = j1

    def _add_row(self, lo: int, hi: int, w: float) -> None:
        a, b = self._analysis[lo - self._frame_base], self._analysis[hi - self._frame_base]
        st, voiced, loud = ((1 - w) * a[i] + w * b[i] for i in range(3))
        # Prominence: how far the pitch rises over its voiced mean of the last half second.
        recent = [v for v in self._voiced_pitch if v == v]
        prominence = max(st - float(np.mean(recent)), 0.0) if voiced > 0.5 and recent else 0.0
        self._voiced_pitch = (self._voiced_pitch + [st if voiced > 0.5 else math.nan])[-_PROMINENCE:]
        self._rows.append(np.array([st, max(st, 0.0), voiced, loud, prominence]))

    def _forget(self) -> None:
        """Keep the audio and analysis frames later frames read, and ``keep`` model frames."""
        drop = (self._n * _HOP - _HALF) - self._base
        if drop > spec.SAMPLE_RATE:
            self._audio = self._audio[drop:]
            self._base += drop
        used = int(math.floor(self.ready * RATE / spec.MODEL_FPS))  # the next row's first analysis frame
        if used - self._frame_base > 1000:
            del self._analysis[: used - self._frame_base]
            self._frame_base = used
        if self.keep is not None and len(self._rows) > 2 * self.keep + 100:
            cut = len(self._rows) - self.keep
            del self._rows[:cut]
            self._row_base += cut


def median_f0(histogram: np.ndarray) -> float | None:
    """The median F0 (Hz) of ProsodyStream.pitch_histogram counts (summed over takes), None when none is voiced."""
    if not histogram.sum():
        return None
    return float(F0_MIN * 2.0 ** (_percentile(histogram, _ST_BINS, 0.5) / 12.0))


def _bin(bins: np.ndarray, value: float) -> int:
    return int(min(max(np.searchsorted(bins, value), 0), len(bins) - 1))


def _percentile(hist: np.ndarray, bins: np.ndarray, q: float) -> float:
    total = int(hist.sum())
    if not total:
        return float(bins[0])
    return float(bins[min(int(np.searchsorted(np.cumsum(hist), q * total)), len(bins) - 1)])
