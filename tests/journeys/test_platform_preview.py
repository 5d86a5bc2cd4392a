"""The splat preview on every platform, as users there get it: the Windows zip's DLL renders the head under wine like
the Linux library; the macOS zip's dylib is arm64 and exports the Linux library's functions; where a platform's
library is missing, `facepolicy preview` still draws (numpy) the same picture and says why in one sentence.

The zips are built from the source tree of the package under test, copied to a scratch folder (so an old tree is
never written to), with the repository's wheel cache."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from journey import ROOT, facepolicy
from test_preview_command import decode_png

HARNESS = ROOT / "tests" / "data" / "preview" / "wine_harness.c"
# Two float32 renders of one scene by two compilers' maths libraries (expf, logf, sqrtf): the Windows DLL and the
# Linux library measured 1.8e-7 apart on this frame; 1e-5 leaves room for other wine and CRT versions.
PIXEL_TOLERANCE = 1e-5


def package_tree() -> Path:
    """The source tree (addon/, tools/, assets/ ...) of the facepolicy package this test runs against."""
    import facepolicy

    return Path(facepolicy.__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cross_zips(tmp_path_factory):
    """The windows-x64 and macos-arm64 zips, built by tools/build_extension.py of the tree under test."""
    tree = package_tree()
    copy = tmp_path_factory.mktemp("tree") / "src"
    shutil.copytree(tree, copy, ignore=shutil.ignore_patterns(".venv*", ".git", "build", "dist", "wheels", "out",
                                                              "__pycache__", "*.so", "*.dll", "*.dylib", "cache"))
    out = tmp_path_factory.mktemp("dist")
    # One Blender range is enough: both ranges' zips take the platform's library from the same build.
    cmd = [sys.executable, str(copy / "tools" / "build_extension.py"), "--platforms", "windows-x64,macos-arm64",
           "--pythons", "3.13", "--output-dir", str(out), "--wheel-dir", str(ROOT / "wheels")]
    # The copy's own package, so the build compiles the copy's libraries into the copy.
    env = dict(os.environ, PYTHONPATH=str(_package_parent(copy, tmp_path_factory)))
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=copy, env=env, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    zips = {platform: z for z in out.glob("facepolicy-*.zip") for platform in ("windows_x64", "macos_arm64")
            if f"-{platform}-" in z.name}
    # The zig the build used: found as the preview's build finds it, or installed by the build into the copy.
    installed = copy / "build" / "toolchains" / "ziglang" / "ziglang" / "zig"
    return zips, [str(installed)] if installed.exists() else None


def _package_parent(copy: Path, tmp_path_factory) -> Path:
    parent = tmp_path_factory.mktemp("pkg")
    (parent / "facepolicy").symlink_to(copy / "addon", target_is_directory=True)
    return parent


def _linux_library():
    from facepolicy.preview import build, raster

    if build.find_cxx() is None:
        pytest.skip("no C++ compiler to build the Linux splat library (bash run.sh test installs g++)")
    return raster.Renderer(build.ensure_cpu_library())


def _head_frame(size: int = 192):
    """The default head, mouth open, seen from the front: the arrays fps_render takes."""
    from facepolicy.core import spec
    from facepolicy.core.head import load_default_head
    from facepolicy.preview.scene import SplatScene, front_camera, posed_head_vertices

    head = load_default_head()
    values = np.zeros(len(spec.CHANNEL_NAMES))
    values[spec.CHANNEL_NAMES.index("jawOpen")] = 0.6
    verts = posed_head_vertices(head, values)
    camera = front_camera(head.vertices, size, size)
    return SplatScene.from_head(head).render_arrays(verts, camera), camera


# --- Windows: the zip's DLL under wine ------------------------------------------------------------------------


@pytest.mark.slow
def test_the_windows_zip_renders_the_head_under_wine_like_linux(cross_zips, tmp_path):
    zips, build_zig = cross_zips
    names = zipfile.ZipFile(zips["windows_x64"]).namelist()
    assert "preview/lib/fpsplat_cpu.dll" in names, "the windows-x64 zip carries no splat library"
    if shutil.which("wine") is None:
        pytest.skip("wine is not installed (bash run.sh test installs wine64): the DLL cannot run here")
    from facepolicy.preview import build

    zig = build_zig or build.find_zig()
    assert zig is not None, "the build cross-compiled the DLL, so a zig must be at hand"
    dll = tmp_path / "fpsplat_cpu.dll"
    dll.write_bytes(zipfile.ZipFile(zips["windows_x64"]).read("preview/lib/fpsplat_cpu.dll"))
    harness = tmp_path / "harness.exe"
    subprocess.run([*zig, "cc", "-target", "x86_64-windows-gnu", "-O2", str(HARNESS), "-o", str(harness)],
                   check=True, capture_output=True, cwd=tmp_path)

    (means, scales, rots, opac, sh), camera = _head_frame()
    background = np.array([0.14, 0.14, 0.16], np.float32)
    with open(tmp_path / "scene.bin", "wb") as f:
        np.array([camera.width, camera.height, len(means), 0], np.int32).tofile(f)
        for a in (camera.params(), background, means, scales, rots, opac, sh):
            np.ascontiguousarray(a, np.float32).tofile(f)
    env = dict(os.environ, WINEPREFIX=str(tmp_path / "wine"), WINEDEBUG="-all", WINEDLLOVERRIDES="mscoree,mshtml=")
    run = subprocess.run(["wine", str(harness), str(dll), str(tmp_path / "scene.bin"), str(tmp_path / "out.bin")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    assert f"rendered {camera.width}x{camera.height} from {len(means)} gaussians" in run.stdout

    out = np.fromfile(tmp_path / "out.bin", np.float32)
    n_pixels = camera.width * camera.height
    rgb, alpha = out[:3 * n_pixels].reshape(camera.height, camera.width, 3), out[3 * n_pixels:]
    linux_rgb, linux_alpha = _linux_library().render(means, scales, rots, opac, sh, camera, background=background,
                                                     with_alpha=True)
    assert np.abs(rgb - linux_rgb).max() <= PIXEL_TOLERANCE
    assert np.abs(alpha - linux_alpha.reshape(-1)).max() <= PIXEL_TOLERANCE
    assert 0.2 < alpha.mean() < 0.9 and rgb.std() > 0.05  # a head on a background, not an empty frame


# --- macOS: the zip's dylib is arm64 and exports what the Linux library exports ----------------------------------

MH_MAGIC_64, CPU_TYPE_ARM64, MH_DYLIB, LC_SYMTAB = 0xFEEDFACF, 0x0100000C, 6, 0x2
N_EXT, N_TYPE, N_SECT = 0x01, 0x0E, 0x0E


def macho_exports(data: bytes) -> tuple[int, int, set[str]]:
    """(cputype, filetype, exported function names) of a thin 64-bit Mach-O file, from its symbol table."""
    magic, cputype, _sub, filetype, ncmds = struct.unpack_from("<IiiII", data, 0)
    assert magic == MH_MAGIC_64, f"not a 64-bit little-endian Mach-O file (magic {magic:#x})"
    offset, names = 32, set()
    for _ in range(ncmds):
        cmd, size = struct.unpack_from("<II", data, offset)
        if cmd == LC_SYMTAB:
            symoff, nsyms, stroff, _strsize = struct.unpack_from("<IIII", data, offset + 8)
            for i in range(nsyms):
                strx, n_type, _sect, _desc, _value = struct.unpack_from("<IBBHQ", data, symoff + 16 * i)
                if n_type & N_EXT and n_type & N_TYPE == N_SECT:
                    end = data.index(b"\0", stroff + strx)
                    names.add(data[stroff + strx:end].decode().removeprefix("_"))
        offset += size
    return cputype, filetype, names


def elf_exports(path: Path) -> set[str]:
    if shutil.which("nm") is None:
        pytest.skip("nm (binutils) is not installed")
    out = subprocess.run(["nm", "-D", "--defined-only", str(path)], capture_output=True, text=True, check=True)
    return {line.split()[-1] for line in out.stdout.splitlines() if line.split()[1:2] == ["T"]}


@pytest.mark.slow
def test_the_macos_zip_holds_an_arm64_dylib_exporting_the_linux_functions(cross_zips):
    zips, _ = cross_zips
    names = zipfile.ZipFile(zips["macos_arm64"]).namelist()
    assert "preview/lib/libfpsplat_cpu.dylib" in names, "the macos-arm64 zip carries no splat library"
    cputype, filetype, exports = macho_exports(zipfile.ZipFile(zips["macos_arm64"]).read(
        "preview/lib/libfpsplat_cpu.dylib"))
    assert (cputype, filetype) == (CPU_TYPE_ARM64, MH_DYLIB)
    linux = {name for name in elf_exports(_linux_library().path) if name.startswith("fps_")}
    assert linux == {"fps_abi_version", "fps_backend", "fps_device_count", "fps_last_error", "fps_nearest_triangles",
                     "fps_render"}
    assert {name for name in exports if name.startswith("fps_")} == linux


# --- a platform without its library: the numpy renderer ---------------------------------------------------------


def test_preview_without_the_library_draws_the_same_sheet_with_numpy(tmp_path):
    from facepolicy.core import spec

    _linux_library()
    values = np.zeros((3, len(spec.CHANNEL_NAMES)))
    values[:, spec.CHANNEL_NAMES.index("jawOpen")] = [0.0, 0.5, 0.9]
    track = {"fps": 30, "names": list(spec.CHANNEL_NAMES), "weights": values.tolist()}
    (tmp_path / "take.json").write_text(json.dumps(track), encoding="utf-8")
    run = facepolicy("preview", "take.json", "-o", "with_library.png", "--size", "96", "--backend", "cpu",
                     cwd=tmp_path)
    assert run.returncode == 0, run.stderr

    # The installed package as a platform without its library would have it: preview/lib/ empty.
    pkg = tmp_path / "pkg"
    shutil.copytree(package_tree() / "addon", pkg / "facepolicy",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.dll", "*.dylib"))
    run = _facepolicy_with(str(pkg), "preview", "take.json", "-o", "numpy.png", "--size", "96", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    notes = [line for line in run.stdout.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and notes[0].startswith("note: No splat library for ")
    assert notes[0].endswith("so the splat preview draws with the slower numpy renderer.")
    assert "numpy renderer" in run.stdout.splitlines()[-1]
    with_library = decode_png((tmp_path / "with_library.png").read_bytes()).astype(int)
    with_numpy = decode_png((tmp_path / "numpy.png").read_bytes()).astype(int)
    assert with_numpy.shape == with_library.shape == (96, 3 * 96 + 2 * 2, 3)
    # 8-bit pixels: the renderers agree to 3e-6, so at most a rounding step apart.
    assert np.abs(with_numpy - with_library).max() <= 1
    assert with_numpy.std() > 20


def _facepolicy_with(pythonpath: str, *args, cwd):
    """`facepolicy ARGS` with the package taken from ``pythonpath`` (assets from this repository)."""
    from journey import console_script

    env = dict(os.environ, PYTHONPATH=pythonpath, FACEPOLICY_ASSETS=str(package_tree() / "assets"))
    return subprocess.run([console_script(), *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env,
                          stdin=subprocess.DEVNULL)
