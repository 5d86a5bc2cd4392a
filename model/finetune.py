"""Fine-tune the shipped model on one performer's Live Link Face captures (`facepolicy finetune`).

The takes are checked and put in sync by facepolicy.core.captures. The audio encoder and the style encoder stay as
shipped (the listener that finds phones and nonspeech keeps its bits, and style codes stay comparable); the denoiser
learns the performer from the shipped weights: windows of the takes with the runtime's own audio features (the
shipped ONNX encoder), the runtime's phone evidence for each take (recognition, or a NAME.txt transcript), and the
performer's style code. A second loss term (keep_dynamics, dynamics_loss) holds the articulation channels' shape in
time to the shipped denoiser's, so what the performer's captures teach (a larger jaw, a smile, their brows) does not
cost lip sync on other voices; a third (brow_weight, brow_loss) weighs the brows' error more than the base loss does;
a fourth (keep_closures, closure_loss) keeps lips the base model closes closed by the figures' own lip gap. Training
is on the CPU, resumable from a checkpoint in a cache folder, and stops early when the held-out takes stop improving;
model.finetune_run writes the model folder.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from facepolicy.core import features, spec
from facepolicy.core.captures import Take
from facepolicy.core.sampler import ARTICULATION

from .base_weights import load_base_model
from .diffusion import Diffusion, drop_conditions
from .losses import default_vertex_factor, trajectory_losses
from .train import lr_at

CHECKPOINT = "finetune.pt"
CHECKPOINT_VERSION = 6  # in the cache key: a checkpoint of another layout or recipe is never resumed


@dataclass
class FinetuneSettings:
    """How a fine-tuning run trains (the defaults fit 10 minutes of captures in about 15 minutes on two cores)."""

    steps: int = 600  # most optimiser steps; early stopping may end the run before
    batch: int = 24
    lr: float = 1e-3  # the held-out loss stops improving by about step 300 (3e-4: 600 steps, the same figures)
    warmup: int = 30
    ema: float = 0.98
    eval_every: int = 100
    patience: int = 2  # held-out evaluations without a better loss (by min_gain) before stopping
    min_gain: float = 0.01  # a held-out loss counts as better when it is this share below the best
    held_out: float = 0.15  # share of the capture seconds held out (whole takes; the end of a single take)
    threads: int = 2
    seed: int = 0
    max_minutes: float | None = None  # stop (with a checkpoint) after this long; the next run resumes
    keep_timing: bool = False  # keep sync offsets within 0.1 s as the performer's own (else beyond the check's 20 ms)
    keep_dynamics: float = 3.0  # weight of the term that keeps the base model's articulation over time (dynamics_loss)
    brow_weight: float = 0.5  # extra weight of the brows' error (brow_loss): the base loss counts them little
    transcript_language: str | None = None  # the transcripts' language as set (core.letters.told_language)
    keep_closures: float = 0.05  # weight of the term that keeps the base model's closed lips closed (closure_loss)


# --- the takes as training arrays -------------------------------------------------------------------------------

@dataclass
class Item:
    """One take's arrays at MODEL_FPS, on the frames [lo, hi) that this split uses."""

    name: str
    states: np.ndarray  # (n, C)
    audio: np.ndarray  # (n, D) the shipped audio encoder's features
    evidence: np.ndarray  # (n, NUM_PHONES + 1)
    code: np.ndarray  # (style_dim,) the take's style code
    lo: int
    hi: int


def encode_take(policy, samples: np.ndarray, n: int, block: int = 900) -> np.ndarray:
    """(n, D) audio features of a take through the runtime's own encoder call (NeuralPolicy.encode), in blocks."""
    out = np.empty((n, policy.audio_dim), np.float32)
    for a in range(0, n, block):
        b = min(n, a + block)
        out[a:b] = policy.encode(samples, a, b - a)[0]
    return out


def take_arrays(policy, take: Take) -> dict:
    from facepolicy.core.facetrack import FaceTrack

    n = len(take.states)
    ev = np.zeros((n, features.NUM_PHONES + 1), np.float32)
    if take.evidence is not None and take.evidence.alignment is not None:
        ev[:, :-1] = features.phone_frames(take.evidence.alignment.phones, n, spec.MODEL_FPS, 0)
        ev[:, -1] = 1.0
    track = FaceTrack(spec.MODEL_FPS, spec.CHANNEL_NAMES, take.states)
    return {"name": take.name, "states": take.states.astype(np.float32), "audio": encode_take(policy, take.samples, n),
            "evidence": ev, "code": policy.style_from_track(track, take.files.csv.name),
            "seconds": take.seconds, "speech": _speech_mask(take, n)}


def _speech_mask(take: Take, n: int) -> np.ndarray:
    if take.evidence is None:
        return np.ones(n, bool)
    return take.evidence.speech_gate(n) >= 0.5


def split_items(arrays: list[dict], held_share: float, horizon: int = 32) -> tuple[list[Item], list[Item]]:
    """Training and held-out items. From four takes up, whole takes are held out (the ones named last) until
    ``held_share`` of the seconds, keeping the rest for training; with fewer, each take holds out its last
    ``held_share``, and at least one action chunk of ``horizon`` frames each side (a minute of captures in two takes
    would otherwise lose half of it)."""
    total = sum(a["seconds"] for a in arrays)
    held: set[int] = set()
    if len(arrays) >= 4:
        seconds = 0.0
        for i in sorted(range(len(arrays)), key=lambda i: arrays[i]["name"], reverse=True):
            if seconds >= held_share * total:
                break
            held.add(i)
            seconds += arrays[i]["seconds"]
    train, valid = [], []
    for i, a in enumerate(arrays):
        n = len(a["states"])
        args = (a["name"], a["states"], a["audio"], a["evidence"], a["code"])
        if len(arrays) < 4:
            cut = min(max(int(n * (1.0 - held_share)), horizon), n - horizon)
            train.append(Item(*args, 0, cut))
            valid.append(Item(*args, cut, n))
        elif i in held:
            valid.append(Item(*args, 0, n))
        else:
            train.append(Item(*args, 0, n))
    return train, valid


def unit(v: np.ndarray) -> np.ndarray:
    return (v / max(float(np.linalg.norm(v)), 1e-8)).astype(np.float32)


# --- batches --------------------------------------------------------------------------------------------------------

class Windows:
    """Random action chunks from items, each with its past, audio features, evidence and a style code."""

    def __init__(self, items: list[Item], codes: list[np.ndarray], horizon: int, past: int, seed: int):
        self.items = [it for it in items if it.hi - it.lo >= horizon]
        if not self.items:
            raise ValueError("no take is long enough for one action chunk")
        self.codes = codes
        self.h, self.t_o = horizon, past
        self.rng = np.random.default_rng(seed)
        w = np.array([it.hi - it.lo for it in self.items], np.float64)
        self.p = w / w.sum()

    def batch(self, size: int) -> dict[str, torch.Tensor]:
        x0, past, audio, evid, style = [], [], [], [], []
        for i in self.rng.choice(len(self.items), size=size, p=self.p):
            it = self.items[i]
            t = int(self.rng.integers(it.lo, it.hi - self.h + 1))
            x0.append(it.states[t : t + self.h])
            idx = np.clip(np.arange(t - self.t_o, t), 0, None)  # a held-out tail's past is the take's own
            past.append(it.states[idx])
            audio.append(it.audio[t : t + self.h])
            evid.append(it.evidence[t : t + self.h])
            style.append(self.codes[int(self.rng.integers(len(self.codes)))])
        stack = lambda xs: torch.from_numpy(np.stack(xs).astype(np.float32))  # noqa: E731
        return {"x0": stack(x0), "past": stack(past), "audio": stack(audio), "evidence": stack(evid),
                "style": stack(style), "emotion": torch.zeros(size, len(spec.EMOTIONS))}


# --- the run --------------------------------------------------------------------------------------------------------

class FineTuner:
    """The denoiser of the base model trained on the takes; ``run`` trains, resuming from ``cache`` when a
    checkpoint of the same captures and settings is there, and leaves the best held-out weights in ``best``."""

    def __init__(self, base_dir, arrays: list[dict], settings: FinetuneSettings, cache: Path, log=print):
        self.settings = settings
        self.cache = Path(cache)
        self.cache.mkdir(parents=True, exist_ok=True)
        self.log = log
        torch.set_num_threads(max(1, settings.threads))
        torch.manual_seed(settings.seed)
        self.model, self.manifest = load_base_model(base_dir)
        self.cfg = self.manifest["training"]["config"]
        self.model.requires_grad_(False)
        self.model.denoiser.requires_grad_(True)
        self.train, self.valid = split_items(arrays, settings.held_out, self.cfg["policy"]["horizon"])
        train_codes = [it.code for it in self.train]
        self.preset = unit(np.mean([a["code"] for a in arrays if a["name"] in {it.name for it in self.train}], 0))
        pol = self.cfg["policy"]
        self.windows = Windows(self.train, train_codes + [self.preset], pol["horizon"], pol["past_frames"],
                               settings.seed)
        self.valid_batches = self._fixed_batches(self.valid, [self.preset])
        self.diffusion = Diffusion(self.cfg["diffusion"]["steps"])
        lw = self.cfg["loss"]
        self.factor = torch.from_numpy(default_vertex_factor(lw.get("lip_weight", 5.0)))
        self.ema = copy.deepcopy(self.model.denoiser).requires_grad_(False)
        held = settings.keep_dynamics or settings.keep_closures
        self.base = copy.deepcopy(self.model.denoiser).requires_grad_(False).eval() if held else None
        self.gap = LipGap()
        self.best = copy.deepcopy(self.model.denoiser).requires_grad_(False)
        self.opt = torch.optim.AdamW(self.model.denoiser.parameters(), lr=settings.lr, weight_decay=1e-4)
        self.gen = torch.Generator().manual_seed(settings.seed)
        self.step = 0
        self.elapsed = 0.0
        self.history: list[dict] = []
        self.base_valid = float("nan")
        self.best_valid = float("inf")
        self.best_step = 0
        self.stale = 0
        self.stopped_early = False
        self.quiet_log = True  # a line per held-out evaluation (off while a progress bar shows the run)

    def _fixed_batches(self, items: list[Item], codes, batches: int = 4) -> list[dict]:
        pol = self.cfg["policy"]
        w = Windows(items, codes, pol["horizon"], pol["past_frames"], 12345)
        return [w.batch(self.settings.batch) for _ in range(batches)]

    # -- losses --

    def losses(self, denoiser, batch: dict, gen: torch.Generator, train: bool) -> dict[str, torch.Tensor]:
        m = self.model
        x0 = m.normalise(batch["x0"])
        past = m.normalise(batch["past"])
        pt = self.cfg["policy_train"]
        if train and pt.get("past_noise", 0.0) > 0:
            past = past + pt["past_noise"] * torch.randn(past.shape, generator=gen)
        inputs = {"x0": x0, "audio": batch["audio"], "evidence": batch["evidence"], "style": batch["style"],
                  "past": past, "emotion": batch["emotion"]}
        probs = self.cfg["dropout"] if train else {k: 0.0 for k in self.cfg["dropout"]}
        inputs = drop_conditions(inputs, probs, gen)
        t = self.diffusion.sample_steps(x0.shape[0], gen)
        xt = self.diffusion.q_sample(x0, t, torch.randn(x0.shape, generator=gen))
        args = (xt, t.float(), inputs["audio"], inputs["evidence"], inputs["past"], inputs["style"], inputs["cond"])
        x0_hat = denoiser(*args)
        out = trajectory_losses(x0_hat, x0, m.state_std, self.factor, self.cfg["loss"])
        if train and self.settings.brow_weight:
            out["brows"] = brow_loss(x0_hat, x0)
            out["total"] = out["total"] + self.settings.brow_weight * out["brows"]
        if train and self.base is not None:
            with torch.no_grad():
                base_hat = self.base(*args)
            if self.settings.keep_dynamics:
                out["dynamics"] = dynamics_loss(x0_hat, base_hat)
                out["total"] = out["total"] + self.settings.keep_dynamics * out["dynamics"]
            if self.settings.keep_closures:
                gap, base_gap = (self.gap(x * m.state_std + m.state_mean) for x in (x0_hat, base_hat))
                out["closures"] = closure_loss(gap, base_gap, self.gap.closed)
                out["total"] = out["total"] + self.settings.keep_closures * out["closures"]
        return out

    @torch.no_grad()
    def validate(self, denoiser) -> float:
        """Held-out denoising loss on fixed windows, noise and steps (comparable from step to step)."""
        denoiser.eval()
        gen = torch.Generator().manual_seed(54321)
        total = sum(float(self.losses(denoiser, b, gen, train=False)["total"]) for b in self.valid_batches)
        return total / len(self.valid_batches)

    # -- checkpoints --

    @property
    def ckpt(self) -> Path:
        return self.cache / CHECKPOINT

    def save(self) -> None:
        state = {"denoiser": self.model.denoiser.state_dict(), "ema": self.ema.state_dict(),
                 "best": self.best.state_dict(), "opt": self.opt.state_dict(), "step": self.step,
                 "elapsed": self.elapsed, "history": self.history, "base_valid": self.base_valid,
                 "best_valid": self.best_valid, "best_step": self.best_step, "stale": self.stale,
                 "stopped_early": self.stopped_early, "settings": asdict(self.settings),
                 "rng": {"windows": self.windows.rng.bit_generator.state, "torch": self.gen.get_state()}}
        tmp = self.ckpt.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.ckpt)

    def try_resume(self) -> bool:
        if not self.ckpt.is_file():
            return False
        state = torch.load(self.ckpt, weights_only=False)
        self.model.denoiser.load_state_dict(state["denoiser"])
        self.ema.load_state_dict(state["ema"])
        self.best.load_state_dict(state["best"])
        self.opt.load_state_dict(state["opt"])
        for key in ("step", "elapsed", "history", "base_valid", "best_valid", "best_step", "stale", "stopped_early"):
            setattr(self, key, state[key])
        self.windows.rng.bit_generator.state = state["rng"]["windows"]
        self.gen.set_state(state["rng"]["torch"])
        return True

    @property
    def finished(self) -> bool:
        return self.stopped_early or self.step >= self.settings.steps

    # -- training --

    def run(self, progress=None) -> None:
        """Train until the step count, early stopping or ``max_minutes``; a checkpoint is written at every
        held-out evaluation and at the end, so an interrupted run resumes where it was."""
        s = self.settings
        deadline = time.time() + s.max_minutes * 60 if s.max_minutes else None
        if self.step == 0 and math.isnan(self.base_valid):
            self.base_valid = self.best_valid = self.validate(self.model.denoiser)
            self.best.load_state_dict(self.model.denoiser.state_dict())
            self.history.append({"step": 0, "valid": self.base_valid})
        params = list(self.model.denoiser.parameters())
        try:
            while not self.finished and (deadline is None or time.time() < deadline):
                t0 = time.perf_counter()
                self.model.denoiser.train()
                loss = self.losses(self.model.denoiser, self.windows.batch(s.batch), self.gen, train=True)["total"]
                for g in self.opt.param_groups:
                    g["lr"] = lr_at(self.step, s.steps, s.lr, s.warmup, floor=0.1)
                self.opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                self.opt.step()
                with torch.no_grad():
                    for p_ema, p in zip(self.ema.parameters(), params, strict=True):
                        p_ema.mul_(s.ema).add_(p.detach(), alpha=1.0 - s.ema)
                self.step += 1
                self.elapsed += time.perf_counter() - t0
                if self.step % s.eval_every == 0 or self.step == s.steps:
                    self._evaluate()
                if progress is not None:
                    progress(self.step, float(loss.detach()), self.best_valid)
        finally:
            self.save()

    def _evaluate(self) -> None:
        valid = self.validate(self.ema)
        self.history.append({"step": self.step, "valid": valid})
        if self.quiet_log:
            self.log(f"step {self.step}/{self.settings.steps}: held-out loss {valid:.4f} (shipped "
                     f"{self.base_valid:.4f}, best {min(valid, self.best_valid):.4f}), {self.elapsed / 60:.1f} min")
        if valid < self.best_valid:
            gained = valid < self.best_valid * (1.0 - self.settings.min_gain)
            self.best_valid, self.best_step = valid, self.step
            self.best.load_state_dict(self.ema.state_dict())
            self.stale = 0 if gained else self.stale + 1
        else:
            self.stale += 1
        if self.stale >= self.settings.patience:
            self.stopped_early = True
            self.log(f"held-out loss has not improved by {self.settings.min_gain:.0%} for {self.stale} evaluations: "
                     f"stopping at step {self.step}, keeping step {self.best_step}")
        self.save()

    def best_model(self):
        """The base model with the best held-out denoiser (eval mode)."""
        model = copy.deepcopy(self.model)
        model.denoiser.load_state_dict(self.best.state_dict())
        return model.eval()


DYNAMICS_CHANNELS = list(ARTICULATION)  # the channels whose shape in time keep_dynamics holds to the base model's
BROW_CHANNELS = [i for i, n in enumerate(spec.CHANNEL_NAMES) if n.startswith("brow")]


def dynamics_loss(pred: torch.Tensor, base: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """How far ``pred``'s articulation channels (B, H, C) move otherwise over each window than the base model's
    ``base`` on the same input: 1 − their Pearson correlation over time, per window and channel, weighted by how much
    the base moves there. Correlation ignores scale and offset, so a larger jaw or a resting smile cost nothing; what
    costs is another shape in time (another timing against the sound)."""
    ch = DYNAMICS_CHANNELS
    p = pred[..., ch] - pred[..., ch].mean(1, keepdim=True)
    b = base[..., ch] - base[..., ch].mean(1, keepdim=True)
    sp = torch.sqrt((p * p).mean(1) + eps * eps)
    sb = torch.sqrt((b * b).mean(1) + eps * eps)
    r = (p * b).mean(1) / (sp * sb)
    w = sb / sb.sum()
    return ((1.0 - r) * w).sum()


class LipGap:
    """The product's lip gap (core.metrics: affine in the ARKit weights per inner-lip pair of the default head, the
    mean of the pairs' gaps clamped at 0) in millimetres, for torch states (..., C); ``closed``: the gap under which
    the figures count the lips as closed."""

    def __init__(self):
        from facepolicy.core import metrics

        g = metrics.default_geometry()
        self.slope = torch.tensor(g.slope * 1000.0, dtype=torch.float32)
        self.offset = torch.tensor(g.offset * 1000.0, dtype=torch.float32)
        self.closed = 1000.0 * g.threshold(metrics.CLOSED_FRACTION)

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        return torch.relu(states[..., : spec.NUM_ARKIT] @ self.slope + self.offset).mean(-1)


def closure_loss(gap: torch.Tensor, base_gap: torch.Tensor, closed: float) -> torch.Tensor:
    """Where the base model's lips are closed (its gap under ``closed`` mm, the figures' closed lips), how far
    (mm, squared) ``gap`` opens past ``closed``: lips the base model closes stay closed, while anywhere else, and
    within the closed range, a larger jaw is free."""
    shut = (base_gap <= closed).float()
    return ((torch.relu(gap - closed) ** 2) * shut).sum() / shut.sum().clamp(min=1.0)


def brow_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The brows' squared error and (twice, as the base loss weighs velocity) that of their frame-to-frame change,
    averaged over the brow channels alone (normalised units, as the base loss)."""
    err = (pred - target)[..., BROW_CHANNELS]
    return (err ** 2).mean() + 2.0 * ((err[:, 1:] - err[:, :-1]) ** 2).mean()


# --- the cache key ---------------------------------------------------------------------------------------------------

def cache_key(takes_files: list, base_manifest_path: Path, settings: FinetuneSettings,
              arrays: list[dict] | None = None) -> str:
    """A digest of the capture files (name, size, mtime), the base model.json, the settings that change the result
    and the takes' arrays as they were read (take_arrays: the phone evidence and speech found in the audio, the
    curves after the sync check), so that a run with the same inputs resumes and anything else, a newer add-on that
    hears the same captures differently included, starts afresh."""
    h = hashlib.sha256(f"checkpoint {CHECKPOINT_VERSION};".encode())
    for f in sorted(takes_files, key=lambda f: f.name):
        for path in (f.csv, f.audio, f.transcript):
            if path is not None:
                st = path.stat()
                h.update(f"{path.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    h.update(base_manifest_path.read_bytes())
    kept = {k: v for k, v in asdict(settings).items() if k not in ("max_minutes", "threads")}
    h.update(json.dumps(kept, sort_keys=True).encode())
    for a in sorted(arrays or [], key=lambda a: a["name"]):
        for name in sorted(a):
            value = a[name]
            h.update(f"{name}:".encode())
            h.update(np.ascontiguousarray(value).tobytes() if isinstance(value, np.ndarray) else repr(value).encode())
    return h.hexdigest()[:16]


def default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "facepolicy" / "finetune"
