"""A performer's brows from the prosody of the line: a linear filter that `facepolicy finetune` fits to the
captures and the engine adds to the fine-tuned model's brows, in bakes and in the live stream alike.

Brows move with the voice more than with the words: they rise on pitch accents and on loud, long syllables, and by
how much is a habit of the performer. The fine-tuned denoiser learns the performer's face from the shipped audio
encoder's features, which carry little pitch, so much of what it leaves in the brows is prosodic. The layer is a
ridge regression, per brow channel, from core.prosody_stream's features (pitch in semitones from the performer's
median F0, voicing, loudness, pitch prominence) at TAPS, from 0.5 s before each frame to one frame after, onto what
the fine-tuned model leaves unexplained; it is fitted on the training takes, its strength chosen on the held-out
takes, and kept only where it lowers their brow error by MIN_GAIN (model.json "brows", written by
model.finetune_run). A model without the section (the bundled one) is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import spec
from .pitch import F0_MAX, F0_MIN
from .prosody_stream import FEATURES, ProsodyStream, median_f0

SECTION = "brows"  # model.json's section (ModelFiles.brows)
CHANNELS = ("browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight")
# Frames at MODEL_FPS from 0.5 s before to one frame after: on the synthetic performer (bench/bench_finetune.py, 3 min)
# as good as taps to 0.5 s after (habit error 0.0529 against 0.0530), and the live stream has the frame after when it
# gives a frame out (core.stream checks it against its look-ahead).
TAPS = (-15, -12, -9, -6, -3, -1, 0, 1)
LAMBDAS = (1.0, 10.0, 100.0, 1000.0)  # ridge strengths tried on the held-out takes
MIN_GAIN = 0.02  # the layer is kept when the held-out brow error falls by at least this share


@dataclass
class BrowLayer:
    """weights: (len(FEATURES) * len(taps) + 1, len(channels)); the last row is the bias."""

    taps: tuple[int, ...]
    channels: tuple[str, ...]
    weights: np.ndarray
    reference_f0: float  # Hz: the performer's median voiced F0 in the training takes, pitch's zero

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), "taps": list(self.taps), "channels": list(self.channels),
                "reference_f0": round(self.reference_f0, 2), "weights": np.round(self.weights, 6).tolist()}

    @classmethod
    def from_dict(cls, section) -> BrowLayer:
        """ValueError with the reason unless ``section`` is a layer this version can apply."""
        if not isinstance(section, dict):
            raise ValueError(f'"{SECTION}" must be an object')
        if section.get("features") != list(FEATURES):
            raise ValueError(f'"{SECTION}.features" must be {list(FEATURES)}, got {section.get("features")!r}')
        taps, channels = section.get("taps"), section.get("channels")
        if (not isinstance(taps, list) or not taps or not all(isinstance(t, int) and not isinstance(t, bool)
                                                               and abs(t) <= 60 for t in taps)):
            raise ValueError(f'"{SECTION}.taps" must be a list of whole frame offsets within ±60, got {taps!r}')
        if not isinstance(channels, list) or not channels or not all(c in spec.CHANNEL_INDEX for c in channels):
            raise ValueError(f'"{SECTION}.channels" must name ARKit channels, got {channels!r}')
        try:
            weights = np.asarray(section.get("weights"), np.float64)
        except (TypeError, ValueError):
            raise ValueError(f'"{SECTION}.weights" must be a table of numbers') from None
        ref = section.get("reference_f0")
        if isinstance(ref, bool) or not isinstance(ref, (int, float)) or not F0_MIN <= ref <= F0_MAX:
            raise ValueError(f'"{SECTION}.reference_f0" must be a pitch from {F0_MIN:g} to {F0_MAX:g} Hz, got {ref!r}')
        want = (len(FEATURES) * len(taps) + 1, len(channels))
        if weights.shape != want or not np.all(np.isfinite(weights)):
            raise ValueError(f'"{SECTION}.weights" must be {want[0]} rows of {want[1]} finite numbers, '
                             f"got shape {weights.shape}")
        return cls(tuple(taps), tuple(channels), weights, float(ref))

    def apply(self, states: np.ndarray, features: np.ndarray) -> np.ndarray:
        """``states`` (T, C) with the layer's brows added (0..1), in place; ``features`` from brow_features."""
        n = min(len(states), len(features))
        cols = [spec.CHANNEL_INDEX[c] for c in self.channels]
        states[:n, cols] = np.clip(states[:n, cols] + features[:n] @ self.weights, 0.0, 1.0)
        return states


def tapped(prosody: np.ndarray, taps=TAPS) -> np.ndarray:
    """(T, F * len(taps) + 1): each feature at frame k + tap (the edge frame beyond the line), then a 1."""
    n = len(prosody)
    idx = np.clip(np.arange(n)[:, None] + np.asarray(taps)[None, :], 0, max(0, n - 1))
    cols = prosody[idx] if n else np.zeros((0, len(taps), prosody.shape[1]))  # (T, taps, F)
    return np.concatenate([cols.transpose(0, 2, 1).reshape(n, -1), np.ones((n, 1))], axis=1)


def brow_features(samples: np.ndarray, n_frames: int, reference_f0: float, taps=TAPS) -> np.ndarray:
    """(n_frames, len(FEATURES) * len(taps) + 1) for a whole line: core.prosody_stream's features, as the live
    stream computes them, pitch from ``reference_f0``."""
    stream = ProsodyStream(reference_f0=reference_f0)
    stream.push(samples)
    stream.finish()
    return tapped(stream.rows(n_frames), taps)


def frame_features(stream: ProsodyStream, k: int, taps=TAPS) -> np.ndarray:
    """(1, len(FEATURES) * len(taps) + 1): model frame ``k``'s row of brow_features from a live ProsodyStream that
    has heard the frame ``max(taps)`` after it (or finished)."""
    rows = np.stack([stream.row(k + t) for t in taps])  # (taps, F), ordered as tapped()'s columns once transposed
    return np.concatenate([rows.T.reshape(-1), [1.0]])[None]


def performer_f0(lines) -> float | None:
    """The median voiced F0 (Hz) over ``lines`` (16 kHz sample arrays), the reference a layer's pitch is from."""
    total = None
    for samples in lines:
        stream = ProsodyStream()
        stream.push(samples)
        stream.finish()
        total = stream.pitch_histogram if total is None else total + stream.pitch_histogram
    return None if total is None else median_f0(total)


def _solve(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    a = x.T @ x
    reg = lam * np.eye(len(a))
    reg[-1, -1] = 0.0  # the bias is not shrunk
    return np.linalg.solve(a + reg, x.T @ y)


@dataclass
class BrowFit:
    layer: BrowLayer | None  # None: no strength lowered the held-out brow error by MIN_GAIN
    error_before: float  # held-out mean absolute error of CHANNELS without the layer
    error_after: float  # ... with the chosen layer (error_before when none is kept)
    strength: float | None
    by_strength: dict[float, float]


def fit_brow_layer(train: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                   valid: list[tuple[np.ndarray, np.ndarray, np.ndarray]], reference_f0: float,
                   taps=TAPS) -> BrowFit:
    """Fit on ``train`` and choose on ``valid``: each a list of (features from brow_features at ``reference_f0``,
    the model's states, the performer's states), frames aligned. Returns the layer (or None) with the held-out
    figures."""
    cols = [spec.CHANNEL_INDEX[c] for c in CHANNELS]

    def stack(items):
        n = [min(len(f), len(p), len(r)) for f, p, r in items]
        x = np.concatenate([f[:k] for (f, _, _), k in zip(items, n, strict=True)])
        pred = np.concatenate([p[:k, cols] for (_, p, _), k in zip(items, n, strict=True)]).astype(np.float64)
        ref = np.concatenate([r[:k, cols] for (_, _, r), k in zip(items, n, strict=True)]).astype(np.float64)
        return x, pred, ref

    x, pred, ref = stack(train)
    vx, vpred, vref = stack(valid)
    before = float(np.abs(vpred - vref).mean()) if len(vref) else 0.0
    by_strength, best = {}, None
    if len(x) > x.shape[1] and len(vref):
        for lam in LAMBDAS:
            w = _solve(x, ref - pred, lam)
            err = float(np.abs(np.clip(vpred + vx @ w, 0.0, 1.0) - vref).mean())
            by_strength[lam] = round(err, 5)
            if best is None or err < best[0]:
                best = (err, lam, w)
    if best is None or best[0] > before * (1.0 - MIN_GAIN):
        return BrowFit(None, before, before, None, by_strength)
    return BrowFit(BrowLayer(tuple(taps), CHANNELS, best[2], reference_f0), before, best[0], best[1], by_strength)
