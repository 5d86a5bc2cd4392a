"""Read a corpus written by build_corpus: clips with 16 kHz audio, exact phones, metadata and teacher states.

When a shard was built without labels (``labels=False``) or by another version of the teacher, the teacher runs
here, lazily, with the clip's recorded style and seed, so the states always come from the current teacher.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facepolicy.core import spec
from facepolicy.core.phones import PHONES, PhoneSegment


@dataclass
class CorpusClip:
    samples: np.ndarray  # (N,) float32 at spec.SAMPLE_RATE
    phones: list[PhoneSegment]
    states: np.ndarray  # (T, spec.NUM_CHANNELS) float32 at spec.MODEL_FPS
    style_id: str
    voice: str
    engine: str
    emotion: str
    emotion_intensity: float
    clip_id: str
    split: str  # "train" or "eval" (held-out voice)
    meta: dict = field(default_factory=dict)


def read_shard_meta(path: Path) -> list[dict]:
    with np.load(path) as z:
        return json.loads(bytes(z["meta"]).decode("utf-8"))


def load_manifest(root: Path | str) -> dict:
    path = Path(root) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{root}: no manifest.json (build it with python -m model.data.build_corpus)")
    return json.loads(path.read_text(encoding="utf-8"))


def iter_shard(path: Path, split: str | None = None) -> Iterator[CorpusClip]:
    from facepolicy.core import teacher
    from facepolicy.core.teacher import SpeakerStyle

    with np.load(path) as z:
        metas = json.loads(bytes(z["meta"]).decode("utf-8"))
        audio, a_off = z["audio"], z["audio_offsets"]
        ids, times, p_off = z["phone_ids"], z["phone_times"], z["phone_offsets"]
        states = z["states"] if "states" in z else None
        s_off = z["state_offsets"] if "state_offsets" in z else None
    for i, meta in enumerate(metas):
        if split is not None and meta["split"] != split:
            continue
        samples = audio[a_off[i]:a_off[i + 1]].astype(np.float32) / 32767.0
        phones = [PhoneSegment(PHONES[int(ids[k])], float(times[k, 0]), float(times[k, 1]))
                  for k in range(p_off[i], p_off[i + 1])]
        style = SpeakerStyle.from_dict(meta["style"])
        if states is not None and meta.get("teacher_version") == teacher.TEACHER_VERSION:
            st = states[s_off[i]:s_off[i + 1]]
        else:
            st = teacher.animate_phones(phones, samples, style=style, seed=meta["teacher_seed"],
                                        duration=meta["duration"], fps=spec.MODEL_FPS).values
        yield CorpusClip(samples, phones, np.asarray(st, np.float32), f"style{meta['style_id']:04d}", meta["voice"],
                         meta["engine"], style.emotion, style.emotion_intensity, meta["clip_id"], meta["split"], meta)


def iter_clips(root: Path | str, split: str | None = None) -> Iterator[CorpusClip]:
    """Every clip of the corpus's manifest (optionally only one split), shard by shard."""
    root = Path(root)
    for shard in load_manifest(root)["shards"]:
        yield from iter_shard(root / f"shard_{shard['index']:05d}.npz", split)


def summary(root: Path | str) -> dict:
    """Size and diversity of a built corpus (reads only the metadata)."""
    root = Path(root)
    manifest = load_manifest(root)
    metas = [m for s in manifest["shards"] for m in read_shard_meta(root / f"shard_{s['index']:05d}.npz")]
    seconds = {split: sum(m["duration"] for m in metas if m["split"] == split) for split in ("train", "eval")}
    kinds: dict[str, int] = {}
    for m in metas:
        for k in m["kinds"]:
            kinds[k] = kinds.get(k, 0) + 1
    return {
        "clips": len(metas), "hours": round(sum(seconds.values()) / 3600, 3),
        "train_hours": round(seconds["train"] / 3600, 3), "eval_hours": round(seconds["eval"] / 3600, 3),
        "voices": len({m["voice"] for m in metas}),
        "eval_voices": len({m["voice"] for m in metas if m["split"] == "eval"}),
        "engines": sorted({m["engine"] for m in metas}), "styles": len({m["style_id"] for m in metas}),
        "augmented_fraction": round(sum(bool(m["augmentation"]) for m in metas) / max(1, len(metas)), 3),
        "sentence_kinds": kinds, "complete": manifest["complete"], "build": manifest.get("build", {}),
    }


if __name__ == "__main__":
    import sys

    print(json.dumps(summary(sys.argv[1] if len(sys.argv) > 1 else "cache/corpus"), indent=1))
