"""The sampler's noise, keyed by absolute frame: any frame of a take gets the same noise whichever window asks for
it, so a take does not depend on how its streams are batched or grouped (core.sampler)."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from . import spec

_NOISE_BLOCK = 256  # frames per independently seeded block of the noise table


def frame_noise(seed: int, start: int, length: int, channels: int = spec.NUM_CHANNELS) -> np.ndarray:
    """(length, channels) standard normal noise for absolute frames start..start+length of one take.

    Each block of _NOISE_BLOCK frames has its own generator seeded by (seed, block), so any frame's noise is the
    same whichever window asks for it, and memory does not grow with the length of the audio.
    """
    return NoiseBlocks(seed, keep=1).frames(start, length, channels)


class NoiseBlocks:
    """frame_noise of one take (``seed``) with its last ``keep`` blocks kept: a window reads 32 frames of a block of
    _NOISE_BLOCK, and the sampler's windows read each block about 16 times, so each is drawn once (the same values;
    drawing them was 7 % of sampling). Thread-safe."""

    def __init__(self, seed: int, keep: int = 6):
        self.seed, self._keep = int(seed), keep
        self._blocks: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def block(self, b: int, channels: int = spec.NUM_CHANNELS) -> np.ndarray:
        """(_NOISE_BLOCK, channels) float32: block ``b``'s noise."""
        with self._lock:
            got = self._blocks.get((b, channels))
            if got is not None:
                self._blocks.move_to_end((b, channels))
                return got
        drawn = np.random.default_rng([self.seed & 0xFFFFFFFF, b]).standard_normal((_NOISE_BLOCK, channels))
        drawn = drawn.astype(np.float32)
        with self._lock:
            self._blocks[(b, channels)] = drawn
            while len(self._blocks) > self._keep:
                self._blocks.popitem(last=False)
        return drawn

    def frames(self, start: int, length: int, channels: int = spec.NUM_CHANNELS) -> np.ndarray:
        """(length, channels) float32: frame_noise for frames start..start+length."""
        out = np.empty((length, channels), np.float32)
        f = start
        while f < start + length:
            b = f // _NOISE_BLOCK
            lo = f - b * _NOISE_BLOCK
            n = min(_NOISE_BLOCK - lo, start + length - f)
            out[f - start : f - start + n] = self.block(b, channels)[lo : lo + n]
            f += n
        return out
