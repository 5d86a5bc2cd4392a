"""ONNX export: parity with torch, dynamic axes, sha256 sums and the model card."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is a training-only dependency (pip install torch==2.13.0)")
ort = pytest.importorskip("onnxruntime")

from tiny_model import exported_tiny, trained_tiny  # noqa: E402

from export_onnx.export import PARITY_TOL, _example_inputs, load_checkpoint  # noqa: E402
from facepolicy.core import features  # noqa: E402
from facepolicy.core.assets import sha256_file  # noqa: E402


def test_export_parity_and_manifest():
    root = exported_tiny()
    m = json.loads((root / "model.json").read_text())
    assert m["opset"] >= 17
    assert set(m["parity_max_abs_diff"]) == {"audio_encoder", "style_encoder", "denoiser"}
    assert max(m["parity_max_abs_diff"].values()) <= PARITY_TOL
    for name, digest in m["files"].items():
        assert sha256_file(root / name) == digest
    card = (root / "MODEL_CARD.md").read_text()
    assert "tests: tiny config" in card and str(m["training"]["seed"]) in card and "Licence" in card
    assert "trained on" in card and "style identities" in card
    assert "average" in m["styles"] and len(m["styles"]["average"]) == 128


def test_denoiser_onnx_matches_torch_on_a_new_batch_and_length():
    model, state = load_checkpoint(trained_tiny() / "checkpoint.pt")
    cfg = state["config"]
    sess = ort.InferenceSession(str(exported_tiny() / "denoiser.onnx"), providers=["CPUExecutionProvider"])
    inputs = _example_inputs(cfg, 7, 3 * cfg["policy"]["horizon"], 50, seed=11)["denoiser"]
    with torch.no_grad():
        ref = model.denoiser(*inputs.values()).numpy()
    (got,) = sess.run(None, {k: v.numpy() for k, v in inputs.items()})
    assert np.abs(ref - got).max() <= PARITY_TOL


def test_audio_encoder_runs_on_the_runtime_features():
    """The ONNX encoder on core.features.log_mel equals torch on the same numbers: one front end, no skew."""
    model, _ = load_checkpoint(trained_tiny() / "checkpoint.pt")
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    mel = features.log_mel(x)[None]
    sess = ort.InferenceSession(str(exported_tiny() / "audio_encoder.onnx"), providers=["CPUExecutionProvider"])
    feat, logits = sess.run(None, {"mel": mel})
    with torch.no_grad():
        ref_feat, ref_logits = model.audio(torch.from_numpy(mel))
    assert np.abs(feat - ref_feat.numpy()).max() <= PARITY_TOL
    assert logits.shape == (1, mel.shape[1] // model.audio.stride, features.NUM_PHONES)


def test_windowed_training_features_equal_whole_file_runtime_features():
    """Training encodes short windows (model.dataset), the runtime whole groups of streams (core.policy): on the
    shared grid with margin ≥ the receptive field, every model frame gets the same features either way."""
    model, state = load_checkpoint(trained_tiny() / "checkpoint.pt")
    pol = state["config"]["policy"]
    stride = model.audio.stride
    assert pol["mel_margin"] >= model.audio.receptive_radius
    x = np.random.default_rng(3).standard_normal(16000 * 3).astype(np.float32) * 0.1
    n = features.n_model_frames(len(x))
    m0, m_len = features.mel_window(0, n, pol["mel_margin"], stride)
    with torch.no_grad():
        whole, _ = model.audio(torch.from_numpy(features.log_mel(x, m0, m_len))[None])
    whole = features.to_model_rate(whole[0].numpy(), n, start=0, stride=stride, offset=m0 // stride)
    h = pol["horizon"]
    for t in (0, 7, 31, n - h):
        w0, w_len = features.mel_window(t, h, pol["mel_margin"], stride)
        with torch.no_grad():
            win, _ = model.audio(torch.from_numpy(features.log_mel(x, w0, w_len))[None])
        got = features.to_model_rate(win[0].numpy(), h, start=t, stride=stride, offset=w0 // stride)
        np.testing.assert_allclose(got, whole[t : t + h], atol=1e-5)


def test_an_ear_added_to_an_exported_model_changes_nothing_else_and_loads_back_in_torch(tmp_path):
    """model/ear.py's export: the audio encoder gains the ear's output; its features and phone logits stay the same
    bits, the ear's logits are the head's, and model.base_weights rebuilds the encoder with the ear (round trip)."""
    from model import base_weights
    from model.ear import EarHead, export_head

    root = exported_tiny()
    dim = json.loads((root / "model.json").read_text())["model"]["audio_dim"]
    rng = np.random.default_rng(0)
    head = EarHead(*(rng.normal(0, 0.1, shape).astype(np.float32)
                     for shape in ((16, dim, 5), (16,), (features.NUM_PHONES, 16, 1), (features.NUM_PHONES,))))
    export_head(root, tmp_path, head, {"command": "test"})
    mel = rng.normal(-6, 3, (1, 300, features.N_MELS)).astype(np.float32)
    before = ort.InferenceSession(str(root / "audio_encoder.onnx")).run(None, {"mel": mel})
    after = ort.InferenceSession(str(tmp_path / "audio_encoder.onnx")).run(None, {"mel": mel})
    assert len(before) == 2 and len(after) == 3
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    np.testing.assert_allclose(after[2][0], head.logits(after[0][0]), atol=1e-4)
    manifest = json.loads((tmp_path / "model.json").read_text())
    assert manifest["files"]["audio_encoder.onnx"] == sha256_file(tmp_path / "audio_encoder.onnx")
    assert manifest["ear"] == {"command": "test"}
    model, _ = base_weights.load_base_model(tmp_path)
    assert model.audio.ear is not None
    assert max(base_weights.round_trip_difference(model, tmp_path).values()) <= PARITY_TOL
