"""Splat preview renderer speed: frames per second of the rasterizer on the default head.

    python bench/bench_preview.py                       # CPU library, 256² and 512², 20k and 100k gaussians
    python bench/bench_preview.py --backend cuda        # the CUDA library (needs a GPU)

Prints one line per configuration and a last summary line. Wall-clock figures are medians; the CPU time per frame
(process time, all threads) is printed too because the machines this runs on are often shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from facepolicy.core.head import load_default_head
from facepolicy.preview import build, raster
from facepolicy.preview.cloud import GaussianCloud
from facepolicy.preview.ply import read_ply, write_ply
from facepolicy.preview.scene import SplatScene, front_camera
from facepolicy.preview.splats import bind_cloud


def head_scene(head, count: int) -> SplatScene:
    """Exactly ``count`` gaussians on the default head: enough per triangle (plus one per vertex), then a seeded
    subset."""
    per_triangle = max(1, -(-(count - head.num_vertices) // len(head.faces)))
    scene = SplatScene.from_head(head, per_triangle)
    keep = np.sort(np.random.default_rng(0).permutation(scene.splats.n)[:count])
    return SplatScene(scene.splats.subset(keep), scene.albedo[keep])


def bench_ply_import(head, count: int) -> float:
    """Seconds to read a ``count``-gaussian .ply and bind it to the head (nearest triangles)."""
    scene = head_scene(head, count)
    cloud = scene.cloud(head.vertices)
    jitter = np.random.default_rng(1).normal(scale=0.002, size=cloud.means.shape)  # off the surface, as a capture is
    cloud = GaussianCloud(cloud.means + jitter, cloud.log_scales, cloud.rotations, cloud.opacity_logits, cloud.sh)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "splat.ply"
        write_ply(path, cloud)
        t0 = time.perf_counter()
        bound = bind_cloud(read_ply(path), head.vertices, head.faces)
        seconds = time.perf_counter() - t0
    print(f"ply import + bind {bound.n} gaussians: {seconds:.2f}s wall")
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--counts", default="20000,100000")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (0: OpenMP default)")
    parser.add_argument("--frames", type=int, default=15, help="timed frames per configuration")
    parser.add_argument("--backend", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args(argv)

    if args.backend == "cpu":
        build.ensure_cpu_library()
    renderer = raster.get_renderer(args.backend)
    head = load_default_head()
    print(f"# backend {renderer.backend}, threads {args.threads}, load average {os.getloadavg()[0]:.1f}, "
          f"{os.cpu_count()} cpus")
    results = []
    for count in (int(c) for c in args.counts.split(",")):
        scene = head_scene(head, count)
        updates = []
        for _ in range(5):
            c0 = time.process_time()
            params = scene.render_arrays(head.vertices)
            updates.append(time.process_time() - c0)
        update_ms = np.median(updates) * 1e3
        for size in (int(s) for s in args.sizes.split(",")):
            camera = front_camera(head.vertices, size, size)
            for _ in range(2):
                renderer.render(*params, camera, threads=args.threads)
            wall, cpu = [], []
            for _ in range(args.frames):
                w0, c0 = time.perf_counter(), time.process_time()
                renderer.render(*params, camera, threads=args.threads)
                wall.append(time.perf_counter() - w0)
                cpu.append(time.process_time() - c0)
            fps = 1.0 / np.median(wall)
            results.append((size, count, fps))
            print(f"preview {renderer.backend} {size}x{size} {count} gaussians: {fps:.1f} fps "
                  f"(median {np.median(wall) * 1e3:.1f} ms wall, {np.median(cpu) * 1e3:.1f} ms cpu per frame; "
                  f"binding update {update_ms:.0f} ms cpu)")
    ply_seconds = bench_ply_import(head, max(int(c) for c in args.counts.split(",")))
    summary = ", ".join(f"{s}²/{c // 1000}k {f:.1f}" for s, f, c in ((s, f, c) for s, c, f in results))
    print(f"bench_preview {renderer.backend} fps: {summary}; .ply import + bind {ply_seconds:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
