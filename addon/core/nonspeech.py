"""Where the audio is not speech at all (music, tones, noise), from the audio encoder's P(silence) and the spectrum:
the evidence stage (core.evidence) gives such stretches no phones, and the engines keep the mouth at rest there."""

from __future__ import annotations

import numpy as np

from . import spec
from .pitch import convolve_same

# A frame is not speech where the encoder's mean P(sil) over NONSPEECH_WINDOW seconds around it reaches
# NONSPEECH_SILENCE (music, noise); where the spectrum is one narrow peak (TONE_SHARE of the energy within ±2 FFT
# bins) for at least TONE_SECONDS (pure tones and sweeps, which the encoder hears as vowels); or where the onsets
# over RHYTHM_WINDOW seconds repeat with a period of 0.1 to 1 s (their autocorrelation reaches RHYTHM_REGULARITY:
# notes and beats, which the encoder can hear as syllables) while the encoder's mean P(sil) there is at least
# RHYTHM_MIN_SILENCE (speech over a beat keeps it lower). None of the 892 vowels aligned in the speech of
# bench/transcript_acceptance.py lay on such a frame, nor any of 160 with a music bed 10 dB below the speech.
NONSPEECH_WINDOW = 0.5
NONSPEECH_SILENCE = 0.7
TONE_SHARE = 0.95
TONE_SECONDS = 0.5
RHYTHM_WINDOW = 3.0
RHYTHM_REGULARITY = 0.6
RHYTHM_MIN_SILENCE = 0.35
_FFT = 512  # samples per spectrum (32 ms)
_BANDS = np.unique(np.round(np.geomspace(2, _FFT // 2 + 1, 25)).astype(int))  # log-spaced bands for the onsets
_SPECTRA_BLOCK = 3000  # frames per block, so memory stays bounded on long audio


def spectral_cues(samples: np.ndarray, n_frames: int, frame_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Per frame (``frame_rate`` grid): whether the spectrum is one narrow peak, and the onset strength (the rise
    of log energy in log-spaced bands since the previous frame)."""
    hop = spec.SAMPLE_RATE / frame_rate
    window = np.hanning(_FFT)
    x = np.asarray(samples, np.float32)
    peaky = np.zeros(n_frames, bool)
    onset = np.zeros(n_frames)
    previous = None
    for f0 in range(0, n_frames, _SPECTRA_BLOCK):
        f1 = min(n_frames, f0 + _SPECTRA_BLOCK)
        starts = (np.arange(f0, f1) * hop + hop / 2 - _FFT / 2).astype(np.int64)
        idx = np.clip(starts[:, None] + np.arange(_FFT), 0, max(0, len(x) - 1))
        power = np.abs(np.fft.rfft((x[idx] if len(x) else np.zeros(idx.shape)) * window, axis=1)) ** 2
        power[:, :2] = 0.0  # DC
        peak = np.clip(power.argmax(axis=1)[:, None] + np.arange(-2, 3), 0, power.shape[1] - 1)
        total = power.sum(axis=1)
        peaky[f0:f1] = (np.take_along_axis(power, peak, axis=1).sum(axis=1) >= TONE_SHARE * total) & (total > 0)
        bands = np.log(np.add.reduceat(power, _BANDS[:-1], axis=1) + 1e-10)
        rise = np.diff(bands if previous is None else np.vstack([previous, bands]), axis=0)
        onset[f0 + (previous is None) : f1] = np.maximum(rise, 0.0).sum(axis=1)
        previous = bands[-1:]
    return peaky, onset


def rhythm_regularity(onset: np.ndarray, frame_rate: float) -> np.ndarray:
    """Per frame: the highest autocorrelation of the onsets in the RHYTHM_WINDOW around it at a lag of 0.1 to 1 s
    (0 where the audio is shorter than the window). Computed every 0.5 s."""
    n = len(onset)
    win, hop = int(round(RHYTHM_WINDOW * frame_rate)), max(1, int(round(0.5 * frame_rate)))
    lags = slice(max(1, int(round(0.1 * frame_rate))), int(round(1.0 * frame_rate)))
    out = np.zeros(n)
    if n < win:
        return out
    for c in range(0, n, hop):
        a = int(np.clip(c + hop // 2 - win // 2, 0, n - win))
        w = onset[a : a + win] - onset[a : a + win].mean()
        energy = float(w @ w)
        if energy > 1e-9:
            out[c : c + hop] = (np.correlate(w, w, "full")[win - 1 :][lags] / energy).max()
    return out


def speech_frames(samples: np.ndarray, silence: np.ndarray | None, frame_rate: float,
                  cues: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """True per frame (``frame_rate``) where the audio may be speech; ``silence``: the encoder's P(sil) per frame
    (None without the encoder: then only tones are found). ``cues``: spectral_cues of ``samples`` at
    ``frame_rate`` for at least as many frames (made beforehand), else they are made here."""
    n = len(silence) if silence is not None else int(np.ceil(len(samples) * frame_rate / spec.SAMPLE_RATE))
    if cues is None or len(cues[0]) < n:
        cues = spectral_cues(samples, n, frame_rate)
    peaky, onset = cues[0][:n], cues[1][:n]  # a frame's cues do not depend on how many follow it
    nonspeech = _runs_at_least(peaky, int(round(TONE_SECONDS * frame_rate)))
    if silence is not None and n:
        k = np.ones(max(1, int(round(NONSPEECH_WINDOW * frame_rate))))
        mean = convolve_same(silence, k) / convolve_same(np.ones(n), k)
        nonspeech |= mean >= NONSPEECH_SILENCE
        nonspeech |= (rhythm_regularity(onset, frame_rate) >= RHYTHM_REGULARITY) & (mean >= RHYTHM_MIN_SILENCE)
    return ~nonspeech


def _runs_at_least(mask: np.ndarray, length: int) -> np.ndarray:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.view(np.int8), [0]])))
    out = np.zeros(len(mask), bool)
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        if b - a >= length:
            out[a:b] = True
    return out
