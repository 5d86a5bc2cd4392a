"""A small deterministic engine for batch tests: jawOpen follows the audio's loudness envelope.

It lets the batch machinery (workers, resume, interruption) be tested quickly without the real engines.
Audio whose file name contains "crash" makes the worker process die, to test crash recovery;
FACEPOLICY_TEST_ENGINE_DELAY (seconds) slows every line down, to test interruption.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from facepolicy.core import engine, spec
from facepolicy.core.facetrack import FaceTrack

NAME = "envelope"


class EnvelopeEngine:
    name = NAME

    def animate(self, audio, options, progress, cancel):
        if "crash" in Path(audio.source).name:
            os._exit(3)
        time.sleep(float(os.environ.get("FACEPOLICY_TEST_ENGINE_DELAY", "0")))
        hop = audio.sample_rate // spec.MODEL_FPS
        n = max(1, len(audio.samples) // hop)
        frames = audio.samples[: n * hop].reshape(n, hop) if len(audio.samples) >= hop else np.zeros((1, hop))
        env = np.sqrt(np.mean(np.square(frames), axis=1))
        env = env / max(float(env.max()), 1e-9)
        track = FaceTrack.zeros(n)
        track.values[:, spec.CHANNEL_INDEX["jawOpen"]] = env
        # The seed moves the smile so that takes differ; the brows show the transcript was seen.
        track.values[:, spec.CHANNEL_INDEX["mouthSmileLeft"]] = (options.seed % 7) / 10
        track.values[:, spec.CHANNEL_INDEX["browInnerUp"]] = 0.5 if options.transcript else 0.0
        track.meta["transcript"] = options.transcript
        if not options.transcript:
            track.meta["warnings"] = ["no transcript: the envelope engine guessed"]
        return track


def register() -> None:
    engine.register_engine(NAME, __name__, "EnvelopeEngine")
