"""Fixtures shared by the unit tests."""

import pytest

from facepolicy.preview import build, raster


@pytest.fixture(scope="session")
def cpu():
    """The splat rasterizer's CPU library, built here if it is missing or stale."""
    if build.find_cxx() is None:
        pytest.skip("no C++ compiler to build the splat library")
    build.ensure_cpu_library()
    return raster.cpu_renderer()
