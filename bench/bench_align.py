"""Forced alignment with and without the phone library's scoring step (core.ptm_scores.hook_decoder), in process:
pocketsphinx's own searches either way, so the alignments must be the same; the figure is the time.

Rows: the 60 s bench speech with its transcript (bench_phonetic.speech: ARCTIC + LibriVox, split at pauses into
chunks aligned on every core), wall and CPU seconds, median of runs, the two aligners interleaved; then, with
``--clips``, every evaluation clip with a transcript (ARCTIC, LibriVox, the second real set, ``--tts`` held-out TTS
voices, and the development set's lines in each language whose transcripts are aligned), each aligned by both, with
how many alignments are identical and the total time of each. Also word recognition (the Phonetic engine's
accurate mode) on the bench speech with ``--words``.

    .venv/bin/python bench/bench_align.py [--runs 5] [--seconds 60] [--clips] [--tts 40] [--words]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from bench_phonetic import speech  # noqa: E402


def timed(fn) -> tuple[float, float, object]:
    c, t = time.process_time(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t, time.process_time() - c, out


def signature(result) -> tuple:
    return [(p.phone, p.start, p.end) for p in result.phones], result.words


def clips(tts: int) -> list[tuple[str, object]]:
    """(language code, clip) of every evaluation clip with a transcript whose language is aligned."""
    from facepolicy.core.letters import is_aligned
    from model import evaluate_phonetic as ep
    from model.data import languages

    out = [("en", c) for c in ep.arctic_clips() + ep.librivox_clips() + ep.testdata_clips() + ep.tts_clips(tts)]
    for lang in languages.LANGUAGES:
        if is_aligned(lang.code):
            out += [(lang.code, c) for c in ep.folder_clips(languages.build_language(lang, ROOT / "cache" /
                                                                                    "languages"))]
    return [(code, c) for code, c in out if c.transcript]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--clips", action="store_true", help="also every evaluation clip with a transcript")
    ap.add_argument("--tts", type=int, default=40, help="held-out TTS clips with --clips")
    ap.add_argument("--words", action="store_true", help="also word recognition of the bench speech")
    args = ap.parse_args(argv)

    from facepolicy.core.align import Aligner

    aligners = {"library": Aligner(), "pocketsphinx": Aligner(own_scores=False)}
    if not aligners["library"].scored_here:
        print("the library does not score here (not built, or another pocketsphinx): python -m "
              "facepolicy.preview.build", file=sys.stderr)
        return 1
    samples, text = speech(args.seconds)
    seconds = len(samples) / 16000
    rows = {name: [] for name in aligners}
    outputs = {}
    for _ in range(args.runs):
        for name, aligner in aligners.items():
            wall, cpu, out = timed(lambda a=aligner: a.align(samples, text))
            rows[name].append((wall, cpu))
            outputs[name] = signature(out)
    for name, values in rows.items():
        print(f"align {seconds:.1f} s of speech, {name} scoring: {statistics.median(w for w, _ in values):.2f} s wall, "
              f"{statistics.median(c for _, c in values):.2f} CPU-s (median of {args.runs})")
    print("the same alignment:", outputs["library"] == outputs["pocketsphinx"])

    if args.words:
        for name, aligner in aligners.items():
            wall, cpu, out = timed(lambda a=aligner: a.recognise_words(samples))
            outputs[name] = signature(out)
            print(f"word recognition of {seconds:.1f} s, {name} scoring: {wall:.2f} s wall, {cpu:.2f} CPU-s")
        print("the same words and phones:", outputs["library"] == outputs["pocketsphinx"])

    if args.clips:
        totals = dict.fromkeys(aligners, 0.0)
        same = differ = 0
        for code, clip in clips(args.tts):
            got = {}
            for name, aligner in aligners.items():
                t = time.perf_counter()
                try:
                    got[name] = signature(aligner.align(clip.audio.samples, clip.transcript, language=code))
                except Exception as exc:  # noqa: BLE001 - a refusal must be the same refusal
                    got[name] = repr(exc)
                totals[name] += time.perf_counter() - t
            if got["library"] == got["pocketsphinx"]:
                same += 1
            else:
                differ += 1
                print(f"differs: {code} {clip.name}")
        print(f"clips: {same} alignments identical, {differ} different; "
              + ", ".join(f"{name} {t:.2f} s" for name, t in totals.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
