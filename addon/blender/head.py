"""Build the bundled default head in Blender: one mesh with UVs, the 52 ARKit shape keys, vertex groups,
materials and two eyeballs that turn about their stored pivots."""

from __future__ import annotations

import bpy
import numpy as np

from ..core.head import HeadAsset, load_default_head

HEAD_NAME = "FacePolicy Head"
# Custom properties written on the object (read by the rig report, the gaze writer and check_rig).
PROP_KIND = "facepolicy_head"
PROP_PIVOT = "facepolicy_pivot_"

_MATERIALS = (  # (name, vertex group whose faces use it or None for the rest, base colour, roughness)
    ("FacePolicy Skin", None, (0.62, 0.38, 0.28, 1.0), 0.45),
    ("FacePolicy Eye", "eyeball", (0.90, 0.90, 0.88, 1.0), 0.05),
    ("FacePolicy Teeth", "teeth", (0.92, 0.90, 0.82, 1.0), 0.25),
    ("FacePolicy Tongue", "tongue", (0.62, 0.25, 0.25, 1.0), 0.35),
)


def _eye_material(mat: bpy.types.Material) -> None:
    """White sclera with an iris and pupil at the front pole: the eyeball UVs put the pole at v = 0.25."""
    nt = mat.node_tree
    bsdf = nt.nodes["Principled BSDF"]
    coord = nt.nodes.new("ShaderNodeUVMap")
    sep = nt.nodes.new("ShaderNodeSeparateXYZ")
    nt.links.new(coord.outputs["UV"], sep.inputs[0])
    ramp = nt.nodes.new("ShaderNodeValToRGB")
    scale = nt.nodes.new("ShaderNodeMath")
    scale.operation = "MULTIPLY"
    scale.inputs[1].default_value = 4.0
    nt.links.new(sep.outputs["Y"], scale.inputs[0])
    nt.links.new(scale.outputs[0], ramp.inputs["Fac"])
    cr = ramp.color_ramp
    cr.interpolation = "EASE"
    cr.elements[0].position, cr.elements[0].color = 0.80, (0.92, 0.92, 0.90, 1.0)
    cr.elements[1].position, cr.elements[1].color = 0.84, (0.20, 0.33, 0.45, 1.0)
    pupil = cr.elements.new(0.93)
    pupil.color = (0.01, 0.01, 0.01, 1.0)
    nt.links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])


def _make_materials(head: HeadAsset, mesh: bpy.types.Mesh) -> None:
    poly_group = np.zeros(len(head.polygon_sizes), np.int32)
    owner = np.repeat(np.arange(len(head.polygon_sizes)), head.polygon_sizes)
    for index, (_, group, _, _) in enumerate(_MATERIALS):
        if group is None:
            continue
        ids = np.concatenate([head.vertex_groups[g] for g in head.vertex_groups if g.startswith(group)
                              and not g.endswith(("_upper", "_lower"))])
        in_group = np.isin(head.polygon_vertices, ids)
        whole = np.bincount(owner, weights=in_group, minlength=len(poly_group)) == head.polygon_sizes
        poly_group[whole] = index
    for name, group, color, roughness in _MATERIALS:
        mat = bpy.data.materials.new(name)
        if mat.node_tree is None:  # Blender 4.x; 5.0 gives every new material a node tree
            mat.use_nodes = True
        bsdf = mat.node_tree.nodes["Principled BSDF"]
        bsdf.inputs["Base Color"].default_value = color
        bsdf.inputs["Roughness"].default_value = roughness
        if group == "eyeball":
            _eye_material(mat)
        mat.diffuse_color = color
        mesh.materials.append(mat)
    mesh.polygons.foreach_set("material_index", poly_group)


def build_head_mesh(head: HeadAsset, name: str = HEAD_NAME) -> bpy.types.Mesh:
    mesh = bpy.data.meshes.new(name)
    n_loops = len(head.polygon_vertices)
    mesh.vertices.add(head.num_vertices)
    mesh.vertices.foreach_set("co", head.vertices.ravel())
    mesh.loops.add(n_loops)
    mesh.loops.foreach_set("vertex_index", head.polygon_vertices)
    mesh.polygons.add(len(head.polygon_sizes))
    mesh.polygons.foreach_set("loop_start", head.loop_starts)
    uv = mesh.uv_layers.new(name="UVMap")
    uv.data.foreach_set("uv", head.uvs.ravel())
    mesh.polygons.foreach_set("use_smooth", np.ones(len(head.polygon_sizes), bool))
    mesh.update(calc_edges=True)
    mesh.validate(clean_customdata=False)
    _make_materials(head, mesh)
    return mesh


def _add_shape_keys(obj: bpy.types.Object, head: HeadAsset) -> None:
    obj.shape_key_add(name="Basis", from_mix=False)
    for k, name in enumerate(head.shape_names):
        block = obj.shape_key_add(name=name, from_mix=False)
        block.data.foreach_set("co", (head.vertices + head.deltas[k]).ravel())
        block.slider_min, block.slider_max = 0.0, 1.0
        block.value = 0.0  # a key made by the API starts at 1
    obj.data.shape_keys.name = f"{obj.name} Keys"


def add_default_head(context, collection: bpy.types.Collection | None = None, location=None) -> bpy.types.Object:
    """Add the default head (52 ARKit keys) to ``collection`` (default: the active one); returns the object.

    The new object becomes active and selected. On any failure nothing is left behind.
    """
    head = load_default_head()
    collection = collection or context.collection or context.scene.collection
    mesh = obj = None
    try:
        mesh = build_head_mesh(head)
        obj = bpy.data.objects.new(HEAD_NAME, mesh)
        for group, ids in head.vertex_groups.items():
            obj.vertex_groups.new(name=group).add(ids.tolist(), 1.0, "REPLACE")
        _add_shape_keys(obj, head)
        obj[PROP_KIND] = "default"
        for name, pivot in head.pivots.items():
            obj[PROP_PIVOT + name] = [float(c) for c in pivot]
        if location is not None:
            obj.location = location
        collection.objects.link(obj)
    except Exception:
        materials = list(mesh.materials) if mesh is not None else []
        if obj is not None:
            bpy.data.objects.remove(obj)
        if mesh is not None:
            bpy.data.meshes.remove(mesh)
        for mat in materials:
            if mat is not None and mat.users == 0:
                bpy.data.materials.remove(mat)
        raise
    view_layer = context.view_layer
    if view_layer is not None:
        try:  # fails when the collection is excluded from the view layer: then the head is just not selected
            for other in view_layer.objects.selected:
                other.select_set(False)
            obj.select_set(True, view_layer=view_layer)
            view_layer.objects.active = obj
        except RuntimeError:
            pass
    return obj
