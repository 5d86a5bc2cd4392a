"""The Phonetic engine: pocketsphinx phone timings (alignment or recognition) → articulation teacher → FaceTrack.

Runtime only: numpy and pocketsphinx, no torch, no GPL code. Modes (``options.extra["accuracy"]``):
- "fast" (default): with a transcript, forced alignment; without one, all-phone recognition.
- "accurate": without a transcript, word recognition and then forced alignment of the hypothesis (about 5× slower).
A transcript comes from ``options.transcript`` or from a ``.txt`` file beside the audio. When it does not match the
audio, the engine falls back to recognition and says so in ``track.meta["warnings"]``.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from . import spec
from .align import AlignerMissing, Alignment, shared_aligner
from .audio import Audio
from .engine import BakeOptions, ProgressFn, check_cancel
from .errors import FacePolicyError
from .facetrack import FaceTrack
from .phones import SIL, VOWELS, PhoneSegment
from .teacher import EMOTIONS, SpeakerStyle, animate_phones

log = logging.getLogger(__name__)

ACCURACY_MODES = ("fast", "accurate")
# A forced alignment whose mean acoustic score per speech frame is below this, or that squeezes most phones to
# the decoder's minimum duration, does not fit the audio (the transcript is for another recording).
MISMATCH_SCORE = -30.0
MISMATCH_MIN_DURATION_SHARE = 0.45
# Recognised phones longer than these are implausible (music, hum, noise) and get a low confidence.
_MAX_CONSONANT = 0.22
_MAX_VOWEL = 0.40


def sidecar_transcript(source: str) -> str | None:
    """The text of ``<audio stem>.txt`` beside the audio file, if there is one."""
    if not source:
        return None
    path = Path(source).with_suffix(".txt")
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def plausibility(phones: list[PhoneSegment]) -> list[float]:
    """0..1 per phone: low for implausibly long phones and in stretches with too few phones to be speech."""
    out = []
    starts = np.array([p.start for p in phones])
    speech = np.array([p.phone != SIL for p in phones])
    for p in phones:
        if p.phone == SIL:
            out.append(1.0)
            continue
        limit = _MAX_VOWEL if p.phone in VOWELS else _MAX_CONSONANT
        c = float(np.clip(1.0 - (p.duration - limit) / limit, 0.0, 1.0))
        near = np.abs(starts - 0.5 * (p.start + p.end)) < 0.6
        density = int((near & speech).sum())  # speech runs about 10–15 phones per second
        c *= float(np.clip((density - 2) / 4.0, 0.0, 1.0))
        out.append(c)
    return out


def alignment_fits(result: Alignment) -> tuple[bool, str]:
    """Whether a forced alignment looks like the transcript was actually spoken."""
    speech = [(p, s) for p, s in zip(result.phones, result.scores, strict=True) if p.phone != SIL]
    if not speech:
        return False, "no speech phones were aligned"
    frames = sum(max(1, round(p.duration * 100)) for p, _ in speech)
    score = sum(s for _, s in speech) / frames
    squeezed = sum(1 for p, _ in speech if p.duration <= 0.0301) / len(speech)
    if score < MISMATCH_SCORE or squeezed > MISMATCH_MIN_DURATION_SHARE:
        return False, f"acoustic fit {score:.0f}/frame, {100 * squeezed:.0f}% of phones at minimum length"
    return True, ""


class PhoneticEngine:
    name = "phonetic"

    def animate(self, audio: Audio, options: BakeOptions, progress: ProgressFn,
                cancel: threading.Event) -> FaceTrack:
        accuracy = str(options.extra.get("accuracy") or "fast")
        if accuracy not in ACCURACY_MODES:
            raise FacePolicyError(f"unknown accuracy {accuracy!r} for the phonetic engine; use fast or accurate")
        if options.emotion not in EMOTIONS:
            raise FacePolicyError(f"unknown emotion {options.emotion!r}; choose one of {', '.join(EMOTIONS)}")
        samples = np.asarray(audio.samples, np.float32)
        rate = audio.sample_rate
        if rate != spec.SAMPLE_RATE:
            raise FacePolicyError(f"the phonetic engine needs {spec.SAMPLE_RATE} Hz audio (load it with load_audio)")
        warnings: list[str] = []
        transcript = options.transcript or sidecar_transcript(audio.source)
        aligner = shared_aligner()
        result: Alignment | None = None
        progress(0.02, "listening")
        if transcript and transcript.strip():
            try:
                result = aligner.align(samples, transcript, rate, progress=lambda f: progress(0.05 + 0.75 * f,
                                                                                                "aligning"))
                ok, why = alignment_fits(result)
                if not ok:
                    warnings.append(f"the transcript does not match the audio ({why}); used phone recognition")
                    result = None
                else:
                    warnings += result.warnings
            except AlignerMissing:
                raise
            except FacePolicyError as exc:
                warnings.append(f"the transcript could not be aligned ({exc}); used phone recognition")
                result = None
        check_cancel(cancel)
        if result is None:
            def step(f: float) -> None:
                progress(0.05 + 0.75 * f, "recognising speech")

            if accuracy == "accurate":
                result = aligner.recognise_words(samples, rate, progress=step, cancel=cancel)
            else:
                result = aligner.recognise_phones(samples, rate, progress=step, cancel=cancel)
            check_cancel(cancel)
            plaus = plausibility(result.phones)
            result.confidence = [min(a, b) for a, b in zip(result.confidence, plaus, strict=True)]
        progress(0.85, "animating")
        style = SpeakerStyle.from_dict(dict(options.extra.get("style_params") or {}))
        style.emotion = options.emotion
        style.emotion_intensity = float(np.clip(options.emotion_intensity, 0.0, 1.0))
        track = animate_phones(result.phones, samples, rate=rate, fps=spec.MODEL_FPS, style=style, seed=options.seed,
                               duration=audio.duration, confidence=result.confidence,
                               recognised=result.mode == "recognised-phones")
        for w in warnings:
            log.warning("%s", w)
        track.meta["phonetic"] = {"mode": result.mode, "accuracy": accuracy, "phones": len(result.phones),
                                  "transcript": bool(transcript)}
        track.meta["warnings"] = warnings
        progress(1.0, "done")
        return track
