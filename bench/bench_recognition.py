"""Phone recognition of the accurate mode, lever by lever: 60 s of real speech (bench_phonetic.speech, no transcript),
in-process, warm decoders, median of runs.

Rows: core.align's recognise_phones (one decoder, 30 s chunks: the accurate mode before issue 17); the same chunks
through core.recognition on 1 worker, with pocketsphinx scoring and searching itself and with the compiled library
(core.ptm_scores: its scoring and search; the same phones, checked); the audio cut at its pauses with every sample
decoded (the default), either way, and with the pauses skipped but 0.3 s or 0.15 s of each, each on 1, 2 and all
workers. Run it pinned to fewer cores (taskset -c 0) for the one-core curve of the whole machine.

    .venv/bin/python bench/bench_recognition.py [--runs 3] [--seconds 60]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_phonetic import speech  # noqa: E402


def timed(fn, runs: int) -> tuple[float, float, object]:
    """(median wall, median CPU seconds of this process, the last result)."""
    walls, cpus, out = [], [], None
    for _ in range(runs):
        c, t = time.process_time(), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), out


def signature(result) -> list[tuple[str, float, float]]:
    return [(p.phone, round(p.start, 3), round(p.end, 3)) for p in result.phones]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args(argv)

    from facepolicy.core.align import chunk_bounds, shared_aligner
    from facepolicy.core.evidence import speech_frames
    from facepolicy.core.listener import shared_listener
    from facepolicy.core.phones import SIL
    from facepolicy.core.recognition import (
        PAUSE_SILENCE,
        PhoneDecoders,
        cores,
        recognise_chunks,
        shared_decoders,
        speech_chunks,
    )

    samples, _ = speech(args.seconds)
    seconds = len(samples) / 16000
    listener = shared_listener()
    silence = listener.phone_probs(samples, (SIL,))[:, 0]
    pause = (silence >= PAUSE_SILENCE) | ~speech_frames(samples, silence, listener.frame_rate)
    decoders = shared_decoders()
    own = PhoneDecoders(own_scores=False)  # pocketsphinx scores and searches itself
    aligner = shared_aligner()
    aligner.recognise_phones(samples[:16000])  # warm: decoder loading is not the lever measured here
    n_cores = cores()
    for w in range(n_cores):
        for d in (decoders, own):
            recognise_chunks(samples[: 16000 * (w + 1)], [(16000 * w, 16000 * (w + 1))], d)
    scorer = "compiled library" if decoders.scored_here else "no compiled library: pocketsphinx's"
    rows = []
    wall, cpu, before = timed(lambda: aligner.recognise_phones(samples), args.runs)
    rows.append(("core.align recognise_phones (before)", 1, 1.0, len(chunk_bounds(samples)), wall, cpu))
    base = wall
    same = speech_chunks(len(samples), None, listener.frame_rate, samples=samples)
    for label, d in (("same chunks, pocketsphinx", own), (f"same chunks, {scorer}", decoders)):
        wall, cpu, out = timed(lambda d=d: recognise_chunks(samples, same, d, workers=1), args.runs)
        assert signature(out) == signature(before), "core.recognition on the same chunks must give the same phones"
        rows.append((label, 1, 1.0, len(same), wall, cpu))
    workers = sorted({1, 2, n_cores} & set(range(1, n_cores + 1)))
    for label, margin, d in (("cut at pauses, pocketsphinx", None, own),
                             (f"cut at pauses, {scorer} (default)", None, decoders),
                             ("pauses skipped (0.3 s kept)", 0.3, decoders),
                             ("pauses skipped (0.15 s kept)", 0.15, decoders)):
        chunks = speech_chunks(len(samples), pause, listener.frame_rate, margin=margin, samples=samples)
        share = sum(b - a for a, b in chunks) / len(samples)
        for w in workers:
            wall, cpu, _ = timed(lambda c=chunks, w=w, d=d: recognise_chunks(samples, c, d, workers=w), args.runs)
            rows.append((label, w, share, len(chunks), wall, cpu))
    print(f"{'what':48s} {'workers':>7s} {'decoded':>7s} {'chunks':>6s} {'wall s':>7s} {'CPU s':>6s} {'speed-up':>8s}")
    for label, w, share, n, wall, cpu in rows:
        print(f"{label:48s} {w:7d} {share:7.0%} {n:6d} {wall:7.3f} {cpu:6.2f} {base / wall:7.2f}x")
    best = min(rows, key=lambda r: r[4])
    print(f"phone recognition {seconds:.1f}s audio on {n_cores} core(s): {base:.2f}s before, {best[4]:.2f}s best "
          f"({best[0]}, {best[1]} workers), median of {args.runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
