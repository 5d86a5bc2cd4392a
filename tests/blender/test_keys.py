"""The keyframe writer: takes, frame rates, channel toggles, head rotation, rigs, rollback (bpy 5.0 and 4.2)."""

import math

import numpy as np
import pytest

pytestmark = pytest.mark.blender

bpy = pytest.importorskip("bpy")
mathutils = pytest.importorskip("mathutils")

from fp_bake_helpers import (  # noqa: E402
    can_add_sound,
    make_rig,
    random_track,
    scene_fingerprint,
    sculpted_default_head,
    smooth_speech_track,
    write_tone,
)

from facepolicy.blender import compat, keys, rig_report, sound  # noqa: E402
from facepolicy.core import spec  # noqa: E402
from facepolicy.core.errors import RigError  # noqa: E402

FPS_CASES = {  # label → (fps, fps_base)
    "23.976": (24, 1.001), "24": (24, 1.0), "25": (25, 1.0), "29.97": (30, 1.001), "30": (30, 1.0),
    "50": (50, 1.0), "60": (60, 1.0),
}


def key_curves(obj, action=None):
    key = obj.data.shape_keys
    action = action or key.animation_data.action
    return {fc.data_path: fc for fc in compat.action_fcurves(action, key)}


@pytest.mark.parametrize("label", list(FPS_CASES))
def test_key_count_matches_duration_at_scene_fps(clean_scene, label):
    scene = clean_scene
    scene.render.fps, scene.render.fps_base = FPS_CASES[label]
    fps = scene.render.fps / scene.render.fps_base
    obj = make_rig()
    track = random_track(seconds=3.0)
    result = keys.write_face_track_to_action(obj, track, keys.WriteOptions(start_frame=11, audio_name="line"))
    n = round(3.0 * fps)
    curves = key_curves(obj)
    assert len(curves) == spec.NUM_ARKIT
    for fc in curves.values():
        assert len(fc.keyframe_points) == n
    jaw = curves['key_blocks["jawOpen"].value']
    co = np.empty(2 * n, np.float32)
    jaw.keyframe_points.foreach_get("co", co)
    np.testing.assert_array_equal(co[0::2], np.arange(n) + 11)
    # Resampled, not stretched: key k carries the motion at time k / fps.
    expected = track.resample(fps).channel("jawOpen")
    np.testing.assert_allclose(co[1::2], expected, atol=1e-6)
    assert (scene.frame_start, scene.frame_end) == (11, 11 + n - 1) == (result.frame_start, result.frame_end)
    assert result.n_keys == n
    scene.frame_set(11 + n // 2)
    assert obj.data.shape_keys.key_blocks["jawOpen"].value == pytest.approx(expected[n // 2], abs=1e-5)


def test_bake_on_the_default_head(clean_scene):
    from facepolicy.blender.head import add_default_head

    head = add_default_head(bpy.context)
    track = random_track(seconds=2.0)
    result = keys.write_face_track_to_action(head, track, keys.WriteOptions(audio_name="line"))
    curves = key_curves(head)
    assert {p.split('"')[1] for p in curves} == set(spec.ARKIT_NAMES)
    assert not any("no matching shape key" in w for w in result.warnings), result.warnings
    fps = keys.scene_fps(bpy.context.scene)
    bpy.context.scene.frame_set(20)
    kb = head.data.shape_keys.key_blocks
    for name in ("jawOpen", "eyeBlinkLeft", "mouthSmileRight"):
        assert kb[name].value == pytest.approx(track.resample(fps).channel(name)[19], abs=1e-5)


def test_take_naming_slot_and_second_take_keeps_first(clean_scene):
    obj = make_rig("Face")
    first = keys.write_face_track_to_action(obj, random_track(seed=1), keys.WriteOptions(audio_name="hello"))
    second = keys.write_face_track_to_action(obj, random_track(seed=2), keys.WriteOptions(audio_name="hello"))
    assert first.action.name == "Face · hello · take 1"
    assert second.action.name == "Face · hello · take 2"
    assert first.action.name in bpy.data.actions and first.action.use_fake_user
    assert obj.data.shape_keys.animation_data.action == second.action
    assert keys.list_takes(obj) == [first.action, second.action]
    if compat.SLOTTED_ACTIONS:
        slot = obj.data.shape_keys.animation_data.action_slot
        assert slot is not None and slot.target_id_type == "KEY"
        assert not hasattr(second.action, "fcurves") or bpy.app.version < (5, 0)
    # Switch back to take 1: the key plays take 1's values again.
    keys.use_take(obj, first.action)
    assert obj.data.shape_keys.animation_data.action == first.action
    bpy.context.scene.frame_set(5)
    assert obj.data.shape_keys.key_blocks["jawOpen"].value == pytest.approx(
        random_track(seed=1).resample(keys.scene_fps(bpy.context.scene)).channel("jawOpen")[4], abs=1e-5)
    # A different line starts its own numbering.
    other = keys.write_face_track_to_action(obj, random_track(), keys.WriteOptions(audio_name="bye"))
    assert other.action.name == "Face · bye · take 1"


def test_a_long_take_writes_every_frame(clean_scene):
    """Ten minutes at 60 fps: one array per curve, so memory stays proportional to the take."""
    clean_scene.render.fps = 60
    obj = make_rig(key_names=("jawOpen", "eyeBlinkLeft"))
    track = random_track(seconds=600.0)
    result = keys.write_face_track_to_action(obj, track, keys.WriteOptions(channels=frozenset({"lips", "blinks"})))
    assert result.n_keys == 36000 and result.frame_end == 36000
    assert all(len(fc.keyframe_points) == 36000 for fc in key_curves(obj).values())


def test_long_names_are_shortened_to_fit(clean_scene):
    obj = make_rig("F" * 40)
    result = keys.write_face_track_to_action(obj, random_track(0.5), keys.WriteOptions(audio_name="ä" * 200))
    assert result.action.name.endswith(" · take 1")
    assert len(result.action.name.encode()) <= compat.ID_NAME_MAX_BYTES


def test_existing_keyframes_get_a_new_take_never_an_overwrite(clean_scene):
    obj = make_rig()
    key = obj.data.shape_keys
    key.key_blocks["jawOpen"].value = 0.7
    key.key_blocks["jawOpen"].keyframe_insert("value", frame=1)
    mine = key.animation_data.action
    mine_keys = [tuple(k.co) for fc in compat.action_fcurves(mine) for k in fc.keyframe_points]
    result = keys.write_face_track_to_action(obj, random_track(), keys.WriteOptions(audio_name="x"))
    assert result.action != mine and mine.name in bpy.data.actions
    assert mine.use_fake_user, "the user's own action must survive the file being saved"
    assert [tuple(k.co) for fc in compat.action_fcurves(mine) for k in fc.keyframe_points] == mine_keys
    assert any("kept your action" in w for w in result.warnings)


def test_channel_toggles_and_region_intensity(clean_scene):
    obj = make_rig()
    track = random_track()
    options = keys.WriteOptions(channels=frozenset({"lips", "blinks"}), intensity={"mouth": 0.5})
    keys.write_face_track_to_action(obj, track, options)
    names = {p.split('"')[1] for p in key_curves(obj)}
    assert names == set(spec.TOGGLE_GROUPS["lips"]) | set(spec.TOGGLE_GROUPS["blinks"])
    jaw = np.array([k.co[1] for k in key_curves(obj)['key_blocks["jawOpen"].value'].keyframe_points])
    expected = track.resample(keys.scene_fps(bpy.context.scene)).channel("jawOpen") * 0.5
    np.testing.assert_allclose(jaw, expected, atol=1e-6)


def test_smoothing_reduces_frame_to_frame_change(clean_scene):
    track = random_track(seconds=4.0)
    rough = keys.shape_track(track, 30.0, keys.WriteOptions()).channel("jawOpen")
    smooth = keys.shape_track(track, 30.0, keys.WriteOptions(smoothing=1.0)).channel("jawOpen")
    assert np.mean(np.abs(np.diff(smooth))) < 0.5 * np.mean(np.abs(np.diff(rough)))
    assert smooth.mean() == pytest.approx(rough.mean(), abs=0.02)


def test_renamed_keys_rig_by_name_and_by_the_users_mapping(clean_scene):
    renamed = {"jawOpen": "Jaw_Open", "mouthClose": "mouth-close", "eyeBlinkLeft": "EyeBlink_L",
               "mouthSmileLeft": "Mouth_Smile_L"}
    obj = make_rig("Custom", list(renamed.values()) + ["MySculpt", "Unrelated"])
    obj[rig_report.PROP_KEY_MAP] = '{"MySculpt": "browInnerUp"}'
    track = random_track()
    result = keys.write_face_track_to_action(obj, track)
    # "Unrelated" matches no name, so the channels no name covers are solved over it (core.rigtrack's one rule)
    written = set(renamed.values()) | {"MySculpt", "Unrelated"}
    curves = key_curves(obj)
    assert set(curves) == {f'key_blocks["{v}"].value' for v in written}
    fps = keys.scene_fps(bpy.context.scene)
    for channel, key_name in list(renamed.items()) + [("browInnerUp", "MySculpt")]:
        got = [k.co[1] for k in curves[f'key_blocks["{key_name}"].value'].keyframe_points]
        np.testing.assert_allclose(got, track.resample(fps).channel(channel), atol=1e-6)
    assert any("channels no key name covers were solved" in w for w in result.warnings)
    obj[rig_report.PROP_KEY_MAP] = {"MySculpt": "browInnerUp", "Unrelated": "cheekPuff"}  # a dict works as JSON does
    assert rig_report.mapping_for_object(obj).key_map()["cheekPuff"] == "Unrelated"


def test_a_rig_whose_names_match_nothing_is_solved_by_shape(clean_scene):
    """The default head with anonymous key names: the geometric solve must recover the weights from the shapes."""
    head = sculpted_default_head()
    track = smooth_speech_track()
    result = keys.write_face_track_to_action(head, track, keys.WriteOptions(channels=frozenset({"lips", "blinks"})))
    assert any("solved from their shapes" in w for w in result.warnings), result.warnings
    curves = key_curves(head)
    fps = keys.scene_fps(bpy.context.scene)
    expected = track.resample(fps)
    for channel in ("jawOpen", "mouthSmileLeft", "eyeBlinkLeft"):
        name = f"Sculpt{spec.ARKIT_NAMES.index(channel):02d}"
        got = np.array([k.co[1] for k in curves[f'key_blocks["{name}"].value'].keyframe_points])
        rms = float(np.sqrt(np.mean((got - expected.channel(channel)) ** 2)))
        assert rms < 0.05, (channel, rms)


def test_values_are_clamped_to_the_key_slider_range(clean_scene):
    obj = make_rig()
    obj.data.shape_keys.key_blocks["jawOpen"].slider_max = 0.5
    track = random_track()
    track.values[:, spec.CHANNEL_INDEX["jawOpen"]] = 0.9
    keys.write_face_track_to_action(obj, track)
    assert {k.co[1] for k in key_curves(obj)['key_blocks["jawOpen"].value'].keyframe_points} == {0.5}


def _armature_with_head_bone():
    arm = bpy.data.armatures.new("Rig")
    ob = bpy.data.objects.new("Rig", arm)
    bpy.context.scene.collection.objects.link(ob)
    bpy.context.view_layer.objects.active = ob
    bpy.ops.object.mode_set(mode="EDIT")
    neck = arm.edit_bones.new("neck")
    neck.head, neck.tail = (0, 0, 1.4), (0, 0, 1.5)
    head = arm.edit_bones.new("head")
    head.head, head.tail, head.parent = (0, 0, 1.5), (0, 0, 1.7), neck
    head.roll = 0.3  # an arbitrary roll: the writer must work in the bone's own rest frame
    bpy.ops.object.mode_set(mode="OBJECT")
    return ob


@pytest.mark.parametrize("mode", ["XYZ", "QUATERNION"])
def test_head_rotation_onto_a_bone(clean_scene, mode):
    face = make_rig()
    rig = _armature_with_head_bone()
    rig.pose.bones["head"].rotation_mode = mode
    track = random_track(1.0)
    yaw, pitch, roll = 0.3, 0.2, -0.1
    for name, v in zip(spec.HEAD_NAMES, (yaw, pitch, roll), strict=True):
        track.values[:, spec.CHANNEL_INDEX[name]] = v
    options = keys.WriteOptions(head_target=keys.HeadTarget(rig, "head"))
    result = keys.write_face_track_to_action(face, track, options)
    assert result.head_action is not None
    assert (result.head_action == result.action) == compat.SLOTTED_ACTIONS
    bpy.context.scene.frame_set(10)
    bone = rig.pose.bones["head"]
    rest = bone.bone.matrix_local.to_quaternion()
    posed = bone.matrix.to_quaternion()  # armature space
    turned = posed @ rest.inverted()
    expected = mathutils.Euler((pitch, -roll, yaw), "YXZ").to_quaternion()
    assert abs(turned.dot(expected)) == pytest.approx(1.0, abs=1e-5)
    # Positive yaw turns the face (looking along −Y) toward the character's left (+X).
    face_dir = turned @ mathutils.Vector((0, -1, 0))
    assert face_dir.x > 0.2
    # Switching takes switches the head too.
    second = keys.write_face_track_to_action(face, random_track(1.0), options)
    keys.use_take(face, result.action)
    assert compat.assigned_action(rig) == result.head_action
    assert second.take == 2
    # Deleting the active take leaves the other one playing, head included, and no stray head action.
    keys.remove_take(face, result.action)
    assert compat.assigned_action(face.data.shape_keys) == second.action
    assert compat.assigned_action(rig) == second.head_action
    assert {a.name for a in bpy.data.actions} == {second.action.name, second.head_action.name}


def test_head_rotation_onto_the_object_uses_delta_rotation(clean_scene):
    face = make_rig()
    face.rotation_euler = (0, 0, math.pi)  # the user turned the head around; yaw must still mean yaw
    track = random_track(1.0)
    track.values[:, spec.CHANNEL_INDEX["headYaw"]] = 0.25
    track.values[:, spec.CHANNEL_INDEX["headPitch"]] = 0.0
    track.values[:, spec.CHANNEL_INDEX["headRoll"]] = 0.0
    track.values[:, spec.CHANNEL_INDEX["headPitch"]] = 0.15
    keys.write_face_track_to_action(face, track, keys.WriteOptions(head_target=keys.HeadTarget(face)))
    bpy.context.scene.frame_set(5)
    assert face.rotation_euler.z == pytest.approx(math.pi)  # the user's own rotation is left alone
    world = face.matrix_world.to_quaternion()
    own = mathutils.Euler((0, 0, math.pi)).to_quaternion()
    local_turn = own.inverted() @ world
    expected = mathutils.Euler((0.15, 0.0, 0.25), "YXZ").to_quaternion()
    assert abs(local_turn.dot(expected)) == pytest.approx(1.0, abs=1e-5)


def test_head_rotation_skips_a_target_that_plays_the_users_action(clean_scene):
    face = make_rig()
    rig = _armature_with_head_bone()
    rig.location.x = 1
    rig.keyframe_insert("location", frame=1)
    walk = rig.animation_data.action
    result = keys.write_face_track_to_action(
        face, random_track(1.0), keys.WriteOptions(head_target=keys.HeadTarget(rig, "head")))
    assert compat.assigned_action(rig) == walk
    assert any("head rotation skipped" in w for w in result.warnings)


def test_bad_targets_raise_and_change_nothing(clean_scene, tmp_path):
    plain = bpy.data.objects.new("Plain", bpy.data.meshes.new("Plain"))
    bpy.context.scene.collection.objects.link(plain)
    cases = {"no shape keys": plain, "not a mesh": bpy.data.objects.new("Empty", None), "nothing": None}
    shared = make_rig("Shared")
    twin = bpy.data.objects.new("Twin", shared.data)
    bpy.context.scene.collection.objects.link(twin)
    cases["shared shape keys"] = shared
    before = scene_fingerprint()
    for label, obj in cases.items():
        with pytest.raises(RigError):
            keys.write_face_track_to_action(obj, random_track(0.5))
        assert scene_fingerprint() == before, label
    with pytest.raises(RigError, match="shares its mesh"):
        keys.check_target(shared)


def test_edit_mode_is_refused(clean_scene):
    obj = make_rig()
    bpy.ops.object.mode_set(mode="EDIT")
    before = scene_fingerprint()
    with pytest.raises(RigError, match="Edit Mode"):
        keys.write_face_track_to_action(obj, random_track(0.5))
    assert scene_fingerprint() == before
    bpy.ops.object.mode_set(mode="OBJECT")


def test_linked_and_override_objects_are_refused(clean_scene, tmp_path):
    make_rig("LibFace")
    lib = tmp_path / "lib.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(lib))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    with bpy.data.libraries.load(str(lib), link=True) as (src, dst):
        dst.objects = ["LibFace"]
    linked = dst.objects[0]
    bpy.context.scene.collection.objects.link(linked)
    with pytest.raises(RigError, match="linked"):
        keys.write_face_track_to_action(linked, random_track(0.5))
    override = linked.override_create()
    with pytest.raises(RigError, match="override|linked"):
        keys.check_target(override)
    assert not bpy.data.actions


def test_failed_write_rolls_back(clean_scene):
    obj = make_rig()
    obj.data.shape_keys.key_blocks["jawOpen"].value = 0.1
    obj.data.shape_keys.key_blocks["jawOpen"].keyframe_insert("value", frame=3)
    before = scene_fingerprint()
    from facepolicy.core.rig import build_mapping

    stale = build_mapping(["Basis", "jawOpen", "mouthClose", "ghostKey"], overrides={"ghostKey": "mouthFunnel"})
    with pytest.raises(KeyError):  # a mapping that names a key the mesh lost: fails after curves were made
        keys.write_face_track_to_action(obj, random_track(), keys.WriteOptions(mapping=stale))
    assert scene_fingerprint() == before
    fresh = make_rig("Fresh")
    with pytest.raises(KeyError):
        keys.write_face_track_to_action(fresh, random_track(), keys.WriteOptions(mapping=stale))
    assert fresh.data.shape_keys.animation_data is None


def test_action_round_trips_to_a_face_track(clean_scene):
    obj = make_rig()
    track = random_track(1.0)
    result = keys.write_face_track_to_action(obj, track)
    back = keys.action_to_face_track(result.action, 24.0)
    expected = track.resample(keys.scene_fps(bpy.context.scene))
    np.testing.assert_allclose(back.values[:, : spec.NUM_ARKIT], expected.values[:, : spec.NUM_ARKIT], atol=1e-5)


def test_sound_strip_replaces_only_facepolicys_strip_for_that_object(clean_scene, tmp_path):
    if not can_add_sound():
        strip, warning = sound.add_sound_strip(clean_scene, "Face", write_tone(tmp_path / "a.wav"), 1)
        assert strip is None and "sound strip was not added" in warning
        assert not compat.all_strips(clean_scene)
        pytest.skip("this bpy build has no audio (Audaspace); the warning path was checked instead")
    scene = clean_scene
    a, b = write_tone(tmp_path / "a.wav", 1.0), write_tone(tmp_path / "b.wav", 2.0)
    user = compat.new_sound_strip(scene, "music", a, 1, 1)
    first, _ = sound.add_sound_strip(scene, "Face", a, 1)
    first_name = first.name  # the strip is removed below: reading its RNA afterwards reads freed memory
    other, _ = sound.add_sound_strip(scene, "Other", a, 1)
    second, _ = sound.add_sound_strip(scene, "Face", b, 5)
    names = {s.name for s in compat.all_strips(scene)}
    assert user.name in names and other.name in names and second.name in names
    assert len(sound.facepolicy_strips(scene, "Face")) == 1
    assert int(second.frame_start) == 5
    assert second.frame_final_duration == round(2.0 * keys.scene_fps(scene))
    assert scene.sync_mode == "AUDIO_SYNC"
    chans = [(s.channel, s.frame_final_start, s.frame_final_end) for s in compat.all_strips(scene)]
    for i, (c, s0, e0) in enumerate(chans):  # no two strips overlap on a channel
        assert not any(c == c2 and s0 < e1 and s1 < e0 for j, (c2, s1, e1) in enumerate(chans) if j != i)
    assert [s.name for s in sound.facepolicy_strips(scene, "Face")] == [second.name]
    assert first_name not in names or first_name == second.name
