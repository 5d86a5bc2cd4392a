"""Build the extension zips with Blender's builder, validate them, check what each carries (its platform's splat
library, one Python's slimmed wheels) and that each platform's zips cover Blender 4.2 onwards end to end; install the
Linux zip whose range holds this Blender into a fresh user directory, run its wheels from there, and see the other
range's zip refused."""

import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.blender, pytest.mark.slow]

# Installing a zip whose Blender range does not hold this Blender: Blender says why and installs nothing.
REFUSE_SCRIPT = textwrap.dedent("""
    import os, sys, bpy
    bpy.ops.extensions.package_install_files(filepath=sys.argv[-1], repo="user_default", enable_on_install=True)
    repo = os.path.join(bpy.utils.user_resource("EXTENSIONS"), "user_default")
    print("ENABLED", "bl_ext.user_default.facepolicy" in bpy.context.preferences.addons)
    print("FILES", os.path.exists(os.path.join(repo, "facepolicy")))
""")

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
    import site, glob
    print("SITE", glob.glob(bpy.utils.user_resource("EXTENSIONS") + "/.local/lib/python*/site-packages")[0])
    print("INSTALL-OK", bpy.app.version_string)
""")

# The wheels, as Blender installed them, run: onnxruntime (slimmed) infers with the bundled audio encoder and
# pocketsphinx finds its model and loads the word language model.
RUN_WHEELS = textwrap.dedent("""
    import sys
    site = sys.argv[1]
    sys.path.insert(0, site)
    import numpy as np, onnxruntime, pocketsphinx
    assert onnxruntime.__file__.startswith(site) and pocketsphinx.__file__.startswith(site)
    session = onnxruntime.InferenceSession(sys.argv[2], providers=["CPUExecutionProvider"])
    features = session.run(None, {"mel": np.zeros((1, 64, 80), np.float32)})[0]  # (batch, time, 80) log-mel
    assert features.shape[0] == 1 and np.isfinite(features).all()
    decoder = pocketsphinx.Decoder(loglevel="FATAL")
    decoder.start_utt(); decoder.process_raw(bytes(3200), full_utt=True); decoder.end_utt()
    assert decoder.lookup_word("hello"), "no dictionary"
    print("WHEELS-OK", pocketsphinx.get_model_path())
""")


SCORER_LIBRARY = {"linux_x64": "libfpptm.so", "windows_x64": "fpptm.dll", "macos_arm64": "libfpptm.dylib"}
PLATFORM_LIBRARY = {"linux_x64": "libfpsplat_cpu.so", "windows_x64": "fpsplat_cpu.dll",
                    "macos_arm64": "libfpsplat_cpu.dylib"}
RANGE_LABELS = {"3.11": "for-blender-4.2-to-5.0", "3.13": "for-blender-5.1-and-later"}
ZIP_LIMIT_MB = 60  # 46 to 53 MB with one Python's wheels per zip (two Pythons' made them 55 to 67 MB)
RUNTIME_WHEELS = ("onnxruntime", "soundfile", "cffi", "pocketsphinx")
NAME = re.compile(r"^facepolicy-[0-9.]+-(linux_x64|windows_x64|macos_arm64)-(for-blender-[a-z0-9.-]+)\.zip$")


def version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


def manifest(zip_path) -> dict:
    with zipfile.ZipFile(zip_path) as zf:
        return tomllib.loads(zf.read("blender_manifest.toml").decode())


def wheel_pythons(wheels) -> set[str]:
    """The CPython versions the compiled wheels are built for (cp311 -> 3.11); py3/abi3 wheels name none."""
    abis = {w.rsplit("/", 1)[-1][:-4].split("-")[-2] for w in wheels}
    return {f"{a[2]}.{a[3:]}" for a in abis if re.fullmatch(r"cp\d+", a)}


@pytest.fixture(scope="session")
def built_zips(repo_root, tmp_path_factory):
    """Every zip tools/build_extension.py builds, keyed by (platform, Python)."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, str(repo_root / "tools" / "build_extension.py"), "--output-dir", str(out)],
                          capture_output=True, text=True, cwd=repo_root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    zips = {}
    for z in out.glob("*.zip"):
        match = NAME.match(z.name)
        assert match, f"{z.name} does not name its platform and Blender range"
        python = next(py for py, label in RANGE_LABELS.items() if label == match[2])
        zips[match[1], python] = z
    assert sorted(zips) == sorted((p, py) for p in PLATFORM_LIBRARY for py in RANGE_LABELS), sorted(zips)
    return zips


def zip_for_this_blender(built_zips, platform: str = "linux_x64"):
    """The platform's zip whose Blender range holds the running bpy, as a user picks it from the names; exactly one."""
    import bpy

    here = tuple(bpy.app.version)
    fits = [z for (plat, _), z in built_zips.items() if plat == platform
            and version(manifest(z)["blender_version_min"]) <= here
            and ("blender_version_max" not in manifest(z) or here < version(manifest(z)["blender_version_max"]))]
    assert len(fits) == 1, (here, fits)
    return fits[0]


@pytest.mark.parametrize("python", sorted(RANGE_LABELS))
@pytest.mark.parametrize("platform", sorted(PLATFORM_LIBRARY))
def test_zip_contents(built_zips, platform, python):
    zf = zipfile.ZipFile(built_zips[platform, python])
    names = zf.namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names and "core/spec.py" in names
    assert "assets/SHA256SUMS" in names
    assert not [n for n in names if n.startswith(("model/", "tests/", "export_onnx/", "tools/"))]
    libraries = sorted(n for n in names if n.startswith("preview/lib/"))
    assert libraries == [f"preview/lib/{PLATFORM_LIBRARY[platform]}"], libraries  # its own, and no CUDA library
    assert zf.getinfo(libraries[0]).file_size > 100_000
    scorer = sorted(n for n in names if n.startswith("core/lib/"))
    assert scorer == [f"core/lib/{SCORER_LIBRARY[platform]}"], scorer  # the phone scorer, its own platform's only
    wheels = [n for n in names if n.startswith("wheels/")]
    # One copy of each runtime wheel, all for this zip's Python (or for any Python 3).
    assert sorted(w.split("/")[1].split("-")[0] for w in wheels) == sorted(RUNTIME_WHEELS), wheels
    assert wheel_pythons(wheels) == {python}, wheels
    listed = manifest(built_zips[platform, python])
    assert sorted(listed["wheels"]) == sorted(f"./{w}" for w in wheels)
    assert listed["platforms"] == [platform.replace("_", "-")]
    for wheel in wheels:
        with zipfile.ZipFile(zf.open(wheel)) as inner:
            members = inner.namelist()
            record = inner.read(next(m for m in members if m.endswith(".dist-info/RECORD"))).decode()
        assert {line.split(",")[0] for line in record.splitlines() if line} == {m for m in members
                                                                               if not m.endswith("/")}, wheel
        if "pocketsphinx-" in wheel:  # the whole en-us model: word and phone LMs, dictionary, acoustic model
            assert {"pocketsphinx/model/en-us/en-us.lm.bin", "pocketsphinx/model/en-us/en-us-phone.lm.bin",
                    "pocketsphinx/model/en-us/cmudict-en-us.dict", "pocketsphinx/model/en-us/en-us/mdef"} \
                <= set(members), wheel
        if "onnxruntime-" in wheel:
            assert any("onnxruntime_pybind11_state" in m for m in members)
            assert not [m for m in members if m.startswith(("onnxruntime/transformers/", "onnxruntime/tools/"))
                        or re.search(r"capi/(libonnxruntime\.|onnxruntime\.dll)", m)], wheel
    assert built_zips[platform, python].stat().st_size < ZIP_LIMIT_MB * 1e6


def test_each_platforms_zips_cover_blender_4_2_onwards_without_overlap(built_zips):
    """Per platform, the zips' Blender ranges (max exclusive) meet end to end from 4.2 with no upper end, and each
    range is the one whose Blender runs the zip's Python; Blender's own repository listing reads the same Python."""
    for platform in PLATFORM_LIBRARY:
        ranges = sorted((version(m["blender_version_min"]), m.get("blender_version_max"), py)
                        for (plat, py), z in built_zips.items() if plat == platform for m in [manifest(z)])
        assert ranges[0][0] == (4, 2, 0), ranges
        for (_, top, _), (bottom, _, _) in zip(ranges, ranges[1:], strict=False):
            assert top is not None and version(top) == bottom, f"{platform}: gap or overlap in {ranges}"
        assert ranges[-1][1] is None, f"{platform}: the newest Blender has no zip: {ranges}"
        assert [py for *_, py in ranges] == ["3.11", "3.13"]  # Blender 4.2-5.0 run Python 3.11, 5.1 runs 3.13
        assert [r[1] for r in ranges] == ["5.1.0", None]
    listing = blender_repository_listing(built_zips)
    for (platform, python), z in built_zips.items():
        entry = listing[z.name]
        assert entry["python_versions"] == [python], (z.name, entry["python_versions"])
        assert entry["platforms"] == [platform.replace("_", "-")]


def blender_repository_listing(built_zips) -> dict:
    """Blender's builder's `server-generate` over the zips (it refuses ones that clash): archive name -> entry."""
    import importlib.util

    bpy_dir = Path(importlib.util.find_spec("bpy").origin).parent  # the wheel's bpy/, beside its <version>/ scripts
    script = next(bpy_dir.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    with tempfile.TemporaryDirectory() as tmp:
        for z in built_zips.values():
            (Path(tmp) / z.name).symlink_to(z)
        proc = subprocess.run([sys.executable, str(script), "server-generate", "--repo-dir", tmp],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and "duplicate" not in proc.stdout, proc.stdout + proc.stderr
        data = json.loads((Path(tmp) / "index.json").read_text())["data"]
    return {entry["archive_url"].rsplit("/", 1)[-1]: entry for entry in data}


@pytest.fixture(scope="session")
def built_zip(built_zips):
    return zip_for_this_blender(built_zips)


def test_install_enable_disable_in_fresh_user_dir(built_zip, tmp_path, repo_root):
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    proc = subprocess.run([sys.executable, "-c", INSTALL_SCRIPT, str(built_zip)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "INSTALL-OK" in proc.stdout
    site = next(line.split(" ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("SITE "))
    model = repo_root / "assets" / "models" / "audio_encoder.onnx"
    run = subprocess.run([sys.executable, "-c", RUN_WHEELS, site, str(model)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "WHEELS-OK" in run.stdout and site in run.stdout


def test_the_zip_for_another_blender_range_is_refused_and_installs_nothing(built_zips, built_zip, tmp_path):
    import bpy

    other = next(z for (plat, _), z in built_zips.items() if plat == "linux_x64" and z != built_zip)
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    proc = subprocess.run([sys.executable, "-c", REFUSE_SCRIPT, str(other)], capture_output=True, text=True,
                          env=env, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "ENABLED False" in out and "FILES False" in out, out[-3000:]
    limits = manifest(other)
    too_old = tuple(bpy.app.version) < version(limits["blender_version_min"])
    bound = limits["blender_version_min"] if too_old else limits["blender_version_max"]
    assert re.search(rf"This Blender version \({re.escape(bpy.app.version_string.split()[0])}\).*\({bound}\)", out), \
        out[-3000:]
