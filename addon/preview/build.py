"""Build the splat rasterizer: the CPU library always, the CUDA library where nvcc exists.

    python -m facepolicy.preview.build            # both (CUDA only if nvcc is found)
    python -m facepolicy.preview.build --cpu-only

Both libraries come from the one source csrc/splat.cpp and land in addon/preview/lib/ (git-ignored *.so).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CSRC = Path(__file__).resolve().parent / "csrc"
SOURCES = (CSRC / "splat.cpp", CSRC / "splat_math.h")
LIB_DIR = Path(__file__).resolve().parent / "lib"

if sys.platform == "win32":
    _PREFIX, _SUFFIX = "", ".dll"
elif sys.platform == "darwin":
    _PREFIX, _SUFFIX = "lib", ".dylib"
else:
    _PREFIX, _SUFFIX = "lib", ".so"

CPU_LIBRARY = f"{_PREFIX}fpsplat_cpu{_SUFFIX}"
CUDA_LIBRARY = f"{_PREFIX}fpsplat_cuda{_SUFFIX}"

# Real architectures compiled ahead of time, plus PTX of the newest one so later GPUs can JIT it.
DEFAULT_CUDA_ARCHS = ("75", "80", "86", "89", "90")


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


def _compile(cmd: list[str], out: Path) -> Path:
    """Run ``cmd`` writing to a temporary file, then move it onto ``out`` (parallel builds never see half a file)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=_SUFFIX, dir=out.parent)
    os.close(fd)
    try:
        proc = subprocess.run([*cmd, "-o", tmp], capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}):\n{proc.stderr.strip()}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def cpu_command(cxx: str) -> list[str]:
    flags = ["-O3", "-std=c++17", "-fPIC", "-shared", "-fopenmp", "-fno-math-errno", "-fvisibility=hidden"]
    if sys.platform.startswith("linux"):
        # The zip may run on machines without this compiler's C++ runtime.
        flags += ["-static-libstdc++", "-static-libgcc"]
    return [cxx, *flags, str(SOURCES[0])]


def cuda_command(nvcc: str, archs=DEFAULT_CUDA_ARCHS) -> list[str]:
    gencode = []
    for arch in archs:
        gencode += ["-gencode", f"arch=compute_{arch},code=sm_{arch}"]
    gencode += ["-gencode", f"arch=compute_{archs[-1]},code=compute_{archs[-1]}"]
    # cudart is linked statically (nvcc's default): the library needs only the NVIDIA driver at run time.
    # --threads 0: compile the architectures in parallel, one per CPU.
    return [nvcc, "-O3", "-std=c++17", "-x", "cu", "-shared", "-Xcompiler", "-fPIC,-fvisibility=hidden",
            "--threads", "0", *gencode, str(SOURCES[0])]


def build_cpu(out_dir: Path = LIB_DIR) -> Path:
    cxx = find_cxx()
    if cxx is None:
        raise BuildError("no C++ compiler found (g++, c++ or clang++); install one, e.g. `apt-get install g++`")
    return _compile(cpu_command(cxx), Path(out_dir) / CPU_LIBRARY)


def build_cuda(out_dir: Path = LIB_DIR, archs=DEFAULT_CUDA_ARCHS) -> Path:
    nvcc = find_nvcc()
    if nvcc is None:
        raise BuildError("nvcc not found; the CUDA library is optional, the CPU library works without it")
    return _compile(cuda_command(nvcc, tuple(archs)), Path(out_dir) / CUDA_LIBRARY)


def is_stale(library: Path) -> bool:
    """True when ``library`` is missing or older than any source file."""
    if not library.exists():
        return True
    built = library.stat().st_mtime
    return any(src.stat().st_mtime > built for src in SOURCES)


def ensure_cpu_library(out_dir: Path = LIB_DIR) -> Path:
    """The CPU library, (re)built first if it is missing or older than its source."""
    lib = Path(out_dir) / CPU_LIBRARY
    if is_stale(lib):
        build_cpu(out_dir)
    return lib


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facepolicy.preview.build", description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-only", action="store_true", help="skip the CUDA library even if nvcc exists")
    parser.add_argument("--cuda-archs", default=",".join(DEFAULT_CUDA_ARCHS),
                        help="comma-separated SM versions (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=LIB_DIR, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        t0 = time.perf_counter()
        path = build_cpu(args.out)
        print(f"built {path} ({time.perf_counter() - t0:.1f}s)")
        if args.cpu_only:
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
