"""Character operators: Add › Mesh › FacePolicy Head, and the rig report drawn by the main panel."""

import bpy

from ..blender.head import add_default_head
from ..core.errors import FacePolicyError


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

    def execute(self, context):
        try:
            obj = add_default_head(context, location=context.scene.cursor.location.copy())
        except FacePolicyError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f'added "{obj.name}" with {len(obj.data.shape_keys.key_blocks) - 1} ARKit shape keys')
        return {"FINISHED"}


def _menu_add_head(self, context):
    self.layout.operator(FACEPOLICY_OT_add_default_head.bl_idname, icon="MONKEY")


CLASSES = (FACEPOLICY_OT_add_default_head,)


def register_extra() -> None:
    bpy.types.VIEW3D_MT_mesh_add.append(_menu_add_head)


def unregister_extra() -> None:
    bpy.types.VIEW3D_MT_mesh_add.remove(_menu_add_head)
