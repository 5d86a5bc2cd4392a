"""Helpers for the keyframe-writer and operator tests: rigs built in the test, a controllable test engine,
a scene fingerprint to prove that a failed or cancelled bake changed nothing."""

from __future__ import annotations

import threading

import bpy
import numpy as np

from facepolicy.core import engine, spec
from facepolicy.core.facetrack import FaceTrack

TEST_ENGINE = "fp_writer_test"


def make_rig(name: str = "Face", key_names=spec.ARKIT_NAMES) -> bpy.types.Object:
    """A small grid mesh with one shape key per name (each key lifts a different vertex)."""
    mesh = bpy.data.meshes.new(name)
    n = 8
    verts = [(x * 0.01, 0.0, z * 0.01) for z in range(n) for x in range(n)]
    faces = [(z * n + x, z * n + x + 1, (z + 1) * n + x + 1, (z + 1) * n + x) for z in range(n - 1)
             for x in range(n - 1)]
    mesh.from_pydata(verts, [], faces)
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.shape_key_add(name="Basis")
    for i, key_name in enumerate(key_names):
        kb = obj.shape_key_add(name=key_name, from_mix=False)
        kb.data[i % len(verts)].co.y -= 0.01
    bpy.context.view_layer.objects.active = obj
    return obj


def random_track(seconds: float = 2.0, seed: int = 0, fps: float = spec.MODEL_FPS) -> FaceTrack:
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    values = rng.random((n, spec.NUM_CHANNELS)).astype(np.float32)
    values[:, spec.NUM_ARKIT:] = (values[:, spec.NUM_ARKIT:] - 0.5) * 0.4  # radians
    return FaceTrack(fps, spec.CHANNEL_NAMES, values, {"engine": "test"})


class WriterTestEngine:
    """jawOpen follows the loudness envelope; the seed moves the smile. ``gate`` holds it until released or
    cancelled, so tests can cancel a run at a known point."""

    name = TEST_ENGINE
    features = frozenset({"transcript", "accuracy", "style", "emotion", "seed"})
    gate: threading.Event | None = None
    started = threading.Event()

    def animate(self, audio, options, progress, cancel):
        type(self).started.set()
        if self.gate is not None:
            while not self.gate.wait(0.01):
                engine.check_cancel(cancel)
        hop = audio.sample_rate // spec.MODEL_FPS
        n = max(1, len(audio.samples) // hop)
        frames = np.zeros((n, hop), np.float32)
        frames.flat[: min(n * hop, len(audio.samples))] = audio.samples[: n * hop]
        env = np.sqrt(np.mean(frames**2, axis=1))
        track = FaceTrack.zeros(n)
        track.values[:, spec.CHANNEL_INDEX["jawOpen"]] = env / max(float(env.max()), 1e-9)
        track.values[:, spec.CHANNEL_INDEX["mouthSmileLeft"]] = (options.seed % 7) / 10
        track.values[:, spec.CHANNEL_INDEX["headYaw"]] = 0.1
        track.meta["accuracy"] = options.accuracy
        if options.transcript:
            track.meta["warnings"] = [f"transcript seen: {options.transcript}"]
        for k in range(0, n, max(1, n // 4)):
            progress(k / n, "animating")
            engine.check_cancel(cancel)
        return track


def register_test_engine() -> None:
    engine.register_engine(TEST_ENGINE, __name__, "WriterTestEngine")


def write_tone(path, seconds: float = 1.0, rate: int = 16000, amplitude: float = 0.3) -> str:
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    x = amplitude * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t))
    soundfile.write(str(path), x.astype(np.float32), rate)
    return str(path)


def scene_fingerprint(scene=None) -> dict:
    """What a bake may change: actions, their keys and users, strips, assignments, the frame range."""
    from facepolicy.blender import compat

    scene = scene or bpy.context.scene
    actions = {}
    for a in bpy.data.actions:
        actions[a.name] = (a.use_fake_user, sum(len(fc.keyframe_points) for fc in compat.action_fcurves(a)))
    assigned = {}
    for ob in bpy.data.objects:
        ids = [ob] + ([ob.data.shape_keys] if ob.type == "MESH" and ob.data.shape_keys else [])
        for id_block in ids:
            action = compat.assigned_action(id_block)
            assigned[f"{id_block.id_type}:{id_block.name}"] = action.name if action else None
    strips = sorted((s.name, s.channel, int(s.frame_start)) for s in compat.all_strips(scene))
    poses = {}
    for ob in bpy.data.objects:
        poses[ob.name] = tuple(ob.delta_rotation_euler) + tuple(ob.delta_rotation_quaternion)
        if ob.type == "MESH" and ob.data.shape_keys:
            poses[ob.name] += tuple(round(kb.value, 6) for kb in ob.data.shape_keys.key_blocks)
        if ob.pose:
            poses[ob.name] += tuple(v for pb in ob.pose.bones for v in (*pb.rotation_euler, *pb.rotation_quaternion))
    return {"actions": actions, "assigned": assigned, "strips": strips, "poses": poses,
            "range": (scene.frame_start, scene.frame_end), "sounds": sorted(s.name for s in bpy.data.sounds),
            "sync": scene.sync_mode}


def can_add_sound() -> bool:
    """The 4.2 bpy wheel is built without Audaspace and cannot create sound strips."""
    return bpy.app.build_options.audaspace


def _phonetic_status() -> tuple[bool, str]:
    import importlib.util

    if importlib.util.find_spec("facepolicy.core.phonetic") is None:
        return False, "the Phonetic engine (facepolicy.core.phonetic, corpus issue) has not landed yet"
    if importlib.util.find_spec("pocketsphinx") is None:
        return False, "pocketsphinx is not installed in this environment"
    return True, ""


HAVE_PHONETIC, PHONETIC_REASON = _phonetic_status()
SPEECH_CANDIDATES = ("assets/audio", "/usr/share/pocketsphinx/test/data/librivox")


def sample_speech(repo_root):
    """A real voice line: the bundled one, else Debian's pocketsphinx-testdata clip; skips when neither exists."""
    from pathlib import Path

    import pytest

    for folder in SPEECH_CANDIDATES:
        folder = Path(repo_root, folder)
        found = sorted(folder.glob("*.wav")) + sorted(folder.glob("*.flac")) if folder.is_dir() else []
        if found:
            return found[0]
    pytest.skip("no speech clip: neither assets/audio/ nor Debian's pocketsphinx-testdata is present")


def sculpted_default_head():
    """The default head with its keys renamed to names no mapping knows: the writer must solve them by shape."""
    from facepolicy.blender.head import add_default_head

    head = add_default_head(bpy.context)
    for i, kb in enumerate(list(head.data.shape_keys.key_blocks)[1:]):
        kb.name = f"Sculpt{i:02d}"
    return head


def smooth_speech_track(seconds: float = 1.0) -> FaceTrack:
    """A plausible, smooth track: the jaw opens and closes, a smile comes and goes, one blink."""
    n = int(round(seconds * spec.MODEL_FPS))
    t = np.arange(n) / spec.MODEL_FPS
    track = FaceTrack.zeros(n)
    track.values[:, spec.CHANNEL_INDEX["jawOpen"]] = 0.5 * (1 - np.cos(2 * np.pi * 3 * t)) / 2 + 0.1
    track.values[:, spec.CHANNEL_INDEX["mouthSmileLeft"]] = 0.4 * np.sin(np.pi * t / seconds) ** 2
    track.values[:, spec.CHANNEL_INDEX["eyeBlinkLeft"]] = np.exp(-((t - seconds / 2) / 0.05) ** 2)
    return track
