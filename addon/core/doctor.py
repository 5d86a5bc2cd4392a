"""`facepolicy doctor`: a truthful report of what this installation has and can do."""

from __future__ import annotations

import ctypes
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .assets import asset_root, check_assets


@dataclass
class Report:
    lines: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, key: str, value: str) -> None:
        self.lines.append((key, value))

    def text(self) -> str:
        width = max((len(k) for k, _ in self.lines), default=0)
        out = [f"{k.ljust(width)}  {v}" for k, v in self.lines]
        if self.problems:
            out.append("")
            out.append(f"{len(self.problems)} problem(s):")
            out.extend(f"  - {p}" for p in self.problems)
        else:
            out.append("")
            out.append("no problems found")
        return "\n".join(out)


def onnxruntime_status() -> tuple[str | None, list[str]]:
    try:
        import onnxruntime as ort
    except Exception:
        return None, []
    return ort.__version__, list(ort.get_available_providers())


GPU_HINT = "pip install 'facepolicy[gpu]'"


def _default_loader(name: str):
    """ctypes.CDLL, or None when the library cannot be loaded (a probe must never raise)."""
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def _nvidia_wheel_dirs() -> list[Path]:
    """Where the NVIDIA wheels (nvidia-cudnn-cu12 ...) keep their libraries; onnxruntime.preload_dlls loads them."""
    dirs = []
    for entry in sys.path:
        base = Path(entry) / "nvidia"
        if base.is_dir():
            dirs += sorted(p for p in base.glob("*/lib") if p.is_dir()) + sorted(p for p in base.glob("*/bin")
                                                                                  if p.is_dir())
    return dirs


def _find_library(name: str, loader) -> str | None:
    """``name`` if it loads as the system finds it, else a file of the NVIDIA wheels (libcudnn.so.9*) that loads."""
    if loader(name) is not None:
        return name
    for folder in _nvidia_wheel_dirs():
        for path in sorted(folder.glob(name + "*")):
            if loader(str(path)) is not None:
                return str(path)
    return None


def _cuda_versions() -> tuple[str, str]:
    """(CUDA major, cuDNN major) onnxruntime-gpu was built for; 12 and 9 when it does not say (its PyPI builds)."""
    try:
        from onnxruntime.capi import build_and_package_info as info
    except Exception:
        return "12", "9"
    cuda = str(getattr(info, "cuda_version", "") or "12").split(".")[0]
    cudnn = str(getattr(info, "cudnn_version", "") or "9").split(".")[0]
    return cuda, cudnn


def _device_count(driver) -> int:
    count = ctypes.c_int(0)
    try:
        if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
    except AttributeError:
        return 0
    return int(count.value)


def cuda_status(providers: list[str], loader=_default_loader, system: str | None = None) -> tuple[bool, str]:
    """Whether onnxruntime's CUDA provider can run here, and one line saying so or everything that is missing: the
    provider (the onnxruntime-gpu wheel), the NVIDIA driver and a GPU, the CUDA runtime and cuBLAS, cuDNN.
    ``loader`` and ``system`` stand in for ctypes.CDLL and platform.system() in tests."""
    system = system or platform.system()
    if system == "Darwin":
        return False, "not available on macOS (onnxruntime has no CUDA build for it); the CPU runs the engines"
    missing = []
    if "CUDAExecutionProvider" not in providers:
        missing.append(f"this onnxruntime has no CUDA execution provider ({GPU_HINT} adds it)")
    windows = system == "Windows"
    driver_name = "nvcuda.dll" if windows else "libcuda.so.1"
    driver = loader(driver_name)
    devices = 0 if driver is None else _device_count(driver)
    if driver is None:
        missing.append(f"no NVIDIA driver ({driver_name} not found)")
    elif devices < 1:
        missing.append("the NVIDIA driver finds no GPU")
    cuda, cudnn = _cuda_versions()
    libraries = [
        (f"the CUDA {cuda} runtime", f"cudart64_{cuda}.dll" if windows else f"libcudart.so.{cuda}"),
        (f"cuBLAS {cuda}", f"cublas64_{cuda}.dll" if windows else f"libcublas.so.{cuda}"),
        (f"cuDNN {cudnn}", f"cudnn64_{cudnn}.dll" if windows else f"libcudnn.so.{cudnn}"),
    ]
    absent = [f"{what} ({name})" for what, name in libraries if _find_library(name, loader) is None]
    if absent:
        missing.append(f"{', '.join(absent)} not found (pip install nvidia-cuda-runtime-cu{cuda} "
                       f"nvidia-cublas-cu{cuda} nvidia-cudnn-cu{cuda}, or the CUDA toolkit and cuDNN)")
    if missing:
        return False, "not usable: " + "; ".join(missing)
    return True, f"usable: CUDAExecutionProvider, {devices} GPU(s), CUDA {cuda}, cuDNN {cudnn}"


def _both_onnxruntimes() -> bool:
    """onnxruntime and onnxruntime-gpu installed together: they share one folder, so one overwrote the other."""
    from importlib.metadata import PackageNotFoundError, distribution

    found = 0
    for name in ("onnxruntime", "onnxruntime-gpu"):
        try:
            distribution(name)
            found += 1
        except PackageNotFoundError:
            pass
    return found == 2


def build_report(version: str, blender: str | None = None, model_dir: str | Path | None = None) -> Report:
    """The report; ``blender`` is the Blender line as the caller found it (core never imports bpy), or None;
    ``model_dir``: a model folder of one's own (`--model`, the add-on's Model Folder preference), listed and
    checked after the bundled model."""
    r = Report()
    r.add("facepolicy", version)
    r.add("python", f"{platform.python_version()} ({sys.executable})")
    r.add("platform", f"{platform.system()} {platform.machine()} ({platform.platform()})")
    if blender is not None:
        r.add("blender", blender)
    ort_version, providers = onnxruntime_status()
    if ort_version is None:
        r.add("onnxruntime", "NOT INSTALLED")
        r.problems.append("onnxruntime is not installed: the Neural engine cannot run (pip install onnxruntime)")
    else:
        r.add("onnxruntime", f"{ort_version}; providers: {', '.join(providers)}")
    usable, cuda_line = cuda_status(providers)
    r.add("cuda", cuda_line)
    r.add("device", "CUDA, CPU fallback" if usable else "CPU only")
    if ort_version is not None and _both_onnxruntimes():
        r.problems.append("onnxruntime and onnxruntime-gpu are both installed and share one folder; keep one: "
                          "pip uninstall -y onnxruntime onnxruntime-gpu, then pip install onnxruntime-gpu (CUDA) or "
                          "onnxruntime (CPU)")
    try:
        import soundfile

        r.add("soundfile", f"{soundfile.__version__} (libsndfile {soundfile.__libsndfile_version__})")
    except Exception as exc:
        r.add("soundfile", "NOT AVAILABLE")
        r.problems.append(f"soundfile/libsndfile cannot be loaded ({exc}): audio files cannot be read")
    try:
        import pocketsphinx  # noqa: F401 - whether it loads

        r.add("pocketsphinx", f"{_distribution_version('pocketsphinx')} (phone recognition and transcript alignment: "
                              "US-English acoustic model)")
        try:
            from .recognition import scoring_report

            r.add("phone scoring", scoring_report())
        except Exception as exc:  # noqa: BLE001 - a report line, whatever went wrong
            r.add("phone scoring", f"unknown ({exc})")
    except Exception as exc:
        r.add("pocketsphinx", "NOT AVAILABLE")
        r.problems.append(f"pocketsphinx cannot be loaded ({exc}): the Neural engine's default (accurate) mode "
                          "animates from the audio alone, transcripts are not used, and the Phonetic engine cannot "
                          "run (pip install pocketsphinx)")
    from .movie import MOVIE_SUFFIXES, available

    r.add("movie sound", f"ffmpeg (the video extra) reads {', '.join(MOVIE_SUFFIXES)}" if available() else
          "not installed (pip install 'facepolicy[video]' to read the sound of .mov, .mp4 and other movies; Blender "
          "reads them itself)")
    _neural_model(r)
    if model_dir:
        _neural_model(r, Path(model_dir))
    root = asset_root()
    statuses = check_assets(root)
    r.add("assets", f"{root} ({len(statuses)} listed in SHA256SUMS)")
    if not statuses:
        r.problems.append(f"no asset list found at {root / 'SHA256SUMS'}")
    for s in statuses:
        r.add(f"  {s.name}", f"{s.state}  sha256 {s.actual or s.expected}")
        if not s.ok:
            r.problems.append(f"asset {s.name}: {s.state} (expected sha256 {s.expected})")
    return r


def _distribution_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "installed"


def _neural_model(r: Report, folder: Path | None = None) -> None:
    """A Neural model (the bundled one, or ``folder``): its name, whether every ONNX file matches its sha256, the
    style presets, and for a fine-tuned folder what it learned from and its held-out figures."""
    from .errors import AssetError
    from .model_files import read_model_files

    key = "neural model" if folder is None else "model folder"
    try:
        files = read_model_files(folder)
    except AssetError as exc:
        r.add(key, "NOT USABLE" if folder is None else f"{folder}: NOT USABLE")
        r.problems.append(str(exc))
        return
    m = files.manifest
    where = "" if folder is None else f"{files.root}: "
    r.add(key, f"{where}{m.get('name', '?')}: {len(m['files'])} ONNX files, sha256 ok; style presets "
          f"{', '.join(sorted(m.get('styles') or {})) or 'none'}"
          + (f" (default {m['default_style']})" if folder is not None and m.get("default_style") else ""))
    tuned = m.get("finetune")
    if folder is None or not isinstance(tuned, dict):
        return
    caps = tuned.get("captures", {})
    base = tuned.get("base_model", {})
    r.add("  fine-tuned", f"from {base.get('name', '?')} on {len(caps.get('takes', []))} takes "
          f"({60 * float(caps.get('hours', 0)):.1f} min) of {caps.get('folder', '?')}, {tuned.get('steps', '?')} steps")
    held = tuned.get("held_out") or {}
    if "shipped" in held and "fine-tuned" in held:
        groups = [g for g in held["shipped"] if g in held["fine-tuned"]]
        pairs = "; ".join(f"{g} {held['shipped'][g]:.3f} → {held['fine-tuned'][g]:.3f}" for g in groups)
        r.add("  held-out error", f"{pairs} (shipped → fine-tuned, {held.get('held_out_seconds')} s)")
    if m.get("brows") is not None:
        r.add("  brow layer", "the performer's brows from pitch and loudness (bake and live)")
