"""The second opinion's own cost on a long line: N minutes of recognised phones (12 a second) and of encoder
probabilities with a closure run and a vowel run about every 0.6 s, through core.second_opinion.apply_second_opinion
and core.neural.prior_hold, in process. Synthetic on purpose: it measures how the rules scale with the line's
length, not what they decide (bench_languages and model.evaluate do that).

    .venv/bin/python bench/bench_second_opinion.py [--minutes 60]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from facepolicy.core import neural, second_opinion
from facepolicy.core.align import Alignment
from facepolicy.core.phones import PhoneSegment


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    args = ap.parse_args(argv)
    seconds = int(args.minutes * 60)
    rng = np.random.default_rng(0)
    names = ["aa", "k", "sil", "l", "iy", "t", "n"]
    phones = [PhoneSegment(names[i % len(names)], i / 12, (i + 1) / 12) for i in range(seconds * 12)]
    probs = np.zeros((seconds * 50, len(second_opinion.OPINION_PHONES)))
    probs[:, 4] = 0.3
    runs = seconds * 50 // 30
    for i in rng.integers(0, len(probs) - 3, runs):
        probs[i : i + 2, 2] = 0.95  # an /m/ heard for two frames
    for i in rng.integers(0, len(probs) - 4, runs):
        probs[i : i + 4, 5] = 0.9  # a vowel heard for four frames
    result = Alignment(phones, [1.0] * len(phones), [], "recognised-phones")
    t0 = time.perf_counter()
    added = second_opinion.apply_second_opinion(result, probs, 50.0)
    t1 = time.perf_counter()
    neural.prior_hold(result, neural.vowel_mask(result.phones, seconds * 30, confidence=result.confidence))
    t2 = time.perf_counter()
    print(f"{args.minutes:g} min: second opinion {t1 - t0:.2f} s ({added} closures added, {len(result.phones)} phones "
          f"after), prior_hold {t2 - t1:.2f} s ({len(result.closures)} sure closures)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
