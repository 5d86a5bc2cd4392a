"""A FLAME head as a character: how the bake drives it, measured on the FLAME mesh itself.

`.venv/bin/python bench/flame_rig.py [--flame MODEL.pkl] [--expressions N] [--testdata] [--engine neural|phonetic]`

Imports the FLAME file with the add-on's importer (without --flame: the synthetic FLAME 2020-format file of
tests/unit/flame_synthetic.py), then reports
- the rig plan (which channels go by name, which by the solve);
- the fit error of each ARKit target in FLAME's expression space (relative residual of the solve, 0 = exact);
- on real speech with phone labels (ARCTIC, LibriVox; --testdata adds pocketsphinx-testdata's clips), with the
  engine's default settings and no transcript: the lip-sync metrics measured on FLAME's own lips
  (core.rigtrack.lip_geometry) beside the same takes on the default head, and how many FLAME keys move;
- the same for the earlier rule (only keys matched by name are driven: FLAME's jawOpen), for comparison.
Prints one summary line: `flame rig: K/N keys move, fit median F, bilabial B (default head B0), /m/ M, open O ...`
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import bpy
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "unit"))

from facepolicy.blender.flame import import_flame  # noqa: E402
from facepolicy.blender.rig_report import rig_geometry, rig_plan  # noqa: E402
from facepolicy.core import metrics, spec  # noqa: E402
from facepolicy.core.audio import Audio  # noqa: E402
from facepolicy.core.engine import BakeOptions, animate  # noqa: E402
from facepolicy.core.rigtrack import RigPlan, lip_geometry, rig_track, shape_track, solver_for  # noqa: E402

MOVES = 0.02  # a key whose curve spans less than this does not visibly move


class _AllChannels:
    channels, intensity, smoothing = spec.ALL_TOGGLES, {}, 0.0


def fit_errors(geometry, plan: RigPlan) -> dict[str, float]:
    """Relative residual of each solved ARKit target (one-hot weight 1) over the rig's free keys."""
    solver = solver_for(geometry, plan.solve_keys, plan.solved_channels)
    eye = np.eye(len(plan.solved_channels))
    weights, _ = solver.solve(eye, smoothness=0.0)
    return dict(zip(plan.solved_channels, solver.fit_error(eye, weights).tolist(), strict=True))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flame", help="a FLAME model file (.pkl); default: the synthetic one the tests use")
    ap.add_argument("--expressions", type=int, default=20, help="expression components imported (default 20)")
    ap.add_argument("--testdata", action="store_true", help="also pocketsphinx-testdata's cards and goforward")
    ap.add_argument("--engine", default="neural")
    args = ap.parse_args(argv)

    from model import evaluate_phonetic as ep

    bpy.ops.wm.read_factory_settings(use_empty=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.flame
        if path is None:
            import flame_synthetic

            path = str(Path(tmp) / "generic_model.pkl")
            flame_synthetic.write_synthetic_flame(path)
        obj = import_flame(bpy.context, path, args.expressions)
    plan = rig_plan(obj)
    geometry = rig_geometry(obj)
    n_keys = len(geometry.key_names)
    print(f"plan: {plan.summary()}")

    fits = fit_errors(geometry, plan)
    mouth = [v for c, v in fits.items() if spec.region_of(c) == "mouth"]
    print(f"fit error of the ARKit targets in FLAME's expression space: median {np.median(list(fits.values())):.2f}"
          f" (mouth {np.median(mouth):.2f}); best {min(fits, key=fits.get)} {min(fits.values()):.2f}, worst "
          f"{max(fits, key=fits.get)} {max(fits.values()):.2f}")

    clips = ep.arctic_clips() + ep.librivox_clips() + (ep.testdata_clips() if args.testdata else [])
    lips = lip_geometry(geometry, plan)
    by_name = RigPlan(plan.mapping, (), ())  # the earlier rule: only keys whose names match are driven
    lips_name = lip_geometry(geometry, by_name)
    rows = {"default head": [], "FLAME, name + solve": [], "FLAME, by name only": []}
    spans = {"FLAME, name + solve": np.zeros(n_keys), "FLAME, by name only": np.zeros(n_keys)}
    for clip in clips:
        audio = Audio(clip.audio.samples, clip.audio.sample_rate, "")
        track = animate(audio, BakeOptions(engine=args.engine))
        shaped = shape_track(track, spec.MODEL_FPS, _AllChannels)
        rows["default head"].append(metrics.score_clip(track, clip.reference, clip.audio.samples))
        for label, p, g in (("FLAME, name + solve", plan, lips), ("FLAME, by name only", by_name, lips_name)):
            rig = rig_track(shaped, p, geometry).select(geometry.key_names)
            rows[label].append(metrics.score_clip(rig, clip.reference, clip.audio.samples, geometry=g))
            spans[label] = np.maximum(spans[label], np.ptp(rig.values, axis=0))
    print(f"{len(clips)} real clips, engine {args.engine} (default settings, no transcript)")
    print("| face | keys moving | bilabial | /m/ | open | pause | SLCC | jitter |")
    print("|---|---|---|---|---|---|---|---|")
    summary = {}
    for label, scores in rows.items():
        agg = metrics.aggregate(scores)
        moving = f"{int((spans[label] > MOVES).sum())}/{n_keys}" if label in spans else "52/52 (ARKit)"
        print(f"| {label} | {moving} | {agg['bilabial']:.2f} | {agg['m']:.2f} | {agg['open']:.2f} | "
              f"{agg['pause']:.2f} | {agg['slcc']:.2f} | {agg['jitter']:.2f} |")
        summary[label] = (moving, agg)
    moving, agg = summary["FLAME, name + solve"]
    base = summary["default head"][1]
    print(f"flame rig: {moving} keys move, fit median {np.median(list(fits.values())):.2f}, bilabial "
          f"{agg['bilabial']:.2f} (default head {base['bilabial']:.2f}), /m/ {agg['m']:.2f} ({base['m']:.2f}), "
          f"open {agg['open']:.2f} ({base['open']:.2f}), jitter {agg['jitter']:.2f} ({base['jitter']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
