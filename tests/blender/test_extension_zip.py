"""Build the extension zip with Blender's builder, validate it, install it into a fresh user directory."""

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.blender, pytest.mark.slow]

INSTALL_SCRIPT = textwrap.dedent("""
    import sys, bpy, addon_utils
    zip_path = sys.argv[-1]
    assert bpy.ops.extensions.package_install_files(
        filepath=zip_path, repo="user_default", enable_on_install=True) == {"FINISHED"}
    mod = "bl_ext.user_default.facepolicy"
    assert mod in bpy.context.preferences.addons, "not enabled after install"
    assert hasattr(bpy.types, "FACEPOLICY_OT_doctor")
    assert bpy.ops.facepolicy.doctor() == {"FINISHED"}
    report = bpy.data.texts["FacePolicy Report"].as_string()
    print(report)
    addon_utils.disable(mod)
    assert not hasattr(bpy.types, "FACEPOLICY_OT_doctor"), "unregister left classes behind"
    addon_utils.enable(mod)
    assert hasattr(bpy.types, "FACEPOLICY_OT_doctor"), "re-register failed"
    addon_utils.disable(mod)
    print("INSTALL-OK", bpy.app.version_string)
""")


@pytest.fixture(scope="session")
def built_zip(repo_root):
    proc = subprocess.run([sys.executable, str(repo_root / "tools" / "build_extension.py"), "--platforms",
                           "linux-x64"], capture_output=True, text=True, cwd=repo_root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    zips = sorted((repo_root / "dist").glob("facepolicy-*-linux_x64.zip"))
    assert len(zips) == 1, zips
    return zips[0]


def test_zip_contents(built_zip):
    import zipfile

    names = zipfile.ZipFile(built_zip).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names and "core/spec.py" in names
    assert "assets/SHA256SUMS" in names
    assert not [n for n in names if n.startswith(("model/", "tests/", "export_onnx/", "tools/"))]
    assert "preview/lib/libfpsplat_cpu.so" in names, "the zip must carry the preview's CPU library for linux-x64"
    assert not [n for n in names if n.endswith((".dll", ".dylib"))]
    wheels = [n for n in names if n.startswith("wheels/")]
    for name in ("onnxruntime", "soundfile"):
        for abi in ("cp311", "cp313"):
            assert any(name in w and (abi in w or "py2.py3" in w) for w in wheels), (name, abi, wheels)


def test_install_enable_disable_in_fresh_user_dir(built_zip, tmp_path):
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    proc = subprocess.run([sys.executable, "-c", INSTALL_SCRIPT, str(built_zip)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "INSTALL-OK" in proc.stdout
