"""The numpy + onnxruntime sampler on the tiny exported model: determinism, batching, styles, the engine contract."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

pytest.importorskip("torch", reason="the tiny test model is trained with torch (pip install torch==2.13.0)")

from model_synthetic import make_clip  # noqa: E402
from tiny_model import exported_tiny  # noqa: E402

from facepolicy.core import audio as audio_mod  # noqa: E402
from facepolicy.core import features, spec  # noqa: E402
from facepolicy.core.engine import BakeOptions  # noqa: E402
from facepolicy.core.errors import AssetError, Cancelled, FacePolicyError  # noqa: E402
from facepolicy.core.livelink import write_livelink_csv  # noqa: E402
from facepolicy.core.policy import NeuralEngine, NeuralPolicy, SampleSettings, emotion_vector, states_to_track  # noqa: E402

UPPER = [spec.CHANNEL_INDEX[n] for n in ("eyeBlinkLeft", "browInnerUp", "headYaw", "headPitch", "eyeYawLeft")]
JAW = spec.CHANNEL_INDEX["jawOpen"]


@pytest.fixture(scope="module")
def policy():
    return NeuralPolicy(exported_tiny())


@pytest.fixture(scope="module")
def clip():
    return make_clip(4242, 2, 3, duration=9.0)  # an unseen clip


def test_output_shape_and_range(policy, clip):
    y = policy.sample(clip.samples, SampleSettings(seed=1), style=policy.style_preset("average"))
    assert y.shape == (features.n_model_frames(len(clip.samples)), spec.NUM_CHANNELS)
    assert np.all(np.isfinite(y))
    assert y[:, : spec.NUM_ARKIT].min() >= 0.0 and y[:, : spec.NUM_ARKIT].max() <= 1.0


def test_deterministic_per_seed_and_varied_across_seeds(policy, clip):
    style = policy.style_preset("average")
    a = policy.sample(clip.samples, SampleSettings(seed=5), style=style)
    b = policy.sample(clip.samples, SampleSettings(seed=5), style=style)
    c = policy.sample(clip.samples, SampleSettings(seed=6), style=style)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a[:, UPPER] - c[:, UPPER]).mean() > 1e-3


def test_batching_equals_sequential(policy, clip):
    style = policy.style_preset("average")
    one_batch = policy.sample(clip.samples, SampleSettings(seed=2), style=style)
    sequential = policy.sample(clip.samples, SampleSettings(seed=2, streams_per_batch=1), style=style)
    np.testing.assert_allclose(one_batch, sequential, atol=1e-5)
    saved = policy.group_streams
    try:
        policy.group_streams = 2  # long-audio path: groups of streams, audio encoded per group
        grouped = policy.sample(clip.samples, SampleSettings(seed=2), style=style)
    finally:
        policy.group_streams = saved
    np.testing.assert_allclose(one_batch, grouped, atol=1e-4)


def test_tiny_model_follows_the_teacher_on_an_unseen_clip(policy, clip):
    y = policy.sample(clip.samples, SampleSettings(seed=0), style=policy.style_preset("average"))
    n = min(len(y), len(clip.states))
    assert np.corrcoef(y[:n, JAW], clip.states[:n, JAW])[0, 1] > 0.5


def test_silence_gives_a_calm_face(policy):
    y = policy.sample(np.zeros(16000 * 4, np.float32), SampleSettings(seed=0), style=policy.style_preset("average"))
    assert y[:, JAW].max() < 0.15
    assert np.abs(np.diff(y[:, JAW])).mean() < 0.03


def test_style_guidance_and_emotion_change_the_output(policy, clip):
    ref = policy.style_from_track(states_to_track(clip.states))
    assert ref.shape == (128,) and np.linalg.norm(ref) == pytest.approx(1.0, abs=1e-5)
    base = policy.sample(clip.samples, SampleSettings(seed=3), style=ref)
    none = policy.sample(clip.samples, SampleSettings(seed=3), style=None)
    zero = policy.sample(clip.samples, SampleSettings(seed=3, style_scale=0.0), style=ref)
    strong = policy.sample(clip.samples, SampleSettings(seed=3, style_scale=2.5), style=ref)
    happy = policy.sample(clip.samples, SampleSettings(seed=3), style=ref, emotion=emotion_vector("happy", 1.0))
    sharper = policy.sample(clip.samples, SampleSettings(seed=3, audio_scale=2.0), style=ref)
    assert np.all(np.isfinite(sharper)) and np.abs(sharper - base).mean() > 1e-4
    np.testing.assert_array_equal(none, zero)  # strength 0 is the unstyled model
    assert np.abs(strong - base).mean() > 1e-4
    assert np.abs(none - base).mean() > 1e-4
    assert np.abs(happy - base).mean() > 1e-5


def test_progress_and_cancel(policy, clip):
    seen = []
    policy.sample(clip.samples, SampleSettings(seed=0), progress=lambda f, m: seen.append(f))
    assert seen and seen[-1] == pytest.approx(1.0) and seen == sorted(seen)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        policy.sample(clip.samples, SampleSettings(seed=0), cancel=cancel)


def test_engine_contract_styles_and_errors(tmp_path, clip):
    engine = NeuralEngine(exported_tiny())
    audio = audio_mod.from_array(clip.samples, spec.SAMPLE_RATE)
    track = engine.animate(audio, BakeOptions(engine="neural", seed=1, accuracy="fast"),
                           lambda f, m: None, threading.Event())
    assert track.fps == spec.MODEL_FPS and track.names == spec.CHANNEL_NAMES
    assert track.n_frames == features.n_model_frames(len(audio.samples))
    assert track.meta["style"] == "average" and track.meta["neural"]["evidence"] == "audio only"
    default = engine.animate(audio, BakeOptions(engine="neural", seed=1), lambda f, m: None, None)
    assert default.meta["neural"]["evidence"] == "phone recognition"  # the default mode is "accurate"
    ref = states_to_track(clip.states)
    ref.save_json(tmp_path / "ref.json")
    write_livelink_csv(ref, tmp_path / "ref.csv")
    by_json = engine.animate(audio, BakeOptions(seed=1, style=str(tmp_path / "ref.json")), lambda f, m: None, None)
    by_csv = engine.animate(audio, BakeOptions(seed=1, style=str(tmp_path / "ref.csv")), lambda f, m: None, None)
    assert by_json.meta["style"] == "ref.json"
    assert np.abs(by_json.values - by_csv.values).max() < 0.05  # the CSV rounds values, the style stays
    with pytest.raises(FacePolicyError, match="valid presets: average"):
        engine.animate(audio, BakeOptions(style="grumpy"), lambda f, m: None, None)
    with pytest.raises(FacePolicyError, match="choose one of"):
        engine.animate(audio, BakeOptions(emotion="bored"), lambda f, m: None, None)
    with pytest.raises(FacePolicyError, match="not found"):
        engine.animate(audio, BakeOptions(style=str(tmp_path / "missing.json")), lambda f, m: None, None)


def test_missing_or_corrupt_model_files_name_the_file_and_sum(tmp_path):
    root = tmp_path / "models"
    shutil.copytree(exported_tiny(), root)
    import json

    expected = json.loads((root / "model.json").read_text())["files"]["denoiser.onnx"]
    data = bytearray((root / "denoiser.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (root / "denoiser.onnx").write_bytes(bytes(data))
    with pytest.raises(AssetError, match=rf'denoiser\.onnx" is corrupt.*{expected}'):
        NeuralPolicy(root)
    (root / "denoiser.onnx").unlink()
    with pytest.raises(AssetError, match=rf'denoiser\.onnx" is missing \(expected sha256 {expected}\)'):
        NeuralPolicy(root)
    (root / "model.json").unlink()
    with pytest.raises(AssetError, match="model.json"):
        NeuralPolicy(root)
