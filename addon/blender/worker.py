"""Entry point of one batch worker process: a warm engine and a warm bpy, baking rows fed on stdin.

Started by core.batch.ProcessExecutor as ``python -m facepolicy.blender.worker`` (bpy module) or by Blender
itself (``blender -b --python-expr ...``) when the batch runs inside Blender.
"""

from __future__ import annotations

import sys


def scene_exporter():
    """The Blender exporter (core.batch.SceneExporter); importing it loads bpy, so the first fbx/glb/blend row
    pays for that once (never while onnxruntime loads on a preparing thread: core.prepare.native_imports)."""
    from ..core.prepare import native_imports

    with native_imports:
        from .export import export_scene

    return export_scene


def main() -> int:
    from ..core.batch import serve

    return serve(scene_exporter)


if __name__ == "__main__":
    sys.exit(main())
