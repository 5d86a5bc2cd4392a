"""Whether a take's curves are in sync with its audio: the cross-correlation of mouth opening (jawOpen) with the
speech envelope, measured for the capture and for the articulation teacher's mouth on the same recognised phones,
so the mouth's natural lag behind the sound cancels and what is left is the capture's offset.

Offsets beyond KEEP_S (the check's own precision, bench/bench_capture_sync.py) and up to MAX_OFFSET_S are corrected:
the curves then follow the sound as the teacher's mouth does, which is the timing the lip-sync figures score and the
one at which a plosive's closure opens with its burst. A uniform lead kept from the captures is learned as a lead,
and lips that part before every burst look early. ``keep`` = PERFORMER_TIMING_S (`facepolicy finetune --keep-timing`)
keeps offsets up to 0.1 s as the performer's own timing instead (people open the mouth before the sound, by up to
about 0.1 s). Beyond MAX_OFFSET_S the take is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import spec

RATE = 100.0  # Hz of the correlated signals (a 10 ms step; the model's 33 ms frames are too coarse)
MAX_OFFSET_S = 0.5
KEEP_S = 0.02  # offsets within this are the check's precision, and are left as they are
PERFORMER_TIMING_S = 0.1  # --keep-timing: offsets within this are kept as the performer's own timing
SEARCH_S = 2.0  # lags searched each side, wider than MAX_OFFSET_S so a take further out is found and refused
MIN_CORRELATION = 0.2  # below this peak correlation the check cannot tell, and the take is left as it is


@dataclass
class SyncCheck:
    offset: float  # seconds the capture's mouth lags the audio beyond the teacher's (+: curves late)
    correlation: float  # the capture's peak normalised correlation with the envelope
    corrected: bool  # the curves are moved by -offset
    refused: bool  # |offset| beyond MAX_OFFSET_S
    clear: bool  # the correlation was strong enough to measure anything
    keep: float = KEEP_S  # offsets within this were left as recorded

    def sentence(self, name: str) -> str:
        if not self.clear:
            return (f'"{name}": the mouth hardly follows the speech (correlation {self.correlation:.2f}), so its sync '
                    "could not be checked; it is used as recorded")
        if self.refused:
            return (f'"{name}": the curves are more than {MAX_OFFSET_S:g} s out of sync with the audio; check that '
                    "the audio belongs to this take")
        if self.corrected:
            late = "late" if self.offset > 0 else "early"
            return f'"{name}": curves {abs(self.offset) * 1000:.0f} ms {late}; corrected'
        if abs(self.offset) <= KEEP_S:
            return (f'"{name}": in sync ({self.offset * 1000:+.0f} ms from the teacher\'s timing, within the check\'s '
                    "precision)")
        late = "late" if self.offset > 0 else "early"
        return (f'"{name}": curves {abs(self.offset) * 1000:.0f} ms {late} of the teacher\'s timing; kept as the '
                "performer's own (--keep-timing)")


def speech_envelope(samples: np.ndarray, n: int, rate: float = RATE) -> np.ndarray:
    """(n,) log RMS of 16 kHz ``samples`` in 30 ms windows every 1/``rate`` s, floored 50 dB under its peak."""
    hop = spec.SAMPLE_RATE / rate
    win = int(0.03 * spec.SAMPLE_RATE)
    x = np.asarray(samples, np.float64)
    sq = np.concatenate([[0.0], np.cumsum(x * x)])
    centres = (np.arange(n) * hop).astype(np.int64)
    a = np.clip(centres - win // 2, 0, len(x))
    b = np.clip(centres + win // 2, 0, len(x))
    power = (sq[b] - sq[a]) / np.maximum(b - a, 1)
    db = 10.0 * np.log10(power + 1e-12)
    return np.maximum(db, db.max() - 50.0)


def _resample(track: np.ndarray, fps: float, n: int, rate: float = RATE) -> np.ndarray:
    return np.interp(np.arange(n) / rate, np.arange(len(track)) / fps, track)


def lag_of(mouth: np.ndarray, envelope: np.ndarray, max_lag: int) -> tuple[float, float, bool]:
    """(lag in samples, peak normalised correlation, whether the peak is inside the range) of ``mouth`` behind
    ``envelope``: mouth[t + lag] best matches envelope[t]. Sub-sample by a parabola through the peak."""
    m = (mouth - mouth.mean()) / (mouth.std() + 1e-9)
    e = (envelope - envelope.mean()) / (envelope.std() + 1e-9)
    n = len(m)
    lags = np.arange(-max_lag - 1, max_lag + 2)
    corr = np.array([float(np.dot(m[max(0, k) : n + min(0, k)], e[max(0, -k) : n - max(0, k)]))
                     / max(1, n - abs(k)) for k in lags])
    i = int(corr.argmax())
    inside = 0 < i < len(lags) - 1
    frac = 0.0
    if inside:
        y0, y1, y2 = corr[i - 1], corr[i], corr[i + 1]
        denom = y0 - 2 * y1 + y2
        frac = 0.5 * (y0 - y2) / denom if denom < 0 else 0.0
    return float(lags[i] + frac), float(corr[i]), inside


def check_sync(samples: np.ndarray, captured_jaw: np.ndarray, reference_jaw: np.ndarray,
               fps: float = spec.MODEL_FPS, keep: float = KEEP_S) -> SyncCheck:
    """The capture's offset: its jawOpen (at ``fps`` on the audio's clock) against the speech envelope, minus the
    same lag for ``reference_jaw`` (the teacher's mouth for the take's recognised phones). Offsets within ``keep``
    are left as recorded, larger ones (up to MAX_OFFSET_S) are to be corrected."""
    n = int(len(samples) / spec.SAMPLE_RATE * RATE)
    env = speech_envelope(samples, n)
    max_lag = int(round(SEARCH_S * RATE))
    lag_c, corr, inside = lag_of(_resample(captured_jaw, fps, n), env, max_lag)
    lag_r, _, _ = lag_of(_resample(reference_jaw, fps, n), env, max_lag)
    offset = (lag_c - lag_r) / RATE
    clear = corr >= MIN_CORRELATION
    refused = clear and (not inside or abs(offset) > MAX_OFFSET_S)
    corrected = clear and not refused and abs(offset) > keep
    return SyncCheck(offset if clear else 0.0, corr, corrected, refused, clear, keep)
