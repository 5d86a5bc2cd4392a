"""Build the native libraries: the splat rasterizer (the CPU library for this machine and for the other platforms,
the CUDA library where nvcc exists) and the phone recognition library (core/csrc/ptm_scores.cpp: all-phone scoring
and search, CPU only, into addon/core/lib/; core.ptm_scores loads it, and recognition runs in pocketsphinx without
it).

    python -m facepolicy.preview.build                                  # this machine (CUDA too if nvcc is found)
    python -m facepolicy.preview.build --cpu-only
    python -m facepolicy.preview.build --target windows-x64,macos-arm64  # cross-compiled with zig
    python -m facepolicy.preview.build --target all --cpu-only           # what the extension zips ship

Every splat library comes from the one source csrc/splat.cpp and lands in addon/preview/lib/ (git-ignored). This
machine's CPU library is compiled with its C++ compiler (g++, c++ or clang++); another platform's with `zig c++`
(the `ziglang` package on PyPI carries the whole toolchain, with the Windows and macOS system headers), which is
found as $ZIG, `zig` on PATH, or the `ziglang` module importable by this Python.
"""

from __future__ import annotations

import argparse
import os
import platform as _platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..core import ptm_scores

CSRC = Path(__file__).resolve().parent / "csrc"
SOURCES = (CSRC / "splat.cpp", CSRC / "splat_math.h")
LIB_DIR = Path(__file__).resolve().parent / "lib"


@dataclass(frozen=True)
class Platform:
    """A platform the extension ships for: how its libraries are named and zig's name for it."""

    prefix: str
    suffix: str
    zig_target: str

    def library(self, backend: str) -> str:
        return f"{self.prefix}fpsplat_{backend}{self.suffix}"

    def scorer(self) -> str:
        """The phone recognition library (core.ptm_scores.LIBRARY on that platform)."""
        return f"{self.prefix}fpptm{self.suffix}"


# Blender's platform names. glibc 2.28 is Blender 4.2's own floor on Linux; macOS 11 is the oldest arm64 macOS.
PLATFORMS = {
    "linux-x64": Platform("lib", ".so", "x86_64-linux-gnu.2.28"),
    "windows-x64": Platform("", ".dll", "x86_64-windows-gnu"),
    "macos-arm64": Platform("lib", ".dylib", "aarch64-macos.11.0"),
}


def host_platform() -> str | None:
    """This machine as one of PLATFORMS, or None (e.g. Linux on ARM: no zip is made for it)."""
    machine = _platform.machine().lower()
    if sys.platform.startswith("linux") and machine in ("x86_64", "amd64"):
        return "linux-x64"
    if sys.platform == "win32" and machine in ("x86_64", "amd64"):
        return "windows-x64"
    if sys.platform == "darwin" and machine == "arm64":
        return "macos-arm64"
    return None


if sys.platform == "win32":
    _PREFIX, _SUFFIX = "", ".dll"
elif sys.platform == "darwin":
    _PREFIX, _SUFFIX = "lib", ".dylib"
else:
    _PREFIX, _SUFFIX = "lib", ".so"

# The libraries this machine loads (raster.py); named by the operating system, so Linux on ARM gets libfpsplat_cpu.so.
CPU_LIBRARY = f"{_PREFIX}fpsplat_cpu{_SUFFIX}"
CUDA_LIBRARY = f"{_PREFIX}fpsplat_cuda{_SUFFIX}"

# Real architectures compiled ahead of time, plus PTX of the newest one so later GPUs can JIT it.
DEFAULT_CUDA_ARCHS = ("75", "80", "86", "89", "90")

# Flags every CPU build shares. No FMA contraction: arm64 compilers would otherwise fuse a*b+c where x86-64
# (baseline, no FMA) cannot, and the platforms' pixels would drift apart.
_CPU_FLAGS = ("-O3", "-std=c++17", "-shared", "-fno-math-errno", "-ffp-contract=off", "-fvisibility=hidden")


class BuildError(RuntimeError):
    """A compiler is missing or failed; the message says which and shows its output."""


def find_cxx() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def find_nvcc() -> str | None:
    for cand in (os.environ.get("NVCC"), "nvcc", "/usr/local/cuda/bin/nvcc"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    return None


def find_zig() -> list[str] | None:
    """The command that runs zig: $ZIG, `zig` on PATH, or `python -m ziglang` (pip install ziglang)."""
    for cand in (os.environ.get("ZIG"), "zig"):
        if cand and shutil.which(cand):
            return [shutil.which(cand)]
    import importlib.util

    if importlib.util.find_spec("ziglang") is not None:
        return [sys.executable, "-m", "ziglang"]
    return None


def _compile(cmd: list[str], out: Path) -> Path:
    """Run ``cmd`` in a scratch folder writing the library there, then move it onto ``out``: parallel builds never
    see half a file, and what a linker writes beside it (zig's .lib and .pdb for Windows) is left behind."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fpsplat-build-", dir=out.parent) as scratch:
        tmp = Path(scratch) / out.name
        proc = subprocess.run([*cmd, "-o", str(tmp)], capture_output=True, text=True, cwd=scratch)
        if proc.returncode != 0 or not tmp.exists():
            raise BuildError(f"{' '.join(Path(c).name for c in cmd[:3])} failed (exit {proc.returncode}):\n"
                             f"{proc.stderr.strip()}")
        os.replace(tmp, out)
    return out


def cpu_command(cxx: str, source: Path = SOURCES[0]) -> list[str]:
    flags = [*_CPU_FLAGS, "-fPIC", "-pthread"]
    if sys.platform.startswith("linux"):
        # The zip may run on machines without this compiler's C++ runtime; its symbols stay inside the library, so
        # they neither clash with the host's libstdc++ nor bind to it.
        flags += ["-static-libstdc++", "-static-libgcc", "-Wl,--exclude-libs,ALL"]
    return [cxx, *flags, str(source)]


def cross_command(zig: list[str], target: str, source: Path = SOURCES[0], name: str | None = None) -> list[str]:
    """zig c++ for ``target`` (a PLATFORMS key) of ``source``, the library to be called ``name`` (default: the splat
    CPU library). zig links its libc++ statically, so the library needs only the system's C library (ucrt on
    Windows, libSystem on macOS)."""
    flags = list(_CPU_FLAGS)
    if target != "windows-x64":
        flags += ["-fPIC"]
    if target == "macos-arm64":
        # The library's own name (otherwise the scratch folder it was linked in); it is loaded by full path.
        flags += [f"-Wl,-install_name,@rpath/{name or PLATFORMS[target].library('cpu')}"]
    return [*zig, "c++", "-target", PLATFORMS[target].zig_target, *flags, str(source)]


def cuda_command(nvcc: str, archs=DEFAULT_CUDA_ARCHS) -> list[str]:
    gencode = []
    for arch in archs:
        gencode += ["-gencode", f"arch=compute_{arch},code=sm_{arch}"]
    gencode += ["-gencode", f"arch=compute_{archs[-1]},code=compute_{archs[-1]}"]
    # cudart is linked statically (nvcc's default): the library needs only the NVIDIA driver at run time.
    # --threads 0: compile the architectures in parallel, one per CPU.
    return [nvcc, "-O3", "-std=c++17", "-x", "cu", "-shared", "-Xcompiler", "-fPIC,-fvisibility=hidden",
            "--threads", "0", *gencode, str(SOURCES[0])]


def build_cpu(out_dir: Path = LIB_DIR, source: Path = SOURCES[0], name: str = CPU_LIBRARY) -> Path:
    """This machine's library ``name`` of ``source`` (default: the splat CPU library)."""
    cxx = find_cxx()
    if cxx is None:
        raise BuildError("no C++ compiler found (g++, c++ or clang++); install one, e.g. `apt-get install g++`")
    return _compile(cpu_command(cxx, source), Path(out_dir) / name)


def build_cross(target: str, out_dir: Path = LIB_DIR, source: Path = SOURCES[0], name: str | None = None) -> Path:
    """The library ``name`` of ``source`` (default: the splat CPU library) for another platform (``target``, a
    PLATFORMS key), cross-compiled with zig."""
    zig = find_zig()
    if zig is None:
        raise BuildError(f"zig not found: cross-compiling for {target} needs it; `pip install ziglang` (PyPI) "
                         "or set $ZIG")
    name = name or PLATFORMS[target].library("cpu")
    return _compile(cross_command(zig, target, source, name), Path(out_dir) / name)


def build_for(target: str, out_dir: Path = LIB_DIR, source: Path = SOURCES[0], name: str | None = None) -> Path:
    """The library ``name`` of ``source`` (default: the splat CPU library) for ``target``: with this machine's
    compiler when it is this machine, else with zig."""
    if target not in PLATFORMS:
        raise BuildError(f"unknown target {target!r}; choose from {', '.join(PLATFORMS)}")
    if target == host_platform():
        return build_cpu(out_dir, source, name or CPU_LIBRARY)
    return build_cross(target, out_dir, source, name)


def build_cuda(out_dir: Path = LIB_DIR, archs=DEFAULT_CUDA_ARCHS) -> Path:
    nvcc = find_nvcc()
    if nvcc is None:
        raise BuildError("nvcc not found; the CUDA library is optional, the CPU library works without it")
    return _compile(cuda_command(nvcc, tuple(archs)), Path(out_dir) / CUDA_LIBRARY)


def build_scorer(target: str | None = None, out_dir: Path = ptm_scores.LIB_DIR) -> Path:
    """The phone recognition library (core/csrc/ptm_scores.cpp) for ``target`` (a PLATFORMS key; None: this
    machine, whatever it is), as build_for builds the splat library."""
    if target is None:
        return build_cpu(out_dir, ptm_scores.SOURCE, ptm_scores.LIBRARY)
    return build_for(target, out_dir, ptm_scores.SOURCE, PLATFORMS[target].scorer() if target in PLATFORMS else None)


def is_stale(library: Path, sources=SOURCES) -> bool:
    """True when ``library`` is missing or older than any of its ``sources`` (default: the splat library's)."""
    if not library.exists():
        return True
    built = library.stat().st_mtime
    return any(src.stat().st_mtime > built for src in sources)


def ensure_cpu_library(out_dir: Path = LIB_DIR) -> Path:
    """The CPU library, (re)built first if it is missing or older than its source."""
    lib = Path(out_dir) / CPU_LIBRARY
    if is_stale(lib):
        build_cpu(out_dir)
    return lib


def ensure_scorer_library(out_dir: Path = ptm_scores.LIB_DIR) -> Path:
    """This machine's phone recognition library, (re)built first if it is missing or older than its source."""
    lib = Path(out_dir) / ptm_scores.LIBRARY
    if is_stale(lib, (ptm_scores.SOURCE,)):
        build_scorer(None, out_dir)
    return lib


def _targets(spec: str) -> list[str]:
    if spec == "host":
        host = host_platform()
        return [host] if host else []
    if spec == "all":
        return list(PLATFORMS)
    names = [t.strip() for t in spec.split(",") if t.strip()]
    unknown = [t for t in names if t not in PLATFORMS]
    if unknown:
        raise BuildError(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(PLATFORMS)}, all, host")
    return names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facepolicy.preview.build", description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-only", action="store_true", help="skip the CUDA library even if nvcc exists")
    parser.add_argument("--target", default="host",
                        help=f"comma-separated platforms ({', '.join(PLATFORMS)}), 'all' or 'host' (default: "
                        "%(default)s); other platforms than this one are cross-compiled with zig, CPU library only")
    parser.add_argument("--cuda-archs", default=",".join(DEFAULT_CUDA_ARCHS),
                        help="comma-separated SM versions (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=LIB_DIR, help="output folder (default: %(default)s)")
    parser.add_argument("--scorer-out", type=Path, default=ptm_scores.LIB_DIR,
                        help="output folder of the phone recognition libraries (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        host = host_platform()
        targets = _targets(args.target)
        if args.target == "host" and host is None:
            # Not one of the zip platforms (e.g. Linux on ARM): still build for this machine with its compiler.
            t0 = time.perf_counter()
            print(f"built {build_cpu(args.out)} ({time.perf_counter() - t0:.1f}s)")
            print(f"built {build_scorer(None, args.scorer_out)}")
        for target in targets:
            t0 = time.perf_counter()
            how = "" if target == host else f", {target} with zig"
            print(f"built {build_for(target, args.out)} ({time.perf_counter() - t0:.1f}s{how})")
            t0 = time.perf_counter()
            print(f"built {build_scorer(target, args.scorer_out)} ({time.perf_counter() - t0:.1f}s{how})")
        if args.cpu_only or (host not in targets and args.target != "host"):
            return 0
        if find_nvcc() is None:
            print("nvcc not found: skipped the CUDA library (the preview uses the CPU library)")
            return 0
        t0 = time.perf_counter()
        path = build_cuda(args.out, tuple(a.strip() for a in args.cuda_archs.split(",") if a.strip()))
        print(f"built {path} ({time.perf_counter() - t0:.1f}s)")
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
