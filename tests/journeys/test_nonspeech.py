"""Nonspeech keeps the mouth calm: a user bakes a music sting, a test tone and a noise bed with the console script
and looks at the Live Link CSV: the jaw stays shut (jawOpen ≤ 0.1) and the lower lip does not roll or drop."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from journey import facepolicy, write_wav

RATE = 16000
LOWER_LIP = ("MouthRollLower", "MouthLowerDownLeft", "MouthLowerDownRight", "MouthShrugLower")


def sweep(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return 0.5 * np.sin(2 * np.pi * (100 * t + 3900 / (2 * seconds) * t ** 2))


def melody_and_drums(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Notes with harmonics and vibrato every 0.3 s over kick, snare and hi-hat clicks at 120 bpm."""
    n = int(seconds * RATE)
    out = np.zeros(n)
    for t0 in range(0, n, int(0.3 * RATE)):
        t = np.arange(min(int(0.3 * RATE), n - t0)) / RATE
        f0 = float(rng.choice([220.0, 247.0, 277.0, 330.0, 370.0, 440.0]))
        phase = 2 * np.pi * f0 * np.cumsum(1 + 0.006 * np.sin(2 * np.pi * 5.5 * t)) / RATE
        out[t0 : t0 + len(t)] += sum(np.sin(h * phase) / h for h in range(1, 9)) * np.exp(-1.5 * t)
    t = np.arange(int(0.25 * RATE)) / RATE
    hits = (np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 18),
            rng.standard_normal(len(t)) * np.exp(-t * 25) * 0.6,
            np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t * 80) * 0.3)
    for k, t0 in enumerate(range(0, n, RATE // 4)):
        hit = hits[0 if k % 4 == 0 else 1 if k % 4 == 2 else 2][: n - t0]
        out[t0 : t0 + len(hit)] += hit
    return 0.9 * out / np.abs(out).max()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("nonspeech")
    rng = np.random.default_rng(10)
    write_wav(folder / "sweep.wav", sweep(4.0))
    write_wav(folder / "sting.wav", melody_and_drums(4.0, rng))
    write_wav(folder / "noise.wav", 0.25 * rng.standard_normal(4 * RATE))
    return folder


def read_csv(path: Path) -> dict[str, np.ndarray]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    values = np.array([[float(v) for v in r[2:]] for r in rows[1:]], np.float64)
    return {name: values[:, k] for k, name in enumerate(rows[0][2:])}


@pytest.mark.parametrize("engine", ["neural", "phonetic"])
@pytest.mark.parametrize("accuracy", ["fast", "accurate"])
def test_tones_music_and_noise_keep_the_mouth_calm(clips, tmp_path, engine, accuracy):
    done = facepolicy("bake", *sorted(clips.glob("*.wav")), "-o", tmp_path, "--format", "csv", "--engine",
                      engine, "--accuracy", accuracy, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("sweep", "sting", "noise"):
        face = read_csv(tmp_path / f"{name}.csv")
        jaw = face["JawOpen"]
        assert np.mean(jaw <= 0.1) >= 0.99, (name, np.round(np.sort(jaw)[-5:], 2))
        assert max(face[c].max() for c in LOWER_LIP) <= 0.3, name
