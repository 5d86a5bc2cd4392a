"""The splat preview's Blender side: registration, and a clear refusal in background mode."""

import pytest

pytestmark = pytest.mark.blender


def test_register_and_refuse_in_background(clean_scene):
    import bpy

    from facepolicy.preview import viewport

    for cls in viewport.CLASSES:
        bpy.utils.register_class(cls)
    viewport.register_extra()
    try:
        assert bpy.app.background
        bpy.ops.mesh.primitive_ico_sphere_add()
        assert bpy.ops.facepolicy.splat_preview() == {"CANCELLED"}
        assert "background mode" in viewport.status_text()
        with pytest.raises(RuntimeError, match="background mode"):  # an ERROR report raises from bpy.ops
            bpy.ops.facepolicy.splat_import_ply(filepath="/nonexistent.ply")
        assert not viewport._state.enabled and viewport._state.handle is None
        # A frame change or a new file with the preview off does nothing (and does not fail).
        clean_scene.frame_set(3)
        assert viewport._on_load_pre in bpy.app.handlers.load_pre
        bpy.ops.wm.read_factory_settings(use_empty=True)
    finally:
        viewport.unregister_extra()
        for cls in reversed(viewport.CLASSES):
            bpy.utils.unregister_class(cls)
    assert viewport._on_load_pre not in bpy.app.handlers.load_pre
    assert viewport._on_frame_change not in bpy.app.handlers.frame_change_post
    assert viewport._on_depsgraph_update not in bpy.app.handlers.depsgraph_update_post
    assert not hasattr(bpy.types, "FACEPOLICY_OT_splat_preview")


def test_enable_explains_why_not(clean_scene):
    from facepolicy.core.errors import FacePolicyError
    from facepolicy.preview import viewport

    with pytest.raises(FacePolicyError, match="facepolicy preview TRACK.json"):
        viewport.enable(None, None)


def test_bind_ply_to_object_uses_its_world_transform(clean_scene, tmp_path):
    import bpy
    import numpy as np

    from facepolicy.preview import build, viewport
    from facepolicy.preview.cloud import GaussianCloud
    from facepolicy.preview.ply import write_ply

    if build.find_cxx() is None:
        pytest.skip("no C++ compiler to build the splat library")
    build.ensure_cpu_library()
    bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=2, radius=1.0, location=(1.0, 2.0, 3.0))
    obj = bpy.context.active_object
    obj.scale = (2.0, 2.0, 2.0)
    bpy.context.view_layer.update()
    rng = np.random.default_rng(0)
    d = rng.normal(size=(50, 3))
    local = d / np.linalg.norm(d, axis=1, keepdims=True) * 1.01  # just outside the unit sphere, in object space
    floater = np.array([[0.0, 0.0, 5.0]])
    cloud = GaussianCloud(np.r_[local, floater], np.full((51, 3), -4.0), np.tile([1.0, 0, 0, 0], (51, 1)),
                          np.zeros(51), np.zeros((51, 1, 3)))
    write_ply(tmp_path / "s.ply", cloud)
    scene, n_read = viewport.bind_ply_to_object(tmp_path / "s.ply", obj, bpy.context.evaluated_depsgraph_get(), 0.1)
    assert n_read == 51 and scene.splats.n == 50  # the floater is dropped
    verts, _ = viewport._mesh_arrays(obj, bpy.context.evaluated_depsgraph_get())
    np.testing.assert_allclose(scene.cloud(verts).means, local * 2.0 + [1.0, 2.0, 3.0], atol=1e-4)


class _RecordingLayout:
    """Stands in for a panel's UILayout: keeps the text of every label drawn."""

    def __init__(self, labels):
        self.labels = labels

    def operator(self, *args, **kwargs):
        return None

    def label(self, text="", icon="NONE"):
        self.labels.append(text)

    def column(self, align=False):
        return self


def test_panel_says_in_one_sentence_that_the_library_is_missing(clean_scene, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from facepolicy.preview import raster, viewport

    def panel_text():
        labels = []
        panel = SimpleNamespace(layout=_RecordingLayout(labels))
        viewport.FACEPOLICY_PT_splat_preview.draw(panel, SimpleNamespace(region=SimpleNamespace(width=300)))
        return " ".join(labels[1:])

    monkeypatch.setattr(raster.build, "LIB_DIR", tmp_path)
    monkeypatch.setattr(raster, "_renderers", {})
    text = panel_text()
    assert text == raster.library_note() and text.startswith("No splat library for ")
    assert text.endswith("so the splat preview draws with the slower numpy renderer.")
    assert raster.get_renderer().backend == "numpy"  # what Show Splats then draws with
