import pytest

pytestmark = pytest.mark.blender


def registered_operator_ids():
    import bpy

    return {f"{mod}.{op}" for mod in ("facepolicy",) for op in dir(getattr(bpy.ops, mod))}


def facepolicy_footprint():
    """Everything of ours that registration can leave in Blender: properties, app handlers."""
    import bpy

    props = {f"{t.__name__}.{name}" for t in (bpy.types.Scene, bpy.types.Object, bpy.types.WindowManager,
                                             bpy.types.Mesh, bpy.types.Key)
             for name in dir(t) if name.startswith("facepolicy")}
    handlers = set()
    for name in dir(bpy.app.handlers):
        seq = getattr(bpy.app.handlers, name)
        if isinstance(seq, list):
            handlers |= {f"{name}:{fn.__module__}.{fn.__name__}" for fn in seq
                         if "facepolicy" in (getattr(fn, "__module__", "") or "")}
    return props | handlers


def test_register_unregister_register(clean_scene, capsys):
    import bpy

    import facepolicy
    from facepolicy import ui

    classes = list(ui._classes())
    assert classes, "the extension registers no classes"
    before = facepolicy_footprint()
    for _ in range(2):
        facepolicy.register()
        assert facepolicy_footprint() - before, "register() added no properties or handlers"
        for cls in classes:
            assert cls.is_registered, cls
        assert facepolicy._cli_handle is not None
        assert "facepolicy.doctor" in registered_operator_ids()
        facepolicy.unregister()
        for cls in classes:
            assert not cls.is_registered, cls
        assert facepolicy._cli_handle is None
        assert facepolicy_footprint() == before, "unregister() left properties or handlers behind"
    assert not hasattr(bpy.types, "FACEPOLICY_OT_doctor")


def test_blender_cli_command_help(capsys):
    """`blender -c facepolicy --help` goes through the registered callback with an argv list."""
    import facepolicy
    from facepolicy.app.cli import blender_cli_command

    facepolicy.register()
    try:
        assert blender_cli_command(["--help"]) == 0
        assert "usage: facepolicy" in capsys.readouterr().out
        assert blender_cli_command(["--bogus"]) == 2
        assert blender_cli_command(["doctor", "--no-blender"]) in (0, 1)
        assert "onnxruntime" in capsys.readouterr().out
    finally:
        facepolicy.unregister()


def test_doctor_operator_writes_report(clean_scene):
    import bpy

    import facepolicy

    facepolicy.register()
    try:
        assert bpy.ops.facepolicy.doctor() == {"FINISHED"}
        text = bpy.data.texts["FacePolicy Report"].as_string()
        assert "onnxruntime" in text and bpy.app.version_string in text
    finally:
        facepolicy.unregister()
