"""Phonetic engine speed: 60 s of real speech through `facepolicy bake --engine phonetic -o out.csv`, whole process.

The speech is CMU ARCTIC (tests/data/arctic) and, when Debian's pocketsphinx-testdata is installed, LibriVox clips,
repeated to 60 s. Reports the median wall time of the whole process (imports, decoder start-up, recognition,
teacher, CSV) and its CPU time, then an in-process breakdown.

    .venv/bin/python bench/bench_phonetic.py [--runs 3] [--seconds 60] [--transcript] [--accuracy fast|accurate]
    .venv/bin/python bench/bench_phonetic.py --teacher-minutes 30
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def speech(seconds: float) -> tuple[np.ndarray, str]:
    """Real speech clips (and their transcripts) repeated to at least ``seconds``."""
    from facepolicy.core.audio import load_audio

    clips = []
    for wav in sorted((ROOT / "tests" / "data" / "arctic").glob("*.wav")):
        clips.append((load_audio(wav).samples, wav.with_suffix(".txt").read_text().strip()))
    listing = LIBRIVOX / "transcription"
    if listing.exists():
        for line in listing.read_text().splitlines():
            name = line.rsplit("(", 1)[-1].rstrip(")")
            text = line.split("</s>")[0].replace("<s>", "").strip()
            clips.append((load_audio(LIBRIVOX / f"{name}.wav").samples, text))
    gap = np.zeros(8000, np.float32)
    parts, texts, total = [], [], 0
    while total < seconds * 16000:
        for x, text in clips:
            parts += [x, gap]
            texts.append(text)
            total += len(x) + len(gap)
            if total >= seconds * 16000:
                break
    # Whole clips only, so the transcript matches the audio exactly (a few seconds over ``seconds`` at most).
    return np.concatenate(parts), " ".join(texts)


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--transcript", action="store_true", help="pass the transcript (forced alignment)")
    ap.add_argument("--accuracy", choices=("fast", "accurate"), default="fast")
    ap.add_argument("--teacher-minutes", type=float, default=0.0,
                    help="instead: time the teacher alone on this many minutes of aligned speech")
    args = ap.parse_args()
    if args.teacher_minutes:
        return bench_teacher(args.teacher_minutes)
    samples, text = speech(args.seconds)
    duration = len(samples) / 16000
    with tempfile.TemporaryDirectory(prefix="fp_bench_phonetic_") as tmp:
        wav = Path(tmp) / "speech.wav"
        sf.write(str(wav), samples, 16000)
        if args.transcript:
            wav.with_suffix(".txt").write_text(text, encoding="utf-8")
        out = Path(tmp) / "out.csv"
        code = ("import sys; from facepolicy.core.engine import BakeOptions, animate; "
                "from facepolicy.core.livelink import write_livelink_csv; "
                f"t = animate(sys.argv[1], BakeOptions(engine='phonetic', accuracy='{args.accuracy}')); "
                "write_livelink_csv(t, sys.argv[2]); print(t.meta['phonetic']['mode'], t.meta['warnings'])")
        walls, cpus, mode = [], [], ""
        for _ in range(args.runs):
            c0 = child_cpu()
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", code, str(wav), str(out)], capture_output=True, text=True,
                                  env={**os.environ, "OMP_NUM_THREADS": "1"})
            walls.append(time.perf_counter() - t0)
            cpus.append(child_cpu() - c0)
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
                return 1
            mode = proc.stdout.strip().splitlines()[-1]
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        print(f"phonetic {duration:.1f}s audio ({args.accuracy}{', transcript' if args.transcript else ''}): "
              f"{wall:.2f}s wall ({duration / wall:.0f}x real time), {cpu:.2f}s cpu, median of {args.runs}; "
              f"mode {mode}")
        breakdown(samples, text, args)
    return 0


def bench_teacher(minutes: float) -> int:
    """The teacher on long input: CPU time and peak traced memory (long-audio behaviour)."""
    import tracemalloc

    from facepolicy.core.align import Aligner
    from facepolicy.core.phones import PhoneSegment
    from facepolicy.core.teacher import animate_phones

    samples, text = speech(60.0)
    one = Aligner().align(samples, text).phones
    period = len(samples) / 16000
    repeats = int(np.ceil(minutes * 60 / period))
    phones = [PhoneSegment(p.phone, p.start + k * period, p.end + k * period) for k in range(repeats) for p in one]
    audio = np.tile(samples, repeats)
    tracemalloc.start()
    t0 = time.process_time()
    track = animate_phones(phones, audio)
    cpu = time.process_time() - t0
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    print(f"teacher {len(audio) / 16000 / 60:.1f} min audio, {len(phones)} phones: {cpu:.2f}s cpu, "
          f"peak {peak:.0f} MB traced (audio itself {audio.nbytes / 1e6:.0f} MB), {track.n_frames} frames")
    return 0


def breakdown(samples: np.ndarray, text: str, args) -> None:
    """Where the time goes, in this process (decoder start-up, alignment or recognition, the audio encoder's
    second opinion on closures when recognising phones, teacher)."""
    from facepolicy.core.align import Aligner
    from facepolicy.core.listener import BilabialListener
    from facepolicy.core.second_opinion import merge_short_consonants, second_opinion
    from facepolicy.core.teacher import animate_phones

    al = Aligner()
    kind = "align" if args.transcript else ("words" if args.accuracy == "accurate" else "phones")
    t0 = time.process_time()
    al._decoder(kind)
    t1 = time.process_time()
    if args.transcript:
        result = al.align(samples, text)
    elif args.accuracy == "accurate":
        result = al.recognise_words(samples)
    else:
        result = al.recognise_phones(samples)
    t2 = time.process_time()
    recognition = t2 - t1
    second = ""
    if result.mode == "recognised-phones":
        listener = BilabialListener()
        t2b = time.process_time()
        added = second_opinion(result, samples, [], None, listener)
        result.phones, result.confidence = merge_short_consonants(result.phones, result.confidence)
        second = (f", encoder start {t2b - t2:.2f}s, second opinion {time.process_time() - t2b:.2f}s "
                  f"({added} closures added)")
        t2 = time.process_time()
    animate_phones(result.phones, samples, confidence=result.confidence, recognised=not args.transcript)
    t3 = time.process_time()
    step = "alignment" if args.transcript else "recognition"
    print(f"  cpu breakdown: decoder start {t1 - t0:.2f}s, {step} {recognition:.2f}s{second}, teacher {t3 - t2:.2f}s")


if __name__ == "__main__":
    sys.exit(main())
