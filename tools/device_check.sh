#!/usr/bin/env bash
# FacePolicy's GPU check, in one run of under 5 minutes on a machine with an NVIDIA GPU:
#   1. builds the splat rasterizer's CUDA library (and the CPU one) with the preview's one build command, for this
#      GPU's architecture only (nvidia-smi's compute capability; DEVICE_CHECK_ARCHS overrides it, e.g. "90");
#   2. renders the same frames of the default head with the CUDA and the CPU library and prints their largest pixel
#      difference (fails above 1e-3), then the splat FPS at 512x512 with 100,000 gaussians;
#   3. bakes the same 60 s line with onnxruntime's CUDA and CPU providers (Neural engine, fast), prints the largest
#      difference between the two tracks and both bake times; skipped, with the reason, where this Python's
#      onnxruntime has no usable CUDA provider (`facepolicy doctor`'s cuda line says what is missing).
# Summary lines start with "device-check:"; the exit code is 0 when every check that ran passed, 1 when one failed,
# 2 when it could not run (no GPU or nvcc).
#
# Python: it uses .venv/bin/python when that works (the project's own environment, e.g. carried to the machine);
# otherwise it makes build/device-venv from python3 with the system's packages (numpy, and onnxruntime or
# onnxruntime-gpu where installed), adds the wheels found in .whl/ (offline: --no-index) and imports FacePolicy
# from this checkout. On a machine without internet whose Python lacks soundfile, carry the wheels, prepared where
# PyPI is reachable (for Python 3.12 here):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl soundfile cffi
# onnxruntime-gpu (about 250 MB with its CUDA libraries) is too large to carry in a 64 MiB working tree: the bake
# comparison needs a machine where it is installed.
#
#   bash tools/device_check.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'device-check: %s\n' "$*"; }

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  say "no NVIDIA GPU found (nvidia-smi); nothing to check here"; exit 2
fi
say "GPU: $(nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader | head -n 1)"

if .venv/bin/python -c "import numpy, soundfile" 2>/dev/null; then
  PY=.venv/bin/python
else
  PY=build/device-venv/bin/python
  if [ ! -x "$PY" ]; then
    python3 -m venv --system-site-packages build/device-venv || { say "could not make build/device-venv"; exit 2; }
  fi
  if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install --quiet --no-index --no-deps --no-compile .whl/*.whl || { say "installing .whl/ failed"; exit 2; }
  fi
  # FacePolicy from this checkout, without installing it (its package lives in addon/).
  mkdir -p build/device-site && ln -sfn "$PWD/addon" build/device-site/facepolicy
  export PYTHONPATH="$PWD/build/device-site${PYTHONPATH:+:$PYTHONPATH}"
fi
say "python: $("$PY" -c 'import sys, numpy; print(sys.version.split()[0], "numpy", numpy.__version__)')"

ARCHS="${DEVICE_CHECK_ARCHS:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d '.')}"
t0=$(date +%s)
"$PY" -m facepolicy.preview.build --cuda-archs "$ARCHS" || { say "building the splat libraries failed"; exit 2; }
say "built the CPU and CUDA (sm_$ARCHS) splat libraries in $(( $(date +%s) - t0 ))s"

PYTHONUNBUFFERED=1 "$PY" - <<'PYTHON'
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, "bench")
from bench_preview import head_scene  # noqa: E402  (the benchmark's 100k-gaussian head: one definition)

from facepolicy.core import spec  # noqa: E402
from facepolicy.core.head import load_default_head  # noqa: E402
from facepolicy.preview import raster  # noqa: E402
from facepolicy.preview.scene import SplatScene, front_camera, posed_head_vertices  # noqa: E402

failed = False


def say(text):
    print(f"device-check: {text}", flush=True)


def median_seconds(fn, repeats):
    fn()  # warm-up: first-call allocations and, for CUDA, the context
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


# --- splats: the same frames with CUDA and the CPU ------------------------------------------------------------
cuda, cpu = raster.get_renderer("cuda"), raster.cpu_renderer()
head = load_default_head()
scene = SplatScene.from_head(head)
camera = front_camera(head.vertices, 512, 512)
worst = 0.0
for jaw in (0.0, 0.3, 0.6, 0.9):
    values = np.zeros(len(spec.CHANNEL_NAMES))
    values[spec.CHANNEL_NAMES.index("jawOpen")] = jaw
    values[spec.CHANNEL_NAMES.index("headYaw")] = jaw - 0.45
    arrays = scene.render_arrays(posed_head_vertices(head, values), camera)
    a_rgb, a_alpha = cuda.render(*arrays, camera, background=(0.1, 0.2, 0.3), with_alpha=True)
    b_rgb, b_alpha = cpu.render(*arrays, camera, background=(0.1, 0.2, 0.3), with_alpha=True)
    worst = max(worst, float(np.abs(a_rgb - b_rgb).max()), float(np.abs(a_alpha - b_alpha).max()))
ok = worst <= 1e-3
failed |= not ok
say(f"splat CUDA vs CPU: max pixel difference {worst:.2e} over 4 frames at 512x512 ({'ok' if ok else 'FAILED'}, "
    "limit 1e-3)")

big = head_scene(head, 100_000)
arrays = big.render_arrays(head.vertices, camera)
for name, renderer, repeats in (("cuda", cuda, 50), ("cpu", cpu, 10)):
    seconds = median_seconds(lambda r=renderer: r.render(*arrays, camera), repeats)
    say(f"splat {name}: {1.0 / seconds:.1f} FPS at 512x512, {big.splats.n:,} gaussians (median of {repeats})")

# --- bake: the same 60 s line with the CUDA and the CPU provider ------------------------------------------------
import onnxruntime  # noqa: E402

from facepolicy.core.doctor import cuda_status  # noqa: E402

usable, why = cuda_status(onnxruntime.get_available_providers())
if not usable:
    say(f"bake CUDA vs CPU: skipped, onnxruntime's CUDA provider is {why}")
else:
    import soundfile as sf

    work = Path(tempfile.mkdtemp(prefix="device-check-"))
    demo, rate = sf.read("assets/audio/demo/dashwood.wav", dtype="float32")
    sf.write(str(work / "line.wav"), np.resize(demo, 60 * rate), rate)
    tracks = {}
    for device in ("cuda", "cpu"):
        t0 = time.perf_counter()
        run = subprocess.run([sys.executable, "-c", "import sys; from facepolicy.cli import main; sys.exit(main())",
                              "bake", str(work / "line.wav"), "-o", str(work / device) + "/", "--engine", "neural",
                              "--accuracy", "fast", "--format", "json", "--device", device],
                             capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if run.returncode != 0:
            failed = True
            say(f"bake {device}: FAILED ({run.stderr.strip()[-500:]})")
            continue
        tracks[device] = np.asarray(json.loads((work / device / "line.json").read_text())["weights"], np.float64)
        say(f"bake {device}: 60.0s audio in {seconds:.2f}s wall (process start and model load included)")
    if len(tracks) == 2:
        diff = float(np.abs(tracks["cuda"] - tracks["cpu"]).max())
        ok = tracks["cuda"].shape == tracks["cpu"].shape and diff <= 0.05
        failed |= not ok
        say(f"bake CUDA vs CPU: {len(tracks['cpu'])} frames, max channel difference {diff:.2e} "
            f"({'ok' if ok else 'FAILED'}, limit 0.05)")

sys.exit(1 if failed else 0)
PYTHON
status=$?
say "done in $(( $(date +%s) - t0 ))s, exit $status"
exit $status
