"""Phone evidence as the runtime really gets it: pocketsphinx all-phone recognition (plus the audio encoder's
second opinion on closures) run once over the corpus's training clips and cached, so the policy can learn from the
recogniser's real errors on top of the simulated ones (``policy_train.recognised_prob``).

    python -m model.recognised --config model/configs/default.json [--corpus DIR] [--out FILE] [--jobs 2]

The cache maps clip ids to ``[[phone, start, end], ...]`` and is written atomically; a second run reuses the clips
it already holds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from facepolicy.core.fileio import atomic_write_text
from facepolicy.core.phones import PhoneSegment


def recognise(samples: np.ndarray) -> list[list]:
    """The accurate mode's evidence for one clip (core.policy.recognised_evidence on the shipped model)."""
    from facepolicy.core.policy import recognised_evidence

    phones = recognised_evidence(None, np.asarray(samples, np.float32), []).phones
    return [[p.phone, round(float(p.start), 4), round(float(p.end), 4)] for p in phones]


def _work(item: tuple[str, np.ndarray]) -> tuple[str, list[list]]:
    clip_id, samples = item
    return clip_id, recognise(samples)


def load(path: Path | str) -> dict[str, list[PhoneSegment]]:
    """The cache as phone segments per clip id."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {k: [PhoneSegment(p, float(s), float(e)) for p, s, e in v] for k, v in data.items()}


def training_clips(cfg: dict, corpus: str):
    from model import dataset as ds

    c = cfg["corpus"]
    split = ds.split_clips(ds.load_corpus(corpus), c.get("held_out_engines", ()),
                           c.get("held_out_voice_fraction", 0.1), int(cfg["seed"]))
    return split.train


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--corpus", help="corpus directory (default: the config's corpus.root)")
    ap.add_argument("--out", help="cache file (default: <corpus>/recognised.json)")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    cfg = json.loads(Path(args.config).read_text(encoding="utf-8"))
    corpus = args.corpus or cfg["corpus"]["root"]
    out = Path(args.out or Path(corpus) / "recognised.json")
    done = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    todo = [(c.clip_id, c.samples) for c in training_clips(cfg, corpus) if c.clip_id not in done]
    seconds = sum(len(s) for _, s in todo) / 16000
    print(f"{len(done)} clips cached, {len(todo)} to recognise ({seconds / 3600:.2f} h of audio)", flush=True)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max(1, args.jobs)) as pool:
        for k, (clip_id, phones) in enumerate(pool.map(_work, todo, chunksize=8), 1):
            done[clip_id] = phones
            if k % 100 == 0 or k == len(todo):
                atomic_write_text(out, json.dumps(done))
                print(f"{k}/{len(todo)} clips, {time.perf_counter() - t0:.0f} s", flush=True)
    atomic_write_text(out, json.dumps(done))
    print(f"wrote {out}: {len(done)} clips; {seconds / max(time.perf_counter() - t0, 1e-9):.1f} audio s per wall s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
