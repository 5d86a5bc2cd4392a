"""The default head in real Blender (bpy 5.0.1 and 4.2): keys, groups, and landmark distances under the keys."""

import numpy as np
import pytest

from facepolicy.core import spec

pytestmark = pytest.mark.blender


@pytest.fixture
def characters_ui(clean_scene):
    """The character operators registered (unless the add-on already registered them)."""
    import bpy

    from facepolicy.ui import characters

    mine = [cls for cls in characters.CLASSES if not getattr(cls, "is_registered", False)]
    for cls in mine:
        bpy.utils.register_class(cls)
    if mine:
        characters.register_extra()
    yield clean_scene
    if mine:
        characters.unregister_extra()
    for cls in reversed(mine):
        bpy.utils.unregister_class(cls)


def evaluated_vertices(obj):
    import bpy

    depsgraph = bpy.context.evaluated_depsgraph_get()
    mesh = obj.evaluated_get(depsgraph).data
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def set_keys(obj, **values):
    for block in obj.data.shape_keys.key_blocks[1:]:
        block.value = values.get(block.name, 0.0)


def test_operator_adds_the_head_with_52_arkit_keys(characters_ui):
    import bpy

    from facepolicy.core.head import load_default_head

    assert bpy.ops.facepolicy.add_default_head() == {"FINISHED"}
    obj = bpy.context.active_object
    head = load_default_head()
    assert obj.type == "MESH" and obj.select_get()
    blocks = obj.data.shape_keys.key_blocks
    assert [b.name for b in blocks] == ["Basis", *spec.ARKIT_NAMES]
    assert all(b.relative_key == blocks[0] for b in blocks)
    assert all(b.value == 0.0 for b in blocks[1:])  # the head starts neutral
    assert len(obj.data.vertices) == head.num_vertices
    assert len(obj.data.polygons) == len(head.polygon_sizes)
    assert obj.data.uv_layers.active is not None
    for group in ("lips", "jaw", "eyes", "brows", "eyeball_left", "eyeball_right", "teeth", "tongue"):
        assert group in obj.vertex_groups, group
    assert {m.name.split(".")[0] for m in obj.data.materials} >= {"FacePolicy Skin", "FacePolicy Eye"}
    rest = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", rest)
    assert np.allclose(rest.reshape(-1, 3), head.vertices)
    assert list(obj["facepolicy_pivot_eye_left"]) == pytest.approx(head.pivots["eye_left"].tolist())
    # the Add › Mesh menu offers it
    menu = bpy.types.VIEW3D_MT_mesh_add._dyn_ui_initialize()
    assert any(getattr(f, "__name__", "") == "_menu_add_head" for f in menu)


def test_keys_move_the_landmarks(characters_ui):
    import bpy

    from facepolicy.core.head import load_default_head

    head = load_default_head()
    bpy.ops.facepolicy.add_default_head()
    obj = bpy.context.active_object

    def lm(verts, name):
        return verts[head.landmarks[name]]

    set_keys(obj)
    rest = evaluated_vertices(obj)
    rest_gap = head.inner_lip_gaps(rest)
    rest_lid = head.eyelid_gap(rest, "left"), head.eyelid_gap(rest, "right")

    set_keys(obj, jawOpen=1.0)
    opened = evaluated_vertices(obj)
    assert np.all(head.inner_lip_gaps(opened) > rest_gap + 0.02)         # the mouth opens (> 2 cm)
    assert lm(opened, "chin")[2] < lm(rest, "chin")[2] - 0.01            # the chin drops

    set_keys(obj, eyeBlinkLeft=1.0)
    blink = evaluated_vertices(obj)
    assert head.eyelid_gap(blink, "left") < 0.2 * rest_lid[0]           # left eye closes
    assert head.eyelid_gap(blink, "right") == pytest.approx(rest_lid[1], abs=1e-5)

    set_keys(obj, mouthSmileLeft=1.0, mouthSmileRight=1.0)
    smile = evaluated_vertices(obj)
    for side in ("left", "right"):
        assert lm(smile, f"mouth_corner_{side}")[2] > lm(rest, f"mouth_corner_{side}")[2] + 0.003
    width = np.linalg.norm(lm(rest, "mouth_corner_left") - lm(rest, "mouth_corner_right"))
    assert np.linalg.norm(lm(smile, "mouth_corner_left") - lm(smile, "mouth_corner_right")) > width + 0.005

    set_keys(obj, mouthPucker=1.0)
    pucker = evaluated_vertices(obj)
    assert np.linalg.norm(lm(pucker, "mouth_corner_left") - lm(pucker, "mouth_corner_right")) < width - 0.005

    set_keys(obj, browInnerUp=1.0)
    brows = evaluated_vertices(obj)
    ids = head.vertex_groups["brows"]
    assert (brows[ids, 2] - rest[ids, 2]).max() > 0.002

    # Blender's mix equals the core decoder
    w = np.zeros(spec.NUM_ARKIT, np.float32)
    w[spec.ARKIT_NAMES.index("jawOpen")], w[spec.ARKIT_NAMES.index("eyeLookUpRight")] = 0.7, 0.4
    set_keys(obj, jawOpen=0.7, eyeLookUpRight=0.4)
    assert np.allclose(evaluated_vertices(obj), head.decode(w), atol=1e-5)


def test_failure_leaves_the_scene_unchanged(characters_ui, monkeypatch):
    import bpy

    from facepolicy.blender import head as head_mod
    from facepolicy.core.errors import AssetError

    before = (len(bpy.data.objects), len(bpy.data.meshes), len(bpy.data.materials))

    def broken(*_args, **_kw):
        raise AssetError('the default head asset "head.npz" could not be read; reinstall FacePolicy')

    monkeypatch.setattr(head_mod, "load_default_head", broken)
    with pytest.raises(RuntimeError, match="reinstall FacePolicy"):
        bpy.ops.facepolicy.add_default_head()
    assert (len(bpy.data.objects), len(bpy.data.meshes), len(bpy.data.materials)) == before

    def fail_late(obj, head):
        raise RuntimeError("shape keys failed")

    monkeypatch.undo()
    monkeypatch.setattr(head_mod, "_add_shape_keys", fail_late)
    with pytest.raises(RuntimeError, match="shape keys failed"):
        head_mod.add_default_head(bpy.context)
    assert (len(bpy.data.objects), len(bpy.data.meshes), len(bpy.data.materials)) == before


def test_add_into_a_given_collection(clean_scene):
    import bpy

    from facepolicy.blender.head import add_default_head

    coll = bpy.data.collections.new("Cast")
    clean_scene.collection.children.link(coll)
    obj = add_default_head(bpy.context, collection=coll, location=(1.0, 2.0, 0.0))
    assert obj.users_collection[0] == coll and tuple(obj.location) == (1.0, 2.0, 0.0)
    second = add_default_head(bpy.context, collection=coll)
    assert second.name != obj.name and len(coll.objects) == 2


# --- rig checks, name mapping on the object, FLAME import and the geometric solve -------------------------------


def _flame_synthetic():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "unit" / "flame_synthetic.py"
    spec_ = importlib.util.spec_from_file_location("flame_synthetic", path)
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    return module


def _mesh_with_keys(names, relative_to=None):
    import bpy

    mesh = bpy.data.meshes.new("rig")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)], [], [(0, 1, 2), (0, 1, 3)])
    obj = bpy.data.objects.new("rig", mesh)
    bpy.context.scene.collection.objects.link(obj)
    if names:
        obj.shape_key_add(name="Basis", from_mix=False)
        for n in names:
            obj.shape_key_add(name=n, from_mix=False)
    if relative_to:
        blocks = obj.data.shape_keys.key_blocks
        blocks[names[-1]].relative_key = blocks[relative_to]
    return obj


def _snapshot():
    import bpy

    return [(o.name, tuple((b.name, b.relative_key.name, b.value) for b in o.data.shape_keys.key_blocks)
             if o.type == "MESH" and o.data.shape_keys else ()) for o in bpy.data.objects]


def _errors(obj):
    from facepolicy.blender.rig_report import check_rig

    return [i.message for i in check_rig(obj) if i.severity == "error"]


def test_check_rig_bad_inputs_have_clear_messages_and_change_nothing(clean_scene):
    from facepolicy.blender.rig_report import check_rig, track_for_object
    from facepolicy.core.errors import RigError
    from facepolicy.core.facetrack import FaceTrack

    cases = {
        "no keys": (_mesh_with_keys([]), "has no shape keys"),
        "relative": (_mesh_with_keys(["jawOpen", "mouthSmileLeft"], relative_to="jawOpen"), "Relative To"),
        "collision": (_mesh_with_keys(list(spec.ARKIT_NAMES[:10]) + ["jawOpen", "Jaw_Open"]), "all mean jawOpen"),
    }
    mod_obj = _mesh_with_keys(["jawOpen", "eyeBlinkLeft"])
    mod_obj.modifiers.new("Subdivision", "SUBSURF")
    track = FaceTrack.zeros(10)
    before = _snapshot()
    for label, (obj, text) in cases.items():
        errors = _errors(obj)
        assert any(text in e for e in errors), (label, errors)
        with pytest.raises(RigError):
            track_for_object(obj, track)
    warnings = [i.message for i in check_rig(mod_obj) if i.severity == "warning"]
    assert any("active modifiers (Subdivision)" in w for w in warnings)
    assert _snapshot() == before
    assert _errors(None) and "not a mesh" in _errors(bpy_empty())[0]


def bpy_empty():
    import bpy

    empty = bpy.data.objects.new("empty", None)
    bpy.context.scene.collection.objects.link(empty)
    return empty


def test_linked_and_override_objects_are_read_only(clean_scene, tmp_path):
    import bpy

    _mesh_with_keys(["jawOpen", "eyeBlinkLeft"])
    lib = tmp_path / "lib.blend"
    bpy.data.libraries.write(str(lib), {bpy.data.objects["rig"]})
    bpy.ops.wm.read_factory_settings(use_empty=True)
    with bpy.data.libraries.load(str(lib), link=True) as (src, dst):
        dst.objects = ["rig"]
    linked = dst.objects[0]
    bpy.context.scene.collection.objects.link(linked)
    assert any("read-only" in e for e in _errors(linked))
    override = linked.override_create(remap_local_usages=True)
    assert any("read-only" in e or "library override" in e for e in _errors(override))


def test_user_mapping_is_stored_on_the_object(clean_scene):
    from facepolicy.blender.rig_report import mapping_for_object, set_key_overrides
    from facepolicy.core.errors import RigError

    obj = _mesh_with_keys(["Jaw_Down", "Grin", "Blink_Both"])
    assert not mapping_for_object(obj).matches
    set_key_overrides(obj, {"Jaw_Down": "jawOpen", "Blink_Both": ["eyeBlinkLeft", "eyeBlinkRight"]})
    got = {m.key: m.channels for m in mapping_for_object(obj).matches}
    assert got == {"Jaw_Down": ("jawOpen",), "Blink_Both": ("eyeBlinkLeft", "eyeBlinkRight")}
    stored = obj["facepolicy_key_map"]
    with pytest.raises(RigError):
        set_key_overrides(obj, {"Grin": "notAChannel"})
    assert obj["facepolicy_key_map"] == stored


def test_default_head_is_driven_by_name(characters_ui):
    import bpy

    from facepolicy.blender.rig_report import check_rig, report_text, track_for_object
    from facepolicy.core.facetrack import FaceTrack

    bpy.ops.facepolicy.add_default_head()
    obj = bpy.context.active_object
    assert not [i for i in check_rig(obj) if i.severity == "error"]
    out, how = track_for_object(obj, FaceTrack.zeros(5))
    assert how == "name" and out.names[:52] == spec.ARKIT_NAMES
    assert "jawOpen" in report_text(obj)


def test_flame_import_and_geometric_drive(characters_ui, tmp_path):
    import bpy

    from facepolicy.blender.rig_report import report_rows, track_for_object
    from facepolicy.core.facetrack import FaceTrack
    from facepolicy.core.head import load_default_head

    synth = _flame_synthetic()
    path = tmp_path / "generic_model.pkl"
    keep = synth.write_synthetic_flame(path)
    assert bpy.ops.facepolicy.import_flame(filepath=str(path), expressions=12) == {"FINISHED"}
    obj = bpy.context.active_object
    blocks = obj.data.shape_keys.key_blocks
    assert len(blocks) == 1 + 2 * 12 + 1 and blocks[-1].name == "jawOpen"
    assert len(obj.data.vertices) == synth.N_VERTS

    head = load_default_head()
    index = {int(h): i for i, h in enumerate(keep)}
    up, lo = index[head.landmarks["lip_upper_mid"]], index[head.landmarks["lip_lower_mid"]]

    def lip_gap():
        v = evaluated_vertices(obj)
        return float(np.linalg.norm(v[up] - v[lo]))

    rest_gap = lip_gap()
    blocks["jawOpen"].value = 1.0
    assert lip_gap() > rest_gap + 0.01       # the LBS jaw key opens the mouth
    blocks["jawOpen"].value = 0.0

    rows, method = report_rows(obj)
    assert method == "name + solve"  # jawOpen by its name, every other channel by the solve over the expressions
    assert ("jawOpen", "jawOpen", "exact") in rows and sum(how == "solve" for _, _, how in rows) == 51
    values = np.zeros((30, spec.NUM_CHANNELS), np.float32)
    values[10:20, spec.CHANNEL_INDEX["jawOpen"]] = 1.0
    out, how = track_for_object(obj, FaceTrack(30.0, spec.CHANNEL_NAMES, values))
    assert how == "name + solve" and set(out.names[: len(blocks) - 1]) == {b.name for b in blocks[1:]}
    for name in out.names[: len(blocks) - 1]:
        blocks[name].value = float(out.channel(name)[15])
    assert lip_gap() > rest_gap + 0.01       # the solved keys open the FLAME mouth
    for name in out.names[: len(blocks) - 1]:
        blocks[name].value = float(out.channel(name)[0])
    assert lip_gap() < rest_gap + 0.003      # and close it again at rest


def test_bad_flame_files_leave_the_scene_unchanged(characters_ui, tmp_path):
    import pickle

    import bpy

    synth = _flame_synthetic()
    wrong = tmp_path / "wrong.pkl"
    synth.write_synthetic_flame(wrong, shapedirs=np.zeros((synth.N_VERTS, 3, 50)))
    evil = tmp_path / "evil.pkl"
    marker = tmp_path / "ran"

    class RunsCode:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    evil.write_bytes(pickle.dumps({"v_template": RunsCode()}))
    before = (len(bpy.data.objects), len(bpy.data.meshes))
    for path, text in ((wrong, "shapedirs"), (evil, "not model data")):
        with pytest.raises(RuntimeError, match=text):
            bpy.ops.facepolicy.import_flame(filepath=str(path))
    assert (len(bpy.data.objects), len(bpy.data.meshes)) == before
    assert not marker.exists()


class _FakeLayout:
    """Records what a panel would draw (UILayout cannot be made outside a redraw)."""

    def __init__(self, log=None):
        self.log = [] if log is None else log

    def box(self):
        return self

    def column(self, align=False):
        return self

    def row(self, align=False):
        return self

    def label(self, text="", icon="NONE"):
        self.log.append((text, icon))


def test_draw_rig_report(characters_ui):
    import bpy

    from facepolicy.ui.characters import draw_rig_report

    bpy.ops.facepolicy.add_default_head()
    layout = _FakeLayout()
    draw_rig_report(layout, bpy.context.active_object)
    texts = [t for t, _ in layout.log]
    assert "52 of 52 mapped by name" in texts and "jawOpen" in texts and "exact" in texts
    bad = _FakeLayout()
    draw_rig_report(bad, _mesh_with_keys([]))
    assert bad.log[0][1] == "ERROR" and "has no shape keys" in bad.log[0][0]


def test_landmarks_picked_by_the_user_guide_the_solve(characters_ui, tmp_path):
    import bmesh
    import bpy

    from facepolicy.blender import rig_report
    from facepolicy.core.errors import RigError
    from facepolicy.core.head import load_default_head

    synth = _flame_synthetic()
    path = tmp_path / "generic_model.pkl"
    keep = synth.write_synthetic_flame(path)
    bpy.ops.facepolicy.import_flame(filepath=str(path), expressions=6)
    obj = bpy.context.active_object
    head = load_default_head()
    index = {int(h): i for i, h in enumerate(keep)}

    # the operator marks the active vertex in Edit Mode
    bpy.ops.object.mode_set(mode="EDIT")
    bm = bmesh.from_edit_mesh(obj.data)
    bm.verts.ensure_lookup_table()
    for v in bm.verts:
        v.select = False
    target = index[head.landmarks["nose_tip"]]
    bm.verts[target].select = True
    bm.select_history.add(bm.verts[target])
    assert bpy.ops.facepolicy.set_landmark(landmark="nose_tip") == {"FINISHED"}
    bpy.ops.object.mode_set(mode="OBJECT")
    assert rig_report.landmarks(obj) == {"nose_tip": target}

    for name in ("chin", "eye_outer_left", "eye_outer_right", "mouth_corner_left"):
        rig_report.set_landmark(obj, name, index[head.landmarks[name]])
    with pytest.raises(RigError, match="not a landmark"):
        rig_report.set_landmark(obj, "left_ear", 0)
    with pytest.raises(RigError, match="no vertex"):
        rig_report.set_landmark(obj, "chin", 10**6)
    assert len(rig_report.landmarks(obj)) == 5
    solver = rig_report.solver_for_object(obj)
    x, info = solver.solve(np.eye(52)[[spec.ARKIT_NAMES.index("jawOpen")]])
    geometry = rig_report.rig_geometry(obj)
    names, deltas, rest = geometry.key_names, geometry.deltas, geometry.vertices
    assert geometry.landmarks == rig_report.landmarks(obj)
    posed = rest + np.einsum("k,kvc->vc", x[0], deltas)
    up, lo = index[head.landmarks["lip_upper_mid"]], index[head.landmarks["lip_lower_mid"]]
    assert info.converged and names == solver.key_names
    assert np.linalg.norm(posed[up] - posed[lo]) > np.linalg.norm(rest[up] - rest[lo]) + 0.01  # mouth opens
    rig_report.set_landmark(obj, "chin", None)
    assert "chin" not in rig_report.landmarks(obj)
