"""The default (accurate) mode's lip-sync figures on LONG real speech: the real clips of model.evaluate (ARCTIC +
LibriVox, and pocketsphinx-testdata's when installed) joined into one file with 0.5 s pauses, repeated to at least
``--seconds``, baked as one line without a transcript and scored against the joined references. Short clips are
decoded in one piece whatever the chunking; this is where the accurate mode's cutting of long audio shows.

    .venv/bin/python bench/long_quality.py [--seconds 60] [--seeds 3]

Run it with PYTHONPATH pointing at another copy of the package to compare (bench_cores.py --old explains how).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def joined(seconds: float, gap: float = 0.5):
    """(samples, reference phones) of the real clips joined with ``gap`` s of silence, repeated to ``seconds``."""
    from facepolicy.core import spec
    from facepolicy.core.phones import SIL, PhoneSegment
    from model import evaluate_phonetic as ep

    clips = ep.arctic_clips() + ep.librivox_clips() + ep.testdata_clips()
    pause = np.zeros(int(gap * spec.SAMPLE_RATE), np.float32)
    parts, ref, t = [], [], 0.0
    while t < seconds:
        for c in clips:
            x = c.audio.samples
            ref += [PhoneSegment(p.phone, p.start + t, p.end + t) for p in c.reference]
            t += len(x) / spec.SAMPLE_RATE
            ref.append(PhoneSegment(SIL, t, t + gap))
            t += gap
            parts += [x, pause]
    return np.concatenate(parts), ref, len(clips)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args(argv)
    import facepolicy
    from facepolicy.core import metrics
    from facepolicy.core.audio import Audio
    from facepolicy.core.engine import BakeOptions
    from facepolicy.core.neural import NeuralEngine

    samples, ref, n_clips = joined(args.seconds)
    engine = NeuralEngine()
    print(f"package {Path(facepolicy.__file__).parent}; {len(samples) / 16000:.1f} s of {n_clips} real clips joined")
    names = ("bilabial", "m", "open", "pause", "slcc", "lag_ms", "jitter")
    print(f"{'seed':>4s} " + " ".join(f"{k:>8s}" for k in names))
    for seed in range(args.seeds):
        track = engine.animate(Audio(samples, 16000, ""), BakeOptions(engine="neural", seed=seed),
                               lambda f, m: None, None)
        r = metrics.aggregate([metrics.score_clip(track, ref, samples)])
        c = r["counts"]
        print(f"{seed:4d} " + " ".join(f"{r[k]:8.4f}" for k in names) + f"   bilabial {c['bilabial_hits']}/"
              f"{c['bilabial_total']}, /m/ {c['m_hits']}/{c['m_total']}, open {c['open_hits']}/{c['open_total']}, "
              f"pause {c['pause_closed']}/{c['pause_total']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
