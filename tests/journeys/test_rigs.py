"""The user's own character moves: a FLAME head imported with File › Import › FLAME Model, and a viseme rig with one
ARKit-like key, animated with Animate from Audio (the real operator, the default engine, a real voice) and baked
headless into a .blend with `facepolicy bake --blend … --object …`. What is asserted is what an animator sees:
which of their keys move, and what the rig report says the bake will do."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from journey import ARCTIC, facepolicy

pytestmark = pytest.mark.blender
bpy = pytest.importorskip("bpy")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
flame_synthetic = pytest.importorskip("flame_synthetic")

VOICE = ARCTIC / "arctic_a0009.wav"  # a real ARCTIC line: "There was a change now in his voice."
MOVES = 0.02  # a key whose curve spans less than this is, to the eye, not animated
# The viseme rig: each key is a pose of the default head, as an artist would sculpt it.
VISEMES = {"AA": {"jawOpen": 0.7, "mouthLowerDownLeft": 0.3, "mouthLowerDownRight": 0.3},
           "EE": {"jawOpen": 0.2, "mouthStretchLeft": 0.6, "mouthStretchRight": 0.6},
           "OH": {"jawOpen": 0.4, "mouthFunnel": 0.8},
           "OU": {"jawOpen": 0.1, "mouthPucker": 0.9},
           "MBP": {"mouthClose": 0.3, "mouthPressLeft": 0.6, "mouthPressRight": 0.6},
           "FV": {"mouthRollLower": 0.7, "mouthUpperUpLeft": 0.2, "mouthUpperUpRight": 0.2},
           "Blink": {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}}


@pytest.fixture
def addon():
    import facepolicy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    facepolicy.register()
    yield bpy.context.scene
    facepolicy.unregister()
    bpy.ops.wm.read_factory_settings(use_empty=True)


def moving_keys(obj) -> dict[str, float]:
    """Shape key → how far its curve travels in the active take."""
    from facepolicy.blender import compat

    action = obj.data.shape_keys.animation_data.action
    out = {}
    for fc in compat.action_fcurves(action):
        values = [k.co[1] for k in fc.keyframe_points]
        out[fc.data_path.split('"')[1]] = max(values) - min(values)
    return out


def import_flame(tmp_path) -> bpy.types.Object:
    path = tmp_path / "generic_model.pkl"
    flame_synthetic.write_synthetic_flame(path)
    assert bpy.ops.facepolicy.import_flame(filepath=str(path)) == {"FINISHED"}
    return bpy.context.active_object


def viseme_rig() -> bpy.types.Object:
    """Visemes plus a Blink key, sculpted from the default head's ARKit shapes; the ARKit keys are then removed."""
    assert bpy.ops.facepolicy.add_default_head() == {"FINISHED"}
    obj = bpy.context.active_object
    blocks = obj.data.shape_keys.key_blocks
    arkit = [b.name for b in blocks[1:]]
    for name, pose in VISEMES.items():
        for key, value in pose.items():
            blocks[key].value = value
        obj.shape_key_add(name=name, from_mix=True).value = 0.0  # a key made by the API starts at 1
        for key in pose:
            blocks[key].value = 0.0
    for name in arkit:
        obj.shape_key_remove(blocks[name])
    obj.name = "Visemes"
    return obj


def animate(scene, obj, audio: Path) -> None:
    settings = scene.facepolicy
    settings.target = obj
    settings.audio_path = str(audio)
    assert bpy.ops.facepolicy.animate_from_audio() == {"FINISHED"}


def test_a_flame_head_moves_with_its_expressions_not_only_its_jaw(addon, tmp_path):
    from facepolicy.blender.rig_report import report_rows

    obj = import_flame(tmp_path)
    keys = [b.name for b in obj.data.shape_keys.key_blocks[1:]]
    rows, method = report_rows(obj)
    assert method == "name + solve"
    assert {how for ch, _, how in rows if ch != "jawOpen"} == {"solve"}  # the report says what the bake will do
    animate(addon, obj, VOICE)
    moved = [k for k, span in moving_keys(obj).items() if span > MOVES]
    assert "jawOpen" in moved
    assert len(moved) >= len(keys) // 2, f"only {len(moved)} of {len(keys)} FLAME keys move: {moved}"


def test_a_viseme_rig_with_one_arkit_like_key_moves_its_mouth(addon):
    from facepolicy.blender.rig_report import report_rows

    obj = viseme_rig()
    rows, method = report_rows(obj)
    assert method == "name + solve"
    how = {ch: (key, h) for ch, key, h in rows}
    assert how["eyeBlinkLeft"] == ("Blink", "exact") or how["eyeBlinkLeft"][0] == "Blink"
    assert how["jawOpen"][1] == "solve"
    animate(addon, obj, VOICE)
    spans = moving_keys(obj)
    mouth = {k: spans.get(k, 0.0) for k in ("AA", "EE", "OH", "OU", "MBP", "FV")}
    assert sum(span > MOVES for span in mouth.values()) >= 4, mouth
    assert max(spans["AA"], spans["OH"]) > 0.2, mouth  # the mouth visibly opens on the vowels


def test_flame_baked_headless_into_a_blend_moves_its_expressions(addon, tmp_path):
    obj = import_flame(tmp_path)
    name, n_keys = obj.name, len(obj.data.shape_keys.key_blocks) - 1
    scene_file = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(scene_file))
    out = tmp_path / "out"
    done = facepolicy("bake", VOICE, "--blend", scene_file, "--object", name, "--format", "blend", "-o", out)
    assert done.returncode == 0, done.stdout + done.stderr
    blend = out / f"{VOICE.stem}.blend"
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    baked = bpy.data.objects[name]
    moved = [k for k, span in moving_keys(baked).items() if span > MOVES]
    assert len(moved) >= n_keys // 2, f"only {len(moved)} of {n_keys} FLAME keys move: {moved}"
