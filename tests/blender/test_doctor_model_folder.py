"""The System Report operator in Blender lists the add-on's Model Folder preference, as `facepolicy doctor --model`
does: the folder, its checksums and presets, and a corrupt file in it as a problem naming the file."""

import shutil

import pytest

pytestmark = pytest.mark.blender


@pytest.fixture
def enabled_addon(clean_scene):
    """FacePolicy enabled as an add-on, so that its preferences exist as a user has them."""
    import bpy

    assert bpy.ops.preferences.addon_enable(module="facepolicy") == {"FINISHED"}
    prefs = bpy.context.preferences.addons["facepolicy"].preferences
    yield prefs
    prefs.model_dir = ""
    bpy.ops.preferences.addon_disable(module="facepolicy")


def report_lines() -> list[str]:
    import bpy

    return bpy.data.texts["FacePolicy Report"].as_string().splitlines()


def test_the_report_lists_the_model_folder_preference(enabled_addon, tmp_path):
    import bpy

    from facepolicy.core.assets import asset_root

    folder = tmp_path / "anna model"
    shutil.copytree(asset_root() / "models", folder)
    assert bpy.ops.facepolicy.doctor() == {"FINISHED"}
    assert not [line for line in report_lines() if line.startswith("model folder")], "no folder set, none listed"

    enabled_addon.model_dir = str(folder)
    assert bpy.ops.facepolicy.doctor() == {"FINISHED"}
    listed = [line for line in report_lines() if line.startswith("model folder")]
    assert len(listed) == 1 and str(folder) in listed[0] and "sha256 ok" in listed[0], listed

    with (folder / "denoiser.onnx").open("ab") as f:
        f.write(b"\0")
    assert bpy.ops.facepolicy.doctor() == {"FINISHED"}
    listed = [line for line in report_lines() if line.startswith("model folder")]
    assert len(listed) == 1 and "NOT USABLE" in listed[0], listed
    text = "\n".join(report_lines())
    assert "denoiser.onnx" in text
