"""Where the bundled assets are, and whether they are intact (sha256 against assets/SHA256SUMS)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import AssetError

SUMS_FILE = "SHA256SUMS"
ENV_ASSETS = "FACEPOLICY_ASSETS"

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def asset_root() -> Path:
    """assets/ inside the installed extension, or at the repository root in a source checkout."""
    override = os.environ.get(ENV_ASSETS)
    if override:
        return Path(override)
    for candidate in (_PACKAGE_DIR / "assets", _PACKAGE_DIR.parent / "assets"):
        if (candidate / SUMS_FILE).is_file():
            return candidate
    return _PACKAGE_DIR.parent / "assets"


def asset_path(relative: str) -> Path:
    """The path of one asset; AssetError if it is missing."""
    path = asset_root() / relative
    if not path.exists():
        raise AssetError(f'bundled asset "{relative}" is missing (looked in {asset_root()}); reinstall FacePolicy')
    return path


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_sums(root: Path | None = None) -> dict[str, str]:
    """relative path → expected sha256, from assets/SHA256SUMS (``sha256sum`` format)."""
    root = root or asset_root()
    sums = {}
    try:
        text = (root / SUMS_FILE).read_text(encoding="utf-8")
    except OSError:
        return sums
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        digest, _, name = line.partition("  ")
        sums[name.lstrip("*")] = digest
    return sums


@dataclass
class AssetStatus:
    name: str
    expected: str
    actual: str | None  # None: missing

    @property
    def ok(self) -> bool:
        return self.actual == self.expected

    @property
    def state(self) -> str:
        if self.actual is None:
            return "missing"
        return "ok" if self.ok else "sha256 mismatch"


def check_assets(root: Path | None = None) -> list[AssetStatus]:
    root = root or asset_root()
    out = []
    for name, expected in sorted(read_sums(root).items()):
        path = root / name
        out.append(AssetStatus(name, expected, sha256_file(path) if path.is_file() else None))
    return out


def verify_file(path: Path, expected: str | None, name: str, remedy: str = "reinstall FacePolicy") -> Path:
    """``path``, after checking that it is a file and, when ``expected`` is given, that its sha256 is ``expected``;
    otherwise AssetError naming the file as ``name`` and saying what to do (``remedy``)."""
    if not path.is_file():
        hint = f" (expected sha256 {expected})" if expected else ""
        raise AssetError(f"{name} is missing{hint}; {remedy}")
    if expected and sha256_file(path) != expected:
        raise AssetError(f"{name} is corrupt: its sha256 is not the expected {expected}; {remedy}")
    return path


def verify_asset(relative: str) -> Path:
    """The asset's path, after checking its sha256 against SHA256SUMS (verify_file)."""
    return verify_file(asset_root() / relative, read_sums().get(relative), f'bundled asset "{relative}"')


def write_sums(root: Path, exclude=(SUMS_FILE,)) -> list[str]:
    """Regenerate SHA256SUMS for every file under ``root`` (tools/update_asset_sums.py)."""
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in exclude or "/__pycache__/" in f"/{rel}" or path.name.startswith("."):
            continue
        lines.append(f"{sha256_file(path)}  {rel}")
    (root / SUMS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines
