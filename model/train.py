"""Train the FacePolicy networks on CPU: style encoder (NT-Xent), then audio encoder + denoiser (DDPM with
condition dropout). Resumable: a checkpoint under cache/ holds weights, EMA, optimiser and every RNG state.

    python -m model.train --config model/configs/default.json            # starts or resumes
    python -m model.train --config model/configs/tiny.json --corpus DIR --out cache/train/tiny
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from facepolicy.core import spec

from . import dataset as ds
from .diffusion import Diffusion, drop_conditions
from .losses import default_vertex_factor, nt_xent, phone_loss, trajectory_losses
from .nets import FacePolicyModel, count_parameters, gather_frames

REPO = Path(__file__).resolve().parent.parent


def load_config(path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def set_threads(n: int) -> None:
    torch.set_num_threads(max(1, n))


def lr_at(step: int, total: int, base: float, warmup: int, floor: float = 0.05) -> float:
    """Linear warm-up to ``base``, then a cosine decay to ``floor`` × ``base`` at ``total`` steps."""
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


class Trainer:
    """Holds the model, the data and the training state; ``run`` trains until the configured step counts."""

    def __init__(self, cfg: dict, clips: list[ds.Clip], out_dir: Path, log=print):
        self.cfg = cfg
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.log = log
        set_threads(int(cfg.get("threads", 2)))
        seed = int(cfg["seed"])
        torch.manual_seed(seed)
        c = cfg["corpus"]
        self.split = ds.split_clips(clips, c.get("held_out_engines", ()), c.get("held_out_voice_fraction", 0.1), seed)
        if not self.split.train:
            raise ValueError("no training clips left after holding out voices and engines")
        n_extra = int(c.get("nonspeech_clips", 0))
        if n_extra:
            styles = {clip.style_id: clip.meta["style"] for clip in self.split.train if "style" in clip.meta}
            self.split.train += ds.nonspeech_clips(styles, n_extra, float(c.get("nonspeech_seconds", 8.0)), seed)
        styles = sorted({clip.style_id for clip in clips})
        self.style_index = {s: i for i, s in enumerate(styles)}
        heard = {}
        if c.get("recognised"):
            from model import recognised

            heard = recognised.load(c["recognised"])
            self.log(f"recognised evidence for {sum(1 for clip in self.split.train if clip.clip_id in heard)} of "
                     f"{len(self.split.train)} training clips ({c['recognised']})")
        self.train_prep = [ds.prepare(clip, self.style_index[clip.style_id], heard.get(clip.clip_id))
                           for clip in self.split.train]
        self.valid_prep = [ds.prepare(clip, self.style_index[clip.style_id]) for clip in self.split.valid]
        self.norm = ds.normalisation(self.train_prep)
        self.model = FacePolicyModel(cfg)
        self.model.set_normalisation(self.norm["mel_mean"], self.norm["mel_std"], self.norm["state_mean"],
                                     self.norm["state_std"])
        if cfg["policy"]["mel_margin"] < self.model.audio.receptive_radius:
            raise ValueError(f"policy.mel_margin must be ≥ the audio encoder's receptive radius "
                             f"({self.model.audio.receptive_radius} mel frames), or windows would see their edges")
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.diffusion = Diffusion(cfg["diffusion"]["steps"])
        self.sampler = ds.WindowSampler(self.train_prep, cfg, seed)
        self.valid_sampler = ds.WindowSampler(self.valid_prep, cfg, seed + 1) if self.valid_prep else None
        self.gen = torch.Generator().manual_seed(seed)
        lw = cfg["loss"]
        self.factor = None
        if lw.get("vertex", 0) > 0 or lw.get("vertex_vel", 0) > 0:
            self.factor = torch.from_numpy(default_vertex_factor(lw.get("lip_weight", 5.0)))
        self.style_opt = torch.optim.AdamW(self.model.style.parameters(), lr=cfg["style_train"]["lr"])
        pol_params = list(self.model.audio.parameters()) + list(self.model.denoiser.parameters())
        pt = cfg["policy_train"]
        self.policy_opt = torch.optim.AdamW(pol_params, lr=pt["lr"], weight_decay=pt["weight_decay"])
        self.style_step = 0
        self.policy_step = 0
        self.history: list[dict] = []
        self.elapsed = 0.0
        self.best_valid = float("inf")  # lowest held-out vertex loss so far; its weights are in best.pt
        self.log(f"clips: {len(self.split.train)} train, {len(self.split.valid)} held out "
                 f"(voices {self.split.held_out_voices}, engines {self.split.held_out_engines}); "
                 f"parameters: audio {count_parameters(self.model.audio)}, style {count_parameters(self.model.style)},"
                 f" denoiser {count_parameters(self.model.denoiser)}")

    # --- checkpoints ---------------------------------------------------------------------------------------------

    @property
    def ckpt_path(self) -> Path:
        return self.out / "checkpoint.pt"

    @property
    def best_path(self) -> Path:
        return self.out / "best.pt"

    def save(self, path: Path | None = None) -> None:
        state = {
            "config": self.cfg, "model": self.model.state_dict(), "ema": self.ema.state_dict(),
            "style_opt": self.style_opt.state_dict(), "policy_opt": self.policy_opt.state_dict(),
            "style_step": self.style_step, "policy_step": self.policy_step, "history": self.history,
            "elapsed": self.elapsed, "norm": self.norm, "style_index": self.style_index,
            "split": {"held_out_voices": self.split.held_out_voices, "held_out_engines": self.split.held_out_engines},
            "rng": {"sampler": self.sampler.rng.bit_generator.state, "torch": self.gen.get_state(),
                    "torch_global": torch.get_rng_state()},
            "style_codes": self.sampler.style_codes,
            "train_clip_ids": [c.clip_id for c in self.split.train],
            "data": data_summary(self.split),
            "teacher_version": teacher_version(),
            "best_valid": self.best_valid,
        }
        path = path or self.ckpt_path
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def try_resume(self) -> bool:
        if not self.ckpt_path.is_file():
            return False
        state = torch.load(self.ckpt_path, weights_only=False)
        if state.get("teacher_version", teacher_version()) != teacher_version():
            raise ValueError(f"{self.ckpt_path} learned from teacher version {state.get('teacher_version')}, but the "
                             f"corpus now holds version {teacher_version()}; start a new run directory")
        if state.get("train_clip_ids") != [c.clip_id for c in self.split.train]:
            raise ValueError(f"{self.ckpt_path} was trained on other clips than this corpus holds now; "
                             "resume with the same corpus, or start a new run directory")
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.style_opt.load_state_dict(state["style_opt"])
        self.policy_opt.load_state_dict(state["policy_opt"])
        self.style_step, self.policy_step = state["style_step"], state["policy_step"]
        self.history, self.elapsed = state["history"], state["elapsed"]
        self.best_valid = float(state.get("best_valid", float("inf")))
        self.sampler.rng.bit_generator.state = state["rng"]["sampler"]
        self.gen.set_state(state["rng"]["torch"])
        torch.set_rng_state(state["rng"]["torch_global"])
        self.sampler.style_codes = state["style_codes"]
        self.log(f"resumed from {self.ckpt_path}: style step {self.style_step}, policy step {self.policy_step}")
        return True

    # --- stage 1: style encoder ----------------------------------------------------------------------------------

    def train_style(self) -> None:
        st = self.cfg["style_train"]
        self.model.style.train()
        while self.style_step < st["steps"]:
            t0 = time.perf_counter()
            batch = self.sampler.style_batch(st["batch"])
            za = self.model.style(batch["a"])
            zb = self.model.style(batch["b"])
            loss = nt_xent(za, zb, st["temperature"], batch["ids"])
            for g in self.style_opt.param_groups:
                g["lr"] = lr_at(self.style_step, st["steps"], st["lr"], min(100, st["steps"] // 10 + 1))
            self.style_opt.zero_grad()
            loss.backward()
            self.style_opt.step()
            self.style_step += 1
            self.elapsed += time.perf_counter() - t0
            self._record("style", self.style_step, {"nt_xent": float(loss.detach())})
        self.ema.style.load_state_dict(self.model.style.state_dict())
        if self.sampler.style_codes is None:
            self.sampler.style_codes = self.style_codes(self.sampler)
            if self.valid_sampler is not None:
                self.valid_sampler.style_codes = self.style_codes(self.valid_sampler)
            self.save()

    @torch.no_grad()
    def style_codes(self, sampler: ds.WindowSampler) -> list[np.ndarray]:
        self.model.style.eval()
        k = self.cfg["style_train"]["codes_per_clip"]
        return [self.model.style(torch.from_numpy(sampler.style_windows(i, k))).numpy()
                for i in range(len(sampler.items))]

    # --- stage 2: audio encoder + denoiser -----------------------------------------------------------------------

    def policy_losses(self, model: FacePolicyModel, batch: dict, gen: torch.Generator,
                      drop: bool = True) -> dict[str, torch.Tensor]:
        feat, logits = model.audio(batch["mel"])
        b = feat.shape[0]
        audio = gather_frames(feat, batch["lo"], batch["hi"], batch["w"])  # (B, H, D)
        x0 = model.normalise(batch["x0"])
        past = model.normalise(batch["past"])
        if drop and self.cfg["policy_train"].get("past_noise", 0.0) > 0:
            # At run time the past is the model's own output, not the teacher's: train on slightly wrong pasts.
            past = past + self.cfg["policy_train"]["past_noise"] * torch.randn(past.shape, generator=gen)
        inputs = {"x0": x0, "audio": audio, "evidence": batch["evidence"], "style": batch["style"],
                  "past": past, "emotion": batch["emotion"]}
        if drop:
            inputs = drop_conditions(inputs, self.cfg["dropout"], gen)
        else:
            inputs = drop_conditions(inputs, {k: 0.0 for k in self.cfg["dropout"]}, gen)
        t = self.diffusion.sample_steps(b, gen)
        noise = torch.randn(x0.shape, generator=gen)
        xt = self.diffusion.q_sample(x0, t, noise)
        x0_hat = model.denoiser(xt, t.float(), inputs["audio"], inputs["evidence"], inputs["past"], inputs["style"],
                                inputs["cond"])
        losses = trajectory_losses(x0_hat, x0, model.state_std, self.factor, self.cfg["loss"])
        losses["phone"] = phone_loss(logits, batch["labels"], batch["valid"])
        with torch.no_grad():
            hit = (logits.argmax(-1) == batch["labels"]).float()
            v = batch["valid"].float()
            losses["phone_acc"] = (hit * v).sum() / v.sum().clamp(min=1)
        losses["total"] = losses["total"] + self.cfg["loss"]["phone"] * losses["phone"]
        return losses

    def train_policy(self, until: int | None = None, deadline: float | None = None) -> None:
        """Train to the configured step count, or only to step ``until``, or until time.time() passes
        ``deadline``; the learning-rate schedule always follows the configured total, so stopping and resuming
        gives the same run as going straight through."""
        pt = self.cfg["policy_train"]
        self.model.audio.train()
        self.model.denoiser.train()
        params = [p for g in self.policy_opt.param_groups for p in g["params"]]
        stop = min(pt["steps"], until if until is not None else pt["steps"])
        while self.policy_step < stop and (deadline is None or time.time() < deadline):
            t0 = time.perf_counter()
            batch = self.sampler.policy_batch(pt["batch"], pt["evidence_prob"], pt.get("recognised_prob", 0.0))
            losses = self.policy_losses(self.model, batch, self.gen)
            for g in self.policy_opt.param_groups:
                g["lr"] = lr_at(self.policy_step, pt["steps"], pt["lr"], pt["warmup"])
            self.policy_opt.zero_grad()
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(params, pt["grad_clip"])
            self.policy_opt.step()
            self._update_ema(pt["ema"])
            self.policy_step += 1
            self.elapsed += time.perf_counter() - t0
            self._record("policy", self.policy_step, {k: float(v.detach()) for k, v in losses.items()})
            if self.policy_step % self.cfg["eval_every"] == 0 or self.policy_step == pt["steps"]:
                valid = self.validate()
                self._record("valid", self.policy_step, valid)
                # Keep the weights with the lowest held-out (lip-weighted) vertex loss: the default run's held-out
                # loss bottomed out at a third of its steps and rose after (docs/BENCHMARKS.md, the Neural model).
                if valid["vertex"] < self.best_valid:
                    self.best_valid = valid["vertex"]
                    self.save(self.best_path)
            if self.policy_step % self.cfg["checkpoint_every"] == 0:
                self.save()

    @torch.no_grad()
    def _update_ema(self, decay: float) -> None:
        for name in ("audio", "denoiser"):
            src, dst = getattr(self.model, name), getattr(self.ema, name)
            for p_src, p_dst in zip(src.parameters(), dst.parameters(), strict=True):
                p_dst.mul_(decay).add_(p_src.detach(), alpha=1.0 - decay)

    @torch.no_grad()
    def validate(self, batches: int = 4) -> dict[str, float]:
        """Held-out denoising loss and phone accuracy with the EMA weights, on fixed seeds (comparable over time)."""
        sampler = self.valid_sampler or ds.WindowSampler(self.train_prep, self.cfg, 0)
        state = sampler.rng.bit_generator.state
        sampler.rng = np.random.default_rng(12345)
        gen = torch.Generator().manual_seed(12345)
        self.ema.eval()
        acc: dict[str, float] = {}
        for _ in range(batches):
            batch = sampler.policy_batch(self.cfg["policy_train"]["batch"], 1.0)
            for k, v in self.policy_losses(self.ema, batch, gen, drop=False).items():
                acc[k] = acc.get(k, 0.0) + float(v) / batches
        sampler.rng.bit_generator.state = state
        return acc

    # --- bookkeeping ---------------------------------------------------------------------------------------------

    def _record(self, stage: str, step: int, values: dict) -> None:
        entry = {"stage": stage, "step": step, "elapsed": round(self.elapsed, 2), **values}
        self.history.append(entry)
        if stage == "valid" or step % self.cfg["log_every"] == 0:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in values.items() if k in
                              ("nt_xent", "total", "state", "vertex", "phone", "phone_acc"))
            self.log(f"[{stage} {step}] {shown} ({self.elapsed:.0f}s)")

    def run(self, policy_until: int | None = None, max_seconds: float | None = None) -> None:
        """Resume if a checkpoint exists, then train; always ends with a checkpoint, curves and history."""
        deadline = time.time() + max_seconds if max_seconds else None
        self.try_resume()
        self.train_style()
        self.train_policy(policy_until, deadline)
        self.save()
        plot_history(self.history, self.out / "loss.png")
        (self.out / "history.json").write_text(json.dumps(self.history), encoding="utf-8")


def teacher_version() -> int:
    from facepolicy.core.teacher import TEACHER_VERSION

    return int(TEACHER_VERSION)


def resumable_clips(clips: list[ds.Clip], checkpoint: Path, cfg: dict) -> list[ds.Clip]:
    """When resuming, the corpus clips the run was started with: a corpus extended since (more shards) must not
    change the training set under a running schedule."""
    if not checkpoint.is_file():
        return clips
    known = set(torch.load(checkpoint, map_location="cpu", weights_only=False).get("train_clip_ids") or [])
    if not known:
        return clips
    engines = set(cfg["corpus"].get("held_out_engines", ()))
    kept = [c for c in clips if c.clip_id in known or c.split == "eval" or c.engine in engines]
    if len(kept) < len(clips):
        print(f"resuming: using the {len(kept)} corpus clips this run started with "
              f"({len(clips) - len(kept)} added since are left out)")
    return kept


def data_summary(split: ds.Split) -> dict:
    """What the model was trained on, for the model card."""
    def hours(clips):
        return round(sum(len(c.samples) for c in clips) / spec.SAMPLE_RATE / 3600, 3)

    return {
        "train_clips": len(split.train), "train_hours": hours(split.train),
        "train_voices": len({c.voice for c in split.train}), "train_engines": sorted({c.engine for c in split.train}),
        "style_identities": len({c.style_id for c in split.train}),
        "held_out_clips": len(split.valid), "held_out_hours": hours(split.valid),
    }


def plot_history(history: list[dict], path: Path) -> bool:
    """Loss curves as a PNG (matplotlib, when installed). Returns whether a file was written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    style = [(h["step"], h["nt_xent"]) for h in history if h["stage"] == "style"]
    if style:
        axes[0].plot(*zip(*style, strict=True), lw=0.8)
    axes[0].set_title("style encoder NT-Xent")
    for key, ax in (("total", axes[1]), ("phone_acc", axes[2])):
        for stage, color in (("policy", "C0"), ("valid", "C3")):
            pts = [(h["step"], h[key]) for h in history if h["stage"] == stage and key in h]
            if pts:
                ax.plot(*zip(*pts, strict=True), color=color, lw=0.8 if stage == "policy" else 1.8,
                        label="train" if stage == "policy" else "held-out voices/engines")
        ax.set_title({"total": "denoiser loss", "phone_acc": "phone accuracy (frame)"}[key])
        ax.legend()
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--corpus", help="corpus directory (default: the config's corpus.root)")
    ap.add_argument("--out", help="run directory (default: cache/train/<config name>)")
    ap.add_argument("--threads", type=int, help="torch threads (default: the config's); 1 on a busy machine")
    ap.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this long; resume later")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    if args.threads:
        cfg["threads"] = args.threads
    corpus = args.corpus or cfg["corpus"]["root"]
    if not corpus:
        print("no corpus given (--corpus DIR)", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else REPO / "cache" / "train" / cfg["name"]
    clips = resumable_clips(ds.load_corpus(corpus), out / "checkpoint.pt", cfg)
    Trainer(cfg, clips, out).run(max_seconds=args.max_minutes * 60 if args.max_minutes else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
