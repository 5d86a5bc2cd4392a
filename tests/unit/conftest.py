"""Fixtures shared by the unit tests."""

import sys
from pathlib import Path

import pytest

from facepolicy.preview import build, raster

# The tests in sub-folders (core/, core/batch/, app/) import this folder's helper modules (envelope_engine,
# batch_helpers, flame_synthetic) by name, whatever the import mode.
HELPERS = str(Path(__file__).resolve().parent)
if HELPERS not in sys.path:
    sys.path.insert(0, HELPERS)


@pytest.fixture(scope="session")
def cpu():
    """The splat rasterizer's CPU library, built here if it is missing or stale."""
    if build.find_cxx() is None:
        pytest.skip("no C++ compiler to build the splat library")
    build.ensure_cpu_library()
    return raster.cpu_renderer()
