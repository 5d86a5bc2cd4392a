"""`facepolicy doctor`: a truthful report of what this installation has and can do."""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, field

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


def device_summary(providers: list[str]) -> str:
    if "CUDAExecutionProvider" in providers:
        return "CUDA available (CUDAExecutionProvider), CPU fallback"
    return "CPU only (no CUDA execution provider in this onnxruntime)"


def build_report(version: str, blender: str | None = None) -> Report:
    """The report; ``blender`` is the Blender line as the caller found it (core never imports bpy), or None."""
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
    r.add("device", device_summary(providers))
    try:
        import soundfile

        r.add("soundfile", f"{soundfile.__version__} (libsndfile {soundfile.__libsndfile_version__})")
    except Exception as exc:
        r.add("soundfile", "NOT AVAILABLE")
        r.problems.append(f"soundfile/libsndfile cannot be loaded ({exc}): audio files cannot be read")
    try:
        import pocketsphinx

        r.add("pocketsphinx", getattr(pocketsphinx, "__version__", "installed"))
    except Exception:
        r.add("pocketsphinx", "not installed (the Phonetic engine needs it)")
    _neural_model(r)
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


def _neural_model(r: Report) -> None:
    """The Neural engine's model: its name, whether every ONNX file matches its sha256, and the style presets."""
    from .errors import AssetError
    from .policy import read_model_files

    try:
        files = read_model_files()
    except AssetError as exc:
        r.add("neural model", "NOT USABLE")
        r.problems.append(str(exc))
        return
    m = files.manifest
    r.add("neural model", f"{m.get('name', '?')}: {len(m['files'])} ONNX files, sha256 ok; style presets "
          f"{', '.join(sorted(m.get('styles') or {})) or 'none'}")
