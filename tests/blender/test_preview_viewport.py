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
