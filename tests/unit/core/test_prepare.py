"""Loading ahead (core.prepare, core.engine.prepare): the Neural engine's policy and phone decoders made on threads
of their own while a bake reads its audio, handed to the engine once, and never in place of a check."""

import json
import shutil
import time

import numpy as np
import pytest

from facepolicy.core import engine, neural, prepare, sampler
from facepolicy.core.engine import BakeOptions
from facepolicy.core.errors import AssetError
from facepolicy.core.model_files import default_model_dir


@pytest.fixture
def folder(tmp_path):
    """A copy of the bundled model folder (a model folder of one's own)."""
    out = tmp_path / "model"
    shutil.copytree(default_model_dir(), out)
    return out


def test_the_prepared_policy_is_the_one_the_engine_animates_with(folder, monkeypatch):
    made = []
    real = sampler.NeuralPolicy

    class Counted(real):
        def __init__(self, *args, **kwargs):
            made.append(args)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(sampler, "NeuralPolicy", Counted)  # what core.prepare makes
    monkeypatch.setattr(neural, "NeuralPolicy", Counted)  # what the engine makes without it
    engine.prepare(BakeOptions(engine="neural", model_dir=str(folder), accuracy="fast"))
    e = neural.NeuralEngine()
    p = e.policy(model_dir=folder)
    assert isinstance(p, Counted) and len(made) == 1
    assert e.policy(model_dir=folder) is p and prepare.take_prepared(folder) is None  # handed over once
    engine.prepare(BakeOptions(engine="neural", model_dir=str(folder), accuracy="fast"))
    time.sleep(0.2)
    assert len(made) == 1  # the engine holds it warm: nothing more is made


def test_a_folder_changed_after_it_was_prepared_is_read_and_checked_again(folder):
    prepare.prepare_policy(folder)
    prepare._prepared[(folder.absolute(), "auto", 0)][1].join()  # made from the intact folder
    manifest = folder / "model.json"
    spec = json.loads(manifest.read_text())
    onnx = folder / spec["onnx"]["denoiser"]
    onnx.write_bytes(onnx.read_bytes()[:-10])  # a model exported again, half-copied: its sum is wrong
    time.sleep(0.01)
    manifest.write_text(json.dumps(spec) + "\n")
    with pytest.raises(AssetError, match="corrupt"):
        neural.NeuralEngine().policy(model_dir=folder)


def test_a_prepare_that_fails_leaves_the_error_to_the_engine(tmp_path):
    missing = tmp_path / "nothing"
    engine.prepare(BakeOptions(engine="neural", model_dir=str(missing)))
    with pytest.raises(AssetError, match="missing"):
        neural.NeuralEngine().policy(model_dir=missing)


def test_an_engine_without_a_preparer_and_a_bake_with_one_give_the_same_take(folder):
    samples = np.random.default_rng(1).normal(0, 0.05, 16000).astype(np.float32)
    from facepolicy.core.audio import Audio

    audio = Audio(samples, 16000, "")
    options = BakeOptions(engine="neural", model_dir=str(folder), accuracy="fast")
    plain = neural.NeuralEngine().animate(audio, options, lambda f, m: None, None).values
    engine.prepare(options)
    np.testing.assert_array_equal(neural.NeuralEngine().animate(audio, options, lambda f, m: None, None).values,
                                  plain)
    engine.prepare(BakeOptions(engine="phonetic"))  # nothing to prepare


def test_a_network_that_cannot_be_loaded_is_one_sentence_when_the_line_is_animated(folder):
    # The style encoder and the denoiser load beside the listening (core.later_sessions): a file that passes its
    # checksum but is no network (a broken export) is still one sentence naming it, from animate.
    import hashlib

    from facepolicy.core.audio import Audio

    manifest = folder / "model.json"
    spec = json.loads(manifest.read_text())
    onnx = folder / spec["onnx"]["denoiser"]
    onnx.write_bytes(b"not a network")
    spec["files"][spec["onnx"]["denoiser"]] = hashlib.sha256(b"not a network").hexdigest()
    manifest.write_text(json.dumps(spec))
    audio = Audio(np.zeros(16000, np.float32), 16000, "")
    with pytest.raises(AssetError, match='denoiser.onnx" could not be loaded'):
        neural.NeuralEngine().animate(audio, BakeOptions(engine="neural", model_dir=str(folder), accuracy="fast"),
                                      lambda f, m: None, None)


def test_a_network_that_failed_to_load_once_is_loaded_again_for_the_next_line(folder, monkeypatch):
    # A load that fails for a while (memory, a file being copied) must not stay with the warm engine: the next
    # line loads the folder again, as it did when the policy was made all at once.
    from facepolicy.core import later_sessions
    from facepolicy.core.audio import Audio

    real = later_sessions.create_session
    failures = []

    def flaky(path, *args):
        if path.name.startswith("denoiser") and not failures:
            failures.append(path)
            raise AssetError(f'neural model file "{path}" could not be loaded (out of memory); reinstall FacePolicy')
        return real(path, *args)

    monkeypatch.setattr(later_sessions, "create_session", flaky)
    e = neural.NeuralEngine()
    audio = Audio(np.zeros(16000, np.float32), 16000, "")
    options = BakeOptions(engine="neural", model_dir=str(folder), accuracy="fast")
    with pytest.raises(AssetError, match="out of memory"):
        e.animate(audio, options, lambda f, m: None, None)
    assert len(e.animate(audio, options, lambda f, m: None, None).values) == 30


_NATIVE_IMPORTS = r"""
import sys, threading, time
from facepolicy.core import prepare
from facepolicy.blender.worker import scene_exporter

assert "onnxruntime" not in sys.modules and "bpy" not in sys.modules
with prepare.native_imports:  # as while bpy loads for an export: the preparing thread waits to load onnxruntime
    prepare.prepare_policy()
    time.sleep(0.5)
    assert "onnxruntime" not in sys.modules, "onnxruntime loaded beside bpy"
assert prepare.take_prepared() is not None
with prepare.native_imports:  # as while onnxruntime loads: the exporter waits to load bpy
    exporter = threading.Thread(target=scene_exporter)
    exporter.start()
    time.sleep(0.5)
    assert "bpy" not in sys.modules, "bpy loaded beside onnxruntime"
exporter.join()
assert "bpy" in sys.modules
print("ok", flush=True)
import os
os._exit(0)  # bpy's destructors may crash a plain interpreter's shutdown (tests/conftest.py)
"""


def test_onnxruntime_and_bpy_never_load_at_once():
    # A bake with Blender exports hung in about one run in twelve (each thread inside its import for good) when the
    # preparing thread loaded onnxruntime while the main thread imported bpy: they load one after the other.
    import subprocess
    import sys

    pytest.importorskip("bpy")
    done = subprocess.run([sys.executable, "-c", _NATIVE_IMPORTS], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
