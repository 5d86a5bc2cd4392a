"""Read a corpus written by build_corpus: clips with 16 kHz audio, exact phones, metadata and teacher states.

When a shard was built without labels (``labels=False``) or by an older teacher, the teacher runs here, lazily,
with the clip's recorded style and seed, so the states always match the recorded phones.
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
        if states is not None:
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
