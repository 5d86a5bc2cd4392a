"""Blender fixtures: every test starts from an empty factory scene."""

import pytest


@pytest.fixture
def clean_scene():
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield bpy.context.scene
    bpy.ops.wm.read_factory_settings(use_empty=True)
