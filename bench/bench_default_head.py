"""Time to add the default head in Blender (mesh, UVs, 52 shape keys, vertex groups, materials) and to load the asset.

    .venv/bin/python bench/bench_default_head.py        (or .venv-bpy42/bin/python for Blender 4.2)
"""

from __future__ import annotations

import statistics
import time

import bpy

from facepolicy.blender.head import add_default_head
from facepolicy.core.head import load_default_head


def main() -> int:
    t0 = time.perf_counter()
    head = load_default_head()
    load = time.perf_counter() - t0
    bpy.ops.wm.read_factory_settings(use_empty=True)
    walls, cpus = [], []
    for _ in range(5):
        t0, c0 = time.perf_counter(), time.process_time()
        add_default_head(bpy.context)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    print(f"add_default_head bpy {bpy.app.version_string}: {statistics.median(walls):.3f}s wall "
          f"({statistics.median(cpus):.3f}s cpu) median of 5, {head.num_vertices} vertices, "
          f"{len(head.shape_names)} keys; asset load {load:.3f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
