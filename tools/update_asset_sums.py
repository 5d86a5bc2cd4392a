"""Regenerate assets/SHA256SUMS after adding or changing a bundled asset."""

from pathlib import Path

from facepolicy.core.assets import write_sums

if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent / "assets"
    lines = write_sums(root)
    print(f"{len(lines)} assets listed in {root / 'SHA256SUMS'}")
