"""Batch baking throughput: a manifest of synthetic lines (about 4 s each) → FBX with `facepolicy bake --jobs N`.

The lines are spoken by espeak-ng (a GPL tool used here only to make test audio; nothing of it ships) with a
transcript beside each one. The bake runs as the real command in a subprocess, so worker start-up, bpy import and
file writing are all counted. Prints one summary line per run and a final median line, e.g.
``bake batch 100 lines (4.0 s avg) -> fbx, jobs 2, engine phonetic: 95.1s wall, 63.1 lines/min (median of 3)``.

``--speech``: real speech instead (bench_phonetic's ARCTIC + LibriVox clips repeated and cut into lines of
``--seconds``) with no transcript, so the default mode recognises phones: a dialogue batch without scripts.
``--old DIR``: also an older package (``DIR/facepolicy``, e.g. a symlink to a worktree's ``addon``), runs
interleaved with the current one so that a busy machine weighs on both alike, and the ratio of their medians.

    .venv/bin/python bench/bench_batch.py [--lines 100] [--seconds 4] [--jobs 2] [--format fbx] [--repeats 3]
        [--speech] [--old DIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

WORDS = (
    "the quick brown fox jumps over a lazy dog while seven bright moons rise above the quiet harbour "
    "maybe we should open every window before the morning rain begins to fall on paper boats "
    "please bring my blue umbrella from the office because thunder rolls across those purple hills "
    "five tired pilots waved at the busy market where fresh bread and warm soup waited for them "
    "nobody believed the old map until the treasure chest appeared beneath the broken lighthouse"
).split()


def make_lines(folder: Path, n: int, seconds: float, seed: int = 0) -> list[tuple[Path, float]]:
    """n spoken lines of about ``seconds`` each, with NAME.txt transcripts; reused when already there."""
    if shutil.which("espeak-ng") is None:
        sys.exit("bench_batch: espeak-ng is needed to make the test lines (apt install espeak-ng)")
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        wav, txt = folder / f"line{i:04d}.wav", folder / f"line{i:04d}.txt"
        if not (wav.exists() and txt.exists()):
            words = round(seconds * 2.6)  # espeak-ng at 160 wpm speaks about 2.6 words per second
            for _ in range(6):
                text = " ".join(rng.choice(WORDS) for _ in range(words))
                subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(wav), text], check=True)
                dur = sf.info(str(wav)).duration
                if abs(dur - seconds) <= 0.4:
                    break
                words = max(3, round(words * seconds / dur))
            txt.write_text(text + "\n", encoding="utf-8")
        lines.append((wav, sf.info(str(wav)).duration))
    return lines


def speech_lines(folder: Path, n: int, seconds: float) -> list[tuple[Path, float]]:
    """n lines of real speech of ``seconds`` each (no transcripts), cut from bench_phonetic's clips."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_phonetic import speech

    folder.mkdir(parents=True, exist_ok=True)
    samples, _texts = speech(n * seconds)
    step = int(seconds * 16000)
    lines = []
    for i in range(n):
        wav = folder / f"speech{i:04d}.wav"
        if not wav.exists():
            sf.write(str(wav), samples[i * step:(i + 1) * step], 16000)
        lines.append((wav, sf.info(str(wav)).duration))
    return lines


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_bake(manifest: Path, out: Path, formats: str, jobs: int, engine: str | None,
             package: Path | None = None) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the command and its workers, stdout); ``package``: a folder holding another
    ``facepolicy`` package to run instead."""
    cmd = [sys.executable, "-c", "from facepolicy.cli import main; main()", "bake", "--manifest", str(manifest),
           "-o", str(out), "--format", formats, "--jobs", str(jobs)]
    if engine:
        cmd += ["--engine", engine]
    env = dict(os.environ)
    if package is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(package), str(package.parent)])
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if proc.returncode != 0:
        sys.exit(f"bench_batch: the bake failed (exit {proc.returncode}):\n"
                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, cpu, proc.stdout


def stage_costs(lines: list[tuple[Path, float]], out: Path, formats: str) -> str:
    """CPU seconds per stage for lines baked one after the other in this process (the first one warms up)."""
    from facepolicy.blender.export import export_scene
    from facepolicy.core import batch, engine
    from facepolicy.core.audio import load_audio
    from facepolicy.core.engine import BakeOptions

    opts = batch.BatchOptions(out_dir=str(out), formats=batch.parse_formats(formats))
    costs: dict[str, list[float]] = {"audio load": [], "engine": [], "scene + export": []}
    for i, (wav, _dur) in enumerate(lines):
        row = batch.BakeRow(i + 1, str(wav), wav.stem)
        t0 = time.process_time()
        audio = load_audio(wav)
        t1 = time.process_time()
        track = engine.animate(audio, BakeOptions(transcript=wav.with_suffix(".txt").read_text(encoding="utf-8")))
        t2 = time.process_time()
        export_scene([track], row, opts, batch.output_paths(row, opts))
        t3 = time.process_time()
        if i:
            for key, value in zip(costs, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                costs[key].append(value)
    parts = ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in costs.items())
    return f"per line in one warm process ({formats}): {parts} CPU-s (median of {len(lines) - 1})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=4.0, help="target length of each line")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--format", default="fbx")
    ap.add_argument("--engine", default=None, help="default: the bake command's default engine")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "facepolicy-bench-batch")
    ap.add_argument("--stages", type=int, default=0, metavar="N",
                    help="instead: the CPU cost of each stage, over N lines baked in this process")
    ap.add_argument("--speech", action="store_true", help="real speech lines without transcripts (see above)")
    ap.add_argument("--old", type=Path, metavar="DIR", help="also DIR/facepolicy, interleaved (see above)")
    args = ap.parse_args()

    if args.speech:
        lines = speech_lines(args.work / "speech", args.lines, args.seconds)
    else:
        lines = make_lines(args.work / "lines", args.stages or args.lines, args.seconds)
    if args.stages:
        print(stage_costs(lines[: args.stages], args.work / "stages", args.format))
        return
    manifest = args.work / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["audio", "output", "seed"])
        for i, (wav, _dur) in enumerate(lines):
            w.writerow([f"{wav.parent.name}/{wav.name}", f"fbx/{wav.stem}", i])
    avg = statistics.mean(d for _, d in lines)
    engine = args.engine or _default_engine()
    rates, old_rates = [], []
    for r in range(args.repeats):
        order = ((None, rates), (args.old, old_rates)) if args.old else ((None, rates),)
        for package, runs in order if r % 2 == 0 else order[::-1]:  # alternate who goes first
            out = args.work / "out"
            shutil.rmtree(out, ignore_errors=True)
            wall, cpu, _stdout = run_bake(manifest, out, args.format, args.jobs, args.engine, package)
            rate = len(lines) / (wall / 60)
            runs.append((rate, wall, cpu / len(lines)))
            print(f"run {r + 1}{' (old)' if package else ''}: {len(lines)} lines, {wall:.1f}s wall, {rate:.1f} "
                  f"lines/min, {cpu / len(lines):.2f} CPU-s per line, load average {os.getloadavg()[0]:.1f}",
                  flush=True)
    if old_rates:
        old_rate, old_wall, old_cpu = sorted(old_rates)[len(old_rates) // 2]
        new_rate = sorted(rates)[len(rates) // 2][0]
        print(f"old package: {old_wall:.1f}s wall, {old_rate:.1f} lines/min, {old_cpu:.2f} CPU-s per line "
              f"(median of {len(old_rates)}); current / old throughput {new_rate / old_rate:.2f}x")
    resume_wall, _cpu, stdout = run_bake(manifest, args.work / "out", args.format, args.jobs, args.engine)
    assert f"0 baked, {len(lines)} up to date" in stdout, stdout[-500:]
    rate, wall, cpu_line = sorted(rates)[len(rates) // 2]
    print(f"bake batch {len(lines)} lines ({avg:.1f} s avg) -> {args.format}, jobs {args.jobs}, engine {engine}: "
          f"{wall:.1f}s wall, {rate:.1f} lines/min (median of {len(rates)}), {cpu_line:.2f} CPU-s per line "
          f"(ceiling on {args.jobs} free cores: {60 * args.jobs / cpu_line:.0f} lines/min); "
          f"re-run with all up to date: {resume_wall:.1f}s")


def _default_engine() -> str:
    from facepolicy.core.engine import BakeOptions

    return BakeOptions().engine


if __name__ == "__main__":
    main()
