"""One version everywhere: the package, pyproject.toml and the extension manifest."""

import tomllib

import facepolicy
from facepolicy.core.version import VERSION


def test_the_version_is_the_same_in_the_package_pyproject_and_the_manifest(repo_root):
    pyproject = tomllib.loads((repo_root / "pyproject.toml").read_text(encoding="utf-8"))
    manifest = tomllib.loads((repo_root / "blender_manifest.toml").read_text(encoding="utf-8"))
    assert facepolicy.__version__ == VERSION == pyproject["project"]["version"] == manifest["version"]
