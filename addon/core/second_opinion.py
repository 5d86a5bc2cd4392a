"""The audio encoder's second opinion on recognised phones, and their clean-up: all-phone recognition misses closures
the encoder hears, hears pauses over vowels the encoder is sure of, and vowels over music the encoder calls silence;
its shortest consonants are mostly boundary insertions. One rule each, for offline recognition (core.evidence),
the live stream (core.stream_evidence) and the Phonetic engine (cleaned_phones). Runtime only: numpy, onnxruntime.
"""

from __future__ import annotations

import bisect
import threading

import numpy as np

from .align import Alignment
from .errors import Cancelled, FacePolicyError
from .listener import BILABIAL_PHONES, BilabialListener, shared_listener
from .phones import BILABIALS, PHONES, SIL, VOWELS, PhoneSegment

# Recognised phones longer than these are implausible (music, hum, noise) and get a low confidence.
_MAX_CONSONANT = 0.22
_MAX_VOWEL = 0.40
# Second opinion on lip closures: the audio encoder's frame-wise phone classifier (trained with the exact phone
# timings of the corpus) hears some p/b/m that all-phone recognition turns into /l/, /n/ or nothing. A run of at
# least BILABIAL_MIN_FRAMES encoder frames (50 Hz) whose P(p)+P(b)+P(m) exceeds BILABIAL_EVIDENCE, inside a
# recognised consonant or pause and overlapping no recognised bilabial, becomes a bilabial. Vowels are cut only where
# it is very sure (BILABIAL_IN_VOWEL): its false alarms there would close an open mouth. Chosen on the TTS tuning
# draw (docs/BENCHMARKS.md).
BILABIAL_EVIDENCE = 0.5
BILABIAL_MIN_FRAMES = 2
# A closure the encoder hears inside a recognised vowel is added only when it is this sure on average: a real /m/ or
# /b/ recognised as part of a vowel (on the per-language dev set, 16 of 26 missed bilabials; most in French,
# Japanese and Polish), not the lip rounding of a vowel that a weaker opinion is.
BILABIAL_IN_VOWEL = 0.9
# A run over a recognised consonant and a vowel closes in the consonant (recognition heard French p/b as k, l, n), but
# not in these, which the lips make themselves: there the encoder's opinion was its own confusion (real clips).
LIP_CONSONANTS = frozenset({"w", "v", "f"})
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
# The same holds for a recognised /l/: recognition hears back rounded vowels as a dark l (Polish o, French o), and
# the encoder hears the vowel (on the development set 17 such runs in Polish and 8 in German, each over a vowel of
# espeak-ng's; over the real clips 4, 3 of them over a vowel, and 5 in the held-out TTS draw, 4 over a vowel).
VOWEL_HOSTS = (SIL, "l")
# Where the encoder is at least this sure of a closure in a frame (P(p)+P(b)+P(m)) the Neural engine's phonetic prior
# lets go (in a pause only just before speech: core.neural.prior_hold), so the model's own closure shows where
# recognition heard another consonant or nothing: French p and b heard as k, l or silence (20 ms in espeak-ng's
# voice: often one encoder frame, too short to add as a phone), and, inside a recognised vowel, a closure between two
# vowels heard as one (Swedish "mormor"; of such runs on the development set 95 of 107 lie on a bilabial, on the
# real clips 2 of 5, in the held-out TTS draw 3 of 10). Nothing is sealed there: on real speech the encoder is that
# sure in some frames without a closure (the "ld" of "old"), and there the model decides (no real open vowel or
# pause was lost). Issue 17, docs/BENCHMARKS.md (eleventh and seventeenth sessions).
SURE_CLOSURE = 0.9
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


def sure_closures(probs: np.ndarray, frame_rate: float) -> list[tuple[float, float]]:
    """(start, end) seconds of each run of encoder frames whose P(p)+P(b)+P(m) (``probs``: (frames, 3) at
    ``frame_rate``) reaches SURE_CLOSURE."""
    sure = np.asarray(probs, np.float64).reshape(-1, len(BILABIAL_PHONES)).sum(axis=1) >= SURE_CLOSURE
    return [(a / frame_rate, b / frame_rate) for a, b in _runs(sure)]


def add_missed_bilabials(phones: list[PhoneSegment], confidence: list[float], probs: np.ndarray,
                         frame_rate: float, threshold: float = BILABIAL_EVIDENCE,
                         min_frames: int = BILABIAL_MIN_FRAMES) -> tuple[list[PhoneSegment], list[float], int]:
    """Recognised phones (in time order, not overlapping) plus the bilabials the audio encoder hears and the
    recogniser missed.

    ``probs``: (frames, 3) encoder probabilities of p, b and m at ``frame_rate`` (frame j spans j/rate ..
    (j+1)/rate). Returns (phones, confidence, how many bilabials were added); a host phone that a closure lands in
    is split around it and keeps its confidence, and the closure gets the host's confidence too.
    """
    probs = np.asarray(probs, np.float64).reshape(-1, len(BILABIAL_PHONES))
    phones, confidence = list(phones), list(confidence)
    starts = [p.start for p in phones]
    added = 0
    for a, b in _runs(probs.sum(axis=1) > threshold):
        if b - a < min_frames:
            continue
        s, e = a / frame_rate, b / frame_rate
        near = _overlapping(phones, starts, s, e)
        if any(phones[k].phone in BILABIALS for k in near):
            continue
        host = _closure_host(phones, starts, near, s, e)
        if host is None or (phones[host].phone in VOWELS and float(probs[a:b].sum(axis=1).mean()) < BILABIAL_IN_VOWEL):
            continue
        _split(phones, confidence, starts, host, s, e, BILABIAL_PHONES[int(np.argmax(probs[a:b].sum(axis=0)))])
        added += 1
    return phones, confidence, added


def _overlapping(phones: list[PhoneSegment], starts: list[float], s: float, e: float) -> list[int]:
    """Indices of the phones that overlap ``s``..``e`` (phones in time order, not overlapping; ``starts`` theirs)."""
    k = max(0, bisect.bisect_right(starts, s) - 1)
    out = []
    while k < len(phones) and starts[k] < e:
        if phones[k].end > s:
            out.append(k)
        k += 1
    return out


def _at(phones: list[PhoneSegment], starts: list[float], t: float) -> int | None:
    """The index of the phone that holds time ``t`` (None: none does)."""
    k = bisect.bisect_right(starts, t) - 1
    return k if k >= 0 and phones[k].start <= t < phones[k].end else None


def _closure_host(phones: list[PhoneSegment], starts: list[float], near: list[int], s: float,
                  e: float) -> int | None:
    """The recognised phone a closure heard over ``s``..``e`` goes into (``near``: the phones overlapping it): the
    consonant it overlaps most (not LIP_CONSONANTS), else the phone at its centre (None: none)."""
    overlap = [(min(e, phones[k].end) - max(s, phones[k].start), k) for k in near
               if phones[k].phone not in VOWELS and phones[k].phone != SIL and phones[k].phone not in LIP_CONSONANTS]
    if overlap:
        return max(overlap)[1]
    return _at(phones, starts, 0.5 * (s + e))


def _split(phones: list[PhoneSegment], confidence: list[float], starts: list[float], host: int, s: float, e: float,
           name: str) -> None:
    """split_phone, keeping ``starts`` (the phones' starts) in step."""
    before = len(phones)
    split_phone(phones, confidence, host, s, e, name)
    starts[host : host + 1] = [p.start for p in phones[host : host + 1 + len(phones) - before]]


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
    """Recognised pauses (and /l/, VOWEL_HOSTS) with the vowels the encoder hears in them: ``vowels`` is (frames,
    len(OPINION_VOWELS)), its probabilities per frame at ``frame_rate``. A run of at least ``min_frames`` frames whose
    summed vowel probability exceeds ``threshold`` centred in such a phone becomes the vowel with the most
    probability over the run, with that mean summed probability as its confidence; the host is split around it.
    ``decoded``: the time up to which the phones were recognised (a live stream's pause after it only stands for
    audio not decoded yet; None: all of them). Returns (phones, confidence, how many vowels were added)."""
    vowels = np.asarray(vowels, np.float64).reshape(-1, len(OPINION_VOWELS))
    phones, confidence = list(phones), list(confidence)
    starts = [p.start for p in phones]
    added = 0
    for a, b in _runs(vowels.sum(axis=1) > threshold):
        s, e = a / frame_rate, b / frame_rate
        host = _at(phones, starts, 0.5 * (s + e))
        if host is None or phones[host].phone not in VOWEL_HOSTS:
            continue
        s, e = max(s, phones[host].start), min(e, phones[host].end, np.inf if decoded is None else decoded)
        if (e - s) * frame_rate < min_frames - 1e-6:
            continue
        run = vowels[a:b]
        at = host + (s - phones[host].start > 0.005)  # where split_phone puts the vowel
        _split(phones, confidence, starts, host, s, e, OPINION_VOWELS[int(np.argmax(run.sum(axis=0)))])
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
    the closures it is sure of noted (Alignment.closures), the closures it hears added, the vowels it hears in
    recognised pauses added (up to ``decoded``, see vowels_in_pauses), the recognised vowels it hears as silence
    calmed; returns how many bilabials were added."""
    probs = np.asarray(probs).reshape(-1, len(OPINION_PHONES))
    result.closures = sure_closures(probs[:, :3], frame_rate)
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
