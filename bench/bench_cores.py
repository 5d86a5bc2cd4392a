"""The Neural engine's whole-process time over cores: `facepolicy bake speech.wav --engine neural -o out.csv` on 60 s
of real speech (bench_phonetic.speech, no transcript), in a fresh process pinned to 1, 2, ... cores, for each mode,
and optionally for an older package in the same run (runs interleaved, so a busy machine weighs on both alike).

    .venv/bin/python bench/bench_cores.py [--runs 5] [--cores 1,2] [--modes fast,accurate] [--old DIR]

``--old DIR``: a folder holding another copy of the package as ``DIR/facepolicy`` (for instance a symlink to the
``addon`` folder of a ``git worktree`` at an older commit); it runs with the same assets. Linux only (it pins the
child with sched_setaffinity). onnxruntime pins its own threads to cores of its choosing whatever the process's
mask, so the pinning limits the phone decoders (core.recognition uses the cores the process may run on) and the
rest of Python, not the model's threads: the 1-core row is "one decoder", not a one-core machine.
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

import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_phonetic import speech  # noqa: E402


def bake(wav: Path, out: Path, mode: str, cores: list[int], package: str | None) -> tuple[float, float]:
    """One whole-process bake on ``cores``: (wall, CPU seconds)."""
    env = dict(os.environ)
    if package:
        env["PYTHONPATH"] = package + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("FACEPOLICY_ASSETS", str(ROOT / "assets"))
    out.unlink(missing_ok=True)
    for side in out.parent.glob(out.name + "*"):
        side.unlink()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "facepolicy.cli", "bake", str(wav), "--engine", "neural", "-o", str(out),
                    "--accuracy", mode], check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   preexec_fn=lambda: os.sched_setaffinity(0, cores))
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--cores", default="1,2", help="core counts to pin to (default 1,2; 'all' for every core)")
    ap.add_argument("--modes", default="fast,accurate")
    ap.add_argument("--old", help="a folder holding an older package as facepolicy/, run side by side")
    args = ap.parse_args(argv)
    available = sorted(os.sched_getaffinity(0))
    counts = sorted({len(available) if c == "all" else int(c) for c in args.cores.split(",")})
    counts = [c for c in counts if c <= len(available)]
    packages = [("new", None)] + ([("old", str(Path(args.old).resolve()))] if args.old else [])
    samples, _ = speech(args.seconds)
    seconds = len(samples) / 16000
    cases = [(p, m, c) for p in packages for m in args.modes.split(",") for c in counts]
    results: dict = {(p[0], m, c): [] for p, m, c in cases}
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        sf.write(wav, samples, 16000)
        for _ in range(args.runs):
            for (name, package), mode, c in cases:
                results[(name, mode, c)].append(bake(wav, Path(tmp) / "out.csv", mode, available[:c], package))
    print(f"{'package':8s} {'mode':9s} {'cores':>5s} {'wall s':>7s} {'CPU s':>6s} {'x real time':>11s}")
    for (name, mode, c), runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        print(f"{name:8s} {mode:9s} {c:5d} {wall:7.2f} {cpu:6.2f} {seconds / wall:10.0f}x")
    for mode in args.modes.split(","):
        walls = ", ".join(f"{c} core(s) {statistics.median(r[0] for r in results[('new', mode, c)]):.2f}s"
                          for c in counts)
        print(f"neural bake ({mode}) {seconds:.1f}s audio, whole process: {walls}, median of {args.runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
