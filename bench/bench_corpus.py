"""Corpus generation speed: builds the first shards of the default config in a temporary folder.

    nice -n 10 .venv/bin/python bench/bench_corpus.py [--seconds 600] [--jobs 2]

Prints one line: audio seconds built, wall seconds, audio s per wall s and per CPU s (all processes).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.data import build_corpus  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0, help="build at least this much audio")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    cfg = build_corpus.CONFIGS["default"]
    cfg = dataclasses.replace(cfg, hours=args.seconds / 3600)
    with tempfile.TemporaryDirectory(prefix="fp_bench_corpus_") as tmp:
        m = build_corpus.build(cfg, Path(tmp), seed=args.seed, jobs=args.jobs, log=lambda s: None)
    b = m["build"]
    print(f"corpus default x{len(m['shards'])} shards: {b['built_seconds']:.1f} s audio in {b['wall_seconds']:.1f} s "
          f"wall ({b['audio_seconds_per_wall_second']:.2f} audio s per wall s, {args.jobs} jobs; "
          f"{b['audio_seconds_per_cpu_second']:.2f} audio s per CPU s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
