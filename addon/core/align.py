"""Phone timings from real speech with pocketsphinx 5: forced alignment to a transcript, or phone recognition.

Words missing from CMUdict get a letter-to-sound pronunciation; a transcript in another language that core.letters
enables is aligned with its rules' pronunciations, in the English acoustic model's phones. Long audio is cut at quiet
points into chunks of at most ``MAX_CHUNK`` seconds, so the decoders' memory stays bounded whatever the input length.
"""

from __future__ import annotations

import queue
import re
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

import numpy as np

from . import letters, spec
from .cpu import cores
from .errors import FacePolicyError
from .phone_lm import PHONE_LM_WEIGHT, bilabial_phone_lm
from .phones import PHONE_INDEX, SIL, PhoneSegment, normalise_phone
from .ps_native import BindingAligner, NativeAligner, feed, load_pocketsphinx, native_library
from .ptm_scores import hook_decoder
from .transcript import letter_to_sound, plain_ascii, transcript_words

FRAME_RATE = 100  # pocketsphinx frames per second
MAX_CHUNK = 30.0  # seconds per decoder call
# Forced alignment follows one line of words, so it can afford beams far wider than recognition's: the default
# (1e-48) pruned the spoken path of synthetic voices, whose frames score poorly against a model of real speech.
ALIGN_BEAM = 1e-200
# The align decoders' settings (no language model: the words' pass searches the transcript's own grammar).
ALIGN_SETTINGS = {"lm": None, "loglevel": "FATAL", "bestpath": False, "beam": ALIGN_BEAM, "pbeam": ALIGN_BEAM,
                  "wbeam": ALIGN_BEAM}
# The word recogniser's (the Phonetic engine's accurate mode): pocketsphinx's defaults, its US-English language model.
WORD_SETTINGS = {"loglevel": "FATAL"}
RETRY_PAD = 0.1  # seconds of silence each side of a line whose alignment failed, for a second try
# Runs of at least DIGITAL_SILENCE exact-zero samples get a noise floor of ±NOISE_FLOOR of 32767 (pcm16).
DIGITAL_SILENCE = 160
NOISE_FLOOR = 2

ChunkProgress = Callable[[float], None]


@dataclass
class Alignment:
    """Phones (ARPAbet + sil, seconds) with a confidence per phone and the words they came from."""

    phones: list[PhoneSegment]
    confidence: list[float]
    words: list[tuple[str, float, float]] = field(default_factory=list)
    mode: str = "aligned"  # aligned | recognised-phones | recognised-words
    scores: list[float] = field(default_factory=list)  # forced alignment: acoustic score per phone (log units)
    warnings: list[str] = field(default_factory=list)
    # Recognised phones: where the audio encoder is sure it hears a lip closure, (start, end) seconds
    # (core.second_opinion.sure_closures); the Neural engine's phonetic prior lets go there.
    closures: list[tuple[float, float]] = field(default_factory=list)


# --- audio chunks -------------------------------------------------------------------------------------------------


_ENERGY_BLOCK = 6000  # 10 ms frames per block when chunk_bounds measures the energy of long audio


def chunk_bounds(samples: np.ndarray, rate: int = spec.SAMPLE_RATE, max_len: float = MAX_CHUNK) -> list[tuple[int,
                                                                                                                int]]:
    """Sample ranges covering the audio, each at most ``max_len`` s, cut at the quietest 10 ms in the last third."""
    n = len(samples)
    limit = int(max_len * rate)
    if n <= limit:
        return [(0, n)]
    hop = rate // FRAME_RATE
    frames = n // hop
    energy = np.empty(frames)
    for f0 in range(0, frames, _ENERGY_BLOCK):  # block by block: a float64 copy of an hour would be 460 MB
        f1 = min(frames, f0 + _ENERGY_BLOCK)
        energy[f0:f1] = np.square(samples[f0 * hop : f1 * hop].astype(np.float64)).reshape(f1 - f0, hop).mean(axis=1)
    smooth = np.convolve(energy, np.ones(5) / 5, mode="same")
    bounds = []
    start = 0
    while n - start > limit:
        lo = (start + int(limit * 2 / 3)) // hop
        hi = (start + limit) // hop
        cut = (lo + int(np.argmin(smooth[lo:hi]))) * hop
        bounds.append((start, cut))
        start = cut
    bounds.append((start, n))
    return bounds


def pcm16(samples: np.ndarray) -> bytes:
    """16-bit PCM for the decoders. Stretches of digital silence (TTS output between words) get a faint fixed noise
    floor: on exact zeros pocketsphinx's front end has no energy to take the log of, and forced alignment lost the
    spoken path of most espeak-ng lines. Real recordings never hold 10 ms of exact zeros."""
    x = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    zero = np.concatenate([[0], (x == 0).view(np.int8), [0]])
    edges = np.flatnonzero(np.diff(zero))
    rng = np.random.default_rng(0)
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        if b - a >= DIGITAL_SILENCE:
            x[a:b] = rng.integers(-NOISE_FLOOR, NOISE_FLOOR + 1, b - a)
    return x.tobytes()


def alignment_from_chunks(chunks, results, n: int, rate: int = spec.SAMPLE_RATE) -> Alignment:
    """Recognised phones of consecutive sample ranges ``chunks``: ``results[k]`` holds (label, first frame, last
    frame) for each phone decoded in chunk k, or None when it was too short to decode; everything outside the chunks,
    up to sample ``n``, is silence.

    Every recognised phone starts with confidence 1: pocketsphinx's segment scores are relative to the best path
    frame by frame, so they do not say whether a phone was spoken at all (music and noise are told apart later, by
    the phones' durations and the audio encoder: core.evidence)."""
    result = Alignment([], [], [], "recognised-phones")
    position = 0
    for (lo, hi), segs in zip(chunks, results, strict=True):
        if lo > position:  # a pause that was not decoded
            result.phones.append(PhoneSegment(SIL, position / rate, lo / rate))
            result.confidence.append(1.0)
        off = lo / rate
        if segs is None:  # too short to decode: nothing was said in it
            result.phones.append(PhoneSegment(SIL, off, hi / rate))
            result.confidence.append(1.0)
        for label, first, last in segs or ():
            phone = label.lower() if label.lower() in PHONE_INDEX else SIL
            result.phones.append(PhoneSegment(phone, off + first / FRAME_RATE, off + (last + 1) / FRAME_RATE))
            result.confidence.append(1.0)
        position = hi
    if position < n:
        result.phones.append(PhoneSegment(SIL, position / rate, n / rate))
        result.confidence.append(1.0)
    merge_silences(result)
    return result


def merge_silences(result: Alignment) -> None:
    """Drop empty phones and join neighbouring silences (in place)."""
    scores = result.scores or [0.0] * len(result.phones)
    phones: list[PhoneSegment] = []
    conf: list[float] = []
    kept_scores: list[float] = []
    for p, c, s in zip(result.phones, result.confidence, scores, strict=True):
        if p.end <= p.start:
            continue
        if phones and p.phone == SIL and phones[-1].phone == SIL:
            phones[-1] = PhoneSegment(SIL, phones[-1].start, p.end)
            kept_scores[-1] += s
            continue
        phones.append(p)
        conf.append(c)
        kept_scores.append(s)
    result.phones, result.confidence = phones, conf
    result.scores = kept_scores if result.scores else []


class Aligner:
    """pocketsphinx decoders, created on first use and kept warm. Safe to share between threads (one at a time)."""

    def __init__(self, own_scores: bool = True) -> None:
        self._lock = threading.Lock()
        # Native decoders score through core.ptm_scores's library where it reproduces them (hook_decoder).
        self._own_scores = own_scores
        self._hooked = False  # whether the align decoders made so far do
        # Every word added to the align decoder's dictionary (sounded out by letter-to-sound rules, or a foreign
        # word's key): its phones. They stay out of what the dictionary "knows": a line's language and its
        # letter-to-sound note must not depend on the lines before it.
        self._entries: dict[str, str] = {}
        self._align: object | None = None
        self._more: list[NativeAligner] = []  # further align decoders (native only), for a long line's chunks
        self._phones: object | None = None
        self._words: object | None = None

    # decoders ------------------------------------------------------------------------------------------
    def _decoder(self, kind: str):
        ps = load_pocketsphinx()
        if kind == "align":
            if self._align is None:
                self._align = self._new_aligner(ps)
            return self._align
        if kind == "phones":
            if self._phones is None:
                # A light phone-LM weight (default 6.5) and a prior towards bilabials: a missed closure looks
                # worse than a spurious one (both measured with model/evaluate_phonetic.py).
                self._phones = ps.Decoder(allphone=str(bilabial_phone_lm()), lm=None, loglevel="FATAL",
                                          bestpath=False, lw=PHONE_LM_WEIGHT)
            return self._phones
        if self._words is None:
            self._words, _ = self._new_decoder(ps, WORD_SETTINGS)
        return self._words

    def _new_aligner(self, ps):
        """A forced-alignment decoder (_new_decoder); scored_here says whether it scores in the library."""
        decoder, self._hooked = self._new_decoder(ps, ALIGN_SETTINGS)
        return decoder

    def _new_decoder(self, ps, settings: dict):
        """(a decoder with ``settings``, whether core.ptm_scores's library scores its senones): through the C
        functions where they are exported (core.ps_native: the GIL is free while it decodes, a long line's chunks
        align on several cores, and the senones are scored in the library where it reproduces them), else the
        Python binding."""
        lib = native_library("alignment")
        if not lib:
            return BindingAligner(ps.Decoder(**settings)), False
        config = ps.Config(**settings)
        decoder = NativeAligner(lib, config.dumps().encode())
        return decoder, self._own_scores and hook_decoder(decoder.handle, config)

    @property
    def scored_here(self) -> bool:
        """Whether the align decoders score their senones in core.ptm_scores's library (the decoder's own searches
        over the same scores; an align decoder is made to know)."""
        with self._lock:
            self._decoder("align")
            return self._hooked

    def _aligners(self, count: int) -> list:
        """The align decoder and up to ``count`` - 1 more (native ones only), each knowing every added word."""
        first = self._decoder("align")
        if not isinstance(first, NativeAligner):
            return [first]
        while len(self._more) < count - 1:
            self._more.append(self._new_aligner(load_pocketsphinx()))
        for d in self._more[: count - 1]:
            for word in self._entries.keys() - d.taught:
                d.add_word(word, self._entries[word], True)
                d.taught.add(word)
        return [first, *self._more[: count - 1]]

    def pronunciation(self, word: str) -> str:
        """The dictionary pronunciation, or a letter-to-sound one (added to the decoder's dictionary, and noted as
        sounded out)."""
        d = self._decoder("align")
        found = d.lookup_word(word)
        if found:
            return found
        phones = letter_to_sound(word)
        if not phones:
            return ""
        self._entries[word] = " ".join(p.upper() for p in phones)
        d.add_word(word, self._entries[word], True)
        return " ".join(phones)

    def _knows(self, word: str) -> bool:
        return word not in self._entries and bool(self._decoder("align").lookup_word(word))

    def in_dictionary(self, word: str) -> bool:
        """Whether the pronouncing dictionary knows ``word`` (lower case): a word an earlier line had sounded out
        by letter-to-sound rules does not count."""
        with self._lock:
            return self._knows(word)

    # forced alignment -----------------------------------------------------------------------------------
    def align(self, samples: np.ndarray, transcript: str, rate: int = spec.SAMPLE_RATE,
              progress: ChunkProgress | None = None, language: str = "en") -> Alignment:
        """Phones of ``transcript`` aligned to the audio. Raises FacePolicyError when they cannot be aligned.

        ``language``: "en" (the pronouncing dictionary, letter-to-sound rules for the words it lacks) or a code of
        core.letters (every word pronounced by that language's rules, in the English model's phones)."""
        with self._lock:
            if language == "en":
                words, oov = self._english_words(transcript)
            else:
                words, oov = self._foreign_words(transcript, language), []
            if not words:
                raise FacePolicyError("the transcript has no words to align")
            keys = [key for key, _ in words]
            if len(samples) <= MAX_CHUNK * rate:
                try:
                    result = self._align_chunk(samples, keys, 0.0)
                except FacePolicyError:
                    result = self._align_padded(samples, keys, rate)
            else:
                result = self._align_long(samples, keys, rate, progress)
        spelled = dict(words)
        result.words = [(spelled.get(name, name), s, e) for name, s, e in result.words]
        merge_silences(result)
        if oov:
            result.warnings.append(f"pronounced by letter-to-sound rules: {', '.join(sorted(set(oov))[:10])}")
        return result

    def _english_words(self, transcript: str) -> tuple[list[tuple[str, str]], list[str]]:
        """(dictionary key, word) for each word the aligner can say, and the words letter-to-sound pronounced."""
        words = transcript_words(transcript)
        d = self._decoder("align")
        oov = [w for w in words if not self._knows(w)]
        for w in oov:
            self.pronunciation(w)
        return [(w, w) for w in words if d.lookup_word(w)], oov

    def _foreign_words(self, transcript: str, language: str) -> list[tuple[str, str]]:
        """(dictionary key, word) for each word of a transcript in ``language``: each gets an entry of its own,
        keyed by language, spelling and phones, so it never takes an English word's pronunciation (Spanish "pan")."""
        d = self._decoder("align")
        out = []
        for word, phones in letters.pronounce(language, transcript):
            said = " ".join(p.upper() for p in phones)
            key = f"{language}_{re.sub(r'[^a-z]', '', plain_ascii(word)) or 'w'}_{zlib.crc32(said.encode()):08x}"
            if not d.lookup_word(key):
                self._entries[key] = said
                d.add_word(key, said, True)
            out.append((key, word))
        return out

    def _align_chunk(self, samples: np.ndarray, words: list[str], offset: float, d=None) -> Alignment:
        """The words' pass, then the phones' pass, on ``d`` (default: the align decoder)."""
        d = d or self._decoder("align")
        pcm = pcm16(samples)
        entries = d.align_phones(pcm) if d.align_words(pcm, " ".join(words)) is not None else None
        if entries is None:
            raise FacePolicyError("the transcript could not be aligned to the audio")
        phones: list[PhoneSegment] = []
        conf: list[float] = []
        scores: list[float] = []
        out_words = []
        for word, start, duration, children in entries:
            ws, we = offset + start / FRAME_RATE, offset + (start + duration) / FRAME_RATE
            name = re.sub(r"\(\d+\)$", "", word)
            if not name.startswith(("<", "[")):
                out_words.append((name, ws, we))
            for label, p_start, p_duration, score in children:
                label = label.lower()
                phone = normalise_phone(label) if label.rstrip("012") in PHONE_INDEX or label == "sil" else SIL
                s = offset + p_start / FRAME_RATE
                phones.append(PhoneSegment(phone, s, s + p_duration / FRAME_RATE))
                conf.append(1.0)
                scores.append(float(score))
        return Alignment(phones, conf, out_words, "aligned", scores=scores)

    def _align_padded(self, samples: np.ndarray, words: list[str], rate: int) -> Alignment:
        """The second try of a line the search lost: the same audio with RETRY_PAD seconds of silence each side (the
        search's path through a line is fragile: 1 in 24 espeak-ng lines failed and aligned with 0.1 s more silence,
        or at half the level), its times moved back onto the line's and clipped to it. Raises FacePolicyError when
        this fails too."""
        pad = np.zeros(int(RETRY_PAD * rate), np.float32)
        result = self._align_chunk(np.concatenate([pad, np.asarray(samples, np.float32), pad]), words, -RETRY_PAD)
        end = len(samples) / rate
        kept = [(PhoneSegment(p.phone, min(max(p.start, 0.0), end), min(max(p.end, 0.0), end)), c, s)
                for p, c, s in zip(result.phones, result.confidence, result.scores, strict=True)]
        kept = [k for k in kept if k[0].end > k[0].start]
        result.phones = [p for p, _, _ in kept]
        result.confidence = [c for _, c, _ in kept]
        result.scores = [s for _, _, s in kept]
        result.words = [(w, min(max(s, 0.0), end), min(max(e, 0.0), end)) for w, s, e in result.words]
        return result

    def _align_long(self, samples, words, rate, progress) -> Alignment:
        """Word-level pass over the whole audio, then phone-level passes chunk by chunk between pauses (on every core
        where the decoders run through the C functions: the same phones)."""
        found = self._decoder("align").align_words(pcm16(samples), " ".join(words))
        if found is None:
            raise FacePolicyError("the transcript could not be aligned to the audio")
        segs = [(re.sub(r"\(\d+\)$", "", w), first / FRAME_RATE, (last + 1) / FRAME_RATE) for w, first, last in found]
        spoken = [s for s in segs if not s[0].startswith(("<", "["))]
        # Cut after the last word that ends before each chunk limit, preferring gaps between words.
        cuts, start = [], 0.0
        total = len(samples) / rate
        while total - start > MAX_CHUNK:
            limit = start + MAX_CHUNK
            ends = [e for _, _, e in spoken if start < e <= limit]
            cut = max(ends) if ends else limit
            if cut <= start + 1.0:
                cut = limit
            cuts.append(cut)
            start = cut
        edges = [0.0, *cuts, total]
        spans = [(edges[k], edges[k + 1]) for k in range(len(edges) - 1)]
        parts = self._align_spans(samples, rate, spans, [[w for w, s, e in spoken if a <= 0.5 * (s + e) < b]
                                                         for a, b in spans], progress)
        result = Alignment([], [], [], "aligned")
        for part in parts:
            result.phones += part.phones
            result.confidence += part.confidence
            result.scores += part.scores
            result.words += part.words
        return result

    def _align_spans(self, samples, rate, spans, span_words, progress) -> list[Alignment]:
        """Each span (seconds) aligned to its words, on as many decoders as there are cores (one at a time through
        the Python binding); ``progress`` hears the share done, on this thread."""
        decoders = self._aligners(min(cores(), len(spans)))
        free = queue.SimpleQueue()
        for d in decoders:
            free.put(d)

        def one(k: int) -> Alignment:
            (a, b), chunk_words = spans[k], span_words[k]
            if not chunk_words:
                return Alignment([PhoneSegment(SIL, a, b)], [1.0], scores=[0.0])
            d = free.get()
            try:
                return self._align_chunk(samples[int(a * rate) : int(b * rate)], chunk_words, a, d)
            finally:
                free.put(d)

        parts: list = [None] * len(spans)
        with ThreadPoolExecutor(len(decoders), thread_name_prefix="facepolicy-align") as pool:
            futures = {pool.submit(one, k): k for k in range(len(spans))}
            for done, future in enumerate(as_completed(futures), start=1):
                parts[futures[future]] = future.result()
                if progress:
                    progress(done / len(spans))
        return parts

    # recognition -----------------------------------------------------------------------------------------
    def recognise_phones(self, samples: np.ndarray, rate: int = spec.SAMPLE_RATE,
                         progress: ChunkProgress | None = None, cancel: threading.Event | None = None) -> Alignment:
        """Phones from an all-phone decode with the phonetic language model (fast)."""
        with self._lock:
            d = self._decoder("phones")
            chunks, results = [], []
            bounds = chunk_bounds(samples, rate)
            for k, (lo, hi) in enumerate(bounds):
                if cancel is not None and cancel.is_set():
                    break
                feed(d, pcm16(samples[lo:hi]))
                # seg() is None when the chunk was too short to decode (a few ms): nothing was said in it
                results.append([(s.word, s.start_frame, s.end_frame) for s in d.seg()]
                               if d.hyp() is not None else None)
                chunks.append((lo, hi))
                if progress:
                    progress((k + 1) / len(bounds))
        return alignment_from_chunks(chunks, results, chunks[-1][1] if chunks else 0, rate)

    def recognise_words(self, samples: np.ndarray, rate: int = spec.SAMPLE_RATE,
                        progress: ChunkProgress | None = None, cancel: threading.Event | None = None) -> Alignment:
        """Words from the large-vocabulary decoder, then their phones aligned in a second pass (accurate, slower)."""
        result = Alignment([], [], [], "recognised-words")
        bounds = chunk_bounds(samples, rate)
        for k, (lo, hi) in enumerate(bounds):
            if cancel is not None and cancel.is_set():
                break
            off = lo / rate
            pcm = pcm16(samples[lo:hi])
            with self._lock:
                # the words heard, then the phones' pass constrained to them
                entries = self._decoder("words").recognise(pcm)
            if entries is None:
                result.phones.append(PhoneSegment(SIL, off, hi / rate))
                result.confidence.append(1.0)
            else:
                for word, start, duration, children in entries:
                    name = re.sub(r"\(\d+\)$", "", word)
                    if not name.startswith(("<", "[")):
                        result.words.append((name, off + start / FRAME_RATE, off + (start + duration) / FRAME_RATE))
                    for label, p_start, p_duration, _ in children:
                        label = label.lower().rstrip("012")
                        s = off + p_start / FRAME_RATE
                        result.phones.append(PhoneSegment(label if label in PHONE_INDEX else SIL, s,
                                                          s + p_duration / FRAME_RATE))
                        result.confidence.append(1.0)
            if progress:
                progress((k + 1) / len(bounds))
        merge_silences(result)
        return result


_shared: Aligner | None = None
_shared_lock = threading.Lock()


def shared_aligner() -> Aligner:
    """One warm Aligner per process (decoders take about half a second each to load)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Aligner()
        return _shared
