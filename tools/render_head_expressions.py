"""Render docs/img/head_expressions.png: the default head in neutral, jawOpen, smile+blink and pucker (Cycles, CPU).

    nice -n 10 .venv/bin/python tools/render_head_expressions.py [--samples 64] [--out docs/img/head_expressions.png]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import bpy

from facepolicy.blender.head import add_default_head

ROOT = Path(__file__).resolve().parents[1]
POSES = (
    ("neutral", {}),
    ("jawOpen", {"jawOpen": 1.0}),
    ("smile + blink", {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0, "eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0,
                       "cheekSquintLeft": 0.5, "cheekSquintRight": 0.5}),
    ("pucker", {"mouthPucker": 1.0}),
)
SPACING = 0.24  # metres between heads


def build_scene(samples: int, width: int, height: int) -> bpy.types.Scene:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    for i, (label, values) in enumerate(POSES):
        obj = add_default_head(bpy.context, location=(i * SPACING, 0.0, 0.0))
        for block in obj.data.shape_keys.key_blocks[1:]:
            block.value = values.get(block.name, 0.0)
        text = bpy.data.curves.new(f"label {label}", "FONT")
        text.body, text.size, text.align_x = label, 0.022, "CENTER"
        label_obj = bpy.data.objects.new(f"label {label}", text)
        label_obj.location = (i * SPACING, -0.2, -0.04)
        label_obj.rotation_euler = (math.radians(90), 0.0, 0.0)
        text.materials.append(_flat_material("label", (0.03, 0.03, 0.03, 1.0)))
        scene.collection.objects.link(label_obj)

    center_x = SPACING * (len(POSES) - 1) / 2
    cam_data = bpy.data.cameras.new("camera")
    cam_data.type = "ORTHO"
    cam_data.ortho_scale = SPACING * len(POSES) + 0.02
    cam = bpy.data.objects.new("camera", cam_data)
    cam.location = (center_x, -1.0, 0.13)
    cam.rotation_euler = (math.radians(88), 0.0, 0.0)
    scene.collection.objects.link(cam)
    scene.camera = cam

    for name, loc, rot, energy, size in (
        ("key", (center_x - 0.6, -0.8, 0.6), (math.radians(55), 0.0, math.radians(-35)), 30.0, 0.6),
        ("fill", (center_x + 0.8, -0.7, 0.2), (math.radians(80), 0.0, math.radians(50)), 10.0, 0.8),
        ("rim", (center_x, 0.8, 0.6), (math.radians(-50), 0.0, 0.0), 20.0, 0.6),
    ):
        light_data = bpy.data.lights.new(name, "AREA")
        light_data.energy, light_data.size = energy, size
        light = bpy.data.objects.new(name, light_data)
        light.location, light.rotation_euler = loc, rot
        scene.collection.objects.link(light)

    world = bpy.data.worlds.new("world")
    world.color = (0.8, 0.82, 0.85)
    if world.node_tree is None:
        world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.75, 0.77, 0.8, 1.0)
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.3
    scene.world = world

    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = True
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    scene.render.image_settings.file_format = "PNG"
    scene.view_settings.view_transform = "AgX" if "AgX" in _view_transforms(scene) else "Filmic"
    return scene


def _flat_material(name: str, color) -> bpy.types.Material:
    mat = bpy.data.materials.new(name)
    if mat.node_tree is None:
        mat.use_nodes = True
    mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = color
    mat.diffuse_color = color
    return mat


def _view_transforms(scene) -> set[str]:
    return {item.identifier for item in scene.view_settings.bl_rna.properties["view_transform"].enum_items}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--width", type=int, default=1600)
    ap.add_argument("--height", type=int, default=600)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "head_expressions.png")
    args = ap.parse_args(argv)
    scene = build_scene(args.samples, args.width, args.height)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    scene.render.filepath = str(args.out)
    bpy.ops.render.render(write_still=True)
    print(f"rendered {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
