"""Lip-sync metrics on FaceTrack + phone labels + audio: the one implementation used by tests, evaluation and benches.

The lip gap is geometric: the default head's inner-lip landmark pairs (the midline and ±25 % of the mouth width),
moved through the linear shape deltas. Per pair, the gap is the vertical (+Z) separation of the upper and lower lip
point, clamped at 0 (lips pressed together do not count as "more closed"); the lip gap is the mean of the three.

Definitions (issue 4), with the details the issue leaves open written down here:
- range = gap(jawOpen=1) − gap0, gap0 = gap of the neutral face.
  closed: gap ≤ gap0 + 0.12·range; open: gap ≥ gap0 + 0.25·range; pause frame closed: gap ≤ gap0 + 0.18·range.
- bilabial hit: some frame with time in [start − w, end + w] is closed, w = max(1 frame, 1/30 s); p, b, m pooled,
  and /m/ alone.
- open-vowel hit: an aa/ae/ah/ao/aw/ay/eh of ≥ 60 ms has an open frame in [start, end] (the frame nearest the
  centre is always included).
- pause: for silences of ≥ 250 ms, the fraction of frames in the pause, less 100 ms at each end (always at least
  the centre frame), that are closed at the pause threshold.
- SLCC: Pearson correlation of the audio RMS envelope (40 ms Hann window at each frame) and the lip gap.
- lag: argmax over ±300 ms of the normalised cross-correlation of envelope and gap at 100 Hz; positive when the
  lips move after the sound. Pooled over clips by summing their correlation curves weighted by length.
- jitter: mean |Δ²gap| / std(gap) after resampling the track to 30 fps.
- upper-face dynamics: mean per-vertex temporal std of the upper face (brows, lids, eyes decoded through the head)
  divided by the same for a reference track (1.0 is a perfect match of liveliness).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import spec
from .facetrack import FaceTrack
from .phones import BILABIALS, OPEN_VOWELS, SIL, PhoneSegment
from .pitch import rms_envelope

CLOSED_FRACTION = 0.12
OPEN_FRACTION = 0.25
PAUSE_FRACTION = 0.18
OPEN_VOWEL_MIN = 0.060
PAUSE_MIN = 0.250
PAUSE_MARGIN = 0.100
LAG_RANGE = 0.300
LAG_RATE = 100
JITTER_FPS = 30
UPPER_REGIONS = ("brows", "blinks", "eyes")


@dataclass(frozen=True)
class LipGeometry:
    """The lip gap as an affine function of a face's weights, per inner-lip pair (before clamping).

    The weights are the 52 ARKit channels on the default head, or a rig's own shape keys (``names``) when the gap is
    measured on that rig's lips (``core.rigtrack.lip_geometry``). ``open_weights`` is the face's wide-open jaw
    (ARKit jawOpen = 1 as this face plays it); the thresholds are fractions of the gap it opens.
    """

    offset: np.ndarray  # (3,) neutral vertical separation per pair, metres
    slope: np.ndarray   # (len(names), 3) change per unit weight
    names: tuple[str, ...] = spec.ARKIT_NAMES
    open_weights: np.ndarray | None = None  # (len(names),); None: ARKit jawOpen = 1

    def pair_gaps(self, weights: np.ndarray) -> np.ndarray:
        w = np.asarray(weights, np.float64)
        if self.names == spec.ARKIT_NAMES and w.shape[-1] == spec.NUM_CHANNELS:
            w = w[..., : spec.NUM_ARKIT]
        return w @ self.slope + self.offset

    def gap(self, weights: np.ndarray) -> np.ndarray:
        """(..., channels) weights → (...) lip gap in metres."""
        return np.maximum(self.pair_gaps(weights), 0.0).mean(axis=-1)

    @functools.cached_property
    def gap0(self) -> float:
        return float(self.gap(np.zeros(len(self.names))))

    @functools.cached_property
    def range(self) -> float:
        w = self.open_weights
        if w is None:
            w = np.zeros(len(self.names))
            w[self.names.index("jawOpen")] = 1.0
        return float(self.gap(w)) - self.gap0

    def threshold(self, fraction: float) -> float:
        return self.gap0 + fraction * self.range


@functools.cache
def default_geometry() -> LipGeometry:
    """The lip geometry of the bundled default head."""
    from .head import LIP_PAIRS, load_default_head

    head = load_default_head()
    up = [head.landmarks[u] for u, _ in LIP_PAIRS]
    lo = [head.landmarks[low] for _, low in LIP_PAIRS]
    offset = (head.vertices[up, 2] - head.vertices[lo, 2]).astype(np.float64)
    slope = (head.deltas[:, up, 2] - head.deltas[:, lo, 2]).astype(np.float64)  # (52, 3)
    return LipGeometry(offset, slope)


def lip_gap(track: FaceTrack, geometry: LipGeometry | None = None) -> np.ndarray:
    """(frames,) lip gap in metres."""
    geometry = geometry or default_geometry()
    return geometry.gap(track.select(geometry.names).values)


@dataclass
class ClipScores:
    """Raw counts for one clip; ``aggregate`` pools several."""

    bilabial_hits: int = 0
    bilabial_total: int = 0
    m_hits: int = 0
    m_total: int = 0
    open_hits: int = 0
    open_total: int = 0
    pause_closed: int = 0
    pause_total: int = 0
    slcc: float = float("nan")
    lag: float = float("nan")
    jitter: float = float("nan")
    upper_ratio: float = float("nan")
    n_frames: int = 0
    lag_curve: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    missed: list = field(default_factory=list, repr=False)  # (phone, start) of bilabial and open-vowel misses

    def summary(self) -> dict:
        return aggregate([self])


def _frames_in(times: np.ndarray, a: float, b: float, centre: float, fps: float) -> np.ndarray:
    idx = np.nonzero((times >= a - 1e-9) & (times <= b + 1e-9))[0]
    near = int(np.clip(round(centre * fps), 0, len(times) - 1))
    return np.union1d(idx, [near]).astype(np.int64)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else float("nan")


def lag_curve(gap: np.ndarray, fps: float, samples: np.ndarray, rate: int) -> np.ndarray:
    """Normalised cross-correlation of envelope and gap at lags −300..+300 ms in 10 ms steps."""
    n = int(round(len(gap) / fps * LAG_RATE))
    t = np.arange(n) / LAG_RATE
    g = np.interp(t, np.arange(len(gap)) / fps, gap)
    env = rms_envelope(samples, rate, LAG_RATE)
    m = min(len(g), len(env))
    g, env = g[:m] - g[:m].mean(), env[:m] - env[:m].mean()
    k = int(LAG_RANGE * LAG_RATE)
    out = np.full(2 * k + 1, np.nan)
    sg, se = float(np.sqrt((g * g).sum())), float(np.sqrt((env * env).sum()))
    if m <= 2 * k or sg == 0 or se == 0:
        return out
    for i, lag in enumerate(range(-k, k + 1)):
        # gap(t) against env(t − lag): positive lag = lips after sound.
        if lag >= 0:
            out[i] = float((g[lag:] * env[: m - lag]).sum())
        else:
            out[i] = float((g[: m + lag] * env[-lag:]).sum())
    return out / (sg * se)


def jitter(track: FaceTrack, geometry: LipGeometry | None = None) -> float:
    g = lip_gap(track.resample(JITTER_FPS) if track.fps != JITTER_FPS else track, geometry)
    if len(g) < 3 or g.std() == 0:
        return float("nan")
    return float(np.abs(np.diff(g, 2)).mean() / g.std())


def _upper_vertices():
    from .head import load_default_head

    head = load_default_head()
    chans = [i for i, n in enumerate(spec.ARKIT_NAMES) if spec.region_of(n) in UPPER_REGIONS]
    moved = np.nonzero(np.abs(head.deltas[chans]).sum(axis=(0, 2)) > 1e-6)[0]
    return head, chans, moved


def upper_face_activity(track: FaceTrack) -> float:
    """Mean per-vertex temporal std (metres) of the upper face decoded on the default head."""
    head, chans, moved = _upper_vertices()
    w = track.select(spec.ARKIT_NAMES).values.astype(np.float64)
    mask = np.zeros(spec.NUM_ARKIT)
    mask[chans] = 1
    d = head.deltas[:, moved].reshape(spec.NUM_ARKIT, -1).astype(np.float64)
    verts = ((w * mask) @ d).reshape(len(w), len(moved), 3)
    return float(np.linalg.norm(verts.std(axis=0), axis=-1).mean())


def score_clip(track: FaceTrack, phones: Sequence[PhoneSegment], samples: np.ndarray, rate: int = spec.SAMPLE_RATE,
               reference: FaceTrack | None = None, geometry: LipGeometry | None = None) -> ClipScores:
    """All metrics of one clip; ``phones`` are the reference labels, ``samples`` the clip's audio."""
    geometry = geometry or default_geometry()
    fps = track.fps
    gap = lip_gap(track, geometry)
    times = np.arange(len(gap)) / fps
    closed = geometry.threshold(CLOSED_FRACTION)
    opened = geometry.threshold(OPEN_FRACTION)
    pause_closed = geometry.threshold(PAUSE_FRACTION)
    w = max(1.0 / fps, 1.0 / 30.0)
    s = ClipScores(n_frames=len(gap))
    if len(gap) == 0:
        return s
    for p in phones:
        centre = 0.5 * (p.start + p.end)
        if p.phone in BILABIALS:
            idx = _frames_in(times, p.start - w, p.end + w, centre, fps)
            hit = bool(gap[idx].min() <= closed)
            s.bilabial_total += 1
            s.bilabial_hits += hit
            if p.phone == "m":
                s.m_total += 1
                s.m_hits += hit
            if not hit:
                s.missed.append((p.phone, p.start))
        elif p.phone in OPEN_VOWELS and p.duration >= OPEN_VOWEL_MIN - 1e-9:
            idx = _frames_in(times, p.start, p.end, centre, fps)
            hit = bool(gap[idx].max() >= opened)
            s.open_total += 1
            s.open_hits += hit
            if not hit:
                s.missed.append((p.phone, p.start))
        elif p.phone == SIL and p.duration >= PAUSE_MIN - 1e-9:
            idx = _frames_in(times, p.start + PAUSE_MARGIN, p.end - PAUSE_MARGIN, centre, fps)
            idx = idx[idx < len(gap)]
            s.pause_total += len(idx)
            s.pause_closed += int((gap[idx] <= pause_closed).sum())
    env = rms_envelope(samples, rate, fps)
    m = min(len(env), len(gap))
    s.slcc = _pearson(env[:m], gap[:m]) if m > 2 else float("nan")
    s.lag_curve = lag_curve(gap, fps, samples, rate)
    if np.any(np.isfinite(s.lag_curve)):
        s.lag = (int(np.nanargmax(s.lag_curve)) - int(LAG_RANGE * LAG_RATE)) / LAG_RATE
    s.jitter = jitter(track, geometry)
    if reference is not None:
        ref = upper_face_activity(reference)
        s.upper_ratio = upper_face_activity(track) / ref if ref > 0 else float("nan")
    return s


def _rate(hits: int, total: int) -> float:
    return hits / total if total else float("nan")


def _weighted_mean(values, weights) -> float:
    v = np.asarray(values, np.float64)
    w = np.asarray(weights, np.float64)
    ok = np.isfinite(v) & (w > 0)
    return float((v[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else float("nan")


def aggregate(clips: Sequence[ClipScores]) -> dict:
    """Pooled metrics: hit rates over all events, SLCC/jitter weighted by frames, lag from the summed curves."""
    tot = {k: sum(getattr(c, k) for c in clips) for k in (
        "bilabial_hits", "bilabial_total", "m_hits", "m_total", "open_hits", "open_total", "pause_closed",
        "pause_total")}
    frames = [c.n_frames for c in clips]
    curves = [c.lag_curve * c.n_frames for c in clips if len(c.lag_curve) and np.all(np.isfinite(c.lag_curve))]
    lag = float("nan")
    if curves:
        lag = (int(np.argmax(np.sum(curves, axis=0))) - int(LAG_RANGE * LAG_RATE)) / LAG_RATE
    return {
        "bilabial": _rate(tot["bilabial_hits"], tot["bilabial_total"]),
        "m": _rate(tot["m_hits"], tot["m_total"]),
        "open": _rate(tot["open_hits"], tot["open_total"]),
        "pause": _rate(tot["pause_closed"], tot["pause_total"]),
        "slcc": _weighted_mean([c.slcc for c in clips], frames),
        "lag_ms": 1000.0 * lag,
        "jitter": _weighted_mean([c.jitter for c in clips], frames),
        "upper_ratio": _weighted_mean([c.upper_ratio for c in clips], frames),
        "counts": tot,
    }


COLUMNS = ("bilabial", "m", "open", "pause", "slcc", "lag_ms", "jitter")


def format_row(name: str, summary: dict, columns: Sequence[str] = COLUMNS) -> str:
    """One Markdown table row: | name | bilabial | /m/ | open | pause | SLCC | lag | jitter |."""
    cells = []
    for c in columns:
        v = summary[c]
        cells.append("n/a" if not np.isfinite(v) else (f"{v:+.0f} ms" if c == "lag_ms" else f"{v:.2f}"))
    return "| " + " | ".join([name, *cells]) + " |"


TABLE_HEADER = ("| | bilabial | /m/ | open | pause | SLCC | lag | jitter |\n"
                "|---|---|---|---|---|---|---|---|")


def read_lab(path) -> list[PhoneSegment]:
    """Phone labels from an HTS/HTK .lab file (100 ns units; full-context labels keep their centre phone)
    or a seconds-based 'start end phone' file."""
    from .phones import normalise_phone

    out = []
    with open(path, encoding="utf-8") as fh:
        rows = [ln.split() for ln in fh if ln.strip()]
    htk = any("." not in r[0] for r in rows) and max(float(r[1]) for r in rows) > 1e4
    scale = 1e-7 if htk else 1.0
    for r in rows:
        label = r[2]
        if "-" in label and "+" in label:
            label = label.split("-", 1)[1].split("+", 1)[0]
        out.append(PhoneSegment(normalise_phone(label), float(r[0]) * scale, float(r[1]) * scale))
    return out
