"""The fine-tuning side: the shipped ONNX networks reload into torch with the same outputs (no checkpoint ships), and
a fine-tuning run interrupted mid-way resumes to exactly the weights of an uninterrupted one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_synthetic import make_clip
from tiny_model import ROOT  # noqa: F401 - puts the repository root on sys.path

from facepolicy.core import features, spec
from model.base_weights import ROUND_TRIP_TOL, load_base_model, round_trip_difference
from model.finetune import FineTuner, FinetuneSettings, split_items, unit


def test_the_shipped_onnx_networks_reload_into_torch_with_the_same_outputs():
    model, manifest = load_base_model()
    diffs = round_trip_difference(model)
    assert set(diffs) == {"audio_encoder", "style_encoder", "denoiser"}
    assert max(diffs.values()) <= ROUND_TRIP_TOL, diffs
    # GroupNorm's affine (exported as Mul/Add constants, not under its own name) came back too: not its defaults.
    assert not torch.allclose(model.denoiser.down1.norm1.weight, torch.ones_like(model.denoiser.down1.norm1.weight))
    assert np.allclose(model.state_std.numpy(), manifest["normalisation"]["state_std"])


def _arrays(n_takes: int = 2) -> list[dict]:
    out = []
    for k in range(n_takes):
        clip = make_clip(seed=10 + k, style=k, voice=k, duration=6.0)
        n = len(clip.states)
        rng = np.random.default_rng(k)
        out.append({"name": f"take{k}", "states": clip.states.astype(np.float32),
                    "audio": rng.standard_normal((n, 128)).astype(np.float32),
                    "evidence": np.zeros((n, features.NUM_PHONES + 1), np.float32),
                    "code": unit(rng.standard_normal(128)), "seconds": n / spec.MODEL_FPS,
                    "speech": np.ones(n, bool)})
    return out


def test_held_out_splits_keep_whole_takes_from_four_up():
    arrays = _arrays(2)
    train, valid = split_items(arrays, 0.1)
    assert [(i.name, i.lo) for i in train] == [("take0", 0), ("take1", 0)]
    assert all(v.lo == len(v.states) - 32 and v.hi == len(v.states) for v in valid)  # 10 % < one 32-frame chunk
    four = [dict(a, name=f"t{k}") for k, a in enumerate(_arrays(2) + _arrays(2))]
    train, valid = split_items(four, 0.2)
    assert [v.name for v in valid] == ["t3"] and all(i.lo == 0 for i in train + valid)


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path):
    arrays = _arrays()
    settings = FinetuneSettings(steps=4, batch=3, eval_every=2, threads=1, warmup=2)
    straight = FineTuner(None, arrays, settings, tmp_path / "a", log=lambda s: None)
    straight.run()

    def stop_at_two(step, loss, best):
        if step == 2:
            raise KeyboardInterrupt

    first = FineTuner(None, arrays, settings, tmp_path / "b", log=lambda s: None)
    with pytest.raises(KeyboardInterrupt):
        first.run(stop_at_two)
    assert first.step == 2 and first.ckpt.is_file()
    again = FineTuner(None, arrays, settings, tmp_path / "b", log=lambda s: None)
    assert again.try_resume() and again.step == 2
    again.run()
    assert again.step == straight.step == 4 and again.finished
    for (name, a), b in zip(straight.model.denoiser.state_dict().items(), again.model.denoiser.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name
    assert again.best_valid == straight.best_valid and again.history == straight.history


def test_the_dynamics_term_lets_habits_through_and_holds_the_base_models_timing():
    """keep_dynamics: a larger jaw or a resting smile (scale, offset) cost nothing; the same mouth moved two frames
    later, or flattened, costs; the term pulls a fine-tuning run's articulation toward the base's shape in time."""
    from facepolicy.core.sampler import ARTICULATION
    from model.finetune import dynamics_loss

    rng = np.random.default_rng(3)
    base = torch.from_numpy(np.cumsum(rng.standard_normal((4, 40, spec.NUM_CHANNELS)), axis=1).astype(np.float32))
    habits = 1.4 * base + 0.3
    assert float(dynamics_loss(habits, base)) == pytest.approx(0.0, abs=1e-4)
    later = torch.roll(base, 2, dims=1)
    flat = base.clone()
    flat[..., ARTICULATION] = 0.0
    assert float(dynamics_loss(later, base)) > 0.05 and float(dynamics_loss(flat, base)) > 0.9
    # Other channels (the brows) are free.
    brows = base.clone()
    brows[..., spec.CHANNEL_INDEX["browInnerUp"]] = torch.roll(base[..., spec.CHANNEL_INDEX["browInnerUp"]], 5, 1)
    assert float(dynamics_loss(brows, base)) == pytest.approx(0.0, abs=1e-4)


def test_a_run_with_the_dynamics_term_trains_and_leaves_the_held_out_loss_plain(tmp_path):
    settings = FinetuneSettings(steps=2, batch=3, eval_every=2, threads=1, warmup=1, keep_dynamics=1.0)
    tuner = FineTuner(None, _arrays(), settings, tmp_path / "c", log=lambda s: None)
    batch = tuner.windows.batch(3)
    terms = tuner.losses(tuner.model.denoiser, batch, torch.Generator().manual_seed(0), train=True)
    assert float(terms["dynamics"]) == pytest.approx(0.0, abs=1e-5)  # the base model agrees with itself
    tuner.run()
    assert tuner.finished and "dynamics" not in tuner.losses(tuner.model.denoiser, batch, tuner.gen, train=False)


def test_the_brow_term_measures_the_brows_alone_and_is_trained_when_asked(tmp_path):
    """brow_weight: the brows' error (and its change over time) is added to the loss; other channels do not count
    in it, and with brow_weight 0 the loss is the base one."""
    from model.finetune import BROW_CHANNELS, brow_loss

    rng = np.random.default_rng(4)
    target = torch.from_numpy(rng.standard_normal((3, 32, spec.NUM_CHANNELS)).astype(np.float32))
    mouth = target.clone()
    mouth[..., spec.CHANNEL_INDEX["jawOpen"]] += 1.0
    brows = target.clone()
    brows[..., spec.CHANNEL_INDEX["browInnerUp"]] += 0.5
    assert float(brow_loss(target, target)) == 0.0 and float(brow_loss(mouth, target)) == 0.0
    assert float(brow_loss(brows, target)) == pytest.approx(0.25 / len(BROW_CHANNELS), rel=1e-5)
    assert {spec.CHANNEL_NAMES[c] for c in BROW_CHANNELS} >= {"browInnerUp", "browOuterUpLeft", "browDownRight"}
    arrays = _arrays()
    alone = {"threads": 1, "keep_dynamics": 0.0, "keep_closures": 0.0}
    plain = FineTuner(None, arrays, FinetuneSettings(**alone, brow_weight=0.0), tmp_path / "p", log=lambda s: None)
    weighted = FineTuner(None, arrays, FinetuneSettings(**alone, brow_weight=2.0), tmp_path / "w", log=lambda s: None)
    batch = plain.windows.batch(3)
    a = plain.losses(plain.model.denoiser, batch, torch.Generator().manual_seed(0), train=True)
    b = weighted.losses(weighted.model.denoiser, batch, torch.Generator().manual_seed(0), train=True)
    assert "brows" not in a and float(b["brows"]) > 0
    assert float(b["total"]) == pytest.approx(float(a["total"]) + 2.0 * float(b["brows"]), rel=1e-5)


def test_the_closure_term_keeps_the_base_models_closed_lips_closed_and_nothing_else():
    """keep_closures: the lip gap is the figures' own (core.metrics); where the base model's lips are closed the
    fine-tuned model's may not open past the closed threshold; a wider jaw elsewhere, or within it, costs nothing."""
    from facepolicy.core import metrics
    from facepolicy.core.facetrack import FaceTrack
    from model.finetune import LipGap, closure_loss

    gap = LipGap()
    rng = np.random.default_rng(6)
    weights = rng.uniform(0.0, 0.5, (20, spec.NUM_CHANNELS)).astype(np.float32)
    track = FaceTrack(spec.MODEL_FPS, spec.CHANNEL_NAMES, weights)
    assert np.allclose(gap(torch.from_numpy(weights)).numpy(), 1000 * metrics.lip_gap(track), atol=1e-4)
    assert gap.closed == pytest.approx(1000 * metrics.default_geometry().threshold(metrics.CLOSED_FRACTION))
    base = torch.tensor([[1.0, 2.0, 9.0, 12.0]])
    assert float(closure_loss(torch.tensor([[1.5, 4.0, 20.0, 3.0]]), base, 5.0)) == 0.0  # closed stays closed
    assert float(closure_loss(torch.tensor([[7.0, 2.0, 9.0, 12.0]]), base, 5.0)) == pytest.approx(4.0 / 2)


def test_a_run_with_the_closure_term_starts_at_zero_and_trains(tmp_path):
    settings = FinetuneSettings(steps=2, batch=3, eval_every=2, threads=1, warmup=1, keep_dynamics=0.0,
                                keep_closures=1.0)
    tuner = FineTuner(None, _arrays(), settings, tmp_path / "k", log=lambda s: None)
    assert tuner.base is not None  # the base denoiser is kept for this term alone
    batch = tuner.windows.batch(3)
    terms = tuner.losses(tuner.model.denoiser, batch, torch.Generator().manual_seed(0), train=True)
    assert float(terms["closures"]) == pytest.approx(0.0, abs=1e-6)  # the base model keeps its own closures
    tuner.run()
    assert tuner.finished and "closures" not in tuner.losses(tuner.model.denoiser, batch, tuner.gen, train=False)


def test_finetune_help_states_the_settings_defaults():
    """`facepolicy finetune --help` is built without torch, so it states the defaults itself: they must be
    FinetuneSettings' own."""
    import argparse
    import re

    from facepolicy.app import finetune as app_finetune
    from model.finetune import FinetuneSettings

    parser = argparse.ArgumentParser()
    app_finetune.add_parser(parser.add_subparsers())
    sub = next(a for a in parser._subparsers._group_actions[0].choices.values())
    helps = {a.dest: a.help for a in sub._actions if a.help}
    defaults = FinetuneSettings()
    for dest in ("steps", "batch", "lr", "eval_every", "held_out", "threads", "seed", "keep_dynamics",
                 "keep_closures", "brow_weight"):
        stated = re.search(r"default:? ([0-9.e-]+)", helps[dest]).group(1).rstrip(".;")
        assert float(stated) == float(getattr(defaults, dest)), (dest, stated, getattr(defaults, dest))


def test_the_checkpoint_cache_is_keyed_on_what_the_takes_were_heard_as(tmp_path):
    # The same capture files read by an add-on that hears them differently (other phone evidence, another speech
    # gate) must not resume the checkpoint of the first reading: the key includes the takes' arrays.
    from model.finetune import cache_key

    manifest = tmp_path / "model.json"
    manifest.write_text("{}")
    settings = FinetuneSettings()
    arrays = _arrays()
    heard_again = [dict(a) for a in arrays]
    heard_again[1]["evidence"] = heard_again[1]["evidence"].copy()
    heard_again[1]["evidence"][10, 3] = 1.0
    assert cache_key([], manifest, settings, arrays) == cache_key([], manifest, settings, _arrays())
    assert cache_key([], manifest, settings, arrays) != cache_key([], manifest, settings, heard_again)
