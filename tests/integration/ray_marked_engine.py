"""A test engine for the Ray tests: the envelope engine, plus a note of which process and engine instance baked
each line (one file per line in $FACEPOLICY_TEST_MARKS), to show that rows spread over the nodes and that each
worker process keeps one warm engine across many rows."""

from __future__ import annotations

import os
from pathlib import Path

from envelope_engine import EnvelopeEngine

from facepolicy.core import engine

NAME = "marked"


def _node() -> str:
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except ImportError:
        pass
    return "driver"


class MarkedEngine(EnvelopeEngine):
    name = NAME

    def animate(self, audio, options, progress, cancel):
        track = super().animate(audio, options, progress, cancel)
        marks = os.environ.get("FACEPOLICY_TEST_MARKS")
        if marks:
            Path(marks).mkdir(parents=True, exist_ok=True)
            stem = Path(audio.source).stem
            (Path(marks) / f"{stem}.{os.getpid()}.mark").write_text(f"{_node()} {os.getpid()} {id(self)}\n")
        return track


def register() -> None:
    engine.register_engine(NAME, __name__, "MarkedEngine")
