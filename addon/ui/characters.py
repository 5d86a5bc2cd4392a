"""Character operators: Add › Mesh › FacePolicy Head, Import FLAME, and the rig report drawn by the main panel."""

import bpy
from bpy_extras.io_utils import ImportHelper

from ..blender.flame import import_flame
from ..blender.head import add_default_head
from ..blender.rig_report import check_rig, report_rows, rig_plan, set_landmark
from ..core.errors import FacePolicyError
from ..core.head import LANDMARK_NAMES
from .report import reports_errors

_ICONS = {"error": "ERROR", "warning": "INFO", "info": "BLANK1"}


class FACEPOLICY_OT_add_default_head(bpy.types.Operator):
    """Add the FacePolicy head: a CC0 face with the 52 ARKit shape keys, teeth, tongue and eyeballs"""

    bl_idname = "facepolicy.add_default_head"
    bl_label = "FacePolicy Head"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        if context.mode != "OBJECT":
            cls.poll_message_set("Switch to Object Mode to add the FacePolicy head")
            return False
        return True

    @reports_errors
    def execute(self, context):
        obj = add_default_head(context, location=context.scene.cursor.location.copy())
        self.report({"INFO"}, f'added "{obj.name}" with {len(obj.data.shape_keys.key_blocks) - 1} ARKit shape keys')
        return {"FINISHED"}


class FACEPOLICY_OT_import_flame(bpy.types.Operator, ImportHelper):
    """Import your FLAME model (.pkl) as a mesh with expression shape keys and a jaw-open key"""

    bl_idname = "facepolicy.import_flame"
    bl_label = "Import FLAME Model"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".pkl"
    filter_glob: bpy.props.StringProperty(default="*.pkl", options={"HIDDEN"})
    expressions: bpy.props.IntProperty(
        name="Expressions", default=20, min=1, max=100,
        description="How many FLAME expression components become shape keys (each as a + and a - key)")

    @classmethod
    def poll(cls, context):
        if context.mode != "OBJECT":
            cls.poll_message_set("Switch to Object Mode to import a FLAME model")
            return False
        return True

    @reports_errors
    def execute(self, context):
        obj = import_flame(context, self.filepath, self.expressions)
        n = len(obj.data.shape_keys.key_blocks) - 1
        self.report({"INFO"}, f'imported "{obj.name}" with {n} shape keys; FacePolicy drives {rig_plan(obj).summary()}')
        return {"FINISHED"}


_LANDMARK_ITEMS = tuple((name, name.replace("_", " ").capitalize(), "") for name in LANDMARK_NAMES)


class FACEPOLICY_OT_set_landmark(bpy.types.Operator):
    """Mark the active vertex as a landmark, so the geometric solve matches your mesh to the FacePolicy head"""

    bl_idname = "facepolicy.set_landmark"
    bl_label = "Set FacePolicy Landmark"
    bl_options = {"REGISTER", "UNDO"}

    landmark: bpy.props.EnumProperty(name="Landmark", items=_LANDMARK_ITEMS)

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        if obj is None or obj.type != "MESH" or obj.mode != "EDIT":
            cls.poll_message_set("Select one vertex of a mesh in Edit Mode")
            return False
        return True

    @reports_errors
    def execute(self, context):
        import bmesh

        obj = context.active_object
        bm = bmesh.from_edit_mesh(obj.data)
        active = bm.select_history.active
        picked = [v.index for v in bm.verts if v.select]
        index = active.index if isinstance(active, bmesh.types.BMVert) else (picked[0] if len(picked) == 1 else None)
        if index is None:
            raise FacePolicyError("select exactly one vertex (or make one active) to mark a landmark")
        set_landmark(obj, self.landmark, index)
        self.report({"INFO"}, f"{self.landmark} = vertex {index}")
        return {"FINISHED"}


def draw_rig_report(layout, obj) -> None:
    """The rig report: problems first, then which channel drives which key and how (name, alias, user, solve)."""
    box = layout.box()
    issues = check_rig(obj)
    for issue in issues:
        box.label(text=issue.message, icon=_ICONS[issue.severity])
    if any(i.severity == "error" for i in issues) or obj is None or obj.type != "MESH":
        return
    rows, method = report_rows(obj)
    matched = [r for r in rows if r[2] != "unmatched"]
    box.label(text=f"{len(matched)} of {len(rows)} mapped by {method}", icon="SHAPEKEY_DATA")
    col = box.column(align=True)
    for channel, key, how in rows:
        row = col.row(align=True)
        row.label(text=channel)
        row.label(text=key or "—")
        row.label(text=how)


def _menu_add_head(self, context):
    self.layout.operator(FACEPOLICY_OT_add_default_head.bl_idname, icon="MONKEY")


def _menu_import_flame(self, context):
    self.layout.operator(FACEPOLICY_OT_import_flame.bl_idname, text="FLAME Model (.pkl)")


CLASSES = (FACEPOLICY_OT_add_default_head, FACEPOLICY_OT_import_flame, FACEPOLICY_OT_set_landmark)


def register_extra() -> None:
    bpy.types.VIEW3D_MT_mesh_add.append(_menu_add_head)
    bpy.types.TOPBAR_MT_file_import.append(_menu_import_flame)


def unregister_extra() -> None:
    bpy.types.TOPBAR_MT_file_import.remove(_menu_import_flame)
    bpy.types.VIEW3D_MT_mesh_add.remove(_menu_add_head)
