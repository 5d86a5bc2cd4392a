"""A user bakes a line with pauses in the default (accurate) mode on a machine with one core and on one with more:
the phone recognition is cut at the pauses and decoded on every core, and the Live Link CSV comes out the same byte
for byte (the take does not depend on the machine), with the lips closed on the line's bilabials."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from journey import ARCTIC, console_script, write_wav

pytest.importorskip("pocketsphinx", reason="the accurate mode needs pocketsphinx")

RATE = 16000


def bake(wav: Path, out: Path, cores: set[int]) -> bytes:
    import subprocess

    done = subprocess.run([console_script(), "bake", str(wav), "--engine", "neural", "-o", str(out)],
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                          preexec_fn=lambda: os.sched_setaffinity(0, cores))
    assert done.returncode == 0, done.stderr
    return out.read_bytes()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and at least two cores")
def test_the_default_take_is_the_same_on_one_core_and_on_all(tmp_path):
    clips = [sf.read(ARCTIC / f"arctic_a000{k}.wav", dtype="float32")[0] for k in (9, 7, 9)]
    gap = np.zeros(int(0.7 * RATE), np.float32)
    wav = write_wav(tmp_path / "line.wav", np.concatenate([clips[0], gap, clips[1], gap, clips[2]]))
    everywhere = bake(wav, tmp_path / "all.csv", os.sched_getaffinity(0))
    assert bake(wav, tmp_path / "one.csv", {min(os.sched_getaffinity(0))}) == everywhere
    rows = list(csv.DictReader((tmp_path / "all.csv").read_text().splitlines()))
    apart = np.array([float(r["JawOpen"]) - float(r["MouthClose"]) for r in rows])  # lips apart: jaw minus closure
    first = int(len(rows) * len(clips[0]) / (sum(map(len, clips)) + 2 * len(gap)))
    # "sharply" and "table" in the first sentence: the lips meet there, and the jaw opens on its vowels.
    assert apart[:first].min() < 0.05 and apart[:first].max() > 0.2
