"""Phone evidence for one line, made in one place for both engines (``gather_evidence`` → ``Evidence``).

A transcript is force-aligned when it is English or in a language core.letters aligns, and the audio encoder hears
its phones where the alignment puts them; otherwise the phones are recognised from the audio (or, in the Neural
engine's fast mode, there are none).
Recognised phones get the audio encoder's second opinion (closures recognition missed, vowels it heard as pauses,
vowels it hears as silence).
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
from .listener import BILABIAL_PHONES, BilabialListener, EncodedAudio, shared_listener
from .nonspeech import spectral_cues, speech_frames
from .phones import BILABIALS, PHONES, SIL, VOWELS, PhoneSegment
from .ps_native import AlignerMissing
from .recognition import PAUSE_SILENCE, recognise_chunks, shared_decoders, speech_chunks
from .transcript import CHINESE_CHARACTERS, language_as_told, transcript_language

# --- the transcript ------------------------------------------------------------------------------------------------

# A transcript is used when the median over its phones of the audio encoder's mean log-probability of the phone,
# over the frames the forced alignment gives it, reaches this. The median lets a few words the voice says its own way
# pass, while another line's text misses most of its phones. Chosen on the tuning half of
# bench/transcript_acceptance.py (midway between the lowest exact transcript and the highest swapped one).
TRANSCRIPT_MIN_FIT = -7.7
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


def transcript_fit(alignment: Alignment, probs: np.ndarray, frame_rate: float) -> float:
    """How well the audio matches a forced alignment: the median over its speech phones of the audio encoder's mean
    log-probability of that phone over its aligned frames. ``probs``: (frames, len(PHONES)) at ``frame_rate``."""
    per_phone = []
    for p in alignment.phones:
        if p.phone == SIL or not len(probs):
            continue
        a = min(int(p.start * frame_rate), len(probs) - 1)
        b = max(a + 1, int(p.end * frame_rate))
        per_phone.append(np.log(np.maximum(probs[a:b, PHONES.index(p.phone)], _LOG_FLOOR)).mean())
    return float(np.median(per_phone)) if per_phone else float(np.log(_LOG_FLOOR))


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


# --- recognised phones: plausibility, the second opinion, short consonants -------------------------------------------

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
# A closure the encoder hears inside a recognised vowel is added only when it is this sure on average: a real /m/ or
# /b/ recognised as part of a vowel (on the per-language dev set, 16 of 26 missed bilabials; most in French,
# Japanese and Polish), not the lip rounding of a vowel that a weaker opinion is.
BILABIAL_IN_VOWEL = 0.9
# Recognised consonants shorter than this (pocketsphinx's shortest phone is 30 ms) are mostly insertions at a
# boundary; each becomes part of its longer neighbour, so the jaw does not twitch for it. Never a bilabial.
SHORT_CONSONANT = 0.05
# In music and noise, recognition "hears" vowels that the audio encoder calls silence: over the nonspeech clips of
# model.evaluate their mean P(sil) was 0.64 to 1.0; over the vowels recognised in the real clips and a TTS draw at
# most 0.50 (99th percentile 0.24 to 0.33; over 93 speech clips it changed two sentences and no hit:
# docs/BENCHMARKS.md). A recognised vowel whose mean P(sil) reaches this gets confidence 0, so the teacher keeps
# the mouth calm there (and the Neural engine's jaw floor skips it).
VOWEL_MAX_SILENCE = 0.6
# The other way round: on synthetic voices all-phone recognition "hears" a pause over steady vowels that the encoder
# is sure are vowels (P(sil) about 0): in eight languages of the espeak-ng development set, 41 such pauses over 3.2 s
# of vowels, English too, each closing the mouth in the middle of a word. A run of at least VOWEL_MIN_FRAMES encoder
# frames inside a recognised pause over which the encoder's P(any vowel) exceeds VOWEL_IN_PAUSE becomes the vowel it
# hears most. Over the real clips of model.evaluate (both sets) no pause has such a run (docs/BENCHMARKS.md, issue 17).
VOWEL_IN_PAUSE = 0.5
VOWEL_MIN_FRAMES = 3
# The encoder's columns the second opinion reads (core.listener's phone_probs): p, b, m, sil, then every vowel.
OPINION_VOWELS = tuple(p for p in PHONES if p in VOWELS)
OPINION_PHONES = (*BILABIAL_PHONES, SIL, *OPINION_VOWELS)


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


def _runs(on: np.ndarray) -> list[tuple[int, int]]:
    """(first, end) frame of each run of True in ``on``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], np.asarray(on, np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def add_missed_bilabials(phones: list[PhoneSegment], confidence: list[float], probs: np.ndarray,
                         frame_rate: float, threshold: float = BILABIAL_EVIDENCE,
                         min_frames: int = BILABIAL_MIN_FRAMES) -> tuple[list[PhoneSegment], list[float], int]:
    """Recognised phones plus the bilabials the audio encoder hears and the recogniser missed.

    ``probs``: (frames, 3) encoder probabilities of p, b and m at ``frame_rate`` (frame j spans j/rate ..
    (j+1)/rate). Returns (phones, confidence, how many bilabials were added); a host phone that a closure lands in
    is split around it and keeps its confidence, and the closure gets the host's confidence too.
    """
    probs = np.asarray(probs, np.float64).reshape(-1, len(BILABIAL_PHONES))
    phones, confidence = list(phones), list(confidence)
    added = 0
    for a, b in _runs(probs.sum(axis=1) > threshold):
        if b - a < min_frames:
            continue
        s, e = a / frame_rate, b / frame_rate
        if any(p.phone in BILABIALS and p.start < e and p.end > s for p in phones):
            continue
        centre = 0.5 * (s + e)
        host = next((k for k, p in enumerate(phones) if p.start <= centre < p.end), None)
        if host is None or (phones[host].phone in VOWELS and float(probs[a:b].sum(axis=1).mean()) < BILABIAL_IN_VOWEL):
            continue
        split_phone(phones, confidence, host, s, e, BILABIAL_PHONES[int(np.argmax(probs[a:b].sum(axis=0)))])
        added += 1
    return phones, confidence, added


def split_phone(phones: list[PhoneSegment], confidence: list[float], host: int, s: float, e: float,
                name: str) -> None:
    """In place: phone ``name`` over ``s``..``e`` (clipped to phone ``host``), the host split around it; every part
    keeps the host's confidence (slivers under 5 ms are dropped)."""
    p, c = phones[host], confidence[host]
    s, e = max(s, p.start), min(e, p.end)
    parts = [PhoneSegment(p.phone, p.start, s)] if s - p.start > 0.005 else []
    parts.append(PhoneSegment(name, s, e))
    parts += [PhoneSegment(p.phone, e, p.end)] if p.end - e > 0.005 else []
    phones[host : host + 1] = parts
    confidence[host : host + 1] = [c] * len(parts)


def vowels_in_pauses(phones: list[PhoneSegment], confidence: list[float], vowels: np.ndarray, frame_rate: float,
                     decoded: float | None = None, threshold: float = VOWEL_IN_PAUSE,
                     min_frames: int = VOWEL_MIN_FRAMES) -> tuple[list[PhoneSegment], list[float], int]:
    """Recognised pauses with the vowels the encoder hears in them: ``vowels`` is (frames, len(OPINION_VOWELS)),
    its probabilities per frame at ``frame_rate``. A run of at least ``min_frames`` frames whose summed vowel
    probability exceeds ``threshold`` inside a pause becomes the vowel with the most probability over the run, with
    that mean summed probability as its confidence; the pause is split around it. ``decoded``: the time up to which
    the phones were recognised (a live stream's pause after it only stands for audio not decoded yet; None: all of
    them). Returns (phones, confidence, how many vowels were added)."""
    vowels = np.asarray(vowels, np.float64).reshape(-1, len(OPINION_VOWELS))
    phones, confidence = list(phones), list(confidence)
    added = 0
    for a, b in _runs(vowels.sum(axis=1) > threshold):
        s, e = a / frame_rate, b / frame_rate
        host = next((k for k, p in enumerate(phones) if p.start <= 0.5 * (s + e) < p.end), None)
        if host is None or phones[host].phone != SIL:
            continue
        s, e = max(s, phones[host].start), min(e, phones[host].end, np.inf if decoded is None else decoded)
        if (e - s) * frame_rate < min_frames - 1e-6:
            continue
        run = vowels[a:b]
        at = host + (s - phones[host].start > 0.005)  # where split_phone puts the vowel
        split_phone(phones, confidence, host, s, e, OPINION_VOWELS[int(np.argmax(run.sum(axis=0)))])
        confidence[at] = float(run.sum(axis=1).mean())
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


def cleaned_phones(result: Alignment) -> tuple[list[PhoneSegment], list[float]]:
    """The phones and confidences the articulation teacher animates: recognised phones lose confidence where they
    are implausible (plausibility), and all-phone recognition's shortest consonants join their neighbours
    (merge_short_consonants); a forced alignment is taken as it is. ``result`` is not changed."""
    phones, confidence = list(result.phones), list(result.confidence)
    if result.mode.startswith("recognised"):
        confidence = [min(a, b) for a, b in zip(confidence, plausibility(phones), strict=True)]
    if result.mode == "recognised-phones":
        phones, confidence = merge_short_consonants(phones, confidence)
    return phones, confidence


def apply_second_opinion(result: Alignment, probs: np.ndarray, frame_rate: float, decoded: float | None = None) -> int:
    """The second opinion on recognised phones, in place, from the encoder's ``probs`` (frames, len(OPINION_PHONES)):
    the closures it hears are added, the vowels it hears in recognised pauses added (up to ``decoded``, see
    vowels_in_pauses), the recognised vowels it hears as silence calmed; returns how many bilabials were added."""
    probs = np.asarray(probs).reshape(-1, len(OPINION_PHONES))
    result.phones, result.confidence, added = add_missed_bilabials(result.phones, result.confidence, probs[:, :3],
                                                                   frame_rate)
    result.phones, result.confidence, _ = vowels_in_pauses(result.phones, result.confidence, probs[:, 4:],
                                                           frame_rate, decoded)
    result.confidence, _ = calm_silent_vowels(result.phones, result.confidence, probs[:, 3], frame_rate)
    return added


def second_opinion(result: Alignment, samples: np.ndarray, warnings: list[str],
                   cancel: threading.Event | None = None, listener: BilabialListener | None = None) -> int:
    """apply_second_opinion with the encoder's probabilities for ``samples``; without a usable model it warns and
    leaves the recognition as it is. ``listener``: default the shipped model's."""
    try:
        probs = (listener or shared_listener()).phone_probs(samples, OPINION_PHONES, cancel)
    except Cancelled:
        raise
    except (FacePolicyError, ImportError) as exc:
        warnings.append(f"the neural model's audio encoder is unavailable ({exc}); lip closures come from phone "
                        "recognition alone")
        return 0
    return apply_second_opinion(result, probs, (listener or shared_listener()).frame_rate)


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
    probs, encoded, columns, rate = _listen(samples, listener, bool(text), recognise, warnings, cancel, keep_features)
    speech = speech_frames(samples, None if probs is None else probs[:, columns.index(SIL)], rate,
                           cues.result() if rate == rate_ahead else None)
    result: Alignment | None = None
    fit = None
    if text:
        result, fit = _use_transcript(samples, text, probs, rate, recognise, warnings, progress, told)
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


def _listen(samples, listener, checking: bool, recognise: str | None, warnings: list[str], cancel,
            keep: bool) -> tuple[np.ndarray | None, EncodedAudio | None, tuple[str, ...], float]:
    """The encoder's probabilities, (frames, len(columns)), of every phone (with a transcript to check) or of the
    second opinion's OPINION_PHONES, its features with ``keep``, the columns and the frame rate; None and a warning
    when the model cannot be used."""
    columns = PHONES if checking else OPINION_PHONES
    try:
        listener = listener or shared_listener()
        probs, encoded = listener.listen(samples, columns, cancel, keep)
        return probs, encoded, columns, listener.frame_rate
    except Cancelled:
        raise
    except (FacePolicyError, ImportError) as exc:
        lost = ["nonspeech is found by its spectrum alone"]
        if checking:
            lost.insert(0, "the transcript is used without checking it against the audio")
        if recognise == "phones":
            lost.insert(0, "lip closures come from phone recognition alone")
        warnings.append(f"the neural model's audio encoder is unavailable ({exc}); {', and '.join(lost)}")
        return None, None, columns, SPEECH_RATE


def _use_transcript(samples, text: str, probs, rate: float, recognise: str | None, warnings: list[str],
                    progress: Progress, told: str | None = None) -> tuple[Alignment | None, float | None]:
    """The transcript's forced alignment and its fit, or (None, fit) with one warning sentence when it is in a
    language that is not aligned, cannot be aligned, or does not match the audio. A transcript aligned in another
    language than English gets one line saying which. ``told``: the language the user set (None: detected)."""
    aligner: Aligner = shared_aligner()
    instead = _INSTEAD[recognise]
    language = language_as_told(told) if told else transcript_language(text, aligner.in_dictionary)
    if not language.english:
        if language.code not in letters.ALIGNED:
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
    fit = transcript_fit(result, probs, rate)
    if fit < TRANSCRIPT_MIN_FIT:
        warnings.append(f"the transcript does not match the audio (fit {fit:.1f}, where a matching transcript "
                        f"scores {TRANSCRIPT_MIN_FIT} or more), so {instead}")
        return None, fit
    warnings += result.warnings
    return result, fit


