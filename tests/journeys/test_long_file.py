"""A file longer than 15 minutes (a podcast, an hour of dialogue) through `facepolicy bake`: it is decoded once to a
temporary file and animated five minutes at a time (memory does not grow with its length: bench/bench_long.py), and
what the user gets is one track on the audio's clock that moves all the way through."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf
from journey import ARCTIC, facepolicy, write_wav

RATE = 16000


def sixteen_minutes_of_speech() -> np.ndarray:
    """Real speech (ARCTIC lines with 0.4 s pauses) repeated to 16 minutes."""
    clips = [sf.read(str(p), dtype="float32")[0] for p in sorted(ARCTIC.glob("*.wav"))]
    pause = np.zeros(int(0.4 * RATE), np.float32)
    parts, n, k = [], 0, 0
    while n < 16 * 60 * RATE:
        for part in (clips[k % len(clips)], pause):
            parts.append(part)
            n += len(part)
        k += 1
    return np.concatenate(parts)[: 16 * 60 * RATE]


def test_a_sixteen_minute_file_is_one_track_on_the_audio_clock_that_moves_throughout(tmp_path):
    samples = sixteen_minutes_of_speech()
    write_wav(tmp_path / "podcast.wav", samples)
    done = facepolicy("bake", "podcast.wav", "-o", "out", "--format", "json,csv", "--accuracy", "fast",
                      cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 baked" in done.stdout
    track = json.loads((tmp_path / "out" / "podcast.json").read_text(encoding="utf-8"))
    weights = np.array(track["weights"], np.float32)
    assert len(weights) == round(len(samples) / RATE * 30)  # one frame per 1/30 s of audio, none lost at a cut
    assert track["meta"]["segments"] == 3 and not track["meta"]["warnings"]
    jaw = weights[:, track["names"].index("jawOpen")]
    # The mouth speaks in every minute (no segment left at rest, none doubled) ...
    per_minute = jaw[: 16 * 60 * 30].reshape(16, -1)
    assert (per_minute.max(axis=1) > 0.2).all(), per_minute.max(axis=1)
    # ... and in time with the speech: open where the audio is loud, shut in the pauses, on both sides of each cut.
    tenths = samples[: len(samples) // 1600 * 1600].reshape(-1, 1600)  # 0.1 s = 3 frames
    loud = np.repeat(np.sqrt(np.mean(tenths**2, axis=1)) > 0.02, 3)
    jaw = jaw[: len(loud)]
    assert jaw[loud].mean() > 3 * jaw[~loud].mean()
    csv_rows = (tmp_path / "out" / "podcast.csv").read_text(encoding="utf-8").splitlines()
    assert len(csv_rows) == len(weights) + 1
