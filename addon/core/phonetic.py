"""The Phonetic engine: the line's phone evidence (core.evidence) → articulation teacher → FaceTrack.

Runtime only: numpy, pocketsphinx and onnxruntime (the audio encoder's second opinion), no torch, no GPL code.
Modes (the accuracy option):
- "fast" (default): with a usable transcript, its forced alignment; without one, all-phone recognition with the
  neural model's audio encoder as a second opinion on lip closures and on vowels recognition hears in music or
  noise, and the recogniser's shortest consonants merged into their neighbours.
- "accurate": without a usable transcript, word recognition and then forced alignment of the hypothesis (slower).
A transcript comes from ``options.transcript`` or from a ``.txt`` file beside the audio. One that is not English,
cannot be aligned or does not match the audio is not used: the line is animated as without one, and
``track.meta["warnings"]`` says so in one sentence.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from . import spec
from .align import Alignment
from .audio import Audio
from .engine import BakeOptions, ProgressFn, check_cancel
from .errors import FacePolicyError
from .evidence import gather_evidence, sidecar_transcript
from .facetrack import FaceTrack
from .second_opinion import cleaned_phones
from .spec import ACCURACY_MODES, EMOTIONS
from .straighten import straighten_take
from .teacher import SpeakerStyle, TeacherTake, animate_phones

log = logging.getLogger(__name__)


def phonetic_prior(result: Alignment, samples: np.ndarray, duration: float | None = None) -> FaceTrack:
    """The Phonetic engine's face (default style, seed 0) for the Neural engine's evidence, cleaned up as the
    Phonetic engine cleans it (core.second_opinion.cleaned_phones), before the engine pulls its lip gap taut
    (core.straighten: the Neural engine pulls its own output taut). The Neural engine's accurate mode steers its mouth
    toward it (core.neural, SampleSettings.prior_weight). ``result`` is not changed."""
    return phonetic_prior_take(result, samples, duration, upper=True).track()


def phonetic_prior_take(result: Alignment, samples: np.ndarray, duration: float | None = None,
                        upper: bool = False) -> TeacherTake:
    """phonetic_prior as a TeacherTake: ``take[a:b]`` renders frames a..b only, so the Neural sampler renders the
    window each group of streams needs and never holds an hour's prior (25 MB, and as much again normalised).
    The sampler steers the mouth only, so by default the upper face is left at rest (TeacherTake's ``upper``)."""
    phones, confidence = cleaned_phones(result)
    return TeacherTake(phones, samples, rate=spec.SAMPLE_RATE, fps=spec.MODEL_FPS, duration=duration,
                       confidence=confidence, recognised=result.mode == "recognised-phones", upper=upper)


class PhoneticEngine:
    name = "phonetic"

    def animate(self, audio: Audio, options: BakeOptions, progress: ProgressFn,
                cancel: threading.Event) -> FaceTrack:
        accuracy = options.accuracy or "fast"
        if accuracy not in ACCURACY_MODES:
            raise FacePolicyError(f"unknown accuracy {accuracy!r} for the phonetic engine; use fast or accurate")
        if options.emotion not in EMOTIONS:
            raise FacePolicyError(f"unknown emotion {options.emotion!r}; choose one of {', '.join(EMOTIONS)}")
        samples = np.asarray(audio.samples, np.float32)
        rate = audio.sample_rate
        if rate != spec.SAMPLE_RATE:
            raise FacePolicyError(f"the phonetic engine needs {spec.SAMPLE_RATE} Hz audio (load it with load_audio)")
        transcript = options.transcript or sidecar_transcript(audio.source)
        progress(0.02, "listening")
        evidence = gather_evidence(samples, transcript, "words" if accuracy == "accurate" else "phones",
                                   progress=lambda f, message: progress(0.05 + 0.75 * f, message), cancel=cancel,
                                   language=options.transcript_language)
        check_cancel(cancel)
        result = evidence.alignment
        phones, confidence = cleaned_phones(result)
        progress(0.85, "animating")
        style = SpeakerStyle()
        style.emotion = options.emotion
        style.emotion_intensity = float(np.clip(options.emotion_intensity, 0.0, 1.0))
        track = animate_phones(phones, samples, rate=rate, fps=spec.MODEL_FPS, style=style, seed=options.seed,
                               duration=audio.duration, confidence=confidence,
                               recognised=result.mode == "recognised-phones",
                               progress=lambda f: progress(0.85 + 0.15 * f, "animating"))
        # As the Neural engine's lips (core.straighten): its closures kept, its open vowels opened.
        straighten_take(track.values, samples, phones, confidence)
        for w in evidence.warnings:
            log.warning("%s", w)
        track.meta["phonetic"] = {"mode": result.mode, "accuracy": accuracy, "phones": len(result.phones),
                                  "transcript": bool(transcript), "bilabials_added": evidence.bilabials_added,
                                  "evidence": evidence.source}
        track.meta["warnings"] = evidence.warnings
        progress(1.0, "done")
        return track
