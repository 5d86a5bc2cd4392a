"""Keyframe writer speed: a 60 s take (1800 frames at 30 fps) × 52 ARKit channels onto the default head.

Run under each bpy: `.venv/bin/python bench/bench_keys.py` and `.venv-bpy42/bin/python bench/bench_keys.py`.
Prints one line: `write_keys 1800x52: median X.XXXs wall, Y.YYYs cpu over N runs, bpy A.B.C, C curves, load L`.
The CPU time is the process's own, so it is less disturbed than the wall time on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import bpy
import numpy as np

from facepolicy.blender import keys
from facepolicy.blender.head import add_default_head
from facepolicy.core import spec
from facepolicy.core.facetrack import FaceTrack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1800)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    head = add_default_head(bpy.context)
    rng = np.random.default_rng(0)
    values = np.zeros((args.frames, spec.NUM_CHANNELS), np.float32)
    values[:, : spec.NUM_ARKIT] = rng.random((args.frames, spec.NUM_ARKIT))
    track = FaceTrack(spec.MODEL_FPS, spec.CHANNEL_NAMES, values)
    options = keys.WriteOptions(channels=frozenset({"lips", "brows", "blinks", "gaze"}), audio_name="bench")

    wall, cpu = [], []
    for _ in range(args.runs):
        t0, c0 = time.perf_counter(), time.process_time()
        result = keys.write_face_track_to_action(head, track, options)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    assert result.n_curves == spec.NUM_ARKIT and result.n_keys == args.frames
    version = ".".join(map(str, bpy.app.version))
    print(f"write_keys {args.frames}x{spec.NUM_ARKIT}: median {statistics.median(wall):.3f}s wall, "
          f"{statistics.median(cpu):.3f}s cpu (min wall {min(wall):.3f}s) over {args.runs} runs, bpy {version}, "
          f"{result.n_curves} curves, load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
