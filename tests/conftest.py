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


_exit_status = 0


def pytest_sessionfinish(session, exitstatus):
    global _exit_status
    _exit_status = int(exitstatus)


def pytest_unconfigure(config):
    """Leave without running C exit handlers once bpy has been loaded.

    The bpy 4.2 module frees Python classes registered to editor space types (the glTF importer's UI) in a C++
    destructor that runs after Python has shut down, and segfaults there: every test has passed by then, but the
    exit code would be 139. pytest has printed its report when this hook runs, so nothing is lost.
    """
    import os
    import sys

    if "bpy" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status)
