"""3D Viewport › Sidebar › FacePolicy: target, audio, engine and style, channels, the big button, the takes."""

from __future__ import annotations

import textwrap

import bpy

from ..blender import keys
from ..blender.bake import engine_features
from ..core.errors import FacePolicyError
from .animate import bake_running
from .characters import draw_rig_report
from .live import live_session


def _label_wrapped(layout, text: str, icon: str = "NONE", width: int = 44) -> None:
    """Sidebar labels do not wrap: a long message goes on several lines, the icon on the first."""
    col = layout.column(align=True)
    for i, line in enumerate(textwrap.wrap(text, width) or [""]):
        col.label(text=line, icon=icon if i == 0 else "BLANK1")


def _valid_target(context, settings):
    obj = settings.target or context.active_object
    try:
        keys.check_target(obj)
    except FacePolicyError as exc:
        return None, str(exc)
    return obj, None


def _draw_live(layout, settings, can_start: bool) -> None:
    """The Live toggle and Record, and while live how far behind the voice the face is."""
    session = live_session()
    row = layout.row(align=True)
    row.enabled = can_start or session is not None
    row.operator("facepolicy.live", text="Stop Live" if session else "Live", icon="REC" if session else "SPEAKER",
                 depress=session is not None)
    row.prop(settings, "live_record", toggle=True)
    if session is not None:
        layout.label(text=f"{session.frames_out} frames · {session.stream.latency() * 1000:.0f} ms behind the voice",
                     icon="INFO")


class VIEW3D_PT_facepolicy(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "FacePolicy"
    bl_label = "FacePolicy"

    @classmethod
    def poll(cls, context):
        return context.scene is not None and hasattr(context.scene, "facepolicy")

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        settings = context.scene.facepolicy
        job = context.window_manager.facepolicy_job
        running = job.running and bake_running()

        obj, problem = self._draw_target(context, layout, settings)
        self._draw_audio(layout, settings)
        features, engine_problem = engine_features(settings.engine)
        self._draw_engine(layout, settings, features, engine_problem)
        self._draw_channels(layout, settings)

        col = layout.column()
        col.scale_y = 1.6
        col.enabled = obj is not None and engine_problem is None and not running
        col.operator("facepolicy.animate_from_audio", icon="PLAY_SOUND")
        if running:
            layout.progress(factor=job.progress, type="BAR", text=job.status or "Working…")
            layout.label(text="Esc to cancel", icon="CANCEL")
        elif job.status:
            _label_wrapped(layout, job.status, icon="INFO")
        _draw_live(layout, settings, obj is not None and engine_problem is None and not running)
        if obj is not None:
            self._draw_takes(layout, obj)
        elif problem:
            _label_wrapped(layout, problem, icon="ERROR")

    def _draw_target(self, context, layout, settings):
        col = layout.column()
        col.prop(settings, "target")
        obj, problem = _valid_target(context, settings)
        if obj is None and hasattr(bpy.types, "FACEPOLICY_OT_add_default_head"):
            col.operator("facepolicy.add_default_head", text="Add FacePolicy Head", icon="MONKEY")
        if obj is not None:
            draw_rig_report(col, obj)
        return obj, problem

    def _draw_audio(self, layout, settings):
        col = layout.column(heading="Audio")
        col.row().prop(settings, "audio_source", expand=True)
        if settings.audio_source == "FILE":
            row = col.row(align=True)
            row.prop(settings, "audio_path", text="File")
            row.operator("facepolicy.select_audio", text="", icon="FILE_SOUND")
            col.prop(settings, "start_frame")
            col.prop(settings, "add_sound_strip")
        else:
            col.prop(settings, "sound_strip", text="Strip")

    def _draw_engine(self, layout, settings, features, problem):
        col = layout.column()
        col.prop(settings, "engine")
        if problem:
            _label_wrapped(col, problem, icon="ERROR")
        if "transcript" in features:
            col.prop(settings, "transcript_source")
            if settings.transcript_source == "FILE":
                col.prop(settings, "transcript_path", text="File")
            elif settings.transcript_source == "TEXT":
                col.prop(settings, "transcript_text", text="Text")
            col.prop(settings, "transcript_language")
        if "accuracy" in features:
            col.prop(settings, "accuracy")
        if "style" in features:
            col.prop(settings, "style_source")
            col.prop(settings, {"PRESET": "style_preset", "ACTION": "style_action",
                                "CSV": "style_csv"}[settings.style_source])
            col.prop(settings, "style_strength")
        if "emotion" in features:
            col.prop(settings, "emotion")
            sub = col.column()
            sub.enabled = settings.emotion != "neutral"
            sub.prop(settings, "emotion_intensity")
        if "seed" in features:
            row = col.row(align=True)
            row.prop(settings, "seed")
            row.operator("facepolicy.animate_from_audio", text="New Take", icon="FILE_REFRESH").new_take = True

    def _draw_channels(self, layout, settings):
        box = layout.box()
        box.label(text="Channels")
        grid = box.grid_flow(columns=3, align=True)
        for attr in ("use_lips", "use_brows", "use_blinks", "use_gaze", "use_head"):
            grid.prop(settings, attr, toggle=True)
        col = box.column()
        if settings.use_head:
            col.prop(settings, "head_target")
            if settings.head_target == "BONE":
                col.prop(settings, "head_armature")
                if settings.head_armature is not None:
                    col.prop_search(settings, "head_bone", settings.head_armature.data, "bones")
        col.label(text="Intensity")
        col.prop(settings, "intensity_mouth")
        col.prop(settings, "intensity_brows")
        col.prop(settings, "intensity_eyes")
        col.prop(settings, "smoothing")

    def _draw_takes(self, layout, obj):
        takes = keys.list_takes(obj)
        if not takes:
            return
        box = layout.box()
        box.label(text=f"Takes of {obj.name}")
        active = obj.data.shape_keys.animation_data.action if obj.data.shape_keys.animation_data else None
        for action in reversed(takes[-12:]):
            info = keys.take_info(action)
            row = box.row(align=True)
            icon = "RADIOBUT_ON" if action == active else "RADIOBUT_OFF"
            row.operator("facepolicy.use_take", text=action.name, icon=icon, depress=action == active).action = \
                action.name
            row.label(text=f"{info.get('engine', '')} · seed {info.get('seed', 0)}")
            row.operator("facepolicy.remove_take", text="", icon="X").action = action.name
        if len(takes) > 12:
            box.label(text=f"{len(takes) - 12} older takes: Action Editor or NLA")


CLASSES = (VIEW3D_PT_facepolicy,)
