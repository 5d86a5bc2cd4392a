"""The "System Report" operator: the `facepolicy doctor` report inside Blender (Info editor + a text block)."""

import bpy

from ..blender.status import blender_status
from ..core.doctor import build_report
from ..core.version import VERSION
from .prefs import get_preferences


def model_folder(context) -> str | None:
    """The preferences' Model Folder as an absolute path (Blender's // paths resolved), or None when unset."""
    prefs = get_preferences(context)
    return bpy.path.abspath(prefs.model_dir) if prefs is not None and prefs.model_dir else None


class FACEPOLICY_OT_doctor(bpy.types.Operator):
    """Check versions, the compute device, the assets and the Model Folder; the report goes to a text block"""

    bl_idname = "facepolicy.doctor"
    bl_label = "FacePolicy System Report"
    bl_options = {"REGISTER"}

    def execute(self, context):
        report = build_report(VERSION, blender=blender_status(), model_dir=model_folder(context))
        text = bpy.data.texts.get("FacePolicy Report") or bpy.data.texts.new("FacePolicy Report")
        text.from_string(report.text())
        if report.problems:
            for problem in report.problems:
                self.report({"WARNING"}, problem)
        else:
            self.report({"INFO"}, "FacePolicy: no problems found (see the text block 'FacePolicy Report')")
        return {"FINISHED"}


CLASSES = (FACEPOLICY_OT_doctor,)
