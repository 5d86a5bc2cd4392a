"""Foundation timings: audio loading/resampling, FaceTrack resampling, Live Link CSV and JSON round trips.

    .venv/bin/python bench/bench_foundation.py [--repeat 7]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from facepolicy.core import audio, spec
from facepolicy.core.facetrack import FaceTrack
from facepolicy.core.livelink import livelink_csv_to_track, track_to_livelink_csv


def median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech44k.wav"
        sf.write(wav, (0.1 * rng.standard_normal((44100 * 60, 2))).astype(np.float32), 44100)
        t_load = median_time(lambda: audio.load_audio(wav), args.repeat)
    track = FaceTrack(30.0, spec.CHANNEL_NAMES, rng.random((1800, spec.NUM_CHANNELS), dtype=np.float32))
    t_res = median_time(lambda: track.resample(24000 / 1001), args.repeat)
    text = track_to_livelink_csv(track)
    t_csv_w = median_time(lambda: track_to_livelink_csv(track), args.repeat)
    t_csv_r = median_time(lambda: livelink_csv_to_track(text), args.repeat)
    t_json = median_time(lambda: FaceTrack.from_json(track.to_json()), args.repeat)
    print(f"load 60.0s 44.1kHz stereo wav -> 16k mono: {t_load:.3f}s")
    print(f"resample 1800x{spec.NUM_CHANNELS} 30 -> 23.976 fps: {t_res * 1000:.2f}ms")
    print(f"live link csv 1800 frames: write {t_csv_w * 1000:.1f}ms, read {t_csv_r * 1000:.1f}ms")
    print(f"json round trip 1800 frames: {t_json * 1000:.1f}ms")
    print(f"foundation: audio {60 / t_load:.0f}x real time, resample {t_res * 1000:.2f}ms, "
          f"csv {t_csv_w * 1000:.0f}+{t_csv_r * 1000:.0f}ms, json {t_json * 1000:.0f}ms (median of {args.repeat})")


if __name__ == "__main__":
    main()
