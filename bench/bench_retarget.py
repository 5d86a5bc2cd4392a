"""Geometric retarget speed: 1800 frames (60 s at 30 fps) of ARKit weights onto a rig with 100 keys of its own.

    nice -n 10 .venv/bin/python bench/bench_retarget.py [--frames 1800] [--keys 100] [--repeat 5]

The rig is the default head rotated, scaled and re-meshed, carrying its 52 keys plus 48 sculpted keys (smooth local
bumps on the face, as a custom rig has). ``--mixed`` makes the extra keys random blends of 2-3 ARKit keys instead:
exactly redundant keys, the worst case for the solver. Prints one summary line; timings are medians. "solve" is the
per-take work (what a bake pays); "build" is the once-per-rig correspondence and precomputation.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from facepolicy.core import retarget as rt
from facepolicy.core.head import load_default_head


def make_rig(n_keys: int, mixed: bool = False, seed: int = 0):
    rng = np.random.default_rng(seed)
    head = load_default_head()
    v, d = head.vertices.astype(np.float64), head.deltas.astype(np.float64)
    quads = [p for p in head.polygons if len(p) == 4]
    v2 = np.concatenate([v, np.array([v[q].mean(axis=0) for q in quads])])
    d2 = np.concatenate([d, np.stack([d[:, q].mean(axis=1) for q in quads], axis=1)], axis=1)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    rot = q * np.sign(np.diag(r))
    rot = rot if np.linalg.det(rot) > 0 else -rot
    extra = []
    face = np.nonzero(v2[:, 1] < -0.08)[0]
    for _ in range(52, n_keys):
        if mixed:
            picks = rng.choice(52, rng.integers(2, 4), replace=False)
            extra.append(np.einsum("s,svc->vc", rng.uniform(0.3, 1.0, len(picks)), d2[picks]))
        else:
            centre, radius = v2[rng.choice(face)], rng.uniform(0.01, 0.03)
            direction = rng.normal(size=3)
            bump = np.exp(-((v2 - centre) ** 2).sum(axis=1) / (2 * radius**2))
            extra.append(bump[:, None] * direction / np.linalg.norm(direction) * 0.005)
    own = d2[: min(52, n_keys)]
    target_v = 2.0 * v2 @ rot.T + [0.1, 0.2, 0.3]
    target_d = 2.0 * np.concatenate([own, np.array(extra).reshape(-1, len(v2), 3)]) @ rot.T
    return head, target_v, target_d


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1800)
    ap.add_argument("--keys", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--smoothness", type=float, default=0.02)
    ap.add_argument("--mixed", action="store_true", help="extra keys are blends of ARKit keys (redundant)")
    args = ap.parse_args(argv)

    head, target_v, target_d = make_rig(args.keys, args.mixed)
    names = [f"key{k:03d}" for k in range(args.keys)]
    t0 = time.perf_counter()
    c0 = time.process_time()
    solver, _ = rt.build_key_solver(head, target_v, names, target_d)
    build_wall, build_cpu = time.perf_counter() - t0, time.process_time() - c0

    rng = np.random.default_rng(1)
    knots = args.frames // 15 + 2
    raw = rng.uniform(0, 1, (knots, 52)) * (rng.uniform(0, 1, (knots, 52)) < 0.3)
    t = np.linspace(0, knots - 1, args.frames)
    source = np.stack([np.interp(t, np.arange(knots), raw[:, j]) for j in range(52)], axis=1)

    walls, cpus, info, weights = [], [], None, None
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        weights, info = solver.solve(source, smoothness=args.smoothness)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    # the rig's keys 0..51 are the ARKit keys, so they should reproduce the source weights
    fit = float(np.median(solver.fit_error(source, weights)))
    rms = float(np.sqrt(np.mean((weights[:, :52] - source[:, : min(52, args.keys)]) ** 2)))
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    kind = "mixed (redundant)" if args.mixed else "sculpted"
    print(f"retarget {args.frames} frames -> {args.keys} keys ({kind}): solve {statistics.median(walls):.3f}s wall "
          f"({statistics.median(cpus):.3f}s cpu, {info.iterations} ADMM iterations, converged={info.converged}), "
          f"build {build_wall:.2f}s wall ({build_cpu:.2f}s cpu), median relative fit error {fit:.4f}, "
          f"ARKit-key weight rms {rms:.4f}, "
          f"{len(target_v)} target vertices, BLAS threads {threads}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
