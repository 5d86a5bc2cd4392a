"""Shared pytest set-up: Blender tests need the real bpy module and are skipped, with a reason, without it."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HAVE_BPY = importlib.util.find_spec("bpy") is not None


def pytest_collection_modifyitems(config, items):
    if HAVE_BPY:
        return
    skip = pytest.mark.skip(reason="the bpy module is not installed in this environment (bash run.sh test installs it)")
    for item in items:
        if "blender" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
