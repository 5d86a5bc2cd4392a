"""The Phonetic engine: pocketsphinx phone timings (alignment or recognition) → articulation teacher → FaceTrack.

Runtime only: numpy, pocketsphinx and onnxruntime (the second opinion), no torch, no GPL code.
Modes (``options.extra["accuracy"]``):
- "fast" (default): with a transcript, forced alignment; without one, all-phone recognition, with the neural
  model's audio encoder as a second opinion on lip closures (add_missed_bilabials) and on vowels recognition hears
  in music or noise (calm_silent_vowels), and the recogniser's shortest consonants merged into their neighbours
  (merge_short_consonants).
- "accurate": without a transcript, word recognition and then forced alignment of the hypothesis (about 5× slower).
A transcript comes from ``options.transcript`` or from a ``.txt`` file beside the audio. When it does not match the
audio, the engine falls back to recognition and says so in ``track.meta["warnings"]``.
"""

from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path

import numpy as np

from . import spec
from .align import AlignerMissing, Alignment, shared_aligner
from .audio import Audio
from .engine import BakeOptions, ProgressFn, check_cancel
from .errors import Cancelled, FacePolicyError
from .facetrack import FaceTrack
from .phones import BILABIALS, PHONES, SIL, VOWELS, PhoneSegment
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
# Second opinion on lip closures: the audio encoder's frame-wise phone classifier (trained with the exact phone
# timings of the corpus) hears some p/b/m that all-phone recognition turns into /l/, /n/ or nothing. A run of at
# least BILABIAL_MIN_FRAMES encoder frames (50 Hz) whose P(p)+P(b)+P(m) exceeds BILABIAL_EVIDENCE, inside a
# recognised consonant or pause and overlapping no recognised bilabial, becomes a bilabial. Vowels are never cut:
# the encoder's false alarms there would close an open mouth. Chosen on the TTS tuning draw (docs/BENCHMARKS.md).
BILABIAL_EVIDENCE = 0.5
BILABIAL_MIN_FRAMES = 2
# Recognised consonants shorter than this (pocketsphinx's shortest phone is 30 ms) are mostly insertions at a
# boundary; each becomes part of its longer neighbour, so the jaw does not twitch for it. Never a bilabial.
SHORT_CONSONANT = 0.05
_BILABIAL_ORDER = ("p", "b", "m")
# In music and noise, recognition "hears" vowels that the audio encoder calls silence: over the nonspeech clips of
# model.evaluate their mean P(sil) was 0.64 to 1.0; over the vowels recognised in the real clips and a TTS draw at
# most 0.50 (99th percentile 0.24 to 0.33; over 93 speech clips it changed two sentences and no hit:
# docs/BENCHMARKS.md). A recognised vowel whose mean P(sil) reaches this gets confidence 0, so the teacher keeps
# the mouth calm there (and the Neural engine's jaw floor skips it).
VOWEL_MAX_SILENCE = 0.6


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


def add_missed_bilabials(phones: list[PhoneSegment], confidence: list[float], probs: np.ndarray,
                         frame_rate: float, threshold: float = BILABIAL_EVIDENCE,
                         min_frames: int = BILABIAL_MIN_FRAMES) -> tuple[list[PhoneSegment], list[float], int]:
    """Recognised phones plus the bilabials the audio encoder hears and the recogniser missed.

    ``probs``: (frames, 3) encoder probabilities of p, b and m at ``frame_rate`` (frame j spans j/rate ..
    (j+1)/rate). Returns (phones, confidence, how many bilabials were added); a host phone that a closure lands in
    is split around it and keeps its confidence, and the closure gets the host's confidence too.
    """
    probs = np.asarray(probs, np.float64).reshape(-1, len(_BILABIAL_ORDER))
    on = probs.sum(axis=1) > threshold
    edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(np.int8), [0]])))
    phones, confidence = list(phones), list(confidence)
    added = 0
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        if b - a < min_frames:
            continue
        s, e = a / frame_rate, b / frame_rate
        if any(p.phone in BILABIALS and p.start < e and p.end > s for p in phones):
            continue
        centre = 0.5 * (s + e)
        host = next((k for k, p in enumerate(phones) if p.start <= centre < p.end), None)
        if host is None or phones[host].phone in VOWELS:
            continue
        p, c = phones[host], confidence[host]
        s, e = max(s, p.start), min(e, p.end)
        name = _BILABIAL_ORDER[int(np.argmax(probs[a:b].sum(axis=0)))]
        parts = [PhoneSegment(p.phone, p.start, s)] if s - p.start > 0.005 else []
        parts.append(PhoneSegment(name, s, e))
        parts += [PhoneSegment(p.phone, e, p.end)] if p.end - e > 0.005 else []
        phones[host : host + 1] = parts
        confidence[host : host + 1] = [c] * len(parts)
        added += 1
    return phones, confidence, added


def calm_silent_vowels(phones: list[PhoneSegment], confidence: list[float], silence: np.ndarray,
                       frame_rate: float, threshold: float = VOWEL_MAX_SILENCE) -> tuple[list[float], int]:
    """Confidence 0 for the recognised vowels over which the encoder's mean P(sil) (``silence``, per frame at
    ``frame_rate``) reaches ``threshold``; returns (confidence, how many were calmed)."""
    confidence = list(confidence)
    calmed = 0
    for k, p in enumerate(phones):
        if p.phone not in VOWELS or not len(silence):
            continue
        a = min(int(p.start * frame_rate), len(silence) - 1)
        b = max(a + 1, int(p.end * frame_rate))
        if float(np.mean(silence[a:b])) >= threshold and confidence[k] > 0:
            confidence[k] = 0.0
            calmed += 1
    return confidence, calmed


def merge_short_consonants(phones: list[PhoneSegment], confidence: list[float],
                           min_duration: float = SHORT_CONSONANT) -> tuple[list[PhoneSegment], list[float]]:
    """Recognised consonants shorter than ``min_duration`` joined to their longer neighbour (not a pause);
    bilabials, vowels and pauses are kept whatever their length."""
    phones, confidence = list(phones), list(confidence)
    k = 0
    while k < len(phones):
        p = phones[k]
        if p.phone in BILABIALS or p.phone in VOWELS or p.phone == SIL or p.duration >= min_duration:
            k += 1
            continue
        near = [j for j in (k - 1, k + 1) if 0 <= j < len(phones) and phones[j].phone != SIL]
        if not near:
            k += 1
            continue
        j = max(near, key=lambda i: phones[i].duration)
        q = phones[j]
        phones[j] = PhoneSegment(q.phone, min(q.start, p.start), max(q.end, p.end))
        del phones[k], confidence[k]
        k = max(0, k - 1)
    return phones, confidence


class BilabialListener:
    """The shipped neural model's audio encoder, used for its phone classifier only (one small ONNX session)."""

    MARGIN = 40  # mel frames of context each side of a block (the encoder's receptive field is smaller)
    BLOCK = 6000  # mel frames per encoder call (60 s), so memory stays bounded on long audio

    def __init__(self, model_dir: Path | str | None = None, block: int | None = None, *, session=None,
                 stride: int = 1):
        """From the model in ``model_dir`` (default: the shipped one), or from an audio-encoder ``session`` that
        is already open (the Neural engine's) with its ``stride``."""
        from .policy import create_session, read_model_files

        if session is None:
            files = read_model_files(model_dir)
            m = files.manifest
            stride = int(m["model"].get("audio_stride", 1))
            session, _ = create_session(files.root / m["onnx"]["audio_encoder"], "cpu")
        self.session, self.stride = session, int(stride)
        outputs = [o.name for o in self.session.get_outputs()]
        if "phone_logits" not in outputs:
            raise FacePolicyError("the neural model's audio encoder has no phone classifier output")
        self.block = int(block or self.BLOCK)
        self.block -= self.block % self.stride  # blocks start on the encoder's grid

    @property
    def frame_rate(self) -> float:
        from .features import MEL_RATE

        return MEL_RATE / self.stride

    def bilabial_probs(self, samples: np.ndarray, cancel: threading.Event | None = None) -> np.ndarray:
        """(frames, 3) probabilities of p, b and m per encoder frame (phone_probs)."""
        return self.phone_probs(samples, _BILABIAL_ORDER, cancel)

    def phone_probs(self, samples: np.ndarray, phones, cancel: threading.Event | None = None) -> np.ndarray:
        """(frames, len(phones)) probabilities of ``phones`` per encoder frame; blocks overlap by MARGIN mel
        frames, so the result does not depend on the block size."""
        from .features import log_mel, n_mel_frames

        columns = [PHONES.index(p) for p in phones]
        n_mel = n_mel_frames(len(samples))
        n_mel += (-n_mel) % self.stride
        out = []
        for m0 in range(0, n_mel, self.block):
            check_cancel(cancel)
            m1 = min(n_mel, m0 + self.block)
            lo = m0 - self.MARGIN
            mel = log_mel(samples, start_frame=lo, n_frames=m1 - lo + self.MARGIN)
            _, logits = self.session.run(None, {"mel": mel[None]})
            logits = logits[0, self.MARGIN // self.stride : (self.MARGIN + m1 - m0) // self.stride].astype(np.float64)
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            out.append(p[:, columns] / p.sum(axis=1, keepdims=True))
        return np.concatenate(out) if out else np.zeros((0, len(columns)))


@functools.lru_cache(maxsize=1)
def shared_listener() -> BilabialListener:
    """One listener per process, on the shipped model (a failed load is not cached: the next bake tries again)."""
    return BilabialListener()


def second_opinion(result: Alignment, samples: np.ndarray, warnings: list[str],
                   cancel: threading.Event | None = None, listener: BilabialListener | None = None) -> int:
    """Adds the bilabials the audio encoder hears to recognised phones, and calms the recognised vowels it hears as
    silence (calm_silent_vowels), in place; returns how many bilabials were added. Without a usable model it warns
    and leaves the recognition as it is. ``listener``: default the shipped model's."""
    try:
        listener = listener or shared_listener()
        probs = listener.phone_probs(samples, (*_BILABIAL_ORDER, SIL), cancel)
    except Cancelled:
        raise
    except (FacePolicyError, ImportError) as exc:
        warnings.append(f"the neural model's audio encoder is unavailable ({exc}); lip closures come from phone "
                        "recognition alone")
        return 0
    result.phones, result.confidence, added = add_missed_bilabials(result.phones, result.confidence, probs[:, :3],
                                                                   listener.frame_rate)
    result.confidence, _ = calm_silent_vowels(result.phones, result.confidence, probs[:, 3], listener.frame_rate)
    return added


def phonetic_prior(result: Alignment, samples: np.ndarray, duration: float | None = None) -> FaceTrack:
    """The Phonetic engine's face (default style, seed 0) for the Neural engine's evidence: a forced alignment, or
    a phone recognition that already carries the second opinion, which is cleaned up as the Phonetic engine does
    (plausibility, then merge_short_consonants). The Neural engine's accurate mode steers its mouth toward it
    (core.policy, SampleSettings.prior_weight). ``result`` is not changed."""
    phones, confidence = list(result.phones), list(result.confidence)
    recognised = result.mode == "recognised-phones"
    if recognised:
        confidence = [min(a, b) for a, b in zip(confidence, plausibility(phones), strict=True)]
        phones, confidence = merge_short_consonants(phones, confidence)
    return animate_phones(phones, samples, rate=spec.SAMPLE_RATE, fps=spec.MODEL_FPS, duration=duration,
                          confidence=confidence, recognised=recognised)


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
        added: int | None = None
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
            if result.mode == "recognised-phones":
                added = second_opinion(result, samples, warnings, cancel)
                result.phones, result.confidence = merge_short_consonants(result.phones, result.confidence)
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
                                  "transcript": bool(transcript), "bilabials_added": added}
        track.meta["warnings"] = warnings
        progress(1.0, "done")
        return track
