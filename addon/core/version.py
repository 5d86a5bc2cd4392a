"""The add-on's version, in the lowest layer so that every layer (the batch's resume fingerprint, the Ray nodes'
check, the doctor report, the CLI) can read it without importing the package root."""

VERSION = "0.2.0"  # keep equal to pyproject.toml and blender_manifest.toml (tests/unit/core/test_version.py checks)
