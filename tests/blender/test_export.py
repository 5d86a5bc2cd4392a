"""blender.export: the FBX, glTF binary and .blend a bake writes, checked by parsing and re-importing the files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from facepolicy.blender import compat, export  # noqa: E402
from facepolicy.core import batch, spec  # noqa: E402
from facepolicy.core.errors import FacePolicyError  # noqa: E402
from facepolicy.core.facetrack import FaceTrack  # noqa: E402

pytestmark = pytest.mark.blender

KEYS = ("jawOpen", "mouthClose", "eyeBlinkLeft", "browInnerUp", "mouthSmileRight")
FBX_SECOND = 46186158000  # FBX time units per second
N_FRAMES = 45


def make_track(n=N_FRAMES, fps=30.0) -> FaceTrack:
    t = np.arange(n) / fps
    track = FaceTrack.zeros(n, fps=fps)
    track.values[:, spec.CHANNEL_INDEX["jawOpen"]] = 0.5 + 0.45 * np.sin(2 * np.pi * 2.0 * t)
    track.values[:, spec.CHANNEL_INDEX["mouthClose"]] = np.linspace(0, 1, n)
    track.values[:, spec.CHANNEL_INDEX["eyeBlinkLeft"]] = (np.arange(n) % 15 < 3).astype(np.float32)
    track.values[:, spec.CHANNEL_INDEX["browInnerUp"]] = 0.3 * np.cos(2 * np.pi * 0.7 * t) ** 2
    track.values[:, spec.CHANNEL_INDEX["mouthSmileRight"]] = 0.123
    track.values[:, spec.CHANNEL_INDEX["headYaw"]] = 0.2 * np.sin(2 * np.pi * 0.5 * t)
    track.values[:, spec.CHANNEL_INDEX["headPitch"]] = 0.1 * np.sin(2 * np.pi * 0.9 * t)
    return track


def build_rig_blend(path: Path) -> Path:
    """A small character .blend: a face mesh with five ARKit shape keys, and a prop without keys."""
    import bmesh

    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True, load_ui=False)
    me = bpy.data.meshes.new("FaceMesh")
    bm = bmesh.new()
    bmesh.ops.create_uvsphere(bm, u_segments=12, v_segments=8, radius=0.1)
    bm.to_mesh(me)
    bm.free()
    face = bpy.data.objects.new("Face", me)
    bpy.context.scene.collection.objects.link(face)
    face.shape_key_add(name="Basis")
    for i, name in enumerate(KEYS):
        kb = face.shape_key_add(name=name)
        co = np.empty(len(me.vertices) * 3, np.float32)
        kb.data.foreach_get("co", co)
        co[i % 3::3] += 0.01 * (i + 1)
        kb.data.foreach_set("co", co)
    prop = bpy.data.objects.new("Prop", bpy.data.meshes.new("PropMesh"))
    bpy.context.scene.collection.objects.link(prop)
    bpy.context.view_layer.objects.active = prop
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


@pytest.fixture(scope="module")
def rig(tmp_path_factory) -> Path:
    return build_rig_blend(tmp_path_factory.mktemp("rig") / "rig.blend")


def bake(tmp_path, rig, formats, tracks=None, **opts_kw):
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=formats, blend=str(rig), **opts_kw)
    row = batch.BakeRow(1, str(tmp_path / "line.wav"), "line", object="Face")
    tracks = tracks or [make_track()]
    targets = batch.output_paths(row, opts)
    export.export_scene(tracks, row, opts, targets)
    return targets


# --- FBX, parsed ---------------------------------------------------------------------------------------------


def parse_fbx(path):
    from io_scene_fbx import parse_fbx as fbx

    root, _version = fbx.parse(str(path))
    section = {e.id: e for e in root.elems}
    objects = {o.props[0]: o for o in section[b"Objects"].elems}
    links = [c.props for c in section[b"Connections"].elems]
    return objects, links


def fbx_name(elem) -> str:
    return elem.props[1].split(b"\x00\x01")[0].decode()


def child(elem, key: bytes):
    return next(e for e in elem.elems if e.id == key)


def blend_shape_curves(path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{shape name: (key times in seconds, DeformPercent values)} from the FBX's blend-shape channels."""
    objects, links = parse_fbx(path)
    channels = {oid: fbx_name(o) for oid, o in objects.items()
                if o.id == b"Deformer" and o.props[2] == b"BlendShapeChannel"}
    out = {}
    for link in links:
        if link[0] == b"OP" and link[2] in channels and link[3] == b"DeformPercent":
            node = link[1]
            curve_id = next(c[1] for c in links if c[0] == b"OP" and c[2] == node and c[3] == b"d|DeformPercent")
            curve = objects[curve_id]
            times = np.asarray(child(curve, b"KeyTime").props[0], np.float64) / FBX_SECOND
            values = np.asarray(child(curve, b"KeyValueFloat").props[0], np.float64)
            out[channels[link[2]]] = (times, values)
    return out, channels


def test_fbx_has_a_blend_shape_channel_and_matching_curve_per_animated_key(tmp_path, rig):
    track = make_track()
    targets = bake(tmp_path, rig, ("fbx",))
    curves, channels = blend_shape_curves(targets["fbx"][1])
    assert set(channels.values()) == set(KEYS)
    assert set(curves) == set(KEYS)  # every animated key has its DeformPercent curve
    objects, _ = parse_fbx(targets["fbx"][1])
    stacks = [fbx_name(o) for o in objects.values() if o.id == b"AnimationStack"]
    assert stacks == ["line"]  # one baked take, named after the line
    for name in KEYS:
        times, percent = curves[name]
        assert len(percent) == N_FRAMES
        np.testing.assert_allclose(times, np.arange(N_FRAMES) / 30, rtol=0, atol=1e-9)  # frame 0 = audio time 0
        np.testing.assert_allclose(percent / 100, track.channel(name), atol=1e-3)


def test_fbx_at_another_frame_rate(tmp_path, rig):
    track = make_track().resample(24.0)
    targets = bake(tmp_path, rig, ("fbx",), tracks=[track], fps=24.0)
    curves, _ = blend_shape_curves(targets["fbx"][1])
    times, percent = curves["jawOpen"]
    assert len(percent) == track.n_frames == 36
    np.testing.assert_allclose(times, np.arange(36) / 24, rtol=0, atol=1e-9)
    np.testing.assert_allclose(percent / 100, track.channel("jawOpen"), atol=1e-3)


def test_fbx_single_bone_skeleton_carries_the_head_rotation_and_is_optional(tmp_path, rig):
    track = make_track()
    with_bone = bake(tmp_path / "a", rig, ("fbx",))["fbx"][1]
    objects, links = parse_fbx(with_bone)
    limbs = {oid: fbx_name(o) for oid, o in objects.items() if o.id == b"Model" and o.props[2] == b"LimbNode"}
    skins = [o for o in objects.values() if o.id == b"Deformer" and o.props[2] == b"Skin"]
    assert list(limbs.values()) == [export.ROOT_BONE] and len(skins) == 1
    (bone_id,) = limbs
    node = next(c[1] for c in links if c[0] == b"OP" and c[2] == bone_id and c[3] == b"Lcl Rotation")
    axes = [np.asarray(child(objects[c[1]], b"KeyValueFloat").props[0]) for c in links
            if c[0] == b"OP" and c[2] == node and c[3] in (b"d|X", b"d|Y", b"d|Z")]
    assert len(axes) == 3 and all(len(a) == N_FRAMES for a in axes)
    # The bone's turn away from frame 0 (where the head is straight) is the head's turn, whatever the axes.
    from scipy.spatial.transform import Rotation

    rot = Rotation.from_euler("XYZ", np.stack(axes, axis=1), degrees=True)
    fbx_angle = np.degrees((rot[0].inv() * rot).magnitude())
    head_angle = np.degrees(np.hypot(track.channel("headYaw"), track.channel("headPitch")))
    np.testing.assert_allclose(fbx_angle, head_angle, atol=0.3)
    without = bake(tmp_path / "b", rig, ("fbx",), fbx_armature=False)["fbx"][1]
    objects, _ = parse_fbx(without)
    assert not [o for o in objects.values() if o.id == b"Model" and o.props[2] == b"LimbNode"]
    assert not [o for o in objects.values() if o.id == b"Deformer" and o.props[2] == b"Skin"]


# --- re-imports into a clean scene --------------------------------------------------------------------------


def shape_key_curves() -> dict[str, np.ndarray]:
    """{key name: values per frame} of the animated shape keys in this session (after an import)."""
    out = {}
    for ob in bpy.data.objects:
        if ob.type != "MESH" or ob.data.shape_keys is None:
            continue
        action = compat.assigned_action(ob.data.shape_keys)
        if action is None:
            continue
        for fc in compat.action_fcurves(action):  # the importers name slots their own way
            name = fc.data_path.split('"')[1]
            co = np.empty(2 * len(fc.keyframe_points), np.float32)
            fc.keyframe_points.foreach_get("co", co)
            out[name] = co[1::2]
    return out


def test_fbx_reimported_into_a_clean_scene_gives_the_same_shape_key_curves(tmp_path, rig):
    track = make_track()
    path = bake(tmp_path, rig, ("fbx",))["fbx"][1]
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True, load_ui=False)
    bpy.ops.import_scene.fbx(filepath=str(path))
    curves = shape_key_curves()
    assert set(curves) == set(KEYS)
    for name in KEYS:
        assert len(curves[name]) == N_FRAMES
        np.testing.assert_allclose(curves[name], track.channel(name), atol=1e-3)


def test_glb_reimported_has_the_morph_weights_animation(tmp_path, rig):
    track = make_track()
    path = bake(tmp_path, rig, ("glb",))["glb"][1]
    assert path.read_bytes()[:4] == b"glTF"
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True, load_ui=False)
    bpy.ops.import_scene.gltf(filepath=str(path))
    curves = shape_key_curves()
    assert set(KEYS) <= set(curves)
    for name in KEYS:
        assert len(curves[name]) == N_FRAMES
        np.testing.assert_allclose(curves[name], track.channel(name), atol=1e-3)


def test_blend_output_holds_the_take(tmp_path, rig):
    track = make_track()
    path = bake(tmp_path, rig, ("blend",), takes=1)["blend"][1]
    bpy.ops.wm.open_mainfile(filepath=str(path), load_ui=False)
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, N_FRAMES)
    curves = shape_key_curves()
    np.testing.assert_allclose(curves["jawOpen"], track.channel("jawOpen"), atol=1e-6)
    assert not list(path.parent.glob("*.blend1")) and not list(path.parent.glob(".*part*"))


def test_blend_take_and_head_rotation_start_on_the_characters_first_frame_and_exports_at_zero(tmp_path):
    import soundfile as sf

    rig = build_rig_blend(tmp_path / "shot.blend")
    bpy.context.scene.frame_start = 1001
    bpy.ops.wm.save_mainfile()
    sf.write(str(tmp_path / "line.wav"), np.zeros(16000, np.float32), 16000)
    targets = bake(tmp_path, rig, ("fbx", "blend"), tracks=[make_track(), make_track()], takes=2)
    for take in (1, 2):
        curves, _ = blend_shape_curves(targets["fbx"][take])
        assert all(times[0] == 0 for times, _ in curves.values())
    bpy.ops.wm.open_mainfile(filepath=str(targets["blend"][2]), load_ui=False)
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1001, 1000 + N_FRAMES)
    takes = [a for a in bpy.data.actions if a.get("facepolicy")]
    assert len(takes) >= 2  # both takes; on 4.2 each has its own head action for the skeleton's bone
    for action in takes:  # keys, their handles and the head rotation all moved
        for fc in compat.action_fcurves(action):
            co = np.empty(2 * len(fc.keyframe_points), np.float32)
            fc.keyframe_points.foreach_get("co", co)
            np.testing.assert_array_equal(co[0::2], np.arange(1001, 1001 + N_FRAMES))
            fc.keyframe_points.foreach_get("handle_left", co)
            assert 1001 < co[2] < 1002  # the second key's left handle stays between the first two keys
    if bpy.app.build_options.audaspace:
        (strip,) = [s for s in scene.sequence_editor.strips_all if s.type == "SOUND"]
        assert strip.frame_start == 1001


def test_two_takes_are_two_files_with_their_own_curves(tmp_path, rig):
    t1, t2 = make_track(), make_track()
    t2.values[:, spec.CHANNEL_INDEX["jawOpen"]] *= 0.5
    targets = bake(tmp_path, rig, ("fbx",), tracks=[t1, t2], takes=2)
    c1, _ = blend_shape_curves(targets["fbx"][1])
    c2, _ = blend_shape_curves(targets["fbx"][2])
    np.testing.assert_allclose(c1["jawOpen"][1] / 100, t1.channel("jawOpen"), atol=1e-3)
    np.testing.assert_allclose(c2["jawOpen"][1] / 100, t2.channel("jawOpen"), atol=1e-3)


# --- choosing the object -------------------------------------------------------------------------------------


def test_object_choice_errors_name_the_candidates(tmp_path, rig):
    with pytest.raises(FacePolicyError, match='has no object "Nope"; meshes with shape keys: Face'):
        export.fresh_scene_with_character(str(rig), "Nope")
    # The active object is the prop (no shape keys), so the only mesh with keys is picked.
    assert export.fresh_scene_with_character(str(rig), None).name == "Face"
    with pytest.raises(FacePolicyError, match="needs --blend"):
        export.fresh_scene_with_character(None, "Face")
    bad = tmp_path / "broken.blend"
    bad.write_bytes(b"BLENDER-not really")
    with pytest.raises(FacePolicyError, match='"broken.blend": opening the .blend failed'):
        export.fresh_scene_with_character(str(bad), None)


# --- the bundled head, and the whole command with worker processes ---------------------------------------------


def test_default_head_fbx_has_all_52_arkit_channels(tmp_path):
    track = make_track()
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("fbx",))
    row = batch.BakeRow(1, str(tmp_path / "line.wav"), "line")
    targets = batch.output_paths(row, opts)
    export.export_scene([track], row, opts, targets)
    curves, channels = blend_shape_curves(targets["fbx"][1])
    assert set(channels.values()) == set(curves) == set(spec.ARKIT_NAMES)
    for name in spec.ARKIT_NAMES:
        np.testing.assert_allclose(curves[name][1] / 100, track.channel(name), atol=1e-3)


def test_bake_command_with_two_blender_workers(tmp_path, rig):
    import argparse
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))
    import envelope_engine
    from batch_helpers import write_line

    from facepolicy.app import bake as bake_cli

    envelope_engine.register()
    worker = [sys.executable, "-c",
              f"import sys; sys.path.insert(0, {str(Path(envelope_engine.__file__).parent)!r}); "
              "import envelope_engine; envelope_engine.register(); from facepolicy.core.batch import serve; "
              "from facepolicy.blender.worker import scene_exporter; sys.exit(serve(scene_exporter))"]
    for n in ("a", "b", "c"):
        write_line(tmp_path / f"{n}.wav", seconds=0.8)
    parser = argparse.ArgumentParser()
    bake_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bake", *(str(tmp_path / f"{n}.wav") for n in "abc"), "--blend", str(rig),
                              "--object", "Face", "-o", str(tmp_path / "out"), "--format", "json,fbx,glb",
                              "--engine", "envelope", "--jobs", "2"])
    assert bake_cli.run_bake(args, batch.ProcessExecutor(2, worker, log_dir=str(tmp_path))) == 0
    for n in "abc":
        track = FaceTrack.load_json(tmp_path / "out" / f"{n}.json")
        curves, _ = blend_shape_curves(tmp_path / "out" / f"{n}.fbx")
        for name in KEYS:
            assert len(curves[name][1]) == track.n_frames == 24
            np.testing.assert_allclose(curves[name][1] / 100, track.channel(name), atol=1e-3)
        assert (tmp_path / "out" / f"{n}.glb").stat().st_size > 0
    assert bake_cli.run_bake(args, batch.ProcessExecutor(2, worker)) == 0  # all up to date now


def test_ctrl_c_inside_an_exporter_stops_instead_of_failing_the_line(tmp_path, monkeypatch):
    class Interrupted:
        def __call__(self, **kwargs):
            raise RuntimeError("Error: Python: Traceback (most recent call last):\n  ...\nKeyboardInterrupt\n")

    with pytest.raises(KeyboardInterrupt):
        export.run_operator(Interrupted(), "the FBX export", tmp_path / "x.fbx")

    class Broken:
        def __call__(self, **kwargs):
            raise RuntimeError("Error: Python: Traceback\n  ...\nValueError: bad mesh\nLocation: ops.py:109\n")

    with pytest.raises(FacePolicyError, match=r'"x.fbx": the FBX export failed \(ValueError: bad mesh\)'):
        export.run_operator(Broken(), "the FBX export", tmp_path / "x.fbx")


def test_ctrl_c_with_blender_workers_leaves_only_complete_files(tmp_path, rig):
    import os
    import signal
    import subprocess
    import sys
    import time

    # Enough lines, each slow enough, that some are still to come when Ctrl-C arrives even on a loaded machine.
    LINES = 10  # noqa: N806
    unit = Path(__file__).resolve().parent.parent / "unit"
    sys.path.insert(0, str(unit))
    from batch_helpers import write_line

    for i in range(LINES):
        write_line(tmp_path / f"l{i}.wav", seconds=1.0)
    out = tmp_path / "out"
    worker = (f"import sys; sys.path.insert(0, {str(unit)!r}); import envelope_engine; envelope_engine.register(); "
              "from facepolicy.core.batch import serve; from facepolicy.blender.worker import scene_exporter; "
              "sys.exit(serve(scene_exporter))")
    script = (f"import sys; sys.path.insert(0, {str(unit)!r}); import envelope_engine; envelope_engine.register(); "
              "from facepolicy.app import bake, cli; "
              f"bake.worker_command = lambda: [sys.executable, '-c', {worker!r}]; sys.exit(cli.run(sys.argv[1:]))")
    cmd = [sys.executable, "-c", script, "bake", *(str(tmp_path / f"l{i}.wav") for i in range(LINES)),
           "--blend", str(rig), "--object", "Face", "-o", str(out), "--format", "fbx,glb",
           "--engine", "envelope", "--jobs", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, FACEPOLICY_TEST_ENGINE_DELAY="1.0"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(out.glob(".*.facepolicy-bake")):
        time.sleep(0.05)
    time.sleep(0.3)  # let the workers get into the middle of their next lines
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-2000:]
    assert time.monotonic() - t0 < 15  # the workers were stopped, not waited for
    assert not [p.name for p in out.iterdir() if ".part" in p.name]
    finished = [p.name.split(".")[1] for p in out.glob(".*.facepolicy-bake")]
    assert 1 <= len(finished) < LINES
    for name in finished:
        curves, _ = blend_shape_curves(out / f"{name}.fbx")
        assert set(curves) == set(KEYS)
