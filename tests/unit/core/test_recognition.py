"""Phone recognition cut at pauses and decoded on several cores (core.recognition)."""

import threading
from pathlib import Path

import numpy as np
import pytest

from facepolicy.core import align, spec
from facepolicy.core.audio import load_audio
from facepolicy.core.errors import Cancelled
from facepolicy.core.phones import SIL
from facepolicy.core.recognition import PhoneDecoders, recognise_chunks, shared_decoders, speech_chunks

pytest.importorskip("pocketsphinx", reason="recognition needs pocketsphinx (pip install pocketsphinx)")

ARCTIC = Path(__file__).resolve().parents[2] / "data" / "arctic"
RATE = spec.SAMPLE_RATE


def signature(result):
    return [(p.phone, round(p.start, 4), round(p.end, 4)) for p in result.phones]


def pauses(n_frames, *runs):
    out = np.zeros(n_frames, bool)
    for a, b in runs:
        out[a:b] = True
    return out


def test_the_speech_between_pauses_is_decoded_with_a_margin_of_each_pause():
    # 10 s at 50 frames/s: pauses 0–1 s, 4–5 s (1 s), 6–6.2 s (too short to cut at), 9–10 s.
    pause = pauses(500, (0, 50), (200, 250), (300, 310), (450, 500))
    chunks = speech_chunks(10 * RATE, pause, 50.0, min_pause=0.4, margin=0.15)
    assert chunks == [(int(0.85 * RATE), int(4.15 * RATE)), (int(4.85 * RATE), int(9.15 * RATE))]
    assert all(lo % 160 == 0 and hi % 160 == 0 for lo, hi in chunks)  # on the decoder's 10 ms grid


def test_without_a_margin_the_audio_is_cut_in_the_middle_of_each_pause_and_all_of_it_decoded():
    pause = pauses(500, (0, 50), (200, 250), (450, 500))
    chunks = speech_chunks(10 * RATE, pause, 50.0, margin=None)
    assert chunks == [(0, int(4.5 * RATE)), (int(4.5 * RATE), 10 * RATE)]
    assert chunks[0][0] == 0 and chunks[-1][1] == 10 * RATE


def test_long_speech_is_cut_into_bounded_chunks_and_no_pause_means_core_aligns_chunks():
    x = np.random.default_rng(0).normal(0, 0.1, 70 * RATE).astype(np.float32)
    assert speech_chunks(len(x), None, 50.0, samples=x) == align.chunk_bounds(x)
    chunks = speech_chunks(len(x), pauses(3500, (0, 25)), 50.0, max_len=30.0, samples=x)
    assert len(chunks) == 3 and max(hi - lo for lo, hi in chunks) <= 30 * RATE
    assert chunks[0][0] == 0 and chunks[-1][1] == len(x)  # a pause at the start is decoded with its speech
    assert all(a[1] == b[0] for a, b in zip(chunks[:-1], chunks[1:], strict=True))


def test_the_same_chunks_give_core_aligns_phones_through_the_c_functions():
    x = load_audio(ARCTIC / "arctic_a0009.wav").samples
    decoders = shared_decoders()
    assert decoders.parallel  # the Linux wheel exports pocketsphinx's C functions
    chunks = speech_chunks(len(x), None, 50.0, samples=x)
    assert signature(recognise_chunks(x, chunks, decoders)) == signature(align.shared_aligner().recognise_phones(x))


def test_the_phones_do_not_depend_on_the_number_of_workers_or_on_the_binding():
    a9, a7 = (load_audio(ARCTIC / f"arctic_a000{k}.wav").samples for k in (9, 7))
    gap = np.zeros(RATE // 2, np.float32)
    x = np.concatenate([a9, gap, a7, gap, a9])
    pause = pauses(int(np.ceil(len(x) / 320)))
    for start in (len(a9), len(a9) + len(gap) + len(a7)):
        pause[start // 320 + 1 : (start + len(gap)) // 320] = True
    chunks = speech_chunks(len(x), pause, 50.0, margin=0.15, samples=x)  # the pauses themselves not decoded
    assert len(chunks) == 3
    one = recognise_chunks(x, chunks, shared_decoders(), workers=1)
    assert signature(recognise_chunks(x, chunks, shared_decoders(), workers=3)) == signature(one)
    assert signature(recognise_chunks(x, chunks, PhoneDecoders(native=False))) == signature(one)
    # Each chunk is decoded from its own audio alone: the last one by itself gives the same phones there.
    lo, hi = chunks[-1]
    alone = recognise_chunks(x, [(lo, hi)], shared_decoders())
    inside = [q for q in signature(one) if q[1] >= lo / RATE - 1e-6]
    assert [q for q in signature(alone) if q[1] >= lo / RATE - 1e-6] == inside and len(inside) > 20
    assert one.phones[0].start == 0.0 and one.phones[-1].end == pytest.approx(len(x) / RATE, abs=0.05)
    gaps = [p for p in one.phones if p.phone == SIL and p.end - p.start >= 0.15]
    assert len(gaps) >= 2  # the skipped pauses are silence


def test_cancelling_stops_recognition():
    x = load_audio(ARCTIC / "arctic_a0009.wav").samples
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        recognise_chunks(x, [(0, len(x) // 2), (len(x) // 2, len(x))], shared_decoders(), workers=2, cancel=cancel)


def _finish_times(order, costs, workers):
    """When each thread finishes, each taking the next job of ``order`` when it is free."""
    import heapq

    free = [(0, w) for w in range(workers)]
    ends = [0] * workers
    for k in order:
        t, w = heapq.heappop(free)
        ends[w] = t + costs[k]
        heapq.heappush(free, (ends[w], w))
    return sorted(ends)


def test_two_threads_get_the_chunks_in_an_order_that_makes_them_finish_together():
    import itertools

    from facepolicy.core.recognition import dispatch_order

    # The 12 chunks of bench/bench_neural.py's 60 s, in 10 ms of audio: taking the longest chunk left, one thread
    # finished 1.33 s of audio after the other.
    costs = [401, 377, 755, 348, 593, 641, 396, 424, 375, 754, 352, 615]
    ends = _finish_times(dispatch_order(costs, 2), costs, 2)
    assert ends[1] - ends[0] == 3
    longest_first = sorted(range(len(costs)), key=lambda k: -costs[k])
    assert np.diff(_finish_times(longest_first, costs, 2))[0] == 133
    rng = np.random.default_rng(4)
    for n in (1, 2, 3, 5, 9):
        costs = [int(c) for c in rng.integers(1, 800, n)]
        best = min(abs(sum(costs) - 2 * sum(s)) for r in range(n + 1) for s in itertools.combinations(costs, r))
        order = dispatch_order(costs, 2)
        assert sorted(order) == list(range(n))
        assert np.diff(_finish_times(order, costs, 2))[0] == best
    for workers in (1, 3, 16):
        assert sorted(dispatch_order(list(range(1, 100)), workers)) == list(range(99))
