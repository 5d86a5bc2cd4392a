"""Long audio: peak memory (RSS) and wall time of baking one long file to a Live Link CSV.

The file is real speech (CMU ARCTIC from tests/data, the demo line, and LibriVox clips when pocketsphinx-testdata
is installed) repeated with short pauses to N minutes, written as 16 kHz PCM WAV in a temporary folder. The
measured command is what a user types, in a fresh process: `facepolicy bake long.wav -o long.csv [--engine E]
[--accuracy A]`; peak RSS is that process's ru_maxrss (what `/usr/bin/time -v` reports as "Maximum resident set
size").

    .venv/bin/python bench/bench_long.py --minutes 10 [--minutes 60 ...] [--engine neural|phonetic]
                                         [--accuracy fast|accurate] [--keep DIR]

Prints one line per length, e.g.
    bake 60.0 min audio (neural, default accuracy): peak RSS 352 MB, 301.2 s wall (12.0x real time)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
RATE = 16000
PAUSE = 0.4  # seconds of silence between clips


def speech_clips() -> list[np.ndarray]:
    """The real speech clips the long file is made of (all 16 kHz mono)."""
    paths = sorted((ROOT / "tests" / "data" / "arctic").glob("*.wav"))
    paths.append(ROOT / "assets" / "audio" / "demo" / "dashwood.wav")
    paths += sorted(LIBRIVOX.glob("*.wav"))
    clips = []
    for path in paths:
        x, rate = sf.read(str(path), dtype="float32", always_2d=True)
        if rate == RATE:
            clips.append(x.mean(axis=1))
    return clips


def write_long_speech(path: Path, minutes: float) -> float:
    """Writes ``minutes`` of speech to ``path`` clip by clip (the whole file is never in memory); returns seconds."""
    clips = speech_clips()
    pause = np.zeros(int(PAUSE * RATE), np.float32)
    total = int(minutes * 60 * RATE)
    written = 0
    with sf.SoundFile(str(path), "w", RATE, 1, subtype="PCM_16") as f:
        k = 0
        while written < total:
            for part in (clips[k % len(clips)], pause):
                part = part[: total - written]
                f.write(part)
                written += len(part)
            k += 1
    return written / RATE


def bake(wav: Path, out: Path, engine: str | None, accuracy: str | None) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of the console script baking ``wav`` to ``out`` in a fresh process."""
    exe = Path(sys.executable).parent / "facepolicy"
    cmd = [str(exe) if exe.exists() else "facepolicy", "bake", str(wav), "-o", str(out)]
    if engine:
        cmd += ["--engine", engine]
    if accuracy:
        cmd += ["--accuracy", accuracy]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"bake failed ({proc.returncode}): {proc.stderr.read().decode(errors='replace')[-2000:]}")
    proc.stderr.close()
    return usage.ru_maxrss / 1024.0, wall  # ru_maxrss is in KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, action="append", help="length of the file (repeatable; default 10)")
    ap.add_argument("--engine", choices=("neural", "phonetic"), default=None, help="default: the CLI's default")
    ap.add_argument("--accuracy", choices=("fast", "accurate"), default=None, help="default: the engine's default")
    ap.add_argument("--keep", type=Path, default=None, help="keep the WAV and CSV files in this folder")
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="fp_bench_long_"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        for minutes in args.minutes or [10.0]:
            wav = folder / f"long_{minutes:g}min.wav"
            seconds = write_long_speech(wav, minutes)
            rss, wall = bake(wav, folder / f"long_{minutes:g}min.csv", args.engine, args.accuracy)
            print(f"bake {seconds / 60:.1f} min audio ({args.engine or 'default engine'}, "
                  f"{args.accuracy or 'default accuracy'}): peak RSS {rss:.0f} MB, {wall:.1f} s wall "
                  f"({seconds / wall:.1f}x real time)", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
