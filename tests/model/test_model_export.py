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


def test_an_ear_added_to_an_exported_model_is_listed_checked_and_heard_by_the_listener(tmp_path):
    """model/ear.py's export: ear.onnx beside the untouched networks, listed in model.json with its checksum, equal
    to torch; the listener of that folder hears every phone with it, the same rows as torch gives."""
    from facepolicy.core.listener import BilabialListener
    from facepolicy.core.model_files import read_model_files
    from model.ear import export_ear
    from model.nets import Ear

    root = exported_tiny()
    dim = json.loads((root / "model.json").read_text())["model"]["audio_dim"]
    torch.manual_seed(0)
    ear = Ear(dim, 16, 5).eval()
    export_ear(root, tmp_path, ear, {"command": "test"})
    for name in ("audio_encoder.onnx", "style_encoder.onnx", "denoiser.onnx"):
        assert (tmp_path / name).read_bytes() == (root / name).read_bytes()
    files = read_model_files(tmp_path)  # every checksum verified, the ear's too
    assert files.manifest["onnx"]["ear"] == "ear.onnx" and files.manifest["ear"]["command"] == "test"
    samples = np.random.default_rng(0).normal(0, 0.1, 16000 * 3).astype(np.float32)
    listener = BilabialListener(tmp_path)
    probs, encoded, heard = listener.listen_checking(samples, ("sil",), keep=True, check=True)
    assert listener.has_ear and heard.shape == (len(probs), features.NUM_PHONES)
    with torch.no_grad():  # the kept features end with the audio, the listener's window runs on into silence
        expected = torch.softmax(ear(torch.from_numpy(encoded.features[None]))[0], dim=1).numpy()
    inner = slice(-encoded.first, -encoded.first + len(probs) - 2)  # the ear's kernel reaches 2 frames each side
    np.testing.assert_allclose(heard[: inner.stop - inner.start], expected[inner], atol=1e-4)
    assert not BilabialListener(root).has_ear
