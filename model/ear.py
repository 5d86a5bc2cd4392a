"""Train the ear: a second phone classifier on the audio encoder's frozen features, in twelve languages.

The encoder's own phone head was trained with the model on English TTS voices only; scoring a transcript aligned in
another language with it refused right lines of some voices (their vowels sat at probabilities near zero) while
another line's text could score higher. The ear (model.nets.Ear, shipped as ``ear.onnx``, read by
addon/core/listener.py) learns the phones again from the encoder's features, which stay exactly as they are, on

- English clips planned exactly as the training corpus plans them (model/data/build_corpus.py, seed 0, its training
  voices; its held-out voices score the English validation), music and noise as silence, and
- espeak-ng speaking model/data/ear_text.py (text never in the development set) in the twelve languages of
  model/data/languages.py, in voice variants the development set does not use ("" and "f3" are its voices), at
  random rates and pitches, most clips augmented as the corpus is (noise, reverb, EQ, codecs, tempo, pitch); the
  variants in VALIDATION_VARIANTS are held out of training and score the ear per language.

    .venv/bin/python -m model.ear build [--out cache/ear] [--english-shards 40] [--jobs 2] [--model DIR]
    .venv/bin/python -m model.ear train [--out cache/ear] [--model assets/models] [--export DIR]

``train`` prints per-group frame accuracy, closure recall (frames of p/b/m whose P(p,b,m) ≥ 0.5 and ≥ 0.9), false
sure closures and log-loss, the encoder's own head beside the ear; ``--export`` writes a copy of the model folder
with ``ear.onnx`` added (model.json lists it with its checksum and the held-out figures). espeak-ng, festival and
flite make training data only; the add-on never links or ships them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from facepolicy.core import features, spec
from facepolicy.core.phones import PHONES, SIL

# espeak-ng variants kept out of the ear's training: they score it per language (with the development set's own
# two voicings, "" and "f3", which are never trained on either).
DEV_VARIANTS = ("", "f3")
VALIDATION_VARIANTS = ("m3", "f2", "klatt2", "david")
TRAIN_VARIANTS = tuple(v for v in (
    "m1", "m2", "m4", "m5", "m6", "m7", "m8", "f1", "f4", "f5", "klatt", "klatt3", "klatt4", "Alex", "Annie",
    "Andy", "adam", "anika", "aunty", "belinda", "boris", "caleb", "ed", "edward", "grandma", "grandpa", "john",
    "linda", "max", "michel", "norbert", "paul", "quincy", "rob", "robert", "steph", "travis", "victor", "zac")
    if v not in DEV_VARIANTS + VALIDATION_VARIANTS)
VOICINGS_PER_PAIR = 5  # training voicings of each pair of sentences (one more, held out, for validation)
AUGMENT_PROB = 0.7
BILABIAL = [PHONES.index(p) for p in ("p", "b", "m")]


def _language_plans(seed: int) -> list[dict]:
    from .data import languages
    from .data.ear_text import EAR_SENTENCES

    plans = []
    for li, lang in enumerate(languages.LANGUAGES):
        sents = EAR_SENTENCES[lang.code]
        for pair in range(0, len(sents) - 1, 2):
            for v in range(VOICINGS_PER_PAIR + 1):
                rng = np.random.default_rng([seed, li, pair, v])
                split = "val" if v == VOICINGS_PER_PAIR else "train"
                variant = str(rng.choice(VALIDATION_VARIANTS if split == "val" else TRAIN_VARIANTS))
                plans.append({
                    "id": f"{lang.code}-{pair // 2:02d}-{v}", "language": lang.code, "split": split,
                    "voice": [lang.voice, variant, int(rng.integers(130, 221)), int(rng.integers(25, 76))],
                    "texts": [sents[pair], sents[pair + 1]], "pause": float(rng.uniform(0.05, 1.0)),
                    "lead": float(rng.uniform(0.0, 0.4)), "tail": float(rng.uniform(0.0, 0.4)),
                    "augment_seed": int(rng.integers(2**31)) if rng.random() < AUGMENT_PROB else None,
                })
    return plans


def _build_language_clip(plan: dict) -> dict:
    from .data import augment, espeak, languages
    from .data.build_corpus import _pad, _scale
    from .data.speech import concatenate

    voice = espeak.EspeakVoice(*plan["voice"])
    parts = [languages.synthesize(t, voice) for t in plan["texts"]]
    utt = _pad(concatenate(parts, [plan["pause"]]), plan["lead"], plan["tail"])
    samples, phones = utt.samples, utt.phones
    if plan["augment_seed"] is not None:
        samples, _, k = augment.augment(samples, np.random.default_rng(plan["augment_seed"]))
        phones = _scale(phones, k, len(samples) / spec.SAMPLE_RATE)
    return {"samples": samples, "phones": phones}


def _build_english_shard(args: tuple[int, int]) -> list[dict]:
    from .data.build_corpus import CONFIGS, _synthesize_shard, build_clip, plan_clip

    seed, shard = args
    cfg = dataclasses.replace(CONFIGS["default"], labels=False)
    plans = [plan_clip(cfg, seed, shard, j) for j in range(cfg.clips_per_shard)]
    out = []
    for plan, utts in zip(plans, _synthesize_shard(plans), strict=True):
        clip = build_clip(cfg, seed, plan, utts)
        out.append({"id": f"en-corpus-{plan.clip_id}", "language": "en-corpus",
                    "split": "val" if clip["meta"]["split"] == "eval" else "train",
                    "samples": clip["samples"], "phones": clip["phones"]})
    return out


def _nonspeech(seed: int, n: int = 64, seconds: float = 8.0) -> list[dict]:
    """Music, noise and hum without speech, as the model's training adds them (model.dataset.nonspeech_clips), so
    the ear learns them as silence; every fifth one is held out."""
    from facepolicy.core import teacher

    from .dataset import nonspeech_clips

    style = teacher.sample_style(np.random.default_rng([seed, 31])).to_dict()
    clips = nonspeech_clips({0: style}, n, seconds, seed + 977)
    return [{"id": c.clip_id, "language": "nonspeech", "split": "val" if k % 5 == 4 else "train",
             "samples": c.samples, "phones": c.phones} for k, c in enumerate(clips)]


def _language_task(plan: dict) -> dict:
    clip = _build_language_clip(plan)
    return {**{k: plan[k] for k in ("id", "language", "split")}, **clip}


def _featurize(clip: dict, listener) -> tuple[np.ndarray, np.ndarray]:
    """The encoder's frozen features (before the head's GELU) and the frame labels on the encoder's grid."""
    samples = np.asarray(clip["samples"], np.float32)
    _, encoded = listener.listen(samples, ("sil",), keep=True)
    first = -encoded.first
    n_mel = features.n_mel_frames(len(samples))
    n_mel += (-n_mel) % listener.stride
    n = n_mel // listener.stride
    feats = encoded.features[first:first + n]
    labels = features.phone_labels(clip["phones"], n_mel, features.MEL_RATE)[listener.stride // 2::listener.stride]
    n = min(len(feats), len(labels))
    return feats[:n].astype(np.float32), labels[:n].astype(np.int16)


def build(out: Path, english_shards: int, jobs: int, model: Path | None = None, seed: int = 0) -> None:
    """Synthesize the clips and store the features of ``model``'s audio encoder (default: the shipped one; train the
    ear with the same ``--model``) and the frame labels, per group (language × split)."""
    from multiprocessing import get_context

    from facepolicy.core.listener import BilabialListener

    out.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
    seconds: dict[tuple[str, str], float] = {}
    t0 = time.perf_counter()
    ctx = get_context("fork")
    with ctx.Pool(jobs) as pool:  # forked before onnxruntime starts its threads
        listener = BilabialListener(model)
        lang = pool.imap_unordered(_language_task, _language_plans(seed), chunksize=4)
        eng = pool.imap_unordered(_build_english_shard, [(seed, k) for k in range(english_shards)])
        done = 0
        for clip in lang:
            _add(groups, seconds, clip, listener)
            done += 1
            if done % 50 == 0:
                print(f"  {done} language clips, {time.perf_counter() - t0:.0f} s", flush=True)
        for shard in eng:
            for clip in shard:
                _add(groups, seconds, clip, listener)
            print(f"  English shard done, {time.perf_counter() - t0:.0f} s", flush=True)
    for clip in _nonspeech(seed):
        _add(groups, seconds, clip, listener)
    summary = {}
    for (language, split), items in sorted(groups.items()):
        feats = np.concatenate([f for f, _ in items])
        labels = np.concatenate([la for _, la in items])
        np.savez(out / f"{language}-{split}.npz", features=feats, labels=labels)
        summary[f"{language}-{split}"] = {"clips": len(items), "seconds": round(seconds[(language, split)], 1),
                                          "frames": int(len(labels))}
    (out / "summary.json").write_text(json.dumps({"seed": seed, "english_shards": english_shards,
                                                  "groups": summary}, indent=1), encoding="utf-8")
    total = sum(v["seconds"] for v in summary.values())
    print(f"built {total / 3600:.2f} h in {time.perf_counter() - t0:.0f} s → {out}")


def _add(groups, seconds, clip, listener) -> None:
    key = (clip["language"], clip["split"])
    groups.setdefault(key, []).append(_featurize(clip, listener))
    seconds[key] = seconds.get(key, 0.0) + len(clip["samples"]) / spec.SAMPLE_RATE


# --------------------------------------------------------------------------------------------------------------


def _shipped_head(model: Path):
    """The audio encoder's own phone head (GELU → 1×1 conv) as a function of features, (T, D) → (T, P) logits."""
    from .base_weights import _onnx_tensors

    arrays = _onnx_tensors(model / "audio_encoder.onnx")
    w, b = arrays["phone_head.weight"][:, :, 0].astype(np.float64), arrays["phone_head.bias"].astype(np.float64)
    return lambda feats: _gelu(feats.astype(np.float64)) @ w.T + b


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _ear_logits(ear, feats: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return ear(torch.from_numpy(feats[None].astype(np.float32)))[0].double().numpy()


def _scores(logits: np.ndarray, labels: np.ndarray) -> dict:
    logits = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    lab = labels.astype(np.int64)
    closure = np.isin(lab, BILABIAL)
    pbm = p[:, BILABIAL].sum(axis=1)
    not_closure = ~closure & (lab != PHONES.index(SIL))
    return {"acc": float((p.argmax(1) == lab).mean()),
            "closure_recall": float((pbm[closure] >= 0.5).mean()) if closure.any() else float("nan"),
            "closure_sure": float((pbm[closure] >= 0.9).mean()) if closure.any() else float("nan"),
            "false_sure": float((pbm[not_closure] >= 0.9).mean()) if not_closure.any() else float("nan"),
            "nll": float(-np.log(p[np.arange(len(lab)), lab] + 1e-12).mean())}


def train(out: Path, model: Path, export: Path | None, steps: int, lr: float, hidden: int, kernel: int,
          seed: int = 0) -> None:
    """Fit the ear on the training groups' frames (windows of 100 frames, so the kernel sees context), then print
    the validation groups' figures beside the encoder's own phone head's."""
    import torch

    from .nets import Ear

    torch.manual_seed(seed)
    data = {p.stem: np.load(p) for p in sorted(out.glob("*-*.npz"))}
    train_keys = [k for k in data if k.endswith("-train")]
    val_keys = [k for k in data if k.endswith("-val")]
    old = _shipped_head(model)
    feats = torch.from_numpy(np.concatenate([data[k]["features"] for k in train_keys]))
    labels = torch.from_numpy(np.concatenate([data[k]["labels"] for k in train_keys]).astype(np.int64))
    print(f"training frames {len(labels)} from {', '.join(train_keys)}")
    ear = Ear(feats.shape[1], hidden, kernel)
    opt = torch.optim.AdamW(ear.parameters(), lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    window, edge = 100, kernel // 2
    t0 = time.perf_counter()
    for step in range(steps):
        starts = torch.randint(0, len(labels) - window, (64,), generator=gen)
        idx = starts[:, None] + torch.arange(window)[None]
        logits = ear(feats[idx])[:, edge:window - edge]
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels[idx][:, edge:window - edge])
        opt.zero_grad()
        loss.backward()
        opt.step()
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + np.cos(np.pi * (step + 1) / steps))
        if step % 500 == 0:
            print(f"  step {step} loss {loss.item():.4f}", flush=True)
    ear.eval()
    print(f"trained {steps} steps in {time.perf_counter() - t0:.0f} s")
    print(f"{'group':<16} {'frames':>7}  acc old→new   closure P≥0.5   closure P≥0.9   false P≥0.9     nll")
    validation = {}
    for k in val_keys + train_keys:
        d = data[k]
        a, b = _scores(old(d["features"]), d["labels"]), _scores(_ear_logits(ear, d["features"]), d["labels"])
        if k in val_keys:
            validation[k[:-4]] = {name: round(v, 4) for name, v in b.items() if np.isfinite(v)}
        print(f"{k:<16} {len(d['labels']):>7}  {a['acc']:.3f}→{b['acc']:.3f}   "
              f"{a['closure_recall']:.3f}→{b['closure_recall']:.3f}   "
              f"{a['closure_sure']:.3f}→{b['closure_sure']:.3f}   "
              f"{a['false_sure']:.4f}→{b['false_sure']:.4f}   {a['nll']:.3f}→{b['nll']:.3f}")
    torch.save(ear.state_dict(), out / "ear.pt")
    if export is not None:
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        hours = {split: round(sum(g["seconds"] for name, g in summary["groups"].items() if name.endswith(split))
                              / 3600, 3) for split in ("-train", "-val")}
        record = {"command": f"python -m model.ear build --english-shards {summary['english_shards']} && python -m "
                             f"model.ear train --steps {steps} --hidden {hidden} --kernel {kernel}",
                  "hidden": hidden, "kernel": kernel, "train_hours": hours["-train"],
                  "validation_hours": hours["-val"], "validation_variants": list(VALIDATION_VARIANTS),
                  "validation": validation}
        export_ear(model, export, ear, record)


EAR_FILE = "ear.onnx"


def export_ear(model: Path, export: Path, ear, record: dict) -> None:
    """Copy the model folder to ``export`` and add the ear: ``ear.onnx`` (input ``features`` (B, T, D) as the audio
    encoder gives them, output ``ear_logits`` (B, T, NUM_PHONES)), checked against torch, and model.json's
    ``onnx.ear``, its checksum and ``record`` under "ear". Nothing else changes."""
    import onnxruntime as ort
    import torch

    from export_onnx.export import PARITY_TOL
    from facepolicy.core.assets import sha256_file

    export.mkdir(parents=True, exist_ok=True)
    for f in model.iterdir():
        if f.is_file() and f.name != EAR_FILE:
            shutil.copy2(f, export / f.name)
    dim = ear.conv1.in_channels
    example = torch.randn(2, 150, dim, generator=torch.Generator().manual_seed(0))
    torch.onnx.export(ear, (example,), str(export / EAR_FILE), input_names=["features"], output_names=["ear_logits"],
                      dynamic_axes={"features": {0: "batch", 1: "time"}, "ear_logits": {0: "batch", 1: "time"}},
                      opset_version=17, dynamo=False, do_constant_folding=True)
    sess = ort.InferenceSession(str(export / EAR_FILE), providers=["CPUExecutionProvider"])
    probe = torch.randn(1, 333, dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        worst = float(np.abs(ear(probe).numpy() - sess.run(None, {"features": probe.numpy()})[0]).max())
    if worst > PARITY_TOL:
        raise RuntimeError(f"{EAR_FILE}: onnxruntime differs from torch by {worst:.2e}")
    manifest = json.loads((export / "model.json").read_text(encoding="utf-8"))
    manifest["onnx"]["ear"] = EAR_FILE
    manifest["files"][EAR_FILE] = sha256_file(export / EAR_FILE)
    manifest["parity_max_abs_diff"]["ear"] = worst
    manifest["ear"] = {**record, "parameters": int(sum(p.numel() for p in ear.parameters()))}
    (export / "model.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    print(f"exported → {export} (ear parity {worst:.1e})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--out", default="cache/ear")
    b.add_argument("--english-shards", type=int, default=40)
    b.add_argument("--jobs", type=int, default=2)
    b.add_argument("--model", help="whose audio encoder's features (default: the shipped model)")
    t = sub.add_parser("train")
    t.add_argument("--out", default="cache/ear")
    t.add_argument("--model", default="assets/models")
    t.add_argument("--export")
    t.add_argument("--steps", type=int, default=6000)  # the shipped ear's
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--hidden", type=int, default=256)
    t.add_argument("--kernel", type=int, default=5)
    args = ap.parse_args(argv)
    if args.cmd == "build":
        build(Path(args.out), args.english_shards, args.jobs, Path(args.model) if args.model else None)
    else:
        train(Path(args.out), Path(args.model), Path(args.export) if args.export else None, args.steps, args.lr,
              args.hidden, args.kernel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
