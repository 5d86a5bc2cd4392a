"""Build the Blender extension zips: one per platform and Blender range (Python ABI), named for both:
dist/facepolicy-<version>-<platform>-for-blender-4.2-to-5.0.zip (Python 3.11) and
dist/facepolicy-<version>-<platform>-for-blender-5.1-and-later.zip (Python 3.13).

Builds the splat preview's CPU library for every platform with the preview's one build command (this machine's
compiler for this machine, zig for the others; zig comes from the `ziglang` wheel on PyPI, installed into
build/toolchains/ when it is not found), slims the runtime wheels to what the add-on runs (see WHEEL_DROPS), stages
addon/ (the package) + assets/ + that platform's library + that Python's wheels into
build/extension/<platform>-<abi>/ with the Blender range in its manifest, then runs Blender's own builder
(bl_pkg/cli/blender_ext.py from the bpy wheel), validates every zip it made and checks the set with the builder's
repository listing (server-generate), which refuses two zips that Blender could both pick. Nothing from model/,
tests/ or export_onnx/ goes in.

    python tools/build_extension.py                      # all platforms, both Blender ranges
    python tools/build_extension.py --platforms linux-x64 --pythons 3.11
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from addon.preview import build as preview_build  # noqa: E402

# Runtime wheels: onnxruntime (the Neural engine), soundfile + cffi (audio decoding), pocketsphinx (Phonetic
# engine). Blender already ships numpy. --no-deps: onnxruntime's sympy/protobuf are not needed for inference.
RUNTIME_WHEELS = ("onnxruntime", "soundfile", "cffi", "pocketsphinx")


class BlenderRange(NamedTuple):
    """The Blender releases one zip serves: those that run its Python. ``maximum`` is exclusive, as the manifest's
    blender_version_max is (None: no upper bound); ``label`` names the range in the zip's file name."""
    minimum: str
    maximum: str | None
    label: str


# One zip per platform and Python ABI, so each carries one copy of the compiled wheels (two copies made them 55 to
# 67 MB). Blender installs a zip only where its Python matches the wheels (the builder reads the ABI from their
# names); blender_version_min/max say the same range to users and to the extensions platform. The ranges meet end to
# end: 4.2 up to (not including) 5.1, then 5.1 and later.
BLENDER_RANGES = {
    "3.11": BlenderRange("4.2.0", "5.1.0", "for-blender-4.2-to-5.0"),
    "3.13": BlenderRange("5.1.0", None, "for-blender-5.1-and-later"),
}
PYTHONS = tuple(BLENDER_RANGES)
PLATFORM_TAGS = {
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "windows-x64": ("win_amd64",),
    "macos-arm64": tuple(f"macosx_{v}_0_{a}" for v in (15, 14, 13, 12, 11) for a in ("arm64", "universal2")),
}
# The preview's CPU library in each platform's zip (the CUDA library is built where nvcc exists and never shipped:
# it would need the CUDA driver and adds 10 MB; the CPU library draws the preview interactively).
PREVIEW_LIBS = {name: preview_build.PLATFORMS[name].library("cpu") for name in PLATFORM_TAGS}
# The phone recognition library (core.ptm_scores), built by the same command. The Windows pocketsphinx wheel exports
# none of the decoder's C functions, so recognition there runs in pocketsphinx; the library is shipped all the same,
# so every zip holds the same files.
SCORER_LIBS = {name: preview_build.PLATFORMS[name].scorer() for name in PLATFORM_TAGS}
ZIGLANG = "ziglang==0.17.1"  # the cross toolchain, when zig is not found (build/toolchains/, git-ignored)

# What the add-on does not run, left out of the wheels: onnxruntime's C API library (the Python binding does not
# load it: 13 MB) and its model-tooling packages. pocketsphinx ships whole: every file of its en-us model is read
# (the word LM and dictionary by word recognition and alignment, the phone LM by phone recognition, the acoustic model
# by all three).
WHEEL_DROPS = {
    "onnxruntime": re.compile(r"^onnxruntime/(capi/(libonnxruntime\.so\.|libonnxruntime\.[0-9.]+dylib$|"
                              r"onnxruntime\.dll$)|transformers/|quantization/|tools/|datasets/)"),
}


def blender_ext_script() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("bpy")  # located, not imported: loading bpy is slow
    if spec is None or not spec.origin:
        sys.exit("error: the bpy module is not installed; install bpy==5.0.1 (README, command 1)")
    base = Path(spec.origin).parent
    hits = sorted(base.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not hits:
        sys.exit("error: blender_ext.py not found inside the bpy wheel; install bpy==5.0.1 (README, command 1)")
    return hits[-1]


def download_wheels(platforms: list[str], pythons: list[str], wheel_dir: Path) -> list[Path]:
    wheel_dir.mkdir(parents=True, exist_ok=True)
    for plat in platforms:
        for py in pythons:
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                   "--python-version", py, "--implementation", "cp", "-d", str(wheel_dir)]
            for tag in PLATFORM_TAGS[plat]:
                cmd += ["--platform", tag]
            for name in RUNTIME_WHEELS:
                if _have_wheel(wheel_dir, name, py, plat):
                    continue
                subprocess.run(cmd + [name], check=True)
    return sorted(w for w in wheel_dir.glob("*.whl") if _wheel_platform(w) in platforms or _wheel_platform(w) == "any")


def _have_wheel(wheel_dir: Path, name: str, py: str, plat: str) -> bool:
    abi = "cp" + py.replace(".", "")
    for w in wheel_dir.glob(f"{name}-*.whl"):
        tags = w.name[:-4].split("-")
        if _wheel_platform(w) in (plat, "any") and (abi in tags[2] or tags[2].startswith("py")):
            return True
    return False


def wheel_python(wheel: Path | str) -> str | None:
    """The Python a wheel is built for ("3.11" from cp311), or None when any Python 3 runs it (py3, abi3)."""
    abi = Path(wheel).name[:-4].split("-")[-2]
    match = re.fullmatch(r"cp(\d)(\d+)", abi)
    return f"{match[1]}.{match[2]}" if match else None


def _wheel_platform(wheel: Path) -> str:
    tag = wheel.name[:-4].split("-")[-1]
    if "manylinux" in tag and "x86_64" in tag:
        return "linux-x64"
    if "win_amd64" in tag:
        return "windows-x64"
    if "macosx" in tag and ("arm64" in tag or "universal2" in tag):
        return "macos-arm64"
    if tag == "any":
        return "any"
    return "other"


def zig_environment() -> dict:
    """The environment for the preview's build, with $ZIG set to a zig from the `ziglang` wheel when none is found."""
    env = dict(os.environ)
    if preview_build.find_zig() is not None:
        return env
    target = ROOT / "build" / "toolchains" / "ziglang"
    zig = target / "ziglang" / ("zig.exe" if sys.platform == "win32" else "zig")
    if not zig.exists():
        print(f"zig not found: installing {ZIGLANG} (PyPI) into {target.relative_to(ROOT)}")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), ZIGLANG],
                       check=True)
    env["ZIG"] = str(zig)
    return env


def build_preview_libraries(platforms: list[str]) -> None:
    """Each platform's CPU libraries (the splat preview's and the phone scorer's), with the one build command."""
    subprocess.run([sys.executable, "-m", "facepolicy.preview.build", "--cpu-only", "--target", ",".join(platforms)],
                   check=True, cwd=ROOT, env=zig_environment())


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _write_wheel(path: Path, files: dict[str, bytes], dist_info: str) -> None:
    """A wheel holding ``files`` (name -> bytes) with a RECORD that lists them, as installers expect."""
    record_name = f"{dist_info}/RECORD"
    lines = [_record_line(n, d) for n, d in files.items() if n != record_name] + [f"{record_name},,"]
    files = {**{n: d for n, d in files.items() if n != record_name}, record_name: ("\n".join(lines) + "\n").encode()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)


def _dist_info(names) -> str:
    return next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))


def slim_wheel(wheel: Path, out_dir: Path) -> Path:
    """``wheel`` without what WHEEL_DROPS leaves out (its RECORD rewritten); other wheels are copied as they are."""
    project = wheel.name.split("-")[0]
    out = out_dir / wheel.name
    if project not in WHEEL_DROPS:
        shutil.copy2(wheel, out)
        return out
    with zipfile.ZipFile(wheel) as zf:
        files = {n: zf.read(n) for n in zf.namelist() if not n.endswith("/") and not WHEEL_DROPS[project].match(n)}
        dist_info = _dist_info(zf.namelist())
    _write_wheel(out, files, dist_info)
    return out


def slim_wheels(wheels: list[Path], out_dir: Path) -> list[Path]:
    """One zip's runtime wheels as it carries them: slimmed where WHEEL_DROPS says, the others as they are."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    return sorted(slim_wheel(wheel, out_dir) for wheel in wheels)


def zip_name(version: str, platform: str, python: str) -> str:
    """The zip's file name: the platform as Blender's --split-platforms writes it, then the Blender range."""
    return f"facepolicy-{version}-{platform.replace('-', '_')}-{BLENDER_RANGES[python].label}.zip"


def stage(platform: str, python: str, wheels: list[Path], stage_dir: Path) -> None:
    """build/extension/<platform>-<abi>/: the add-on, its assets, this platform's library and this Python's wheels,
    with a manifest that names the one platform, the wheels and the Blender range that runs this Python."""
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    # Each zip carries its own platform's preview library and no other (nor a CUDA library: see PREVIEW_LIBS).
    libraries = {"preview": ROOT / "addon" / "preview" / "lib" / PREVIEW_LIBS[platform],
                 "core": ROOT / "addon" / "core" / "lib" / SCORER_LIBS[platform]}
    for library in libraries.values():
        if not library.exists():
            sys.exit(f"error: {library.relative_to(ROOT)} was not built")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.o", ".*", "lib")
    shutil.copytree(ROOT / "addon", stage_dir, ignore=ignore)
    for package, library in libraries.items():
        (stage_dir / package / "lib").mkdir()
        shutil.copy2(library, stage_dir / package / "lib" / library.name)
    shutil.copytree(ROOT / "assets", stage_dir / "assets", ignore=ignore)
    mine = [w for w in wheels if _wheel_platform(w) in (platform, "any") and wheel_python(w) in (python, None)]
    missing = [n for n in RUNTIME_WHEELS if not any(w.name.startswith(f"{n}-") for w in mine)]
    if missing:
        sys.exit(f"error: no {', '.join(missing)} wheel for Python {python} on {platform} in the wheel folder")
    wheels = slim_wheels(mine, stage_dir / "wheels")
    (stage_dir / "blender_manifest.toml").write_text(manifest_for(platform, python, wheels), encoding="utf-8")


def manifest_for(platform: str, python: str, wheels: list[Path]) -> str:
    """The repository's manifest for one zip: its platform, its wheels and its Blender range."""
    manifest = (ROOT / "blender_manifest.toml").read_text(encoding="utf-8")
    blender = BLENDER_RANGES[python]
    source_min = re.search(r'(?m)^blender_version_min = "([0-9.]+)"$', manifest)
    if source_min is None or source_min[1] != BLENDER_RANGES[PYTHONS[0]].minimum:
        sys.exit(f"error: blender_manifest.toml's blender_version_min is not {BLENDER_RANGES[PYTHONS[0]].minimum}, "
                 "where BLENDER_RANGES starts; change both together")
    bounds = f'blender_version_min = "{blender.minimum}"'
    if blender.maximum:
        bounds += f'\nblender_version_max = "{blender.maximum}"'
    manifest = manifest[:source_min.start()] + bounds + manifest[source_min.end():]
    wheel_list = ",\n".join(f'  "./wheels/{w.name}"' for w in wheels)
    manifest = re.sub(r"(?m)^wheels = \[\]$", f"wheels = [\n{wheel_list}\n]", manifest)
    return re.sub(r"(?m)^platforms = .*$", f'platforms = ["{platform}"]', manifest)


def check_repository(script: Path, zips: list[Path]) -> None:
    """Blender's repository listing of the zips (the builder's server-generate): it refuses two zips with the same
    platform and Python whose Blender ranges overlap, so Blender never has two candidates."""
    with tempfile.TemporaryDirectory(prefix="fp_repo_") as tmp:
        for z in zips:
            (Path(tmp) / z.name).symlink_to(z.resolve())
        proc = subprocess.run([sys.executable, str(script), "server-generate", "--repo-dir", tmp],
                              capture_output=True, text=True)
    if proc.returncode != 0 or "duplicate" in proc.stdout + proc.stderr:
        sys.exit(f"error: Blender's repository listing refused the zips: {(proc.stdout + proc.stderr).strip()}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platforms", default=",".join(PLATFORM_TAGS),
                        help="comma-separated: " + ", ".join(PLATFORM_TAGS))
    parser.add_argument("--pythons", default=",".join(PYTHONS),
                        help="comma-separated Pythons, one zip each: " + ", ".join(
                            f"{py} (Blender {r.label.removeprefix('for-blender-').replace('-', ' ')})"
                            for py, r in BLENDER_RANGES.items()))
    parser.add_argument("--output-dir", default=str(ROOT / "dist"))
    parser.add_argument("--wheel-dir", default=str(ROOT / "wheels"), help="download cache for runtime wheels")
    args = parser.parse_args(argv)
    platforms = [p.strip() for p in args.platforms.split(",") if p.strip()]
    unknown = [p for p in platforms if p not in PLATFORM_TAGS]
    if unknown:
        parser.error(f"unknown platform(s) {unknown}; choose from {list(PLATFORM_TAGS)}")
    pythons = [p.strip() for p in args.pythons.split(",") if p.strip()]
    unknown = [p for p in pythons if p not in BLENDER_RANGES]
    if unknown:
        parser.error(f"unknown Python(s) {unknown}; choose from {list(BLENDER_RANGES)}")

    build_preview_libraries(platforms)
    wheels = download_wheels(platforms, pythons, Path(args.wheel_dir))
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    script = blender_ext_script()
    for old in out.glob("facepolicy-*.zip"):
        old.unlink()
    version = re.search(r'(?m)^version = "([^"]+)"$', (ROOT / "blender_manifest.toml").read_text("utf-8"))[1]
    zips = []
    for platform in platforms:
        for python in pythons:
            # One staging per zip, so each carries only its own platform's library and its own Python's wheels.
            stage_dir = ROOT / "build" / "extension" / f"{platform}-cp{python.replace('.', '')}"
            stage(platform, python, wheels, stage_dir)
            zips.append(out / zip_name(version, platform, python))
            subprocess.run([sys.executable, str(script), "build", "--source-dir", str(stage_dir),
                            "--output-filepath", str(zips[-1])], check=True)
    for z in zips:
        subprocess.run([sys.executable, str(script), "validate", str(z)], check=True)
    check_repository(script, zips)
    for z in zips:
        print(f"built {z.relative_to(ROOT) if z.is_relative_to(ROOT) else z} ({z.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
