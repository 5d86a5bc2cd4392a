"""Phone evidence for the live stream (core.stream): the phones pocketsphinx hears as the audio comes, with the audio
encoder's second opinion, as one Alignment per plan.

pocketsphinx decodes an utterance incrementally and its partial hypothesis reaches to within a few frames of the
newest audio. An utterance is cut at a pause once it is a few seconds long (or at a phone boundary when it runs on),
so decoding stays proportional to the audio and the hypothesis never spans a whole session; the phones before the
cut are kept for a few seconds, then forgotten. The encoder's phone probabilities come from the stream's own plans
(NeuralPolicy.encode), so hearing closures costs no extra network call.
"""

from __future__ import annotations

import numpy as np

from . import spec
from .align import FRAME_RATE, Alignment, merge_silences, pcm16
from .listener import BILABIAL_PHONES
from .phone_lm import PHONE_LM_WEIGHT, bilabial_phone_lm
from .phones import PHONE_INDEX, PHONES, SIL, PhoneSegment
from .ps_native import load_pocketsphinx
from .second_opinion import BILABIAL_EVIDENCE, OPINION_PHONES, apply_second_opinion, split_phone

UTTERANCE_MIN = 3.0  # seconds: an utterance this long is cut at its latest settled pause
UTTERANCE_MAX = 12.0  # seconds: an utterance this long is cut at its latest settled phone boundary
CUT_PAUSE = 0.2  # seconds: the shortest pause to cut at
SETTLED = 0.3  # seconds: a cut is made at least this far behind the newest audio, where the hypothesis holds
KEEP = 8.0  # seconds of phones and probabilities kept behind the newest audio
# pocketsphinx's partial hypothesis ends 50 ms behind the audio it was given (its front end's feature window): a gap
# up to this long after the last phone heard is audio not decoded yet, not a pause.
UNDECODED = 0.1
# A p/b/m heard last continues into that undecoded tail for at most CLOSURE_MAX seconds from its start (lips seldom
# stay closed longer); the rest of the tail is a schwa: speech goes on, but the next plans are not told the lips
# stay shut over audio nobody has decoded (on held-out TTS voices, vowels right after a bilabial stayed closed:
# open 188 → 197 of 210, bench/bench_live.py --quality --tts 40).
CLOSURE_MAX = 0.12
TAIL_AFTER_CLOSURE = "ah"
# The live encoder hears a closure as one or two frames of P(p, b, m) near 1 (it has 0.1 s of audio after a frame
# when the frame must be sent; offline the second opinion wants two frames over 0.5). A frame at SPIKE or more in two
# plans in a row, where the recogniser heard a voiced labial (an m or b it took for v or w: LibriVox 0870 at 6.74 s,
# 0920 at 1.64 s), is taken as a closure. Not inside f: on the real clips its three such spikes were the f's own lip
# contact. Not elsewhere: over every consonant and pause of the real clips, 26 of 31 such spikes were no closure;
# inside vowels they gained no hit and cost jitter (measured with bench/bench_live.py's figures, issue 18).
SPIKE = 0.9
LABIAL_HOSTS = ("v", "w")
# An m is a nasal made at the lips. Where the recogniser, from one plan to the next, revises a nasal (n, ng) into a
# voiced labial (w, v) over the same audio, or back, and the encoder heard a bilabial there in one of those two plans
# (BILABIAL_EVIDENCE), the overlap is taken as an m: LibriVox 0930's "amiable" at 1.85 s, heard n then w, P(p, b, m)
# 0.52 for one plan only, its closure otherwise first heard 0.2 s after the frame had left. Both listeners alone
# are unsure there: inside real n the live encoder gives up to 0.99 (a nasal host alone cost 19 false closures on the
# real clips, 33 on 40 TTS sentences), inside real w up to 0.93. On 160 TTS sentences (the tuning and held-out draws
# and two more) and the second real set this added no closure: the revision happened twice (tuning draw), both with
# P(p, b, m) under 0.12 (bench/bench_live.py --quality, issue 18).
REVISED_NASALS = ("n", "ng")
REVISED_LABIALS = ("v", "w")
_COLUMNS = [PHONES.index(p) for p in OPINION_PHONES]


class PhoneStream:
    """All-phone recognition of a live stream (the decoder settings of core.align's recognise_phones).

    ``push`` feeds 16 kHz float samples; ``phones()`` is every phone heard in the last KEEP seconds, with its
    confidence: those of finished utterances, then the current partial hypothesis (its last phones may still change).
    """

    def __init__(self) -> None:
        ps = load_pocketsphinx()  # AlignerMissing when pocketsphinx is not installed
        # A light phone-LM weight and a prior towards bilabials, as for offline recognition (core.align).
        self.decoder = ps.Decoder(allphone=str(bilabial_phone_lm()), lm=None, loglevel="FATAL", bestpath=False,
                                  lw=PHONE_LM_WEIGHT)
        self.kept: list[tuple[PhoneSegment, float]] = []  # phones of finished utterances, in order
        self._start = 0  # absolute sample where the current utterance starts
        self._audio: list[np.ndarray] = []  # the current utterance's samples (re-fed after a cut)
        self._n = 0  # samples pushed
        self.decoder.start_utt()

    @property
    def seconds(self) -> float:
        return self._n / spec.SAMPLE_RATE

    def push(self, samples: np.ndarray) -> None:
        samples = np.asarray(samples, np.float32)
        if not len(samples):
            return
        self._audio.append(samples)
        self._n += len(samples)
        self.decoder.process_raw(pcm16(samples), False, False)

    def phones(self) -> list[tuple[PhoneSegment, float]]:
        """The phones of the last KEEP seconds (absolute times) with their confidences, oldest first."""
        partial = self._partial()
        cut = self._cut_point(partial)
        if cut is not None:
            self._cut(cut, partial)
            partial = self._partial()
        return self.kept + partial

    def close(self) -> None:
        self.decoder.end_utt()

    def _partial(self) -> list[tuple[PhoneSegment, float]]:
        if self.decoder.hyp() is None:
            return []
        offset = self._start / spec.SAMPLE_RATE
        out = []
        for s in self.decoder.seg():
            label = s.word.lower()
            phone = label if label in PHONE_INDEX else SIL
            out.append((PhoneSegment(phone, offset + s.start_frame / FRAME_RATE, offset + (s.end_frame + 1) /
                                     FRAME_RATE), 1.0))  # confidence: see core.align.alignment_from_chunks
        return out

    def _cut_point(self, partial) -> float | None:
        """Where to end the utterance (absolute seconds), or None to let it run on."""
        start, edge = self._start / spec.SAMPLE_RATE, self.seconds
        if edge - start < UTTERANCE_MIN or not partial:
            return None
        settled = [(p, c) for p, c in partial if p.end <= edge - SETTLED]
        pauses = [p for p, _ in settled if p.phone == SIL and p.duration >= CUT_PAUSE and p.start > start]
        if pauses:
            return round(0.5 * (pauses[-1].start + pauses[-1].end) * FRAME_RATE) / FRAME_RATE
        if edge - start >= UTTERANCE_MAX and len(settled) > 1:
            return settled[-1][0].end
        return None

    def _cut(self, at: float, partial) -> None:
        """End the utterance at ``at`` seconds: its phones before that are kept, the audio after it is decoded
        again as the start of the next utterance."""
        for p, c in partial:
            if p.start >= at:
                break
            self.kept.append((PhoneSegment(p.phone, p.start, min(p.end, at)), c))
        self.decoder.end_utt()
        audio = np.concatenate(self._audio)
        a = int(round(at * spec.SAMPLE_RATE)) - self._start
        self._start += a
        self._audio = [audio[a:]]
        self.decoder.start_utt()  # the front end keeps its noise and cepstral-mean estimates across the cut
        if len(audio) > a:
            self.decoder.process_raw(pcm16(audio[a:]), False, False)
        horizon = self.seconds - KEEP
        self.kept = [(p, c) for p, c in self.kept if p.end > horizon]


class PhoneProbs:
    """The audio encoder's probabilities of core.second_opinion.OPINION_PHONES (p, b, m, sil, the vowels) per encoder
    frame for the last KEEP seconds; a frame's values are replaced each time a plan hears it again with more audio
    after it."""

    def __init__(self, frame_rate: float):
        self.frame_rate = frame_rate
        self.base = 0  # absolute encoder frame of values[0]
        self.values = np.zeros((0, len(_COLUMNS)), np.float32)
        self.previous = np.zeros((0, len(_COLUMNS)), np.float32)  # each frame's values before its last update

    def update(self, first: int, logits: np.ndarray, valid: int) -> None:
        """Store the probabilities of the encoder's ``logits`` (frames, NUM_PHONES) whose first row is absolute
        encoder frame ``first``; rows from absolute frame ``valid`` on heard no audio and are dropped. The values
        they replace are kept as ``previous`` (0 where a frame is heard for the first time)."""
        logits = np.asarray(logits, np.float64)[: max(0, valid - first)]
        if not len(logits):
            return
        logits = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        probs = (p[:, _COLUMNS] / p.sum(axis=1, keepdims=True)).astype(np.float32)
        end = first + len(probs)
        if end > self.base + len(self.values):
            grow = np.zeros((end - self.base - len(self.values), len(_COLUMNS)), np.float32)
            self.values = np.concatenate([self.values, grow])
            self.previous = np.concatenate([self.previous, grow])
        lo = max(first, self.base)
        self.previous[lo - self.base : end - self.base] = self.values[lo - self.base : end - self.base]
        self.values[lo - self.base : end - self.base] = probs[lo - first :]
        drop = end - int(KEEP * self.frame_rate) - self.base
        if drop > 0:
            self.values, self.previous = self.values[drop:], self.previous[drop:]
            self.base += drop

    def window(self, first: int, count: int, previous: bool = False) -> np.ndarray:
        """(count, len(OPINION_PHONES)) probabilities of absolute encoder frames first..first+count (0 where none
        were heard); ``previous``: the values before the newest plan heard them again."""
        out = np.zeros((count, len(_COLUMNS)), np.float32)
        lo, hi = max(first, self.base), min(first + count, self.base + len(self.values))
        if hi > lo:
            out[lo - first : hi - first] = (self.previous if previous else self.values)[lo - self.base : hi - self.base]
        return out


def window_evidence(heard: list[tuple[PhoneSegment, float]], probs: PhoneProbs, t0: float, t1: float,
                    before: list[tuple[PhoneSegment, float]] = ()) -> Alignment:
    """The recognised phones between ``t0`` and ``t1`` seconds with times relative to ``t0`` (a phone crossing t0
    starts there; silence where nothing was heard yet), given the second opinion of the encoder's probabilities
    as offline recognition is (core.second_opinion.apply_second_opinion). ``t0`` lies on the encoder's grid. ``before``:
    what the previous plan heard (the m of a nasal revised into a labial, REVISED_NASALS).

    The last UNDECODED seconds or less that the recogniser has not decoded yet continue its last phone (after the
    second opinion, which may still find a closure there): as a pause, every plan heard speech stopping 50 ms ahead.
    """
    phones, confidence = [], []
    for p, c in heard:
        if p.end <= t0 or p.start >= t1:
            continue
        phones.append(PhoneSegment(p.phone, max(p.start, t0) - t0, min(p.end, t1) - t0))
        confidence.append(c)
    covered = phones[-1].end if phones else 0.0
    tail = bool(phones) and phones[-1].phone != SIL and t1 - t0 - covered <= UNDECODED
    if covered < t1 - t0 - 1e-6:
        phones.append(PhoneSegment(SIL, covered, t1 - t0))
        confidence.append(1.0)
    result = Alignment(phones, confidence, [], "recognised-phones")
    merge_silences(result)
    first = int(round(t0 * probs.frame_rate))
    window = probs.window(first, int(np.ceil((t1 - t0) * probs.frame_rate)))
    apply_second_opinion(result, window, probs.frame_rate, decoded=covered)
    previous = probs.window(first, len(window), previous=True)
    _add_labial_closures(result, np.minimum(window, previous), probs.frame_rate)
    bilabial = np.maximum(window[:, :3].sum(axis=1), previous[:, :3].sum(axis=1))
    _add_revised_nasals(result, heard, before, bilabial, probs.frame_rate, t0, t1)
    if tail:
        _continue_last_phone(result, covered)
    return result


def _continue_last_phone(result: Alignment, covered: float) -> None:
    """In place: the final pause, where it is only the undecoded tail from ``covered`` on, joins the phone heard
    last (unless the second opinion put a closure in it: then the phone before the pause is not the one heard); a
    p/b/m only up to CLOSURE_MAX after its start, the rest of the tail being TAIL_AFTER_CLOSURE."""
    ph = result.phones
    if len(ph) < 2 or ph[-1].phone != SIL or abs(ph[-1].start - covered) > 1e-6 or abs(ph[-2].end - covered) > 1e-6:
        return
    last, end = ph[-2], ph[-1].end
    cut = end
    if last.phone in BILABIAL_PHONES:
        cut = min(end, max(covered, last.start + CLOSURE_MAX))
    ph[-2:] = [PhoneSegment(last.phone, last.start, cut)]
    if end - cut > 1e-6:
        ph.append(PhoneSegment(TAIL_AFTER_CLOSURE, cut, end))
    else:
        del result.confidence[-1]


def _add_labial_closures(result: Alignment, steady: np.ndarray, frame_rate: float) -> None:
    """In place: a closure over each encoder frame where the recogniser heard a voiced labial (LABIAL_HOSTS)
    and the encoder a bilabial at SPIKE or more in the last two plans (``steady``: (frames, 4), the lower of each
    frame's last two hearings); the host is split around it, as core.second_opinion.add_missed_bilabials does."""
    for j in np.flatnonzero(steady[:, :3].sum(axis=1) >= SPIKE):
        s, e = j / frame_rate, (j + 1) / frame_rate
        ph = result.phones
        if any(p.phone in BILABIAL_PHONES and p.start < e and p.end > s for p in ph):
            continue
        host = next((k for k, p in enumerate(ph) if p.start <= 0.5 * (s + e) < p.end), None)
        if host is None or ph[host].phone not in LABIAL_HOSTS:
            continue
        split_phone(ph, result.confidence, host, s, e, BILABIAL_PHONES[int(np.argmax(steady[j, :3]))])


def _add_revised_nasals(result: Alignment, heard, before, bilabial: np.ndarray, frame_rate: float, t0: float,
                        t1: float) -> None:
    """In place: an m over the audio between ``t0`` and ``t1`` that one plan heard as a nasal and the other as a
    voiced labial (REVISED_NASALS, REVISED_LABIALS; ``heard`` now, ``before`` by the previous plan, absolute times),
    where the encoder heard P(p, b, m) of at least BILABIAL_EVIDENCE in one of its frames in either plan
    (``bilabial``: per encoder frame from ``t0``, the higher of its last two hearings); the phone heard now is split
    around it."""
    kinds = {**dict.fromkeys(REVISED_NASALS, "nasal"), **dict.fromkeys(REVISED_LABIALS, "labial")}
    now = [p for p, _ in heard if p.phone in kinds and p.end > t0]
    then = [p for p, _ in before if p.phone in kinds and p.end > t0]
    for p1 in now:
        for p0 in then:
            s, e = max(p0.start, p1.start, t0) - t0, min(p0.end, p1.end, t1) - t0
            if kinds[p0.phone] == kinds[p1.phone] or e - s < 0.005:
                continue
            f0, f1 = int(np.floor(s * frame_rate)), int(np.ceil(e * frame_rate))
            if bilabial[f0:f1].max(initial=0.0) < BILABIAL_EVIDENCE:
                continue
            ph = result.phones
            if any(p.phone in BILABIAL_PHONES and p.start < e and p.end > s for p in ph):
                continue
            host = next((k for k, p in enumerate(ph) if p.start <= 0.5 * (s + e) < p.end), None)
            if host is not None and ph[host].phone == p1.phone:
                split_phone(ph, result.confidence, host, s, e, "m")
