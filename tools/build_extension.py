"""Build the Blender extension zips: dist/facepolicy-<version>-<platform>.zip, one per platform.

Builds the splat preview's CPU library for this machine, stages addon/ (the package) + assets/ + the runtime wheels
+ that library into build/extension/<platform>/, then runs Blender's own builder (bl_pkg/cli/blender_ext.py from
the bpy wheel) with --split-platforms, and validates
every zip it made. Nothing from model/, tests/ or export_onnx/ goes in.

    python tools/build_extension.py                      # all platforms
    python tools/build_extension.py --platforms linux-x64
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runtime wheels: onnxruntime (the Neural engine), soundfile + cffi (audio decoding), pocketsphinx (Phonetic
# engine). Blender already ships numpy. --no-deps: onnxruntime's sympy/protobuf are not needed for inference.
RUNTIME_WHEELS = ("onnxruntime", "soundfile", "cffi", "pocketsphinx")
PYTHONS = ("3.11", "3.13")  # Blender 4.2–5.0, and 5.1+
PLATFORM_TAGS = {
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "windows-x64": ("win_amd64",),
    "macos-arm64": tuple(f"macosx_{v}_0_{a}" for v in (15, 14, 13, 12, 11) for a in ("arm64", "universal2")),
}
# Shared libraries built by the preview's one build command, per platform (built only for the host).
PREVIEW_LIBS = {"linux-x64": ("libfpsplat_cpu.so",), "windows-x64": ("fpsplat_cpu.dll",),
                "macos-arm64": ("libfpsplat_cpu.dylib",)}


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


def host_platform() -> str | None:
    import platform

    machine = platform.machine().lower()
    if sys.platform.startswith("linux") and machine in ("x86_64", "amd64"):
        return "linux-x64"
    if sys.platform == "win32" and machine in ("x86_64", "amd64"):
        return "windows-x64"
    if sys.platform == "darwin" and machine == "arm64":
        return "macos-arm64"
    return None


def build_preview_library() -> None:
    """The splat preview's CPU library for this machine (the one build command of the preview)."""
    subprocess.run([sys.executable, "-m", "facepolicy.preview.build", "--cpu-only"], check=True, cwd=ROOT)


def stage(platform: str, wheels: list[Path], stage_dir: Path) -> None:
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    # Compiled preview libraries are only for the machine that built them: ship them in that platform's zip.
    libs = set().union(*PREVIEW_LIBS.values()) | {"libfpsplat_cuda.so", "fpsplat_cuda.dll"}
    keep = set(PREVIEW_LIBS[platform]) if platform == host_platform() else set()
    drop = sorted(libs - keep)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.o", ".*", *drop)
    shutil.copytree(ROOT / "addon", stage_dir, ignore=ignore)
    shutil.copytree(ROOT / "assets", stage_dir / "assets", ignore=ignore)
    (stage_dir / "wheels").mkdir()
    wheels = [w for w in wheels if _wheel_platform(w) in (platform, "any")]
    for w in wheels:
        shutil.copy2(w, stage_dir / "wheels" / w.name)
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

    if host_platform() in platforms:
        build_preview_library()
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
