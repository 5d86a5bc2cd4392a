"""What every TTS front end returns: 16 kHz audio with the exact ARPAbet phone segments it was made from."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facepolicy.core import spec
from facepolicy.core.phones import SIL, PhoneSegment


class SynthesisError(RuntimeError):
    """A TTS engine is missing or failed on one input."""


@dataclass
class Utterance:
    samples: np.ndarray  # (N,) float32 at spec.SAMPLE_RATE
    phones: list[PhoneSegment]  # contiguous, covering [0, duration], ARPAbet + sil
    text: str
    words: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.samples) / spec.SAMPLE_RATE


def to_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    """Resample with a linear-phase polyphase filter (zero group delay, so phone times stay put)."""
    from math import gcd

    from scipy.signal import resample_poly

    x = np.asarray(samples, dtype=np.float32)
    if rate == spec.SAMPLE_RATE:
        return x
    g = gcd(spec.SAMPLE_RATE, rate)
    return resample_poly(x, spec.SAMPLE_RATE // g, rate // g).astype(np.float32)


def segments_from_ends(labels: list[str], ends: list[float], duration: float) -> list[PhoneSegment]:
    """Contiguous segments from (ARPAbet label, end time) pairs; a gap at the end becomes silence."""
    segs: list[PhoneSegment] = []
    start = 0.0
    for label, end in zip(labels, ends, strict=True):
        end = min(float(end), duration)
        if end <= start:
            continue
        segs.append(PhoneSegment(label, start, end))
        start = end
    if duration - start > 1e-6:
        segs.append(PhoneSegment(SIL, start, duration))
    return merge_silences(segs)


def merge_silences(segs: list[PhoneSegment]) -> list[PhoneSegment]:
    """Adjacent ``sil`` segments become one."""
    out: list[PhoneSegment] = []
    for s in segs:
        if out and s.phone == SIL and out[-1].phone == SIL:
            out[-1] = PhoneSegment(SIL, out[-1].start, s.end)
        else:
            out.append(s)
    return out


def shift_onsets(segs: list[PhoneSegment], shift: float, duration: float) -> list[PhoneSegment]:
    """Move every inner boundary by ``shift`` seconds (negative: earlier), keeping segments contiguous."""
    if not segs or shift == 0.0:
        return segs
    bounds = [segs[0].start] + [s.end for s in segs]
    moved = [bounds[0]] + [min(max(b + shift, 0.0), duration) for b in bounds[1:-1]] + [bounds[-1]]
    for i in range(1, len(moved)):  # keep monotone after clamping
        moved[i] = max(moved[i], moved[i - 1])
    out = [PhoneSegment(s.phone, a, b) for s, a, b in zip(segs, moved[:-1], moved[1:], strict=True) if b > a]
    return merge_silences(out)


def concatenate(parts: list[Utterance], pauses: list[float]) -> Utterance:
    """Join utterances with silences of the given lengths (seconds) between them."""
    if len(pauses) != max(len(parts) - 1, 0):
        raise ValueError("need one pause between each pair of parts")
    chunks: list[np.ndarray] = []
    segs: list[PhoneSegment] = []
    t = 0.0
    n = 0
    for i, part in enumerate(parts):
        for s in part.phones:
            segs.append(PhoneSegment(s.phone, s.start + t, s.end + t))
        chunks.append(part.samples)
        n += len(part.samples)
        if i < len(pauses):
            gap = int(round(pauses[i] * spec.SAMPLE_RATE))
            chunks.append(np.zeros(gap, np.float32))
            segs.append(PhoneSegment(SIL, n / spec.SAMPLE_RATE, (n + gap) / spec.SAMPLE_RATE))
            n += gap
        t = n / spec.SAMPLE_RATE
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    words = [w for p in parts for w in p.words]
    return Utterance(samples, merge_silences(segs), " ".join(p.text for p in parts), words)
