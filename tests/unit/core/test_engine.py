"""The engine contract: the registry, and ``animate`` for an Audio or a path, with progress and cancellation."""

import threading

import numpy as np
import pytest
import soundfile

from facepolicy.core import engine, spec
from facepolicy.core.audio import from_array
from facepolicy.core.engine import BakeOptions, animate, get_engine, register_engine
from facepolicy.core.errors import Cancelled, FacePolicyError
from facepolicy.core.facetrack import FaceTrack

RATE = spec.SAMPLE_RATE


class LoudnessEngine:
    """jawOpen follows the loudness of each frame; the channels come back in reverse order, as an engine may."""

    name = "loudness"
    made = 0
    calls: list = []

    def __init__(self):
        type(self).made += 1

    def animate(self, audio, options, progress, cancel):
        type(self).calls.append((audio, options))
        progress(0.5, "listening")
        engine.check_cancel(cancel)
        hop = audio.sample_rate // spec.MODEL_FPS
        n = len(audio.samples) // hop
        track = FaceTrack.zeros(n, names=spec.CHANNEL_NAMES[::-1])
        rms = np.sqrt(np.mean(audio.samples[: n * hop].reshape(n, hop) ** 2, axis=1))
        track.values[:, track.names.index("jawOpen")] = rms / rms.max()
        track.meta["seed"] = "the engine's own"
        if options.transcript == "cancel while working":
            cancel.set()  # as the user's Cancel button would, while the engine runs
        return track


@pytest.fixture
def loudness(monkeypatch):
    monkeypatch.setitem(engine.ENGINES, LoudnessEngine.name, (__name__, "LoudnessEngine"))
    monkeypatch.setattr(engine, "_instances", {})
    monkeypatch.setattr(LoudnessEngine, "made", 0)
    monkeypatch.setattr(LoudnessEngine, "calls", [])
    return LoudnessEngine


def speech_like(seconds=1.0):
    """Half a second of a loud tone, then a quieter one: the jaw must open more in the first half."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * 150 * t) * np.where(t < seconds / 2, 0.5, 0.1)).astype(np.float32)


def test_register_engine_adds_an_engine_made_once(monkeypatch):
    monkeypatch.setattr(engine, "ENGINES", dict(engine.ENGINES))
    monkeypatch.setattr(engine, "_instances", {})
    monkeypatch.setattr(LoudnessEngine, "made", 0)
    register_engine("loud2", __name__, "LoudnessEngine")
    first = get_engine("loud2")
    assert isinstance(first, LoudnessEngine) and get_engine("loud2") is first and LoudnessEngine.made == 1
    assert {"neural", "phonetic"} <= set(engine.ENGINES)  # the two shipped engines stay registered


def test_an_unknown_engine_is_one_sentence_naming_the_engines_there_are(loudness):
    with pytest.raises(FacePolicyError) as err:
        animate(from_array(speech_like(), RATE), BakeOptions(engine="nuerla"))
    message = str(err.value)
    assert message.startswith("unknown engine 'nuerla'") and "\n" not in message
    assert all(name in message for name in ("neural", "phonetic", "loudness"))
    assert loudness.calls == []


def test_an_engine_that_is_not_shipped_says_why(loudness, monkeypatch):
    monkeypatch.setitem(engine.NOT_SHIPPED, "retired", "the retired engine was removed in 0.2")
    with pytest.raises(FacePolicyError, match=r"^the retired engine was removed in 0\.2; available: .*loudness"):
        get_engine("retired")


def test_animate_an_audio(loudness):
    audio = from_array(speech_like(), RATE, source="/takes/hello.wav")
    seen = []
    track = animate(audio, BakeOptions(engine="loudness", seed=3), progress=lambda f, m: seen.append((f, m)))
    assert track.names == spec.CHANNEL_NAMES  # canonical order whatever the engine returned
    jaw = track.channel("jawOpen")
    assert len(jaw) == spec.MODEL_FPS and jaw[:15].mean() > 3 * jaw[15:].mean()
    assert loudness.calls[0][0] is audio and seen == [(0.5, "listening")]
    # The engine's own meta wins; what it leaves out is filled in.
    assert track.meta["seed"] == "the engine's own"
    assert track.meta["engine"] == "loudness" and track.meta["audio"] == "hello.wav"


@pytest.mark.parametrize("as_text", [False, True])
def test_animate_a_path_loads_it_at_the_model_rate(loudness, tmp_path, as_text):
    path = tmp_path / "line 1.flac"
    t = np.arange(int(0.5 * 44100)) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 200 * t)], axis=1) * 0.3
    soundfile.write(path, stereo, 44100)
    track = animate(str(path) if as_text else path, BakeOptions(engine="loudness"))
    audio = loudness.calls[0][0]
    assert audio.sample_rate == RATE and audio.samples.ndim == 1 and audio.original_rate == 44100
    assert track.n_frames == 15 and track.meta["audio"] == "line 1.flac"
    assert loudness.calls[0][1].engine == "loudness"  # default options but for the engine asked for


def test_animate_a_file_that_is_not_audio_names_it(loudness, tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("not a wave file", encoding="utf-8")
    with pytest.raises(FacePolicyError, match="notes.wav"):
        animate(path, BakeOptions(engine="loudness"))
    assert loudness.calls == []


def test_cancel_before_the_engine_starts(loudness):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        animate(from_array(speech_like(), RATE), BakeOptions(engine="loudness"), cancel=cancel)
    assert loudness.calls == []


def test_cancel_while_the_engine_works_discards_its_track(loudness):
    cancel = threading.Event()
    with pytest.raises(Cancelled):
        animate(from_array(speech_like(), RATE), BakeOptions(engine="loudness", transcript="cancel while working"),
                cancel=cancel)
    assert len(loudness.calls) == 1


def test_an_engine_that_checks_cancel_stops_there(loudness):
    class Stopping(threading.Event):
        """Set by the time the engine checks it, as after a click on Cancel while the engine listens."""

        def is_set(self):
            return bool(loudness.calls)

    with pytest.raises(Cancelled):
        animate(from_array(speech_like(), RATE), BakeOptions(engine="loudness"), cancel=Stopping())
