"""Build the Blender extension zips: dist/facepolicy-<version>-<platform>.zip, one per platform.

Builds the splat preview's CPU library for every platform with the preview's one build command (this machine's
compiler for this machine, zig for the others; zig comes from the `ziglang` wheel on PyPI, installed into
build/toolchains/ when it is not found), slims the runtime wheels to what the add-on runs (see slim_wheels), stages
addon/ (the package) + assets/ + the wheels + that platform's library into build/extension/<platform>/, then runs
Blender's own builder (bl_pkg/cli/blender_ext.py from the bpy wheel) with --split-platforms, and validates every zip it
made. Nothing from model/, tests/ or export_onnx/ goes in.

    python tools/build_extension.py                      # all platforms
    python tools/build_extension.py --platforms linux-x64
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
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from addon.preview import build as preview_build  # noqa: E402

# Runtime wheels: onnxruntime (the Neural engine), soundfile + cffi (audio decoding), pocketsphinx (Phonetic
# engine). Blender already ships numpy. --no-deps: onnxruntime's sympy/protobuf are not needed for inference.
RUNTIME_WHEELS = ("onnxruntime", "soundfile", "cffi", "pocketsphinx")
PYTHONS = ("3.11", "3.13")  # Blender 4.2–5.0, and 5.1+
PLATFORM_TAGS = {
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "windows-x64": ("win_amd64",),
    "macos-arm64": tuple(f"macosx_{v}_0_{a}" for v in (15, 14, 13, 12, 11) for a in ("arm64", "universal2")),
}
# The preview's CPU library in each platform's zip (the CUDA library is built where nvcc exists and never shipped:
# it would need the CUDA driver and adds 10 MB; the CPU library draws the preview interactively).
PREVIEW_LIBS = {name: preview_build.PLATFORMS[name].library("cpu") for name in PLATFORM_TAGS}
ZIGLANG = "ziglang==0.17.1"  # the cross toolchain, when zig is not found (build/toolchains/, git-ignored)

# What the add-on does not run, left out of the wheels: onnxruntime's C API library (the Python binding does not
# load it: 13 MB per Python ABI) and its model-tooling packages; pocketsphinx's model (the same files for every
# Python ABI) moves to one model wheel per zip (see pocketsphinx_model_wheel).
WHEEL_DROPS = {
    "onnxruntime": re.compile(r"^onnxruntime/(capi/(libonnxruntime\.so\.|libonnxruntime\.[0-9.]+dylib$|"
                              r"onnxruntime\.dll$)|transformers/|quantization/|tools/|datasets/)"),
    "pocketsphinx": re.compile(r"^pocketsphinx/model/"),
}
MODEL_PREFIX = "pocketsphinx/model/"


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


def download_wheels(platforms: list[str], wheel_dir: Path) -> list[Path]:
    wheel_dir.mkdir(parents=True, exist_ok=True)
    for plat in platforms:
        for py in PYTHONS:
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
    """Each platform's CPU library, with the preview's one build command."""
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


def pocketsphinx_model_wheel(wheels: list[Path], out_dir: Path) -> Path | None:
    """pocketsphinx's model, once, as a wheel that installs it where pocketsphinx looks (pocketsphinx/model/), for
    every Python ABI. Its version is pocketsphinx's, so Blender replaces both together. None when this platform's
    pocketsphinx wheels do not carry the same model (then they keep their own)."""
    models = []
    for wheel in (w for w in wheels if w.name.startswith("pocketsphinx-")):
        with zipfile.ZipFile(wheel) as zf:
            models.append({n: zf.read(n) for n in zf.namelist() if n.startswith(MODEL_PREFIX) and not n.endswith("/")})
            license_text = zf.read(next(n for n in zf.namelist() if n.endswith("licenses/LICENSE")))
    if not models or any(m != models[0] for m in models):
        return None
    version = next(w.name.split("-")[1] for w in wheels if w.name.startswith("pocketsphinx-"))
    name = "pocketsphinx_model"
    dist_info = f"{name}-{version}.dist-info"
    meta = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: the en-us model of pocketsphinx "
            f"{version}, split out of its wheels by FacePolicy's extension build (one copy for every Python)\n"
            "License: BSD-2-Clause\n").encode()
    files = {**models[0], f"{dist_info}/METADATA": meta, f"{dist_info}/licenses/LICENSE": license_text,
             f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: facepolicy\nRoot-Is-Purelib: true\n"
                                   b"Tag: py3-none-any\n"}
    out = out_dir / f"{name}-{version}-py3-none-any.whl"
    _write_wheel(out, files, dist_info)
    return out


def slim_wheels(wheels: list[Path], out_dir: Path) -> list[Path]:
    """One platform's runtime wheels as the zip carries them: slimmed, plus the shared pocketsphinx model."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    model = pocketsphinx_model_wheel(wheels, out_dir)
    slim = []
    for wheel in wheels:
        if model is None and wheel.name.startswith("pocketsphinx-"):
            shutil.copy2(wheel, out_dir / wheel.name)
            slim.append(out_dir / wheel.name)
        else:
            slim.append(slim_wheel(wheel, out_dir))
    return sorted(slim + ([model] if model else []))


def stage(platform: str, wheels: list[Path], stage_dir: Path) -> None:
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    # Each zip carries its own platform's preview library and no other (nor a CUDA library: see PREVIEW_LIBS).
    library = ROOT / "addon" / "preview" / "lib" / PREVIEW_LIBS[platform]
    if not library.exists():
        sys.exit(f"error: {library.relative_to(ROOT)} was not built")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.o", ".*", "lib")
    shutil.copytree(ROOT / "addon", stage_dir, ignore=ignore)
    (stage_dir / "preview" / "lib").mkdir()
    shutil.copy2(library, stage_dir / "preview" / "lib" / library.name)
    shutil.copytree(ROOT / "assets", stage_dir / "assets", ignore=ignore)
    wheels = slim_wheels([w for w in wheels if _wheel_platform(w) in (platform, "any")], stage_dir / "wheels")
    manifest = (ROOT / "blender_manifest.toml").read_text(encoding="utf-8")
    wheel_list = ",\n".join(f'  "./wheels/{w.name}"' for w in wheels)
    manifest = re.sub(r"(?m)^wheels = \[\]$", f"wheels = [\n{wheel_list}\n]", manifest)
    manifest = re.sub(r"(?m)^platforms = .*$", f'platforms = ["{platform}"]', manifest)
    (stage_dir / "blender_manifest.toml").write_text(manifest, encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platforms", default=",".join(PLATFORM_TAGS),
                        help="comma-separated: " + ", ".join(PLATFORM_TAGS))
    parser.add_argument("--output-dir", default=str(ROOT / "dist"))
    parser.add_argument("--wheel-dir", default=str(ROOT / "wheels"), help="download cache for runtime wheels")
    args = parser.parse_args(argv)
    platforms = [p.strip() for p in args.platforms.split(",") if p.strip()]
    unknown = [p for p in platforms if p not in PLATFORM_TAGS]
    if unknown:
        parser.error(f"unknown platform(s) {unknown}; choose from {list(PLATFORM_TAGS)}")

    build_preview_libraries(platforms)
    wheels = download_wheels(platforms, Path(args.wheel_dir))
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    script = blender_ext_script()
    for old in out.glob("facepolicy-*.zip"):
        old.unlink()
    for platform in platforms:
        # One staging per platform, so each zip carries only its own wheels and compiled libraries.
        stage_dir = ROOT / "build" / "extension" / platform
        stage(platform, wheels, stage_dir)
        subprocess.run([sys.executable, str(script), "build", "--source-dir", str(stage_dir), "--output-dir",
                        str(out), "--split-platforms"], check=True)
    zips = sorted(out.glob("facepolicy-*.zip"))
    if not zips:
        print("error: Blender's builder produced no zip", file=sys.stderr)
        return 1
    for z in zips:
        subprocess.run([sys.executable, str(script), "validate", str(z)], check=True)
        print(f"built {z.relative_to(ROOT) if z.is_relative_to(ROOT) else z} ({z.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
