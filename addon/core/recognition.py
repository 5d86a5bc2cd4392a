"""All-phone recognition of a whole line, cut at its pauses and decoded on several cores.

The audio encoder already says where the pauses are (its P(silence)), so the audio is cut in the middle of each
pause into independent chunks: the decoder's front end is reset for every chunk (core.align's rule), so a chunk's
phones are a function of its own audio, and the chunks can be decoded in any order on any number of decoders with
the same result.

pocketsphinx's Python binding holds the GIL while it decodes, so its decoders run here through the same library's C
functions over ctypes, which releases the GIL for each call: plain threads then decode in parallel, inside Blender
as well as on the command line (no processes, no re-imported bpy). Where the C functions are not exported (the
Windows wheel exports only the module's init function) the binding decodes the same chunks one after another: the
same phones, on one core.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np

from . import spec
from .align import FRAME_RATE, MAX_CHUNK, Alignment, alignment_from_chunks, chunk_bounds, pcm16, shared_aligner
from .cpu import cores
from .errors import Cancelled
from .fileio import atomic_write_text
from .phone_lm import PHONE_LM_WEIGHT, bilabial_phone_lm
from .ps_native import NativeDecoder, can_score, feed, load_pocketsphinx, native_library
from .ptm_scores import LIBRARY, VERIFIED_MAJOR, PhoneLoop, Scorer, phone_loop, pocketsphinx_verified, scorer

# A pause is a run of encoder frames with P(sil) of at least PAUSE_SILENCE (or not speech at all) lasting at least
# MIN_PAUSE seconds. PAUSE_MARGIN: how much of each pause the decoder hears next to the speech, the rest being
# silence without decoding it; None decodes the pauses too (cut in their middle). Skipping them saved 7 % (0.3 s
# kept) to 13 % (0.15 s) of the decoding on 60 s of real speech but cost up to one open vowel and 0.003-0.008 of
# SLCC on the evaluation sets, while None leaves every short clip's phones as they were (bench/bench_recognition.py,
# model.evaluate; docs/BENCHMARKS.md, issue 17).
PAUSE_SILENCE = 0.5
MIN_PAUSE = 0.4
PAUSE_MARGIN: float | None = None
_HOP = spec.SAMPLE_RATE // FRAME_RATE  # samples per decoder frame: chunk bounds lie on the decoder's grid

ChunkProgress = Callable[[float], None]


# --- where to decode -------------------------------------------------------------------------------------------------

def speech_chunks(n_samples: int, pause: np.ndarray | None, frame_rate: float, min_pause: float = MIN_PAUSE,
                  margin: float | None = PAUSE_MARGIN, max_len: float = MAX_CHUNK,
                  samples: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Sample ranges to decode, in order: the speech between pauses (``pause``: True per frame at ``frame_rate``
    where the audio is a pause) with ``margin`` seconds of each pause either side, each at most ``max_len`` s
    (longer stretches are cut at their quietest point, core.align.chunk_bounds). ``margin`` None keeps the pauses:
    the audio is cut in the middle of each pause and every sample is decoded. Without ``pause``: chunk_bounds."""
    if pause is None or not len(pause) or n_samples == 0:
        return _split_long(0, n_samples, max_len, samples)
    per_frame = spec.SAMPLE_RATE / frame_rate
    edges = np.flatnonzero(np.diff(np.concatenate([[0], np.asarray(pause, np.int8), [0]])))
    runs = [(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True) if (b - a) / frame_rate >= min_pause]
    spans: list[tuple[int, int]] = []  # speech stretches in samples (with margins)
    start = 0
    for a, b in runs:
        lo, hi = int(a * per_frame), min(n_samples, int(b * per_frame))
        if margin is None:
            if lo == 0 or hi >= n_samples:  # a pause at either end is decoded with its speech
                continue
            cut = _on_grid((lo + hi) // 2, n_samples)
            if cut > start:
                spans.append((start, cut))
            start = cut
            continue
        m = int(margin * spec.SAMPLE_RATE)
        end = _on_grid(min(hi, lo + m), n_samples) if lo > 0 else 0
        if end > start:
            spans.append((start, end))
        start = _on_grid(max(lo, hi - m), n_samples) if hi < n_samples else n_samples
    if start < n_samples:
        spans.append((start, n_samples))
    return [c for lo, hi in spans for c in _split_long(lo, hi, max_len, samples)]


def _on_grid(sample: int, n_samples: int) -> int:
    return min(n_samples, int(round(sample / _HOP)) * _HOP)


def _split_long(lo: int, hi: int, max_len: float, samples: np.ndarray | None) -> list[tuple[int, int]]:
    if hi - lo <= max_len * spec.SAMPLE_RATE or samples is None:
        return [(lo, hi)] if hi > lo else []
    return [(lo + a, lo + b) for a, b in chunk_bounds(samples[lo:hi], spec.SAMPLE_RATE, max_len)]


# --- the decoders ----------------------------------------------------------------------------------------------------

class _NativeDecoder(NativeDecoder):
    """One all-phone decoder driven through pocketsphinx's C functions (each call releases the GIL). With a
    ``scorer`` and its ``loop`` (core.ptm_scores) the decoder only makes a chunk's features; the scoring and the
    search run in the compiled library, as the decoder runs them: the same phones in about a fifth of the time."""

    scorer: Scorer | None = None
    loop: PhoneLoop | None = None

    def decode(self, pcm: bytes) -> list[tuple[str, int, int]] | None:
        """(label, first frame, last frame) per segment; None when nothing could be decoded (a few ms of audio)."""
        if self.scorer is None or self.loop is None:
            return self.segments() if self.run(pcm) else None
        features = self.features(pcm, self.scorer.width)
        return self.scorer.recognise(features, self.loop) if len(features) else None


class _BindingDecoder:
    """The same decoder through pocketsphinx's Python binding (holds the GIL: one at a time)."""

    def __init__(self, config):
        self._d = load_pocketsphinx().Decoder(config)

    def decode(self, pcm: bytes) -> list[tuple[str, int, int]] | None:
        d = self._d
        feed(d, pcm)
        if d.hyp() is None:
            return None
        return [(s.word, s.start_frame, s.end_frame) for s in d.seg()]


def _phone_dictionary() -> Path:
    """A one-word pronouncing dictionary for the all-phone decoders. All-phone search reads no words, yet a decoder
    parses the whole bundled CMU dictionary (130 000 words) when it loads: 85 % of its loading time (0.085 of 0.10
    CPU-s here). The phones it finds are the same with this one (tests/unit/core/test_recognition.py)."""
    out = Path(tempfile.gettempdir()) / "facepolicy-allphone.dict"
    if not out.exists():
        atomic_write_text(out, "a AH\n")
    return out


class PhoneDecoders:
    """Warm all-phone decoders (core.align's recognise_phones settings), as many as the cores, made on first use.
    ``native``: through the C functions where they are exported (else the binding); ``own_scores``: the scoring and
    the search run by core.ptm_scores where it can reproduce them (else by each decoder itself: the same phones)."""

    def __init__(self, native: bool = True, own_scores: bool = True) -> None:
        self._ready = threading.Condition()
        self._free: list = []
        self._loading = 0  # decoders being made in the background (warm)
        self._config = None
        self._scorer: Scorer | None = None
        self._loop: PhoneLoop | None = None  # the search's numbers, read through the first decoder made
        self._own_scores = own_scores and native and can_score()
        self._lib = (native_library("scoring") if self._own_scores else native_library()) if native else None

    @property
    def parallel(self) -> bool:
        """Whether decoders run in parallel (the C functions were found)."""
        return self._lib is not None

    def _settings(self):
        with self._ready:
            if self._config is None:
                config = load_pocketsphinx().Config(allphone=str(bilabial_phone_lm()), lm=None,
                                                    dict=str(_phone_dictionary()), loglevel="FATAL", bestpath=False,
                                                    lw=PHONE_LM_WEIGHT)
                if self._own_scores:
                    self._scorer = scorer(config["hmm"], config["topn"], config["varfloor"], config["logbase"],
                                          config["ds"])
                self._config = config
            return self._config

    @property
    def scored_here(self) -> bool:
        """Whether the decoders' scoring and search run in core.ptm_scores's library (a decoder is made to know)."""
        self._settings()
        if self._lib is not None and self._scorer is not None and self._loop is None:
            self._give(self._make())  # it reads the search's numbers; kept warm for the next decode
        return self._scorer is not None and self._loop is not None

    def _make(self):
        config = self._settings()
        if self._lib is None:
            return _BindingDecoder(config)
        decoder = _NativeDecoder(self._lib, config.dumps().encode())
        if self._scorer is not None:
            with self._ready:
                if self._loop is None:
                    try:
                        self._loop = phone_loop(self._lib, decoder._ps, self._scorer.model, config["allphone"],
                                                config["hmm"], config["beam"], config["pbeam"], config["tmatfloor"],
                                                config["logbase"])
                    except (OSError, ValueError):  # a model or language model it does not read: as before
                        self._scorer = None
                decoder.scorer, decoder.loop = self._scorer, self._loop
        return decoder

    def warm(self, count: int) -> None:
        """Start making decoders in the background until ``count`` are free or on their way, so that loading them
        (about 0.15 s each) overlaps the audio encoder's pass. Only where they run in parallel: the binding would
        hold the GIL while it loads."""
        if self._lib is None:
            return
        with self._ready:
            missing = max(0, count - len(self._free) - self._loading)
            self._loading += missing
        for _ in range(missing):
            threading.Thread(target=self._load, name="facepolicy-decoder", daemon=True).start()

    def _load(self) -> None:
        try:
            decoder = self._make()
        except Exception:  # noqa: BLE001 - the next decode makes its own and reports the error there
            decoder = None
        with self._ready:
            self._loading -= 1
            if decoder is not None:
                self._free.append(decoder)
            self._ready.notify_all()

    def _take(self):
        with self._ready:
            while not self._free and self._loading:
                self._ready.wait()
            if self._free:
                return self._free.pop()
        return self._make()

    def _give(self, decoder) -> None:
        with self._ready:
            self._free.append(decoder)
            self._ready.notify_all()

    def decode(self, pcm: bytes):
        decoder = self._take()
        try:
            return decoder.decode(pcm)
        finally:
            self._give(decoder)


def dispatch_order(costs: list[int], workers: int) -> list[int]:
    """The order in which to hand out jobs of these whole-number ``costs`` (a chunk's decoding takes about as long as
    its audio) to ``workers`` threads, each taking the next job when it is free, so that they finish as close
    together as the jobs allow. Two threads share the jobs by the subset of costs nearest half the total (exact, up
    to _EXACT_JOBS jobs); more, or more jobs, take the longest first, each to the least loaded thread. On 60 s of
    speech in 12 chunks on two threads, one finished 1.3 s of audio after the other when each took the longest
    chunk left, 0.03 s after this. The threads' plans are interleaved by when each job starts, so that handing
    them out in this order follows them."""
    order = sorted(range(len(costs)), key=lambda k: -costs[k])
    if workers <= 1 or len(costs) <= workers:
        return order
    if workers == 2 and len(costs) <= _EXACT_JOBS:
        plans = _halves(costs, order)
    else:
        plans = [[] for _ in range(workers)]
        loads = [0] * workers
        for k in order:
            w = loads.index(min(loads))
            plans[w].append(k)
            loads[w] += costs[k]
    starts = []
    for plan in plans:
        t = 0
        for k in sorted(plan, key=lambda k: -costs[k]):
            starts.append((t, -costs[k], k))
            t += costs[k]
    return [k for _, _, k in sorted(starts)]


_EXACT_JOBS = 64  # jobs up to which two threads share them exactly (a subset sum over their costs)
_COST_UNIT = spec.SAMPLE_RATE // 100  # dispatch_order's costs: 10 ms of audio


def _halves(costs: list[int], order: list[int]) -> list[list[int]]:
    """The jobs in two plans whose totals differ the least (subset sums as the bits of an integer)."""
    reach = [1]  # reach[i]: bit t set when some of the first i jobs (in ``order``) sum to t
    for k in order:
        reach.append(reach[-1] | reach[-1] << costs[k])
    total = sum(costs)
    target = (reach[-1] & ((2 << (total // 2)) - 1)).bit_length() - 1  # the highest sum up to half the total
    first = []
    for i in range(len(order), 0, -1):  # walk back: keep job i-1 when the rest cannot reach the target without it
        if not reach[i - 1] >> target & 1:
            first.append(order[i - 1])
            target -= costs[order[i - 1]]
    taken = set(first)
    return [first, [k for k in order if k not in taken]]


def recognise_chunks(samples: np.ndarray, chunks: list[tuple[int, int]], decoders: PhoneDecoders,
                     workers: int | None = None, progress: ChunkProgress | None = None,
                     cancel: threading.Event | None = None) -> Alignment:
    """All-phone recognition of ``chunks`` (sample ranges of 16 kHz ``samples``, in order) on up to ``workers``
    threads (default: the cores); everything outside the chunks is silence. The same Alignment whatever the number
    of workers. Raises Cancelled when ``cancel`` is set (no new chunk starts after that)."""
    n = len(samples)
    workers = max(1, min(workers or cores(), len(chunks))) if decoders.parallel else 1
    results: list = [None] * len(chunks)

    def decode(k: int):
        if cancel is not None and cancel.is_set():
            return k, None
        lo, hi = chunks[k]
        return k, decoders.decode(pcm16(samples[lo:hi]))

    done = 0
    if workers == 1:
        for k in range(len(chunks)):
            results[k] = decode(k)[1]
            done += 1
            if progress:
                progress(done / len(chunks))
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="facepolicy-recognise") as pool:
            # In the order that makes the threads finish together (dispatch_order).
            pending = {pool.submit(decode, k) for k in dispatch_order([max(1, (hi - lo) // _COST_UNIT)
                                                                         for lo, hi in chunks], workers)}
            try:
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in finished:
                        k, segs = f.result()
                        results[k] = segs
                        done += 1
                    if progress:  # on the calling thread
                        progress(done / len(chunks))
            finally:  # an error or Ctrl-C: the chunks not started are dropped, the running ones finish
                for f in pending:
                    f.cancel()
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled")
    return alignment_from_chunks(chunks, results, n)


def scoring_report() -> str:
    """One line for `facepolicy doctor`: where phone recognition scores and searches here, and where transcript
    alignment scores (core.align: pocketsphinx's searches over the library's scores, or its own)."""
    decoders = shared_decoders()
    if not decoders.parallel:  # alignment then runs in the binding too
        return ("pocketsphinx's own, one decoder at a time (this pocketsphinx exports no C functions): the same "
                "phones, slower")
    aligned = "compiled scoring" if shared_aligner().scored_here else "pocketsphinx's own"
    if decoders.scored_here:
        return f"compiled scoring and search ({LIBRARY}), decoders on every core; transcript alignment: {aligned}"
    if not pocketsphinx_verified():
        return (f"pocketsphinx's own, decoders on every core ({LIBRARY} reproduces pocketsphinx "
                f"{VERIFIED_MAJOR}.x; this is another version); transcript alignment: {aligned}")
    return (f"pocketsphinx's own, decoders on every core ({LIBRARY} was not built for this platform or not loaded: "
            f"the same phones, slower; python -m facepolicy.preview.build builds it); transcript alignment: {aligned}")


_shared: PhoneDecoders | None = None
_shared_lock = threading.Lock()


def shared_decoders() -> PhoneDecoders:
    """One set of warm decoders per process (each takes about 0.15 s to load)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = PhoneDecoders()
        return _shared
