"""The precision of `facepolicy finetune`'s sync check (core.capture_sync.check_sync) on takes whose offset is known.

Takes of a synthetic performer without a lip lead (model.synthetic_performer: the teacher's face for a flite voice
with a resting smile, a larger jaw and stressed-vowel brows) are written as Live Link Face takes with their curves
moved by known offsets (+: curves late), read back and checked as `finetune` checks them (the CSV at 60 fps, the
phones recognised from the audio). Printed per offset: the mean measured offset, the mean and the largest error
over the takes; then a performer whose lips lead by 40 ms (the articulation channels only, the brows on time).

    flock /tmp/fp/bench.lock .venv/bin/python bench/bench_capture_sync.py [--minutes 3] [--seed 5] [--voice awb]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from facepolicy.core.captures import find_takes, listen, load_take, read_curves, sync  # noqa: E402
from model.synthetic_performer import Habits, Performer, performer_lines, write_take  # noqa: E402

OFFSETS_MS = (0, 20, -20, 40, -40, 80, -80)


def measure(folder: Path, evidence: dict) -> dict[str, float]:
    """Measured offset (s) of every take in ``folder``; the phones heard once per audio (``evidence`` by name)."""
    files, problems = find_takes(folder)
    assert not problems, problems
    out = {}
    for f in files:
        take, problems = load_take(f, read_curves(f.csv))
        if take is None:
            raise SystemExit(f"{f.name}: {problems}")
        key = f.name.split("_")[0]
        if key in evidence:
            take.evidence = evidence[key]
        else:
            problems = listen(take)
            if problems:
                raise SystemExit(f"{f.name}: {problems}")
            evidence[key] = take.evidence
        problems = sync(take)
        if problems:
            raise SystemExit(f"{f.name}: {problems}")
        out[f.name] = take.sync.offset
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--voice", default="awb", help="flite voice (awb, slt, rms, kal)")
    args = ap.parse_args(argv)
    plain = Performer(voice=args.voice, habits=Habits(lip_lead=0.0))
    lines = performer_lines(plain, 60 * args.minutes, seed=args.seed)
    lead = performer_lines(dataclasses.replace(plain, habits=Habits()), 60 * args.minutes, seed=args.seed)
    print(f"{len(lines)} takes, {sum(len(x['samples']) for x in lines) / 16000:.0f} s (flite voice {plain.voice})")
    evidence: dict = {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for ms in OFFSETS_MS:
            folder = Path(tmp) / f"offset{ms}"
            for k, line in enumerate(lines):
                write_take(folder, f"t{k:02d}_{ms}", line["samples"], line["states"], offset=ms / 1000)
            rows.append((f"curves {ms:+d} ms", ms, measure(folder, evidence)))
        folder = Path(tmp) / "lead"
        for k, line in enumerate(lead):
            write_take(folder, f"t{k:02d}_lead", line["samples"], line["states"])
        rows.append(("lips lead by 40 ms", -40, measure(folder, evidence)))
    print(f"\n{'takes':<22} {'measured (mean)':>16} {'error mean':>11} {'error sd':>9} {'|error| max':>12}")
    errors = []
    for label, truth, got in rows:
        err = 1000 * np.array(list(got.values())) - truth
        if label.startswith("curves"):
            errors += list(err)
        print(f"{label:<22} {np.mean(list(got.values())) * 1000:13.1f} ms {err.mean():8.1f} ms {err.std():6.1f} ms "
              f"{np.abs(err).max():9.1f} ms")
    errors = np.abs(np.array(errors))
    print(f"\nover every take and offset: |error| median {np.median(errors):.1f} ms, 95th percentile "
          f"{np.percentile(errors, 95):.1f} ms, largest {errors.max():.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
