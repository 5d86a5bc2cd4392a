"""FaceTrack: the per-frame facial state that every engine produces and every writer consumes."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import spec
from .errors import TrackFormatError


@dataclass
class FaceTrack:
    """Facial animation sampled at a constant frame rate.

    ``values`` is (frames, channels) float32; column i is channel ``names[i]``. Frame k sits at time k / fps,
    and the track covers ``n_frames / fps`` seconds. ``meta`` holds provenance (engine, seed, style, audio).
    """

    fps: float
    names: tuple[str, ...]
    values: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.names = tuple(self.names)
        self.values = np.ascontiguousarray(self.values, dtype=np.float32)
        if self.values.ndim != 2 or self.values.shape[1] != len(self.names):
            raise ValueError(
                f"FaceTrack values must be (frames, {len(self.names)}), got {self.values.shape}"
            )
        if len(set(self.names)) != len(self.names):
            raise ValueError("FaceTrack channel names must be unique")
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"FaceTrack fps must be positive, got {self.fps}")

    @classmethod
    def zeros(cls, n_frames: int, fps: float = spec.MODEL_FPS, names=spec.CHANNEL_NAMES, meta=None):
        return cls(fps, tuple(names), np.zeros((n_frames, len(names)), np.float32), dict(meta or {}))

    @property
    def n_frames(self) -> int:
        return int(self.values.shape[0])

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps

    def channel(self, name: str) -> np.ndarray:
        """One channel's curve (a view)."""
        try:
            return self.values[:, self.names.index(name)]
        except ValueError:
            raise KeyError(f"channel {name!r} is not in this track") from None

    def select(self, names) -> FaceTrack:
        """A track with exactly ``names`` as channels; channels this track lacks are 0."""
        names = tuple(names)
        out = np.zeros((self.n_frames, len(names)), np.float32)
        index = {n: i for i, n in enumerate(self.names)}
        for j, n in enumerate(names):
            if n in index:
                out[:, j] = self.values[:, index[n]]
        return FaceTrack(self.fps, names, out, dict(self.meta))

    def resample(self, fps: float) -> FaceTrack:
        """The same motion sampled at ``fps`` (linear interpolation, exact on constant input).

        The result covers the same duration: round(n_frames * fps / self.fps) frames.
        """
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be positive, got {fps}")
        if fps == self.fps or self.n_frames == 0:
            return FaceTrack(fps, self.names, self.values.copy(), dict(self.meta))
        n_out = max(1, int(round(self.n_frames * fps / self.fps)))
        pos = np.arange(n_out, dtype=np.float64) * (self.fps / fps)
        pos = np.clip(pos, 0.0, self.n_frames - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, self.n_frames - 1)
        w = (pos - lo).astype(np.float32)[:, None]
        a = self.values[lo]
        b = self.values[hi]
        # a + w * (b - a) returns a exactly where a == b, so constant curves stay bit-exact.
        out = a + w * (b - a)
        return FaceTrack(fps, self.names, out, dict(self.meta))

    # --- JSON: {fps, names, weights, meta} -------------------------------------------------------------

    def to_dict(self) -> dict:
        return self._shell(self.values.tolist())

    def _shell(self, weights) -> dict:
        return {"fps": self.fps, "names": list(self.names), "weights": weights, "meta": self.meta}

    @classmethod
    def from_dict(cls, data: dict, source: str = "track") -> FaceTrack:
        try:
            fps = float(data["fps"])
            names = tuple(str(n) for n in data["names"])
            weights = np.asarray(data["weights"], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise TrackFormatError(
                f'"{source}": not a FacePolicy track (needs fps, names and weights): {exc}'
            ) from None
        if weights.size == 0:
            weights = weights.reshape(0, len(names))
        if weights.ndim != 2 or weights.shape[1] != len(names):
            raise TrackFormatError(
                f'"{source}": weights must be frames × {len(names)} channels, got shape {weights.shape}'
            )
        if not np.all(np.isfinite(weights)):
            raise TrackFormatError(f'"{source}": weights contain NaN or infinity')
        try:
            return cls(fps, names, weights, dict(data.get("meta") or {}))
        except ValueError as exc:
            raise TrackFormatError(f'"{source}": {exc}') from None

    def to_json(self) -> str:
        return "".join(self._json_chunks())

    def _json_chunks(self, block: int = 2000):
        """``to_json``'s text in pieces, the weights ``block`` frames at a time: the same bytes as one
        ``json.dumps`` of ``to_dict()``, without an hour's take as one list of lists or one string."""
        marker = "\u0000weights\u0000"
        head, tail = json.dumps(self._shell(marker), separators=(",", ":")).split(json.dumps(marker))
        yield head + "["
        for a in range(0, self.n_frames, block):
            rows = json.dumps(self.values[a : a + block].tolist(), separators=(",", ":"))[1:-1]
            yield ("," if a else "") + rows
        yield "]" + tail

    @classmethod
    def from_json(cls, text: str, source: str = "track") -> FaceTrack:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TrackFormatError(f'"{source}": not valid JSON ({exc})') from None
        if not isinstance(data, dict):
            raise TrackFormatError(f'"{source}": expected a JSON object with fps, names and weights')
        return cls.from_dict(data, source)

    def save_json(self, path) -> None:
        from .fileio import atomic_path

        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            for text in self._json_chunks():
                f.write(text)

    @classmethod
    def load_json(cls, path) -> FaceTrack:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TrackFormatError(f'"{path}": cannot read ({exc.strerror or exc})') from None
        return cls.from_json(text, source=path.name)
