"""Training: the tiny config learns end to end; checkpoints resume exactly; held-out voices are never trained on."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is a training-only dependency (pip install torch==2.13.0)")

from model_synthetic import make_clips  # noqa: E402
from tiny_model import TINY_CONFIG, tiny_clips, trained_tiny  # noqa: E402

from model import dataset as ds  # noqa: E402
from model.train import Trainer, load_config  # noqa: E402


def test_tiny_config_trains_end_to_end_and_learns():
    run = trained_tiny()
    history = json.loads((run / "history.json").read_text())
    valid = [h for h in history if h["stage"] == "valid"]
    policy = [h for h in history if h["stage"] == "policy"]
    style = [h for h in history if h["stage"] == "style"]
    assert len(style) == load_config(TINY_CONFIG)["style_train"]["steps"]
    assert policy[-1]["step"] == load_config(TINY_CONFIG)["policy_train"]["steps"]
    first, last = np.mean([h["total"] for h in policy[:5]]), np.mean([h["total"] for h in policy[-5:]])
    assert last < 0.6 * first
    assert valid[-1]["total"] < valid[0]["total"]
    assert valid[-1]["phone_acc"] > 0.3  # 40 classes: chance is far lower
    assert (run / "loss.png").stat().st_size > 1000
    best = torch.load(run / "best.pt", map_location="cpu", weights_only=False)  # the lowest held-out vertex loss
    assert best["best_valid"] == min(h["vertex"] for h in valid)
    assert best["policy_step"] == min(valid, key=lambda h: h["vertex"])["step"]


def test_held_out_voices_are_never_trained_on():
    cfg = load_config(TINY_CONFIG)
    split = ds.split_clips(tiny_clips(), cfg["corpus"]["held_out_engines"], cfg["corpus"]["held_out_voice_fraction"],
                           cfg["seed"])
    assert split.held_out_voices
    assert not {c.voice for c in split.train} & set(split.held_out_voices)
    clips = make_clips(8, styles=2, voices=4)
    clips[0].engine = "flite"
    clips[1].split = "eval"
    s2 = ds.split_clips(clips, ["flite"], 0.0)
    assert clips[0] in s2.valid and clips[1] in s2.valid
    assert clips[1].voice in s2.held_out_voices
    assert all(c.engine != "flite" and c.voice != clips[1].voice for c in s2.train)


def test_resume_continues_exactly(tmp_path):
    cfg = load_config(TINY_CONFIG)
    cfg["style_train"]["steps"] = 4
    cfg["policy_train"]["steps"] = 8
    cfg["checkpoint_every"] = 4
    cfg["eval_every"] = 4
    clips = tiny_clips()[:8]
    straight = Trainer(cfg, clips, tmp_path / "a", log=lambda *_: None)
    straight.run()
    first = Trainer(cfg, clips, tmp_path / "b", log=lambda *_: None)
    first.run(policy_until=4)  # as if the session ended after step 4
    assert first.policy_step == 4
    resumed = Trainer(cfg, clips, tmp_path / "b", log=lambda *_: None)
    resumed.run()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    assert [h["total"] for h in straight.history if h["stage"] == "policy"] == pytest.approx(
        [h["total"] for h in resumed.history if h["stage"] == "policy"], abs=1e-6)


def test_vertex_factor_is_the_lip_weighted_vertex_error():
    from model.losses import vertex_factor

    rng = np.random.default_rng(0)
    deltas = rng.standard_normal((52, 40, 3)).astype(np.float32) * 0.01
    deltas[:, 30:] = 0.0  # vertices no shape moves are left out
    lips = np.array([0, 1, 2])
    factor = vertex_factor(deltas, lips, lip_weight=4.0, unit=1000.0)
    ds_ = rng.standard_normal(52) * 0.1
    verts = np.einsum("k,kvc->vc", ds_, deltas) * 1000.0
    w = np.ones(40)
    w[lips] = 4.0
    w[30:] = 0.0
    expected = float((w * (verts ** 2).sum(1)).sum() / w.sum())
    assert float(((ds_ @ factor) ** 2).sum()) == pytest.approx(expected, rel=1e-4)


def test_nt_xent_prefers_matching_pairs():
    from model.losses import nt_xent

    g = torch.Generator().manual_seed(0)
    z = torch.nn.functional.normalize(torch.randn(8, 16, generator=g), dim=1)
    noisy = torch.nn.functional.normalize(z + 0.05 * torch.randn(8, 16, generator=g), dim=1)
    shuffled = noisy[torch.randperm(8, generator=g)]
    assert nt_xent(z, noisy) < nt_xent(z, shuffled)


def test_recognised_evidence_replaces_the_simulated_errors_only_when_asked():
    from facepolicy.core import features
    from facepolicy.core.phones import PHONES, PhoneSegment

    cfg = load_config(TINY_CONFIG)
    clips = tiny_clips()[:4]
    heard = [PhoneSegment("m", 0.0, 0.5), PhoneSegment("aa", 0.5, 10.0)]  # what a recogniser "heard"
    plain = [ds.prepare(c, 0) for c in clips]
    with_heard = [ds.prepare(c, 0, heard) for c in clips]
    a = ds.WindowSampler(plain, cfg, 7).policy_batch(6, 1.0)
    b = ds.WindowSampler(with_heard, cfg, 7).policy_batch(6, 1.0)  # recognised_prob 0: the old batches exactly
    for key in a:
        assert torch.equal(a[key], b[key]), key
    c = ds.WindowSampler(with_heard, cfg, 7).policy_batch(6, 1.0, recognised_prob=1.0)
    evidence = c["evidence"].numpy()
    assert evidence.shape == (6, cfg["policy"]["horizon"], features.NUM_PHONES + 1)
    assert np.all(evidence[:, :, -1] == 1.0)
    # Every window's evidence is the recognised /m/ then /aa/ (sil where a window runs past them), never the clip's
    # own phones.
    seen = set(np.nonzero(evidence[:, :, :-1].sum(axis=(0, 1)))[0])
    assert PHONES.index("aa") in seen and seen <= {PHONES.index("sil"), PHONES.index("m"), PHONES.index("aa")}
    assert len(set(np.nonzero(a["evidence"].numpy()[:, :, :-1].sum(axis=(0, 1)))[0])) > 3
    assert not torch.equal(a["evidence"], c["evidence"])
