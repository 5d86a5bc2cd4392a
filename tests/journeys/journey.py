"""Journey helpers: a user's paths through the public surfaces (the console script in a subprocess, operators in
the real bpy module, the files parsed after writing). Nothing here reaches into the engines' internals."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
ARCTIC = ROOT / "tests" / "data" / "arctic"
DEMO_WAV = ROOT / "assets" / "audio" / "demo" / "dashwood.wav"


def console_script() -> str:
    """The installed `facepolicy` console script next to this interpreter (what a user types)."""
    beside = Path(sys.executable).parent / "facepolicy"
    found = str(beside) if beside.exists() else shutil.which("facepolicy")
    if not found:
        pytest.fail("the facepolicy console script is not installed (bash run.sh test installs it)")
    return found


def facepolicy(*args, cwd=None, timeout: float = 600, stdin=None,
               env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `facepolicy ARGS…` as a user would (``env``: variables set on top of this environment); output is captured
    as text."""
    return subprocess.run([console_script(), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                          env=None if env is None else {**os.environ, **env})


def espeak(path: Path, text: str, voice: str = "en-us", speed: int | None = None) -> Path:
    """A TTS line as a game studio would make one (espeak-ng, a training-data tool: never bundled)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (bash run.sh test installs it)")
    cmd = ["espeak-ng", "-v", voice, "-w", str(path)]
    if speed:
        cmd += ["-s", str(speed)]
    subprocess.run(cmd + [text], check=True, capture_output=True)
    return path


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    sf.write(str(path), np.asarray(samples, np.float32), rate, subtype="PCM_16")
    return path


@contextlib.contextmanager
def default_head_with_audio(audio: Path):
    """The add-on registered in a fresh scene, the bundled head added (Add › FacePolicy Head) and chosen as the target
    with ``audio`` as the audio file, as an animator sets up Animate from Audio: yields (head object, the panel's
    settings); unregistered afterwards."""
    bpy = pytest.importorskip("bpy")
    import facepolicy as addon

    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon.register()
    try:
        assert bpy.ops.facepolicy.add_default_head() == {"FINISHED"}
        obj = bpy.context.active_object
        settings = bpy.context.scene.facepolicy
        settings.target, settings.audio_path = obj, str(audio)
        yield obj, settings
    finally:
        addon.unregister()
        bpy.ops.wm.read_factory_settings(use_empty=True)
