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
