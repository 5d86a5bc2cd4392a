"""Training losses: state loss, lip-weighted vertex loss through the default head's linear decoder, velocity and
acceleration terms, phone classification for the audio encoder, NT-Xent for the style encoder.

The vertex loss is exact and cheap: for the linear decoder v = B + Σ_k s_k D_k, the lip-weighted squared vertex
error Σ_v w_v |Σ_k Δs_k D_k[v]|² equals |Δs · L|² with L a 52×52 factor of Σ_v w_v D_v D_vᵀ, so the vertex
trajectory is supervised without ever materialising vertices.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from facepolicy.core import spec


def vertex_factor(deltas: np.ndarray, lip_vertices: np.ndarray, lip_weight: float = 5.0,
                  unit: float = 1000.0) -> np.ndarray:
    """(52, 52) L with Δsᵀ L Lᵀ Δs = weighted mean over moving vertices of |decoded Δ|², in ``unit``s (mm)².

    ``deltas`` (52, V, 3) metres; vertices that no shape moves are left out; lip vertices weigh ``lip_weight``.
    """
    d = np.asarray(deltas, np.float64) * unit  # (52, V, 3)
    moving = np.abs(d).max(axis=(0, 2)) > 0
    w = np.ones(d.shape[1])
    w[np.asarray(lip_vertices, np.int64)] = lip_weight
    w = w * moving
    w /= w.sum()
    dv = d.transpose(1, 0, 2)  # (V, 52, 3)
    m = np.einsum("v,vkc,vjc->kj", w, dv, dv)
    evals, evecs = np.linalg.eigh(m)
    return (evecs * np.sqrt(np.clip(evals, 0.0, None))[None, :]).astype(np.float32)


def default_vertex_factor(lip_weight: float = 5.0) -> np.ndarray:
    """vertex_factor of the bundled default head (facepolicy.core.head)."""
    from facepolicy.core.head import load_default_head

    head = load_default_head()
    return vertex_factor(head.deltas, head.lip_vertex_indices, lip_weight)


def _diff(x, order: int):
    for _ in range(order):
        x = x[:, 1:] - x[:, :-1]
    return x


def trajectory_losses(x0_hat: torch.Tensor, x0: torch.Tensor, state_std: torch.Tensor,
                      factor: torch.Tensor | None, weights: dict) -> dict[str, torch.Tensor]:
    """Losses of a predicted clean chunk (B, H, C), both normalised. Returns the named terms and their sum, "total".

    state: MSE in normalised units; vertex: lip-weighted squared vertex error (mm²) of the 52 shape weights;
    vel/acc: the same two errors on first/second time differences, so motion, not only poses, matches.
    """
    out: dict[str, torch.Tensor] = {}
    err = x0_hat - x0
    out["state"] = (err ** 2).mean()
    terms = {"vel": 1, "acc": 2}
    for name, order in terms.items():
        out[name] = (_diff(err, order) ** 2).mean() if weights.get(name, 0.0) > 0 else err.new_zeros(())
    if factor is not None and weights.get("vertex", 0.0) > 0:
        shape_err = (err * state_std)[..., : spec.NUM_ARKIT]  # weight units
        out["vertex"] = ((shape_err @ factor) ** 2).sum(-1).mean()
        out["vertex_vel"] = ((_diff(shape_err, 1) @ factor) ** 2).sum(-1).mean()
    else:
        out["vertex"] = err.new_zeros(())
        out["vertex_vel"] = err.new_zeros(())
    out["total"] = (weights["state"] * out["state"] + weights.get("vel", 0.0) * out["vel"]
                    + weights.get("acc", 0.0) * out["acc"] + weights.get("vertex", 0.0) * out["vertex"]
                    + weights.get("vertex_vel", 0.0) * out["vertex_vel"])
    return out


def phone_loss(logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Frame-wise cross-entropy of (B, T, P) logits against (B, T) labels where ``valid`` (B, T) is true."""
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="none")
    v = valid.reshape(-1).float()
    return (ce * v).sum() / v.sum().clamp(min=1.0)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1,
            ids: torch.Tensor | None = None) -> torch.Tensor:
    """NT-Xent (SimCLR) over a batch of positive pairs (z1[i], z2[i]) of unit-norm codes (B, D).

    When ``ids`` (B,) is given, other samples of the same style identity are not counted as negatives.
    """
    b = z1.shape[0]
    z = torch.cat([z1, z2], dim=0)  # (2B, D)
    sim = z @ z.t() / temperature
    eye = torch.eye(2 * b, dtype=torch.bool)
    mask = eye.clone()
    if ids is not None:
        all_ids = torch.cat([ids, ids])
        mask = all_ids[:, None] == all_ids[None, :]
    pos_index = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)])
    pos = sim[torch.arange(2 * b), pos_index]
    sim = sim.masked_fill(mask, float("-inf"))
    denom = torch.logsumexp(torch.cat([sim, pos[:, None]], dim=1), dim=1)
    return (denom - pos).mean()
