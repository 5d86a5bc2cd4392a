"""DDPM training for the action-chunk denoiser: noise schedule, forward noising, condition dropout for
classifier-free guidance, and a torch DDIM sampler that uses the runtime's own update rule.

The denoiser predicts the clean chunk x0. The runtime (facepolicy.core.policy) samples with few DDIM steps;
``ddim_sample`` here calls the same ``ddim_timesteps``/``ddim_update`` functions, so the two cannot disagree.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from facepolicy.core.policy import CFG_AXES, ddim_timesteps, ddim_update

from .nets import NUM_EMOTION


def cosine_alphas_cumprod(steps: int, s: float = 0.008) -> np.ndarray:
    """(steps,) ᾱ_t of the cosine schedule (Nichol & Dhariwal 2021), betas clipped at 0.999."""
    t = np.arange(steps + 1, dtype=np.float64) / steps
    f = np.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    betas = np.clip(1.0 - f[1:] / f[:-1], 0.0, 0.999)
    return np.cumprod(1.0 - betas).astype(np.float64)


class Diffusion:
    def __init__(self, steps: int = 100):
        self.steps = steps
        self.alphas_cumprod = cosine_alphas_cumprod(steps)
        self._ab = torch.tensor(self.alphas_cumprod, dtype=torch.float32)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(ᾱ_t) x0 + sqrt(1-ᾱ_t) ε, for (B, H, C) x0 and (B,) integer t."""
        ab = self._ab[t][:, None, None]
        return torch.sqrt(ab) * x0 + torch.sqrt(1.0 - ab) * noise

    def sample_steps(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randint(0, self.steps, (batch,), generator=generator)


def drop_conditions(batch: dict, probs: dict, generator: torch.Generator) -> dict:
    """Zero whole conditions per sample so one network learns conditional and unconditional predictions.

    ``probs`` holds p_audio, p_style, p_past, p_evidence, p_emotion: the chance that each input is dropped.
    The flags in ``cond`` say which inputs are present, so "dropped" is never confused with "silent".
    """
    b = batch["x0"].shape[0]

    def keep(p):
        return (torch.rand(b, generator=generator) >= p).float()

    k_audio = keep(probs["p_audio"])
    k_style = keep(probs["p_style"])
    k_past = keep(probs["p_past"])
    k_evid = keep(probs["p_evidence"]) * k_audio  # phone evidence is part of the audio condition
    k_emo = keep(probs["p_emotion"]) * k_style  # emotion is part of the style condition
    out = dict(batch)
    out["audio"] = batch["audio"] * k_audio[:, None, None]
    out["evidence"] = batch["evidence"] * k_evid[:, None, None]
    out["style"] = batch["style"] * k_style[:, None]
    out["past"] = batch["past"] * k_past[:, None, None]
    emotion = batch["emotion"] * k_emo[:, None]
    out["cond"] = torch.cat([k_audio[:, None], k_style[:, None], k_past[:, None], emotion], dim=1)
    return out


def make_cond(b: int, audio: bool, style: bool, past: bool, emotion=None) -> torch.Tensor:
    """The flags + emotion tensor for inference-time calls."""
    emo = torch.zeros(b, NUM_EMOTION) if emotion is None else torch.as_tensor(emotion, dtype=torch.float32)
    flags = torch.tensor([[float(audio), float(style), float(past)]]).repeat(b, 1)
    return torch.cat([flags, emo.reshape(b, NUM_EMOTION)], dim=1)


@torch.no_grad()
def ddim_sample(denoiser, diffusion: Diffusion, noise: torch.Tensor, inputs: dict, steps: int,
                style_scale: float = 1.0) -> torch.Tensor:
    """Clean chunk from ``noise`` (B, H, C) with ``steps`` DDIM steps and classifier-free guidance on style.

    ``inputs`` holds audio, evidence, past, style, cond as the Denoiser takes them. Used by training-time
    validation; the shipped sampler is facepolicy.core.policy, which runs the same update with onnxruntime.
    """
    x = noise
    b = x.shape[0]
    uncond = dict(inputs)
    uncond["style"] = torch.zeros_like(inputs["style"])
    uncond["cond"] = inputs["cond"].clone()
    uncond["cond"][:, CFG_AXES["style"]] = 0.0
    uncond["cond"][:, 3:] = 0.0
    ab = diffusion.alphas_cumprod
    for t, t_prev in ddim_timesteps(diffusion.steps, steps):
        tt = torch.full((b,), float(t))
        x0 = denoiser(x, tt, inputs["audio"], inputs["evidence"], inputs["past"], inputs["style"], inputs["cond"])
        if style_scale != 1.0:
            x0u = denoiser(x, tt, uncond["audio"], uncond["evidence"], uncond["past"], uncond["style"],
                           uncond["cond"])
            x0 = x0u + style_scale * (x0 - x0u)
        x = ddim_update(x, x0, float(ab[t]), float(ab[t_prev]) if t_prev >= 0 else 1.0)
    return x
