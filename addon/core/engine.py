"""The engine contract: audio in, FaceTrack out. Every front end (operator, CLI, batch) calls ``animate``.

Engines live in their own modules and are imported lazily, so a missing optional part (a model file,
pocketsphinx) only fails the engine that needs it, with a clear message.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from . import spec
from .audio import Audio, SpooledAudio, load_audio
from .errors import Cancelled, FacePolicyError
from .facetrack import FaceTrack

# progress(fraction 0..1, message). Called from whatever thread runs the engine.
ProgressFn = Callable[[float, str], None]


@dataclass
class BakeOptions:
    """What the user asked for. Engines ignore the options they do not support."""

    engine: str = "neural"
    transcript: str | None = None  # the text itself, not a path
    # The transcript's language as the user set it (a code or English name, core.letters.told_language; None or
    # "auto": detected from the text).
    transcript_language: str | None = None
    seed: int = 0
    style: str | None = None  # a preset name, or a path to a reference (.json FaceTrack or Live Link .csv)
    strength: float = 1.0  # style strength (classifier-free guidance scale)
    emotion: str = "neutral"
    emotion_intensity: float = 0.0
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # 0: onnxruntime's default
    accuracy: str | None = None  # spec.ACCURACY_MODES; None: the engine's default (Neural accurate, Phonetic fast)
    # The Neural engine's sampling: guidance on audio (>1 articulates more strongly, with one more model pass),
    # denoising steps per plan (None: the model's) and the pull toward the Phonetic engine's mouth (None: the
    # sampler's default, SampleSettings.prior_weight).
    audio_guidance: float = 1.0
    steps: int | None = None
    prior_weight: float | None = None
    model_dir: str | None = None  # the Neural model's folder (its model.json); None: the bundled assets/models


class Engine(Protocol):
    name: str

    def animate(self, audio: Audio, options: BakeOptions, progress: ProgressFn,
                cancel: threading.Event) -> FaceTrack:
        """A FaceTrack at spec.MODEL_FPS with spec.CHANNEL_NAMES. Raises Cancelled when cancel is set."""


# name → (module relative to this package, class name).
ENGINES: dict[str, tuple[str, str]] = {
    "neural": (".neural", "NeuralEngine"),
    "phonetic": (".phonetic", "PhoneticEngine"),
}


# Engines whose code exists but which this version does not offer, with the reason shown to the user.
NOT_SHIPPED: dict[str, str] = {}


def register_engine(name: str, module: str, cls: str) -> None:
    ENGINES[name] = (module, cls)


_instances: dict[str, Engine] = {}
_lock = threading.Lock()


def get_engine(name: str) -> Engine:
    """The (cached, warm) engine called ``name``."""
    if name not in ENGINES:
        known = ", ".join(sorted(ENGINES)) or "none"
        if name in NOT_SHIPPED:
            raise FacePolicyError(f"{NOT_SHIPPED[name]}; available: {known}")
        raise FacePolicyError(f"unknown engine {name!r}; available: {known}")
    with _lock:
        if name not in _instances:
            module, cls = ENGINES[name]
            mod = importlib.import_module(module, __package__)
            _instances[name] = getattr(mod, cls)()
        return _instances[name]


# What an engine can start loading ahead of animate (prepare): name → (module, function of BakeOptions), in a module
# that imports much less than the engine's own.
PREPARERS: dict[str, tuple[str, str]] = {
    "neural": (".prepare", "prepare_neural"),
}


def prepare(options: BakeOptions) -> None:
    """Start loading what the engine of ``options`` will need to animate with them (the Neural engine: its model's
    sessions and, in the accurate mode without a transcript, the phone decoders) on threads of their own, so that
    it overlaps what the caller does before animate (reading the audio, importing the engine). Nothing for an
    engine without a preparer; a load that fails is left to animate, which reports it."""
    if options.engine not in PREPARERS:
        return
    module, func = PREPARERS[options.engine]
    try:
        getattr(importlib.import_module(module, __package__), func)(options)
    except Exception:  # noqa: BLE001 - animate meets the same problem and says what it is
        pass


def _no_progress(fraction: float, message: str) -> None:
    pass


def check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled")


def animate(audio: Audio | SpooledAudio | str | Path, options: BakeOptions | None = None,
            progress: ProgressFn | None = None, cancel: threading.Event | None = None) -> FaceTrack:
    """Run one engine on one audio input and return a FaceTrack at the model rate. A SpooledAudio (a long file,
    core.audio.load_line_audio) is animated segment by segment, unless there is a transcript to align."""
    options = options or BakeOptions()
    progress = progress or _no_progress
    cancel = cancel or threading.Event()
    if isinstance(audio, SpooledAudio):
        if not (options.transcript or "").strip():
            return _animate_segments(audio, options, progress, cancel)
        audio = audio.audio(0, audio.n_samples)  # the transcript is aligned to the whole line
    if not isinstance(audio, Audio):
        audio = load_audio(audio)
    engine = get_engine(options.engine)
    check_cancel(cancel)
    track = engine.animate(audio, options, progress, cancel)
    check_cancel(cancel)
    track.meta.setdefault("engine", options.engine)
    track.meta.setdefault("seed", options.seed)
    if audio.source:
        track.meta.setdefault("audio", Path(audio.source).name)
    return track.select(spec.CHANNEL_NAMES) if track.names != spec.CHANNEL_NAMES else track


def _animate_segments(long: SpooledAudio, options: BakeOptions, progress: ProgressFn,
                      cancel: threading.Event) -> FaceTrack:
    """A long file, one segment at a time (cut in pauses on a 0.1 s grid): memory holds one segment's samples and
    the track so far, whatever the file's length. The segments' frames tile the file's, frame k at k / fps."""
    segments = long.segments()
    tracks: list[FaceTrack] = []
    for k, (start, stop) in enumerate(segments):
        def part_progress(fraction: float, message: str, k: int = k) -> None:
            progress((k + fraction) / len(segments), message)

        tracks.append(animate(long.audio(start, stop), options, part_progress, cancel))
    first = tracks[0]
    meta = dict(first.meta)
    meta["warnings"] = list(dict.fromkeys(str(w) for t in tracks for w in t.meta.get("warnings") or ()))
    meta["segments"] = len(segments)
    values = np.concatenate([t.values for t in tracks])
    del tracks
    return FaceTrack(first.fps, first.names, values, meta)
