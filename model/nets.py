"""The three networks: audio encoder (log-mel → per-frame features + phone logits), style encoder (states → 128-d
code) and the action-chunk denoiser (1-D conv U-Net with FiLM conditioning).

Every module here is exported to ONNX as it is (export_onnx/), so only ops with plain ONNX equivalents are used:
Conv1d, GroupNorm, Linear, GELU, pooling and interpolation by integer factors.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from facepolicy.core import features, spec

NUM_STATE = spec.NUM_CHANNELS
NUM_EVIDENCE = features.NUM_PHONES + 1  # soft phone one-hots + a "present" flag
NUM_EMOTION = 5


class ChannelNorm(nn.Module):
    """LayerNorm over channels at each time step of (B, C, T).

    Per-frame (unlike GroupNorm over time), so a frame's features do not depend on how long the window is: the
    runtime encodes whole files while training encodes short windows, and both must give the same numbers.
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels, 1))
        self.bias = nn.Parameter(torch.zeros(channels, 1))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(dim=1, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=1, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class ResBlock1d(nn.Module):
    """Pre-norm dilated residual conv block over (B, C, T)."""

    def __init__(self, channels: int, kernel: int = 3, dilation: int = 1):
        super().__init__()
        self.norm = ChannelNorm(channels)
        self.conv1 = nn.Conv1d(channels, channels, kernel, padding=dilation * (kernel // 2), dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        return x + self.conv2(F.gelu(self.conv1(F.gelu(self.norm(x)))))


class AudioEncoder(nn.Module):
    """(B, T_mel, N_MELS) log-mel at 100 Hz → (B, T_mel/stride, D) features and (B, T_mel/stride, NUM_PHONES)
    phone logits (T_mel a multiple of stride).

    The first conv pools ``stride`` mel frames (kernel 2·stride, padding stride/2), so frame j sits at the centre of
    mel frames stride·j .. stride·j+stride-1, as features.model_frame_interp assumes. Non-causal: dilations
    (1, 2, 4, 8, 16) at 50 Hz give about ±0.65 s of context, so lookahead comes from the encoder. Mel
    normalisation (per-band mean/std of the training corpus) is a buffer, so it travels inside the ONNX graph.
    """

    def __init__(self, dim: int = 128, hidden: int = 128, dilations=(1, 2, 4, 8, 16), stride: int = 2):
        super().__init__()
        self.register_buffer("mel_mean", torch.zeros(features.N_MELS))
        self.register_buffer("mel_std", torch.ones(features.N_MELS))
        if stride == 1:
            self.inp = nn.Conv1d(features.N_MELS, hidden, 5, padding=2)
        else:
            self.inp = nn.Conv1d(features.N_MELS, hidden, 2 * stride, stride=stride, padding=stride // 2)
        self.blocks = nn.Sequential(*[ResBlock1d(hidden, 3, d) for d in dilations])
        self.norm = ChannelNorm(hidden)
        self.out = nn.Conv1d(hidden, dim, 1)
        self.phone_head = nn.Conv1d(dim, features.NUM_PHONES, 1)
        self.dim = dim
        self.stride = stride
        # Context each side, in mel frames, that changes an output frame (the windows' margin must cover it).
        self.receptive_radius = stride * (1 + sum(dilations)) + stride

    def forward(self, mel):  # mel: (B, T, N_MELS)
        x = ((mel - self.mel_mean) / self.mel_std).transpose(1, 2)  # (B, N_MELS, T)
        h = self.blocks(self.inp(x))
        feat = self.out(F.gelu(self.norm(h)))  # (B, D, T/stride)
        logits = self.phone_head(F.gelu(feat))  # (B, P, T/stride)
        return feat.transpose(1, 2), logits.transpose(1, 2)


class Ear(nn.Module):
    """The ear (model/ear.py): a second phone classifier on the audio encoder's features, trained afterwards with the
    encoder frozen, in many languages. (B, T, D) features → (B, T, NUM_PHONES) logits: GELU → Conv1d(D, hidden,
    kernel) → GELU → Conv1d(hidden, NUM_PHONES, 1). Shipped as its own ONNX file, so the encoder is untouched."""

    def __init__(self, dim: int = 128, hidden: int = 256, kernel: int = 5):
        super().__init__()
        self.conv1 = nn.Conv1d(dim, hidden, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv1d(hidden, features.NUM_PHONES, 1)

    def forward(self, feats):  # (B, T, D)
        h = self.conv1(F.gelu(feats.transpose(1, 2)))
        return self.conv2(F.gelu(h)).transpose(1, 2)


def gather_frames(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(B, T_src, D) → (B, T, D) with per-sample (B, T) indices and weights of features.model_frame_interp."""
    rows = torch.arange(x.shape[0])[:, None]
    w = w[..., None]
    return (1.0 - w) * x[rows, lo] + w * x[rows, hi]


class StyleEncoder(nn.Module):
    """(B, T_s, NUM_STATE) states (≈ 4 s at 30 fps) → (B, D) unit-norm style code. Any T_s ≥ 8 works."""

    def __init__(self, dim: int = 128, hidden: int = 128, blocks: int = 3):
        super().__init__()
        self.register_buffer("state_mean", torch.zeros(NUM_STATE))
        self.register_buffer("state_std", torch.ones(NUM_STATE))
        # The encoder sees values and their frame-to-frame velocity: style lives in dynamics as much as in poses.
        self.inp = nn.Conv1d(2 * NUM_STATE, hidden, 5, padding=2)
        layers = []
        for _ in range(blocks):
            layers += [ResBlock1d(hidden, 3, 1), ResBlock1d(hidden, 3, 2), nn.Conv1d(hidden, hidden, 4, 2, 1)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(2 * hidden, 256), nn.GELU(), nn.Linear(256, dim))

    def forward(self, states):  # (B, T, C)
        x = (states - self.state_mean) / self.state_std
        vel = torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], dim=1) * 4.0
        h = self.body(self.inp(torch.cat([x, vel], dim=2).transpose(1, 2)))  # (B, H, T')
        mean = h.mean(dim=2)
        std = torch.sqrt(((h - mean[:, :, None]) ** 2).mean(dim=2) + 1e-5)
        z = self.head(torch.cat([mean, std], dim=1))
        return z / torch.sqrt((z * z).sum(dim=1, keepdim=True) + 1e-8)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) diffusion step (float) → (B, dim) sinusoidal embedding."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class FiLMBlock(nn.Module):
    """Residual conv block whose normalised activations are scaled and shifted per frame by the conditioning.

    The global condition (step, style, past states, emotion) gives one scale/shift per channel; the local
    condition (audio and phone evidence at this resolution) adds a per-frame one.
    """

    def __init__(self, c_in: int, c_out: int, global_dim: int, local_dim: int):
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, 3, padding=1)
        self.norm1 = nn.GroupNorm(8, c_out)
        self.film_g = nn.Linear(global_dim, 2 * c_out)
        self.film_l = nn.Conv1d(local_dim, 2 * c_out, 3, padding=1)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(8, c_out)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.c_out = c_out

    def forward(self, x, g, local):  # x (B, C, T), g (B, G), local (B, L, T)
        h = self.norm1(self.conv1(x))
        film = self.film_g(g)[:, :, None] + self.film_l(local)
        scale, shift = film[:, : self.c_out], film[:, self.c_out :]
        h = F.gelu(h * (1.0 + scale) + shift)
        h = F.gelu(self.norm2(self.conv2(h)))
        return h + self.skip(x)


class Denoiser(nn.Module):
    """One denoising step over an action chunk: predicts the clean chunk x0 in normalised state units.

    Inputs (all float32):
      x        (B, H, NUM_STATE)   noisy chunk, normalised
      t        (B,)                diffusion step 0..K-1
      audio    (B, H, D_audio)     audio-encoder features at the chunk's frames (zeros when dropped)
      evidence (B, H, NUM_EVIDENCE) phone evidence + present flag (zeros when absent)
      past     (B, T_o, NUM_STATE) last executed states, normalised
      style    (B, D_style)        style code (zeros when dropped)
      cond     (B, 3 + NUM_EMOTION) flags [audio present, style present, past present] + emotion × intensity
    H must be a multiple of 4 (two down-samplings).
    """

    def __init__(self, audio_dim: int = 128, style_dim: int = 128, past_frames: int = 8, width: int = 128,
                 global_dim: int = 256, local_dim: int = 96):
        super().__init__()
        self.past_frames = past_frames
        self.step_mlp = nn.Sequential(nn.Linear(64, global_dim), nn.GELU(), nn.Linear(global_dim, global_dim))
        self.past_mlp = nn.Sequential(nn.Linear(past_frames * NUM_STATE, global_dim), nn.GELU(),
                                      nn.Linear(global_dim, global_dim))
        self.style_mlp = nn.Sequential(nn.Linear(style_dim, global_dim), nn.GELU(), nn.Linear(global_dim, global_dim))
        self.cond_mlp = nn.Linear(3 + NUM_EMOTION, global_dim)
        self.local_in = nn.Sequential(nn.Conv1d(audio_dim + NUM_EVIDENCE, local_dim, 3, padding=1), nn.GELU(),
                                      nn.Conv1d(local_dim, local_dim, 3, padding=1))
        w1, w2, w3 = width, int(width * 1.5), width * 2
        self.inp = nn.Conv1d(NUM_STATE, w1, 3, padding=1)
        self.down1 = FiLMBlock(w1, w1, global_dim, local_dim)
        self.pool1 = nn.Conv1d(w1, w2, 4, 2, 1)
        self.down2 = FiLMBlock(w2, w2, global_dim, local_dim)
        self.pool2 = nn.Conv1d(w2, w3, 4, 2, 1)
        self.mid1 = FiLMBlock(w3, w3, global_dim, local_dim)
        self.mid2 = FiLMBlock(w3, w3, global_dim, local_dim)
        self.up2 = nn.ConvTranspose1d(w3, w2, 4, 2, 1)
        self.dec2 = FiLMBlock(2 * w2, w2, global_dim, local_dim)
        self.up1 = nn.ConvTranspose1d(w2, w1, 4, 2, 1)
        self.dec1 = FiLMBlock(2 * w1, w1, global_dim, local_dim)
        self.out = nn.Conv1d(w1, NUM_STATE, 3, padding=1)

    def forward(self, x, t, audio, evidence, past, style, cond):
        b = x.shape[0]
        g = (self.step_mlp(timestep_embedding(t, 64)) + self.past_mlp(past.reshape(b, -1))
             + self.style_mlp(style) + self.cond_mlp(cond))
        g = F.gelu(g)
        l1 = self.local_in(torch.cat([audio, evidence], dim=2).transpose(1, 2))  # (B, L, H)
        l2 = F.avg_pool1d(l1, 2)
        l3 = F.avg_pool1d(l2, 2)
        h1 = self.down1(self.inp(x.transpose(1, 2)), g, l1)
        h2 = self.down2(self.pool1(h1), g, l2)
        h3 = self.mid2(self.mid1(self.pool2(h2), g, l3), g, l3)
        d2 = self.dec2(torch.cat([self.up2(h3), h2], dim=1), g, l2)
        d1 = self.dec1(torch.cat([self.up1(d2), h1], dim=1), g, l1)
        return self.out(d1).transpose(1, 2)


class FacePolicyModel(nn.Module):
    """The three networks plus the state normalisation shared by them; what a checkpoint holds."""

    def __init__(self, cfg: dict):
        super().__init__()
        m = cfg["model"]
        self.audio = AudioEncoder(m["audio_dim"], m["audio_hidden"], tuple(m["audio_dilations"]), m["audio_stride"])
        self.style = StyleEncoder(m["style_dim"], m["style_hidden"], m["style_blocks"])
        self.denoiser = Denoiser(m["audio_dim"], m["style_dim"], cfg["policy"]["past_frames"], m["width"],
                                 m["global_dim"], m["local_dim"])
        self.register_buffer("state_mean", torch.zeros(NUM_STATE))
        self.register_buffer("state_std", torch.ones(NUM_STATE))

    def set_normalisation(self, mel_mean, mel_std, state_mean, state_std) -> None:
        for buf, val in ((self.audio.mel_mean, mel_mean), (self.audio.mel_std, mel_std),
                         (self.state_mean, state_mean), (self.state_std, state_std),
                         (self.style.state_mean, state_mean), (self.style.state_std, state_std)):
            buf.copy_(torch.as_tensor(val, dtype=torch.float32))

    def normalise(self, states):
        return (states - self.state_mean) / self.state_std

    def denormalise(self, x):
        return x * self.state_std + self.state_mean


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
