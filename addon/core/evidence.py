"""Phone evidence for one line, made in one place for both engines (``gather_evidence`` → ``Evidence``).

A transcript is force-aligned when it is English or in a language core.letters aligns, and the audio encoder hears
its phones where the alignment puts them; otherwise the phones are recognised from the audio (or, in the Neural
engine's fast mode, there are none).
Recognised phones get the audio encoder's second opinion (core.second_opinion: closures recognition missed, vowels it
heard as pauses or /l/, vowels it hears as silence, closures it is sure of).
Wherever the audio is not speech at all (music, tones, noise) the evidence has no phones and the engines keep the
mouth at rest. Runtime only: numpy, pocketsphinx and onnxruntime.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import letters, spec
from .align import Aligner, Alignment, merge_silences, shared_aligner
from .cpu import cores
from .errors import Cancelled, FacePolicyError
from .letters import told_language
from .listener import BilabialListener, EncodedAudio, shared_listener
from .nonspeech import spectral_cues, speech_frames
from .phones import PHONES, SIL, PhoneSegment
from .ps_native import AlignerMissing
from .recognition import PAUSE_SILENCE, recognise_chunks, shared_decoders, speech_chunks
from .second_opinion import OPINION_PHONES, apply_second_opinion
from .transcript import CHINESE_CHARACTERS, language_as_told, transcript_language

# --- the transcript ------------------------------------------------------------------------------------------------

# An English transcript is used when the median over its phones of the audio encoder's mean log-probability of the
# phone (its English phone head), over the frames the forced alignment gives it, reaches TRANSCRIPT_MIN_FIT. The
# median lets a few words the voice says its own way pass, while another line's text misses most of its phones.
# Chosen on the tuning half of bench/transcript_acceptance.py (midway between the lowest exact transcript and the
# highest swapped one).
TRANSCRIPT_MIN_FIT = -7.7
# A transcript aligned in another language is scored by the encoder's ear (core.listener), which was trained on
# twelve languages: the mean over its phones of how far below the ear's likeliest phone the aligned phone lies
# (ear_fit). The English head scored right Spanish, French and Mandarin lines of some voices below -7.7 while other
# lines' texts reached -5.1. Chosen like the English rule, midway between the lowest right line and the highest
# swapped one on a tuning set of localised lines (slow short Swedish and Japanese lines given a longer sentence reach
# -3.92 there); bench/transcript_acceptance.py --localised checks it on other pairings (docs/BENCHMARKS.md). A model
# without an ear scores every transcript with the English rule.
EAR_MIN_FIT = -3.9
_LOG_FLOOR = 1e-6  # a phone the encoder gives no probability at all counts as this


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


def _per_phone(alignment: Alignment, scores: np.ndarray, frame_rate: float) -> list[float]:
    """The mean of ``scores`` (frames, len(PHONES)) in each speech phone's column over its aligned frames."""
    out = []
    for p in alignment.phones:
        if p.phone == SIL or not len(scores):
            continue
        a = min(int(p.start * frame_rate), len(scores) - 1)
        b = max(a + 1, int(p.end * frame_rate))
        out.append(scores[a:b, PHONES.index(p.phone)].mean())
    return out


def transcript_fit(alignment: Alignment, probs: np.ndarray, frame_rate: float) -> float:
    """How well the audio matches a forced alignment: the median over its speech phones of the audio encoder's mean
    log-probability of that phone over its aligned frames. ``probs``: (frames, len(PHONES)) at ``frame_rate``."""
    per_phone = _per_phone(alignment, np.log(np.maximum(probs, _LOG_FLOOR)), frame_rate)
    return float(np.median(per_phone)) if per_phone else float(np.log(_LOG_FLOOR))


def ear_fit(alignment: Alignment, probs: np.ndarray, frame_rate: float) -> float:
    """How well the audio matches a forced alignment by the ear's judgement: the mean over its speech phones of the
    mean over its aligned frames of log P(phone) − log P(the frame's likeliest phone), 0 when the ear hears every
    phone where the alignment puts it. ``probs``: the ear's (frames, len(PHONES)) at ``frame_rate``."""
    logs = np.log(np.maximum(probs, _LOG_FLOOR))
    below = logs - logs.max(axis=1, keepdims=True) if len(probs) else logs
    per_phone = _per_phone(alignment, below, frame_rate)
    return float(np.mean(per_phone)) if per_phone else float(np.log(_LOG_FLOOR))


# --- where the audio is not speech (core.nonspeech finds it) -------------------------------------------------

def silence_nonspeech(result: Alignment, speech: np.ndarray, frame_rate: float) -> int:
    """Phones lying mostly on frames that are not speech become pauses, in place; returns how many."""
    if not len(speech):
        return 0
    phones, confidence = [], []
    changed = 0
    for p, c in zip(result.phones, result.confidence, strict=True):
        a = min(int(p.start * frame_rate), len(speech) - 1)
        b = max(a + 1, int(p.end * frame_rate))
        if p.phone != SIL and speech[a:b].mean() < 0.5:
            p, c = PhoneSegment(SIL, p.start, p.end), 1.0
            changed += 1
        phones.append(p)
        confidence.append(c)
    result.phones, result.confidence, result.scores = phones, confidence, []
    merge_silences(result)
    return changed


# --- one line's evidence -------------------------------------------------------------------------------------------

SPEECH_RATE = 50.0  # frames per second of Evidence.speech when the encoder cannot say (its own rate otherwise)
# How each kind of evidence is named in a track's meta, and what a line falls back to without a usable transcript.
TRANSCRIPT, AUDIO_ONLY = "transcript alignment", "audio only"
RECOGNISERS = {"phones": "phone recognition", "words": "word recognition"}
_INSTEAD = {"phones": "this line was animated from phone recognition of the audio instead",
            "words": "this line was animated from word recognition of the audio instead",
            None: "this line was animated from the audio alone"}
Progress = Callable[[float, str], None]


@dataclass
class Evidence:
    """What the engines know about one line's phones, and where its audio is speech at all."""

    alignment: Alignment | None  # phones with confidences; None: no phones, the audio alone
    source: str  # TRANSCRIPT, a RECOGNISERS value, or AUDIO_ONLY
    speech: np.ndarray  # (frames,) bool at frame_rate: False where the audio is not speech (music, tones, noise)
    frame_rate: float
    warnings: list[str] = field(default_factory=list)
    bilabials_added: int | None = None  # closures the second opinion added to all-phone recognition
    fit: float | None = None  # transcript_fit of the transcript, when one was checked
    encoded: EncodedAudio | None = None  # the encoder's features of the listening pass (keep_features)

    def speech_gate(self, n_frames: int, fps: float = spec.MODEL_FPS) -> np.ndarray:
        """0..1 per output frame at ``fps``: 0 where the audio is not speech, with ramps of about 0.1 s."""
        if not len(self.speech):
            return np.ones(n_frames)
        centres = (np.arange(len(self.speech)) + 0.5) / self.frame_rate
        gate = np.interp(np.arange(n_frames) / fps, centres, self.speech.astype(np.float64))
        k = np.ones(max(1, int(round(0.1 * fps))) | 1)
        return np.convolve(np.pad(gate, len(k) // 2, mode="edge"), k / k.sum(), mode="valid")


def calm_nonspeech(states: np.ndarray, gate: np.ndarray, rest: np.ndarray, channels) -> np.ndarray:
    """(frames, C) states whose ``channels`` are pulled to ``rest`` (C,) by 1 - ``gate`` (Evidence.speech_gate)."""
    out = np.array(states, copy=True)
    g = np.asarray(gate, np.float32)[: len(out)]
    rows = np.nonzero(g < 1)[0]  # frames the gate leaves at 1 (speech) keep their values bit for bit
    if len(rows):
        cols = np.asarray(channels)
        where = np.ix_(rows, cols)
        out[where] = rest[cols] + g[rows, None] * (out[where] - rest[cols])
    return out


def gather_evidence(samples: np.ndarray, transcript: str | None, recognise: str | None,
                    listener: BilabialListener | None = None, progress: Progress | None = None,
                    cancel: threading.Event | None = None, keep_features: bool = False,
                    language: str | None = None) -> Evidence:
    """The one line's evidence, for 16 kHz ``samples``.

    ``transcript``: the line's text (None or blank: none); ``recognise``: what is done without a usable transcript,
    "phones" (all-phone recognition with the second opinion), "words" (word recognition, then alignment of the
    hypothesis) or None (no phones: the audio alone); ``listener``: the audio encoder that checks the transcript,
    gives the second opinion and finds nonspeech (default: the shipped model's); ``keep_features``: keep the
    encoder's audio features of that pass in Evidence.encoded (the Neural engine samples with them); ``language``:
    the transcript's language as the user set it (a code or name, core.letters.told_language; None or "auto":
    detected from the text; FacePolicyError for one it does not know). Raises
    AlignerMissing when pocketsphinx is needed and missing, Cancelled when ``cancel`` is set."""
    told = told_language(language)
    samples = np.asarray(samples, np.float32)
    progress = progress or (lambda fraction, message: None)
    text = (transcript or "").strip()
    warnings: list[str] = []
    if recognise == "phones" and not text:
        shared_decoders().warm(cores())  # the decoders load while the encoder listens
    # The spectrum's cues of nonspeech are made on another core while the encoder listens.
    rate_ahead = listener.frame_rate if listener is not None else SPEECH_RATE  # the shipped model's rate
    cues = _Background(spectral_cues, samples, int(np.ceil(len(samples) * rate_ahead / spec.SAMPLE_RATE)) + 2,
                       rate_ahead)
    # The transcript's language first: the ear listens only for one aligned in another language than English.
    language = None
    if text:
        language = language_as_told(told) if told else transcript_language(text, shared_aligner().in_dictionary)
    by_ear = language is not None and not language.english and letters.is_aligned(language.code)
    probs, ear, encoded, columns, rate = _listen(samples, listener, bool(text), by_ear, recognise, warnings, cancel,
                                                 keep_features)
    speech = speech_frames(samples, None if probs is None else probs[:, columns.index(SIL)], rate,
                           cues.result() if rate == rate_ahead else None)
    result: Alignment | None = None
    fit = None
    if text:
        result, fit = _use_transcript(samples, text, language, probs, ear, rate, recognise, warnings, progress)
    source = TRANSCRIPT if result is not None else RECOGNISERS.get(recognise, AUDIO_ONLY)
    added = None
    if result is None and recognise is not None:
        step = functools.partial(_step, progress, "recognising speech")
        if recognise == "words":
            result = shared_aligner().recognise_words(samples, spec.SAMPLE_RATE, progress=step, cancel=cancel)
        else:
            # Cut at the encoder's pauses into chunks decoded on every core (core.recognition).
            pause = None if probs is None else (probs[:, columns.index(SIL)] >= PAUSE_SILENCE) | ~speech
            chunks = speech_chunks(len(samples), pause, rate, samples=samples)
            result = recognise_chunks(samples, chunks, shared_decoders(), progress=step, cancel=cancel)
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled")
        if recognise == "phones":
            added = 0
            if probs is not None:
                added = apply_second_opinion(result, probs[:, [columns.index(p) for p in OPINION_PHONES]], rate)
    if result is not None:
        silence_nonspeech(result, speech, rate)
    return Evidence(result, source, speech, rate, warnings, added, fit, encoded)


def _step(progress: Progress, message: str, fraction: float) -> None:
    progress(fraction, message)


class _Background:
    """``fn(*args)`` on a thread of its own (numpy and onnxruntime release the GIL); ``result()`` waits for it."""

    def __init__(self, fn, *args):
        self._out: list = []
        self._thread = threading.Thread(target=self._run, args=(fn, args), name="facepolicy-evidence", daemon=True)
        self._thread.start()

    def _run(self, fn, args) -> None:
        try:
            self._out.append((True, fn(*args)))
        except BaseException as exc:  # noqa: BLE001 - raised again on the caller's thread
            self._out.append((False, exc))

    def result(self):
        self._thread.join()
        ok, value = self._out[0]
        if not ok:
            raise value
        return value


def _listen(samples, listener, checking: bool, by_ear: bool, recognise: str | None, warnings: list[str], cancel,
            keep: bool) -> tuple[np.ndarray | None, np.ndarray | None, EncodedAudio | None, tuple[str, ...], float]:
    """The encoder's probabilities, (frames, len(columns)), of every phone (with a transcript to check) or of the
    second opinion's OPINION_PHONES; with ``by_ear`` the ear's probabilities of every phone (None without, or for a
    model without an ear); its features with ``keep``; the columns and the frame rate. None and a warning when the
    model cannot be used."""
    columns = PHONES if checking else OPINION_PHONES
    try:
        listener = listener or shared_listener()
        probs, encoded, ear = listener.listen_checking(samples, columns, cancel, keep, by_ear)
        return probs, ear, encoded, columns, listener.frame_rate
    except Cancelled:
        raise
    except (FacePolicyError, ImportError) as exc:
        lost = ["nonspeech is found by its spectrum alone"]
        if checking:
            lost.insert(0, "the transcript is used without checking it against the audio")
        if recognise == "phones":
            lost.insert(0, "lip closures come from phone recognition alone")
        warnings.append(f"the neural model's audio encoder is unavailable ({exc}); {', and '.join(lost)}")
        return None, None, None, columns, SPEECH_RATE


def _use_transcript(samples, text: str, language, probs, ear, rate: float, recognise: str | None,
                    warnings: list[str], progress: Progress) -> tuple[Alignment | None, float | None]:
    """The transcript's forced alignment and its fit, or (None, fit) with one warning sentence when it is in a
    ``language`` (core.transcript: as the user set it or as detected) that is not aligned, cannot be aligned, or does
    not match the audio: an English transcript by transcript_fit on the phone head's ``probs``, another language's
    by ear_fit on the ``ear``'s (None: the model has none, and the English rule judges). ``probs`` None: the encoder
    is not there, nothing is checked. A transcript aligned in another language than English gets one line saying
    which."""
    aligner: Aligner = shared_aligner()
    instead = _INSTEAD[recognise]
    if not language.english:
        if not letters.is_aligned(language.code):
            if language.reason == CHINESE_CHARACTERS:  # the reason says already how to write it
                warnings.append(f"the transcript {language.reason}, so {instead}")
                return None, None
            tell = " (set the transcript's language if it is one of them)" if language.undecided else ""
            warnings.append(f"the transcript {language.reason}, and transcripts are aligned only in "
                            f"{letters.aligned_languages()}{tell}, so {instead}")
            return None, None
        unsaid = letters.unspeakable(language.code, text)
        if unsaid:
            warnings.append(f"the transcript {language.reason} but {unsaid}, so {instead}")
            return None, None
    try:
        result = aligner.align(samples, text, spec.SAMPLE_RATE,
                               progress=functools.partial(_step, progress, "aligning"), language=language.code)
    except AlignerMissing:
        raise
    except FacePolicyError as exc:
        warnings.append(f"{exc}, so {instead}")
        return None, None
    if not language.english:
        result.warnings.append(f"the transcript was aligned as {language.name} (letter-to-sound rules and the "
                               "English acoustic model)")
    if probs is None:
        warnings += result.warnings
        return result, None
    if ear is not None and not language.english:
        fit, min_fit = ear_fit(result, ear, rate), EAR_MIN_FIT
    else:
        fit, min_fit = transcript_fit(result, probs, rate), TRANSCRIPT_MIN_FIT
    if fit < min_fit:
        warnings.append(f"the transcript does not match the audio (fit {fit:.1f}, where a matching transcript "
                        f"scores {min_fit} or more), so {instead}")
        return None, fit
    warnings += result.warnings
    return result, fit


