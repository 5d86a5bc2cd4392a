"""Render a still of an animated face from a .blend with Cycles on the CPU (for the README and the main job).

    .venv/bin/python tools/render_still.py out/demo.blend -o out/demo.png [--frame N] [--size 360] [--samples 16]

Without --frame it picks the frame where the mouth is most open (jawOpen), so the picture shows the animation.
"""

import argparse
import math
import sys
from pathlib import Path

import bpy
from mathutils import Vector


def animated_face(object_name: str | None):
    if object_name:
        obj = bpy.data.objects.get(object_name)
        if obj is None:
            sys.exit(f"error: no object named {object_name!r} in the file")
        return obj
    for obj in bpy.data.objects:
        keys = obj.data.shape_keys if obj.type == "MESH" else None
        if keys and keys.animation_data and keys.animation_data.action:
            return obj
    sys.exit("error: no mesh with animated shape keys in the file")


def most_open_frame(scene, obj) -> int:
    block = obj.data.shape_keys.key_blocks.get("jawOpen")
    if block is None:
        return scene.frame_start
    best, best_value = scene.frame_start, -1.0
    for frame in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(frame)
        if block.value > best_value:
            best, best_value = frame, block.value
    return best


def frame_camera(scene, obj, size: int) -> None:
    corners = [obj.matrix_world @ Vector(c) for c in obj.bound_box]
    lo = Vector(min(c[i] for c in corners) for i in range(3))
    hi = Vector(max(c[i] for c in corners) for i in range(3))
    # the whole head, seen from the front (-Y) and a little from its left
    target = Vector(((lo.x + hi.x) / 2, lo.y, lo.z + 0.55 * (hi.z - lo.z)))
    height = 0.8 * (hi.z - lo.z)
    cam_data = bpy.data.cameras.new("FacePolicy still")
    cam_data.lens = 85
    cam = bpy.data.objects.new("FacePolicy still", cam_data)
    scene.collection.objects.link(cam)
    distance = height / (2 * math.tan(cam_data.angle / 2)) * 1.05
    cam.location = target + Vector((0.25 * distance, -distance, 0.1 * distance))
    cam.rotation_euler = (target - cam.location).to_track_quat("-Z", "Y").to_euler()
    scene.camera = cam
    for name, energy, offset in (("key", 60.0, (-0.6, -1.0, 0.6)), ("fill", 25.0, (0.8, -0.8, 0.1))):
        light_data = bpy.data.lights.new(f"FacePolicy {name}", "AREA")
        light_data.energy = energy * distance**2
        light_data.size = distance
        light = bpy.data.objects.new(f"FacePolicy {name}", light_data)
        light.location = target + Vector(offset) * distance * 1.5
        light.rotation_euler = (target - light.location).to_track_quat("-Z", "Y").to_euler()
        scene.collection.objects.link(light)
    scene.render.resolution_x = scene.render.resolution_y = size


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("blend")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--object")
    parser.add_argument("--frame", type=int)
    parser.add_argument("--size", type=int, default=360)
    parser.add_argument("--samples", type=int, default=16)
    args = parser.parse_args(argv)
    bpy.ops.wm.open_mainfile(filepath=str(Path(args.blend).resolve()))
    scene = bpy.context.scene
    obj = animated_face(args.object)
    frame = args.frame if args.frame is not None else most_open_frame(scene, obj)
    scene.frame_set(frame)
    frame_camera(scene, obj, args.size)
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = args.samples
    scene.cycles.use_denoising = False
    scene.render.film_transparent = False
    if scene.world is None:
        scene.world = bpy.data.worlds.new("FacePolicy still")
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(Path(args.output).resolve())
    bpy.ops.render.render(write_still=True)
    print(f"rendered frame {frame} of {obj.name!r} to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
