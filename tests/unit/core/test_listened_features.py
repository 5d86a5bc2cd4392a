"""The audio is encoded once per line: the listener's pass (core.listener.listen) keeps the encoder's features and
the sampler uses them instead of encoding the audio again, with the same states bit for bit."""

from pathlib import Path

import numpy as np
import pytest

from facepolicy.core import listener as listener_module
from facepolicy.core.audio import Audio, load_audio
from facepolicy.core.engine import BakeOptions
from facepolicy.core.phones import SIL
from facepolicy.core.sampler import NeuralPolicy, SampleSettings

ARCTIC = Path(__file__).resolve().parents[2] / "data" / "arctic"


@pytest.fixture(scope="module")
def policy():
    return NeuralPolicy()


def counting(policy, monkeypatch):
    calls = []
    original = policy.encode

    def spy(*args, **kwargs):
        calls.append(args[1:3])
        return original(*args, **kwargs)

    monkeypatch.setattr(policy, "encode", spy)
    return calls


def test_sampling_with_the_listeners_features_gives_the_same_states_without_encoding_again(policy, monkeypatch):
    a9, a7 = (load_audio(ARCTIC / f"arctic_a000{k}.wav").samples for k in (9, 7))
    x = np.concatenate([a9, a7, a9, a7, a9, a7])  # about 20 s: several groups of streams
    probs, encoded = policy.listener().listen(x, (SIL,), keep=True)
    np.testing.assert_array_equal(probs, policy.listener().phone_probs(x, (SIL,)))
    style = policy.style_preset(policy.default_style)
    calls = counting(policy, monkeypatch)
    plain = policy.sample(x, SampleSettings(seed=3), style=style)
    groups = len(calls)
    calls.clear()
    reused = policy.sample(x, SampleSettings(seed=3), style=style, encoded=encoded)
    np.testing.assert_array_equal(reused, plain)
    assert groups >= 2 and len(calls) <= 1  # only a window reaching past the audio's end is encoded again


def test_long_audio_keeps_no_features(policy, monkeypatch):
    monkeypatch.setattr(listener_module, "KEEP_SECONDS", 2.0)
    x = load_audio(ARCTIC / "arctic_a0009.wav").samples
    probs, encoded = policy.listener().listen(x, (SIL,), keep=True)
    assert encoded is None and len(probs)


@pytest.mark.parametrize("accuracy", ["fast", "accurate"])
def test_the_engine_encodes_a_line_once(accuracy, monkeypatch):
    from facepolicy.core.neural import NeuralEngine

    engine = NeuralEngine()
    calls = counting(engine.policy(), monkeypatch)
    a9, a7 = (load_audio(ARCTIC / f"arctic_a000{k}.wav").samples for k in (9, 7))
    line = Audio(np.concatenate([a9, a7, a9, a7, a9, a7]), 16000, "")  # about 20 s, no sidecar transcript
    track = engine.animate(line, BakeOptions(engine="neural", accuracy=accuracy), lambda f, m: None, None)
    # The listener's pass is the encoding; the sampler encodes again only its last window (past the audio's end).
    assert len(track.values) and len(calls) <= 1
