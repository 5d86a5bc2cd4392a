"""Export a trained checkpoint to ONNX (audio encoder, style encoder, one denoiser step), check parity against
torch with onnxruntime, and write the model directory: the .onnx files, model.json (policy settings, noise
schedule, normalisation, style presets, sha256 of every file) and MODEL_CARD.md.

    python -m export_onnx.export --checkpoint cache/train/default/checkpoint.pt --out assets/models
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from facepolicy.core import features, spec
from facepolicy.core.assets import sha256_file
from facepolicy.core.policy import MANIFEST, NUM_FLAGS
from model import dataset as ds
from model.diffusion import Diffusion
from model.nets import NUM_EVIDENCE, FacePolicyModel, count_parameters

OPSET = 17
PARITY_TOL = 1e-4
FILES = {"audio_encoder": "audio_encoder.onnx", "style_encoder": "style_encoder.onnx", "denoiser": "denoiser.onnx"}


class ParityError(RuntimeError):
    pass


def load_checkpoint(path) -> tuple[FacePolicyModel, dict]:
    """The EMA model of a training checkpoint (eval mode) and the checkpoint dict."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = FacePolicyModel(state["config"])
    model.load_state_dict(state["ema"])
    return model.eval(), state


def _example_inputs(cfg: dict, batch: int, frames: int, mel_frames: int, seed: int = 0) -> dict[str, dict]:
    g = torch.Generator().manual_seed(seed)
    m, p = cfg["model"], cfg["policy"]
    cond = torch.zeros(batch, NUM_FLAGS + len(spec.EMOTIONS))
    cond[:, :NUM_FLAGS] = 1.0
    cond[:, NUM_FLAGS + 1] = 0.7
    return {
        "audio_encoder": {"mel": torch.randn(batch, mel_frames, features.N_MELS, generator=g) * 3 - 6},
        "style_encoder": {"states": torch.rand(batch, p["style_frames"], spec.NUM_CHANNELS, generator=g)},
        "denoiser": {
            "x": torch.randn(batch, frames, spec.NUM_CHANNELS, generator=g),
            "t": torch.randint(0, cfg["diffusion"]["steps"], (batch,), generator=g).float(),
            "audio": torch.randn(batch, frames, m["audio_dim"], generator=g),
            "evidence": torch.rand(batch, frames, NUM_EVIDENCE, generator=g),
            "past": torch.randn(batch, p["past_frames"], spec.NUM_CHANNELS, generator=g),
            "style": torch.nn.functional.normalize(torch.randn(batch, m["style_dim"], generator=g), dim=1),
            "cond": cond,
        },
    }


_OUTPUTS = {"audio_encoder": ["features", "phone_logits"], "style_encoder": ["code"], "denoiser": ["x0"]}
_DYNAMIC = {
    "audio_encoder": {"mel": {0: "batch", 1: "time"}, "features": {0: "batch", 1: "time"},
                      "phone_logits": {0: "batch", 1: "time"}},
    "style_encoder": {"states": {0: "batch", 1: "time"}, "code": {0: "batch"}},
    "denoiser": {"x": {0: "batch", 1: "time"}, "t": {0: "batch"}, "audio": {0: "batch", 1: "time"},
                 "evidence": {0: "batch", 1: "time"}, "past": {0: "batch"}, "style": {0: "batch"},
                 "cond": {0: "batch"}, "x0": {0: "batch", 1: "time"}},
}


def _module(model: FacePolicyModel, name: str) -> torch.nn.Module:
    return {"audio_encoder": model.audio, "style_encoder": model.style, "denoiser": model.denoiser}[name]


def export_networks(model: FacePolicyModel, cfg: dict, out: Path) -> dict[str, float]:
    """Write the three .onnx files and return each one's max abs difference to torch (raises ParityError)."""
    import onnxruntime as ort

    out.mkdir(parents=True, exist_ok=True)
    h = cfg["policy"]["horizon"]
    diffs = {}
    for name, fname in FILES.items():
        module = _module(model, name)
        example = _example_inputs(cfg, 2, h, 300)[name]
        path = out / fname
        torch.onnx.export(module, tuple(example.values()), str(path), input_names=list(example),
                          output_names=_OUTPUTS[name], dynamic_axes=_DYNAMIC[name], opset_version=OPSET,
                          dynamo=False, do_constant_folding=True)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        worst = 0.0
        # Other batch sizes and lengths than the traced ones, so the dynamic axes are exercised too.
        for batch, frames, mel_frames, seed in ((1, h, 517, 1), (5, 2 * h, 123, 2)):
            inputs = _example_inputs(cfg, batch, frames, mel_frames, seed)[name]
            with torch.no_grad():
                ref = module(*inputs.values())
            ref = ref if isinstance(ref, tuple) else (ref,)
            got = sess.run(None, {k: v.numpy() for k, v in inputs.items()})
            for r, o in zip(ref, got, strict=True):
                worst = max(worst, float(np.abs(r.numpy() - o).max()))
        diffs[name] = worst
        if worst > PARITY_TOL:
            raise ParityError(f"{fname}: onnxruntime differs from torch by {worst:.2e} (> {PARITY_TOL:.0e})")
    return diffs


@torch.no_grad()
def style_presets(model: FacePolicyModel, clips: list[ds.Clip], cfg: dict) -> tuple[dict, dict]:
    """Preset codes: "average" (every identity) plus the config's presets, each the mean code of the identities
    whose teacher style parameter lies in a quantile range. Returns (presets, how each was made)."""
    n = cfg["policy"]["style_frames"]
    by_identity: dict[str, list[np.ndarray]] = {}
    params: dict[str, dict] = {}
    for clip in clips:
        st = np.asarray(clip.states, np.float32)
        if len(st) < n:
            st = np.concatenate([st, np.repeat(st[-1:], n - len(st), axis=0)])
        starts = np.linspace(0, len(st) - n, max(1, len(st) // n)).astype(int)
        codes = model.style(torch.from_numpy(np.stack([st[s : s + n] for s in starts]))).numpy()
        by_identity.setdefault(clip.style_id, []).append(codes.mean(0))
        params.setdefault(clip.style_id, dict(clip.meta.get("style", {})))
    ident = {k: _unit(np.mean(v, axis=0)) for k, v in sorted(by_identity.items())}
    presets = {"average": _unit(np.mean(list(ident.values()), axis=0))}
    made = {"average": f"mean code of all {len(ident)} identities"}
    for name, rule in cfg.get("presets", {}).items():
        have = {k: float(p[rule["param"]]) for k, p in params.items() if rule["param"] in p}
        if len(have) < 4:
            made[name] = f"skipped: fewer than 4 identities record {rule['param']!r}"
            continue
        vals = np.array(list(have.values()))
        lo, hi = np.quantile(vals, rule["range"])
        chosen = [k for k, v in have.items() if lo <= v <= hi]
        presets[name] = _unit(np.mean([ident[k] for k in chosen], axis=0))
        made[name] = f"{len(chosen)} identities with {rule['param']} in quantiles {rule['range']}"
    return {k: v.astype(np.float32) for k, v in presets.items()}, {k: v for k, v in made.items()}


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-8)


def write_model_dir(checkpoint, out, clips: list[ds.Clip], command: str = "", metrics: dict | None = None,
                    notes: str = "") -> dict:
    """Export everything into ``out``; returns the manifest written to out/model.json."""
    out = Path(out)
    model, state = load_checkpoint(checkpoint)
    cfg = state["config"]
    diffs = export_networks(model, cfg, out)
    presets, made = style_presets(model, clips, cfg)
    norm = state["norm"]
    manifest = {
        "format": 1,
        "name": cfg["name"],
        "onnx": dict(FILES),
        "opset": OPSET,
        "parity_max_abs_diff": diffs,
        "model": {"audio_dim": cfg["model"]["audio_dim"], "style_dim": cfg["model"]["style_dim"],
                  "audio_stride": cfg["model"]["audio_stride"],
                  "parameters": {"audio_encoder": count_parameters(model.audio),
                                 "style_encoder": count_parameters(model.style),
                                 "denoiser": count_parameters(model.denoiser)}},
        "features": {"sample_rate": spec.SAMPLE_RATE, "mel_rate": features.MEL_RATE, "n_mels": features.N_MELS,
                     "n_fft": features.N_FFT, "win": features.WIN, "fps": spec.MODEL_FPS},
        "channels": list(spec.CHANNEL_NAMES),
        "emotions": list(spec.EMOTIONS),
        "policy": dict(cfg["policy"]),
        "diffusion": {"steps": cfg["diffusion"]["steps"], "prediction": "x0", "schedule": "cosine",
                      "alphas_cumprod": Diffusion(cfg["diffusion"]["steps"]).alphas_cumprod.tolist()},
        "normalisation": {k: np.asarray(norm[k], np.float32).tolist() for k in ("state_mean", "state_std",
                                                                                 "rest_state")},
        "styles": {k: v.tolist() for k, v in presets.items()},
        "style_presets_made_from": made,
        "default_style": "average",
        "training": {"config": cfg, "seed": cfg["seed"], "command": command, "style_steps": state["style_step"],
                     "policy_steps": state["policy_step"], "train_seconds": round(state["elapsed"], 1),
                     "held_out": state["split"], "data": state.get("data", {}),
                     "teacher_version": state.get("teacher_version")},
        "metrics": metrics or {},
        "files": {fname: sha256_file(out / fname) for fname in FILES.values()},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    card = model_card(manifest)
    if notes.strip():
        card += "\n## Notes on this run\n\n" + notes.strip() + "\n"
    (out / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    return manifest


def model_card(m: dict) -> str:
    t = m["training"]
    params = m["model"]["parameters"]
    lines = [
        f"# FacePolicy neural model `{m['name']}`",
        "",
        "Speech audio → ARKit-52 + head + gaze trajectory at 30 fps: a diffusion policy (1-D conv U-Net denoiser,"
        " FiLM-conditioned on audio features, phone evidence, the last executed states and a 128-d style code),"
        " sampled with DDIM over a receding horizon.",
        "",
        "## Files",
        "",
        *[f"- `{name}`: sha256 `{digest}`" for name, digest in m["files"].items()],
        f"- parameters: audio encoder {params['audio_encoder']:,}, style encoder {params['style_encoder']:,},"
        f" denoiser {params['denoiser']:,}; ONNX opset {m['opset']}",
        "- parity with torch (max abs diff): " + ", ".join(f"{k} {v:.1e}" for k, v in m["parity_max_abs_diff"].items()),
        "",
        "## Training",
        "",
        "- data: the FacePolicy corpus (TTS speech with exact phone timings, faces from the articulation teacher);"
        " see model/data/ and docs/BENCHMARKS.md",
        *([f"- trained on {d['train_hours']} h in {d['train_clips']} clips ({d['train_voices']} voices, engines "
           f"{', '.join(d['train_engines'])}, {d['style_identities']} style identities); held out "
           f"{d['held_out_hours']} h in {d['held_out_clips']} clips"] if (d := t.get("data")) else []),
        f"- held out (never trained on): voices {t['held_out']['held_out_voices']},"
        f" engines {t['held_out']['held_out_engines']}",
        f"- command: `{t['command'] or 'not recorded'}`",
        f"- seed: {t['seed']}; steps: style {t['style_steps']}, policy {t['policy_steps']};"
        f" training time {t['train_seconds'] / 3600:.2f} h wall (training steps only)",
        "",
        "## Style presets",
        "",
        *[f"- `{k}`: {v}" for k, v in m["style_presets_made_from"].items()],
        "",
        "## Metrics",
        "",
        *([f"- {k}: {v}" for k, v in m["metrics"].items()] or ["- none recorded with this export"]),
        "",
        "## Licence",
        "",
        "CC0-1.0 (public-domain dedication): the weights are trained by this project on data it generated itself, so"
        " they may be used commercially and redistributed without conditions. The training audio came from"
        " espeak-ng (GPL-3.0), festival and flite (BSD-style CMU/Edinburgh licences) run as separate programs; their"
        " output is not covered by their licences, and none of their code or voices is in these files. Sentences:"
        " generated by model/data/sentences.py (see model/data/TEXT_LICENCE.md). At run time the engine may add"
        " phone evidence from pocketsphinx (BSD-2-Clause, its bundled en-us model).",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--out", default="assets/models")
    ap.add_argument("--corpus", help="corpus directory for the style presets (default: the config's corpus.root)")
    ap.add_argument("--metrics", help="JSON file of evaluation results to record in the card")
    ap.add_argument("--notes", help="Markdown file with notes on this training run, added to the card")
    args = ap.parse_args(argv)
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    corpus = args.corpus or state["config"]["corpus"]["root"]
    clips = ds.load_corpus(corpus)
    metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else None
    notes = Path(args.notes).read_text(encoding="utf-8") if args.notes else ""
    command = "python -m model.train --config model/configs/{}.json".format(state["config"]["name"])
    m = write_model_dir(args.checkpoint, args.out, clips, command=command, metrics=metrics, notes=notes)
    print(f"wrote {args.out}: " + ", ".join(f"{k} parity {v:.1e}" for k, v in m["parity_max_abs_diff"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

