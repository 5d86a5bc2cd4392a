"""The "System Report" operator: the `facepolicy doctor` report inside Blender (Info editor + a text block)."""

import bpy

from ..blender.status import blender_status
from ..core.doctor import build_report
from ..core.version import VERSION


class FACEPOLICY_OT_doctor(bpy.types.Operator):
    """Check versions, the compute device and the bundled assets; the report goes to a text block"""

    bl_idname = "facepolicy.doctor"
    bl_label = "FacePolicy System Report"
    bl_options = {"REGISTER"}

    def execute(self, context):
        report = build_report(VERSION, blender=blender_status())
        text = bpy.data.texts.get("FacePolicy Report") or bpy.data.texts.new("FacePolicy Report")
        text.from_string(report.text())
        if report.problems:
            for problem in report.problems:
                self.report({"WARNING"}, problem)
        else:
            self.report({"INFO"}, "FacePolicy: no problems found (see the text block 'FacePolicy Report')")
        return {"FINISHED"}


CLASSES = (FACEPOLICY_OT_doctor,)
