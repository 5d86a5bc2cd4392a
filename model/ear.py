"""Retrain the ear: the audio encoder's phone classifier (``phone_head``), on frozen features, in many languages.

The second opinion (addon/core/second_opinion.py), the silence estimate and the transcript check read the audio
encoder's phone probabilities. The shipped head was trained on English TTS only, so it does not hear a French p of
20 ms or a Japanese b. This script keeps every other weight of the model (the encoder's features, which the denoiser
reads, are bit for bit the same) and fits the head again on

- English clips planned exactly as the training corpus plans them (model/data/build_corpus.py, seed 0, its training
  voices; its held-out voices score the English validation), and
- espeak-ng speaking model/data/ear_text.py (text never in the development set) in the twelve languages of
  model/data/languages.py, in voice variants the development set does not use ("" and "f3" are its voices), at
  random rates and pitches, most clips augmented as the corpus is (noise, reverb, EQ, codecs, tempo, pitch); the
  variants in VALIDATION_VARIANTS are held out of training and score the head per language.

    .venv/bin/python -m model.ear build [--out cache/ear] [--english-shards 40] [--jobs 2]
    .venv/bin/python -m model.ear train [--out cache/ear] [--model assets/models] [--export DIR]

``train`` prints per-language frame accuracy and closure recall (frames of p/b/m whose P(p,b,m) ≥ 0.5) before and
after, and with ``--export`` writes a copy of the model folder whose audio encoder carries the new head (model.json's
checksum updated). espeak-ng, festival and flite make training data only; the add-on never links or ships them.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
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
    the head keeps hearing them as silence; every fifth one is held out."""
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


def build(out: Path, english_shards: int, jobs: int, seed: int = 0) -> None:
    """Synthesize the clips and store the frozen features and labels per group (language × split)."""
    from multiprocessing import get_context

    from facepolicy.core.listener import BilabialListener

    out.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
    seconds: dict[tuple[str, str], float] = {}
    t0 = time.perf_counter()
    ctx = get_context("fork")
    with ctx.Pool(jobs) as pool:  # forked before onnxruntime starts its threads
        listener = BilabialListener()
        tasks = [("lang", p) for p in _language_plans(seed)] + [("en", (seed, k)) for k in range(english_shards)]
        lang = pool.imap_unordered(_language_task, [p for kind, p in tasks if kind == "lang"], chunksize=4)
        eng = pool.imap_unordered(_build_english_shard, [a for kind, a in tasks if kind == "en"])
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


def _head_weights(model: Path) -> tuple[np.ndarray, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model / "audio_encoder.onnx")).graph
    arrays = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    return arrays["phone_head.weight"][:, :, 0].copy(), arrays["phone_head.bias"].copy()


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _scores(w: np.ndarray, b: np.ndarray, feats: np.ndarray, labels: np.ndarray) -> dict:
    logits = _gelu(feats.astype(np.float64)) @ w.T.astype(np.float64) + b
    logits -= logits.max(axis=1, keepdims=True)
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


class EarHead:
    """The head's weights as numpy: GELU(features) → Conv1d(D, hidden, kernel) → GELU → Conv1d(hidden, P, 1), or
    the shipped linear head (hidden 0)."""

    def __init__(self, w1, b1, w2=None, b2=None):
        self.w1, self.b1, self.w2, self.b2 = w1, b1, w2, b2

    def logits(self, feats: np.ndarray) -> np.ndarray:
        x = _gelu(feats.astype(np.float64))
        k = self.w1.shape[2]
        pad = np.pad(x, ((k // 2, k // 2), (0, 0)))
        h = sum(pad[j:j + len(x)] @ self.w1[:, :, j].T.astype(np.float64) for j in range(k)) + self.b1
        if self.w2 is None:
            return h
        return _gelu(h) @ self.w2[:, :, 0].T.astype(np.float64) + self.b2

    def probs(self, feats: np.ndarray) -> np.ndarray:
        lg = self.logits(feats)
        lg -= lg.max(axis=1, keepdims=True)
        p = np.exp(lg)
        return p / p.sum(axis=1, keepdims=True)


def _scores(head: EarHead, feats: np.ndarray, labels: np.ndarray) -> dict:
    p = head.probs(feats)
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
    """Fit the head on the training groups' frames (windows of WINDOW frames, so the kernel sees context), then
    print the validation groups' figures beside the shipped head's."""
    import torch

    torch.manual_seed(seed)
    data = {p.stem: np.load(p) for p in sorted(out.glob("*-*.npz"))}
    train_keys = [k for k in data if k.endswith("-train")]
    val_keys = [k for k in data if k.endswith("-val")]
    w0, b0 = _head_weights(model)
    old = EarHead(w0[:, :, None], b0)
    feats = torch.from_numpy(np.concatenate([data[k]["features"] for k in train_keys]))
    labels = torch.from_numpy(np.concatenate([data[k]["labels"] for k in train_keys]).astype(np.int64))
    print(f"training frames {len(labels)} from {', '.join(train_keys)}")
    head = torch.nn.Sequential(torch.nn.GELU(), torch.nn.Conv1d(feats.shape[1], hidden, kernel, padding=kernel // 2),
                               torch.nn.GELU(), torch.nn.Conv1d(hidden, len(PHONES), 1))
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    window, edge = 100, kernel // 2
    t0 = time.perf_counter()
    for step in range(steps):
        starts = torch.randint(0, len(labels) - window, (64,), generator=gen)
        idx = starts[:, None] + torch.arange(window)[None]
        logits = head(feats[idx].transpose(1, 2))[:, :, edge:window - edge]
        loss = torch.nn.functional.cross_entropy(logits, labels[idx][:, edge:window - edge])
        opt.zero_grad()
        loss.backward()
        opt.step()
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + np.cos(np.pi * (step + 1) / steps))
        if step % 500 == 0:
            print(f"  step {step} loss {loss.item():.4f}", flush=True)
    new = EarHead(*(t.detach().numpy().astype(np.float32) for t in (head[1].weight, head[1].bias, head[3].weight,
                                                                      head[3].bias)))
    print(f"trained {steps} steps in {time.perf_counter() - t0:.0f} s")
    print(f"{'group':<16} {'frames':>7}  acc old→new   closure P≥0.5   closure P≥0.9   false P≥0.9     nll")
    validation = {}
    for k in val_keys + train_keys:
        d = data[k]
        a, b = _scores(old, d["features"], d["labels"]), _scores(new, d["features"], d["labels"])
        if k in val_keys:
            validation[k[:-4]] = {name: round(v, 4) for name, v in b.items() if np.isfinite(v)}
        print(f"{k:<16} {len(d['labels']):>7}  {a['acc']:.3f}→{b['acc']:.3f}   "
              f"{a['closure_recall']:.3f}→{b['closure_recall']:.3f}   "
              f"{a['closure_sure']:.3f}→{b['closure_sure']:.3f}   "
              f"{a['false_sure']:.4f}→{b['false_sure']:.4f}   {a['nll']:.3f}→{b['nll']:.3f}")
    np.savez(out / "head.npz", w1=new.w1, b1=new.b1, w2=new.w2, b2=new.b2)
    if export is not None:
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        hours = {split: round(sum(g["seconds"] for name, g in summary["groups"].items() if name.endswith(split))
                              / 3600, 3) for split in ("-train", "-val")}
        record = {"command": f"python -m model.ear build --english-shards {summary['english_shards']} && python -m "
                             f"model.ear train --steps {steps} --hidden {hidden} --kernel {kernel}",
                  "train_hours": hours["-train"], "validation_hours": hours["-val"],
                  "validation_variants": list(VALIDATION_VARIANTS), "validation": validation}
        export_head(model, export, new, record)


def export_head(model: Path, export: Path, head: EarHead, record: dict | None = None) -> None:
    """Copy the model folder to ``export`` with ``head`` added to the audio encoder as the ear: a third output,
    ``ear_logits``, computed from the same GELU(features) as ``phone_logits`` and named as model.nets names it
    (``ear.0`` / ``ear.2``). Every other node and weight is kept, so the features and the phone logits are the same
    bits. model.json gets the ear's shape in the training config (so model.base_weights rebuilds it), the encoder's
    new parameter count and checksum, and ``record`` under "ear"."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from export_onnx.export import EAR_OUTPUT

    export.mkdir(parents=True, exist_ok=True)
    for f in model.iterdir():
        if f.is_file():
            shutil.copy2(f, export / f.name)
    proto = onnx.load(str(model / "audio_encoder.onnx"))
    graph = proto.graph
    if any(o.name == EAR_OUTPUT for o in graph.output):
        raise ValueError(f"{model / 'audio_encoder.onnx'} has an ear already")
    conv = next(n for n in graph.node if n.op_type == "Conv" and "phone_head.weight" in n.input)
    x = conv.input[0]  # GELU(features), (B, D, T)
    k = head.w1.shape[2]
    tensors = {"ear.0.weight": head.w1, "ear.0.bias": head.b1, "ear.2.weight": head.w2, "ear.2.bias": head.b2,
               "/ear/sqrt2": np.sqrt(2.0), "/ear/one": 1.0, "/ear/half": 0.5}
    graph.initializer.extend(numpy_helper.from_array(np.asarray(v, np.float32), n) for n, v in tensors.items())
    graph.node.extend([
        helper.make_node("Conv", [x, "ear.0.weight", "ear.0.bias"], ["/ear/0/out"], name="/ear/0/Conv",
                         kernel_shape=[k], pads=[k // 2, k // 2], dilations=[1], strides=[1], group=1),
        helper.make_node("Div", ["/ear/0/out", "/ear/sqrt2"], ["/ear/1/div"], name="/ear/1/Div"),
        helper.make_node("Erf", ["/ear/1/div"], ["/ear/1/erf"], name="/ear/1/Erf"),
        helper.make_node("Add", ["/ear/1/erf", "/ear/one"], ["/ear/1/add"], name="/ear/1/Add"),
        helper.make_node("Mul", ["/ear/0/out", "/ear/1/add"], ["/ear/1/mul"], name="/ear/1/Mul"),
        helper.make_node("Mul", ["/ear/1/mul", "/ear/half"], ["/ear/1/out"], name="/ear/1/Mul_1"),
        helper.make_node("Conv", ["/ear/1/out", "ear.2.weight", "ear.2.bias"], ["/ear/2/out"], name="/ear/2/Conv",
                         kernel_shape=[1], pads=[0, 0], dilations=[1], strides=[1], group=1),
        helper.make_node("Transpose", ["/ear/2/out"], [EAR_OUTPUT], name="/ear/Transpose", perm=[0, 2, 1]),
    ])
    graph.output.append(helper.make_tensor_value_info(EAR_OUTPUT, TensorProto.FLOAT,
                                                      ["batch", "time", int(head.w2.shape[0])]))
    onnx.checker.check_model(proto)
    onnx.save(proto, str(export / "audio_encoder.onnx"))
    manifest = json.loads((export / "model.json").read_text(encoding="utf-8"))
    manifest["files"]["audio_encoder.onnx"] = hashlib.sha256((export / "audio_encoder.onnx").read_bytes()).hexdigest()
    manifest["training"]["config"]["model"].update({"ear_hidden": int(head.w1.shape[0]), "ear_kernel": int(k)})
    params = manifest["model"].get("parameters")
    if params:
        params["audio_encoder"] += int(sum(a.size for a in (head.w1, head.b1, head.w2, head.b2)))
    if record is not None:
        manifest["ear"] = record
    (export / "model.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    print(f"exported → {export}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--out", default="cache/ear")
    b.add_argument("--english-shards", type=int, default=40)
    b.add_argument("--jobs", type=int, default=2)
    t = sub.add_parser("train")
    t.add_argument("--out", default="cache/ear")
    t.add_argument("--model", default="assets/models")
    t.add_argument("--export")
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--hidden", type=int, default=256)
    t.add_argument("--kernel", type=int, default=5)
    args = ap.parse_args(argv)
    if args.cmd == "build":
        build(Path(args.out), args.english_shards, args.jobs)
    else:
        train(Path(args.out), Path(args.model), Path(args.export) if args.export else None, args.steps, args.lr,
              args.hidden, args.kernel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
