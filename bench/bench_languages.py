"""Lip sync in every language of the espeak-ng development set: one table of language × mode with the time and every
lip-sync figure, all from the same run.

The set (model.data.languages) is built into cache/languages on first use: twelve languages, six sentences each,
spoken by two voicings, phone timings from espeak-ng's phoneme events mapped to lip classes. Modes: the Neural
engine's "fast" (the model alone), "accurate" (the default: phone evidence from recognition) and "accurate
transcript" (the default with the sentence's text given: it is used only where it can be aligned, else the line
falls back to recognition with one warning; the last column counts the clips whose text was used), and the teacher
on the exact phone timings (the ceiling). Times are in process with a warm engine (model loading excluded), so they
compare across languages and modes, not with bench_neural's whole-process figure.

A transcript is aligned in the languages core.letters enables (letters.ALIGNED); ``--align-also ja,fr,nl`` aligns other
languages whose letter-to-sound rules exist too, to measure them before enabling them (a language is enabled only
where "accurate transcript" is at least as good as "accurate" on bilabial, /m/, open, SLCC and jitter, and better
on one).

    flock /tmp/fp/bench.lock .venv/bin/python bench/bench_languages.py [--languages es,fr] [--modes fast,accurate]
        [--no-teacher] [--model assets/models] [--align-also ja,fr,nl] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from model.evaluate import LANGUAGE_MODES, LANGUAGE_TARGETS, evaluate_languages, language_table  # noqa: E402


def summary(results: dict[str, dict[str, dict]], mode: str) -> str:
    """One parseable line: the worst language per target figure in ``mode``, and how many languages meet all."""
    rows = {code: r[f"neural {mode}"] for code, r in results.items() if f"neural {mode}" in r}
    if not rows:
        return f"languages: no {mode} rows"
    parts, meets = [], dict.fromkeys(rows, True)
    for key, target in LANGUAGE_TARGETS.items():
        worst = (max if key == "jitter" else min)(rows, key=lambda c: rows[c][key])
        parts.append(f"{key} {rows[worst][key]:.3f} ({worst})")
        for code, r in rows.items():
            if not np.isfinite(r[key]) or (r[key] > target if key == "jitter" else r[key] < target):
                meets[code] = False
    audio = sum(r["audio_seconds"] for r in rows.values())
    seconds = sum(r["seconds"] for r in rows.values())
    return (f"languages {mode}: {sum(meets.values())}/{len(rows)} meet every target; worst " + ", ".join(parts)
            + f"; {audio:.0f} s of audio in {seconds:.1f} s ({audio / max(seconds, 1e-9):.0f}x real time)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "assets" / "models"))
    ap.add_argument("--languages", help="codes, e.g. es,fr (default: all of model.data.languages)")
    ap.add_argument("--modes", default=",".join(LANGUAGE_MODES),
                    help="neural modes: fast, accurate, accurate transcript (default mode with the text), transcript "
                         "(fast mode with the text)")
    ap.add_argument("--no-teacher", action="store_true", help="skip the teacher on exact phone timings")
    ap.add_argument("--cache", default=str(ROOT / "cache" / "languages"), help="where the development set is built")
    ap.add_argument("--align-also", default="", help="also align transcripts in these languages whose letter-to-sound "
                    "rules exist but are not enabled (codes, e.g. ja; 'all': every one)")
    ap.add_argument("--json", help="write all results here")
    args = ap.parse_args(argv)
    if args.align_also:
        from facepolicy.core import letters

        extra = letters.RULE_LANGUAGES if args.align_also == "all" else tuple(args.align_also.split(","))
        unknown = [code for code in extra if code not in letters.RULE_LANGUAGES]
        if unknown:
            ap.error(f"no letter-to-sound rules for {', '.join(unknown)} (there are: "
                     f"{', '.join(letters.RULE_LANGUAGES)})")
        letters.ALIGNED = tuple(dict.fromkeys(letters.ALIGNED + extra))

    from facepolicy.core.policy import NeuralEngine

    logging.getLogger("facepolicy").setLevel(logging.ERROR)  # the fallback sentences are counted in the table
    engine = NeuralEngine(args.model)
    engine.policy()  # load once, outside the timed runs
    modes = tuple(m for m in args.modes.split(",") if m)
    codes = args.languages.split(",") if args.languages else None
    t0 = time.perf_counter()
    results = evaluate_languages(engine, codes, modes, teacher=not args.no_teacher, root=Path(args.cache))
    wall = time.perf_counter() - t0
    from facepolicy.core.letters import ALIGNED

    print(f"transcripts aligned in: en, {', '.join(ALIGNED)}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"command: {' '.join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])])}")
    print()
    print(language_table(results))
    print()
    for mode in modes:
        print(summary(results, mode))
    print(f"total wall {wall:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
