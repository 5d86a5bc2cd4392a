"""Import a user's FLAME model as a mesh with expression shape keys and a jaw-open key made by FLAME's skinning."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from ..core.flame import flame_to_blender, load_flame

PROP_FLAME = "facepolicy_flame"
# FLAME expression coefficients are about unit variance: a key at 1 is coefficient ±EXPRESSION_SCALE.
EXPRESSION_SCALE = 2.0
JAW_OPEN_ANGLE = 0.35  # radians, a wide-open mouth


def expression_key_name(index: int, sign: str) -> str:
    return f"FLAME_exp{index:02d}{sign}"


def import_flame(context, path, n_expressions: int = 20, collection: bpy.types.Collection | None = None,
                 jaw_angle: float = JAW_OPEN_ANGLE) -> bpy.types.Object:
    """Add the FLAME template with keys ``FLAME_expNN+`` / ``FLAME_expNN-`` for the first ``n_expressions``
    expression components and ``jawOpen`` (the jaw joint turned by ``jaw_angle`` through FLAME's linear blend
    skinning, pose correctives included). The file is read and checked before the scene is touched."""
    model = load_flame(path)  # FlameError for unsafe or malformed files: the scene is unchanged
    n = min(max(int(n_expressions), 0), model.num_expressions)
    rest = flame_to_blender(model.v_template).astype(np.float32)
    expr = flame_to_blender(model.expression_deltas(n)).astype(np.float32) * EXPRESSION_SCALE
    jaw = flame_to_blender(model.posed(jaw_angle)).astype(np.float32)
    name = Path(path).stem or "FLAME"
    collection = collection or context.collection or context.scene.collection
    mesh = obj = None
    try:
        mesh = bpy.data.meshes.new(name)
        mesh.vertices.add(len(rest))
        mesh.vertices.foreach_set("co", rest.ravel())
        faces = model.faces
        mesh.loops.add(faces.size)
        mesh.loops.foreach_set("vertex_index", faces.ravel())
        mesh.polygons.add(len(faces))
        mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
        mesh.polygons.foreach_set("use_smooth", np.ones(len(faces), bool))
        mesh.update(calc_edges=True)
        mesh.validate(clean_customdata=False)
        obj = bpy.data.objects.new(name, mesh)
        obj.shape_key_add(name="Basis", from_mix=False)
        for i in range(n):
            for sign, direction in (("+", 1.0), ("-", -1.0)):
                block = obj.shape_key_add(name=expression_key_name(i, sign), from_mix=False)
                block.data.foreach_set("co", (rest + direction * expr[i]).ravel())
                block.value = 0.0  # a key made by the API starts at 1
        block = obj.shape_key_add(name="jawOpen", from_mix=False)
        block.data.foreach_set("co", jaw.ravel())
        block.value = 0.0
        obj[PROP_FLAME] = {"file": Path(path).name, "expressions": n, "jaw_angle": float(jaw_angle)}
        collection.objects.link(obj)
    except Exception:
        if obj is not None:
            bpy.data.objects.remove(obj)
        if mesh is not None:
            bpy.data.meshes.remove(mesh)
        raise
    try:
        for other in context.view_layer.objects.selected:
            other.select_set(False)
        obj.select_set(True, view_layer=context.view_layer)
        context.view_layer.objects.active = obj
    except (AttributeError, RuntimeError):
        pass
    return obj
