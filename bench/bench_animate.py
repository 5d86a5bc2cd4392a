"""A whole bake of 60 s of speech through `facepolicy.animate_from_audio` in background mode, per engine.

`.venv/bin/python bench/bench_animate.py [--engine NAME ...] [--runs N] [--audio FILE]`
Without --audio, 60 s of real speech is assembled from the bundled voice line or Debian's pocketsphinx-testdata
LibriVox clips (with short pauses). Prints one line per engine:
`animate 60.0s via operator (phonetic): cold X.XXs, warm median Y.YYs wall (Zx real time), cpu C.CCs, write W.WWs, ...`
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bpy
import numpy as np
import soundfile

import facepolicy
from facepolicy.blender import bake, keys
from facepolicy.blender.head import add_default_head
from facepolicy.core import engine as core_engine

ROOT = Path(__file__).resolve().parent.parent
SPEECH_DIRS = (ROOT / "assets" / "audio", Path("/usr/share/pocketsphinx/test/data/librivox"))


def speech_60s(path: Path, seconds: float = 60.0) -> Path:
    clips = [f for d in SPEECH_DIRS if d.is_dir() for f in sorted(d.glob("*.wav")) + sorted(d.glob("*.flac"))]
    if not clips:
        sys.exit("no speech clips found: pass --audio FILE")
    rate = 16000
    from facepolicy.core.audio import load_audio

    parts, total = [], 0
    while total < seconds * rate:
        for clip in clips:
            x = load_audio(clip).samples
            parts += [x, np.zeros(rate // 3, np.float32)]
            total += len(x) + rate // 3
    soundfile.write(str(path), np.concatenate(parts)[: int(seconds * rate)], rate)
    return path


def bake_once(settings) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    assert bpy.ops.facepolicy.animate_from_audio() == {"FINISHED"}
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", action="append", help="engine(s) to run (default: every registered one)")
    parser.add_argument("--runs", type=int, default=3, help="warm runs after the cold one")
    parser.add_argument("--audio", type=Path)
    parser.add_argument("--accuracy", choices=("default", "fast", "accurate"), default="default",
                        help="the panel's Accuracy setting (default: each engine's own default)")
    args = parser.parse_args()

    bpy.ops.wm.read_factory_settings(use_empty=True)
    facepolicy.register()
    tmp = Path(tempfile.mkdtemp(prefix="facepolicy-bench-"))
    audio = args.audio or speech_60s(tmp / "speech60.wav")
    seconds = soundfile.info(str(audio)).duration
    scene = bpy.context.scene
    scene.render.fps = 30
    head = add_default_head(bpy.context)
    settings = scene.facepolicy
    settings.target, settings.audio_path = head, str(audio)
    if "neural" not in core_engine.ENGINES:  # measure the Neural engine wherever its code exists, shipped or not
        try:
            from facepolicy.core.policy import NeuralEngine  # noqa: F401

            core_engine.register_engine("neural", ".policy", "NeuralEngine")
        except ImportError:
            pass
    settings.accuracy = args.accuracy.upper()
    for name in args.engine or sorted(core_engine.ENGINES):
        takes_before = len(keys.list_takes(head))
        try:
            core_engine.get_engine(name)  # import it, so a missing engine is reported, not timed
            settings.engine = name
            cold, _ = bake_once(settings)
        except Exception as exc:
            print(f"animate {seconds:.1f}s via operator ({name}): unavailable ({str(exc).splitlines()[-1]})")
            continue
        wall, cpu = zip(*(bake_once(settings) for _ in range(args.runs)), strict=True)
        request = bake.request_from_settings(bpy.context, settings)
        outcome = bake.run_engine(request)
        t0 = time.perf_counter()
        result, _ = bake.apply_outcome(scene, request, outcome)
        write = time.perf_counter() - t0
        warm = statistics.median(wall)
        print(f"animate {seconds:.1f}s via operator ({name}): cold {cold:.2f}s, warm median {warm:.2f}s wall "
              f"({seconds / warm:.0f}x real time), cpu {statistics.median(cpu):.2f}s, "
              f"engine {outcome.engine_seconds:.2f}s, "
              f"write {write:.3f}s, {result.n_curves} curves x {result.n_keys} keys, bpy "
              f"{'.'.join(map(str, bpy.app.version))}, load {os.getloadavg()[0]:.1f}")
        assert len(keys.list_takes(head)) == takes_before + args.runs + 2
        print(f"  ({name}, accuracy {args.accuracy})", flush=True)
    facepolicy.unregister()


if __name__ == "__main__":
    main()
