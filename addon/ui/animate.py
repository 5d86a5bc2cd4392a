"""The Animate from Audio operator: a worker thread in the UI (modal timer, progress, Esc), synchronous in
background mode. It writes nothing until the engine has finished, so cancel and errors leave the scene as it was,
and Blender records the whole bake as one undo step.
"""

from __future__ import annotations

import traceback

import bpy
from bpy.props import BoolProperty, StringProperty

from ..blender import bake, keys
from ..core.errors import Cancelled, FacePolicyError
from ..core.movie import MOVIE_SUFFIXES
from .prefs import get_preferences
from .report import reports_errors

_jobs: list[bake.BakeJob] = []  # bakes started by the modal operator and not yet finished

MOVIE_GLOB = ";".join("*" + suffix for suffix in MOVIE_SUFFIXES)  # the file browser shows movies too


def bake_running() -> bool:
    return any(job.running for job in _jobs)


def _report_all(op, reports) -> None:
    for level, message in reports:
        op.report({level}, message)


def _redraw(context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


class FACEPOLICY_OT_animate_from_audio(bpy.types.Operator):
    """Bake facial animation from the audio onto the target's shape keys, as a new take"""

    bl_idname = "facepolicy.animate_from_audio"
    bl_label = "Animate from Audio"
    bl_options = {"REGISTER", "UNDO"}

    new_take: BoolProperty(name="New Take", default=False, options={"SKIP_SAVE"},
                           description="Bake another variation with the next seed")

    @classmethod
    def poll(cls, context):
        # The worker threads themselves say whether a bake runs: a flag could outlive a modal that Blender ended.
        if bake_running():
            cls.poll_message_set("a FacePolicy bake is already running")
            return False
        return context.scene is not None

    def _request(self, context):
        settings = context.scene.facepolicy
        request = bake.request_from_settings(context, settings, get_preferences(context))
        if self.new_take:
            request.options.seed = settings.seed + 1  # stored in the settings only once the take is written
        return request

    @staticmethod
    def _keep_seed(context, request) -> None:
        context.scene.facepolicy.seed = request.options.seed

    @reports_errors
    def execute(self, context):
        request = self._request(context)
        try:
            _, reports = bake.bake(context, request)
            self._keep_seed(context, request)
        finally:
            request.cleanup()
        _report_all(self, reports)
        return {"FINISHED"}

    @reports_errors
    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        self._start(context)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def _start(self, context) -> None:
        """Check the inputs, start the engine on a worker thread and the timer that polls it."""
        self._job = bake.BakeJob(self._request(context)).start()
        _jobs.append(self._job)
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        state = wm.facepolicy_job
        state.running, state.progress, state.status = True, 0.0, "Starting…"

    def modal(self, context, event):
        state = context.window_manager.facepolicy_job
        job = self._job
        if event.type == "ESC" and event.value == "PRESS":
            job.cancel()
            state.status = "Cancelling…"
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if job.running:
            if not job.cancel_event.is_set():
                state.progress = job.progress.fraction
                state.status = f"{job.progress.message} · {job.elapsed:.1f} s"
            _redraw(context)
            return {"RUNNING_MODAL"}
        return self._finish(context)

    def _finish(self, context):
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        state = wm.facepolicy_job
        state.running, state.progress = False, 0.0
        job = self._job
        _jobs.remove(job)
        try:
            result, reports = job.finish(context.scene)
            self._keep_seed(context, job.request)
        except Cancelled as exc:
            state.status = str(exc).capitalize()
            self.report({"WARNING"}, state.status)
            return {"CANCELLED"}
        except FacePolicyError as exc:
            state.status = f"Failed: {exc}"
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except Exception as exc:
            state.status = "Failed: see the system console"
            traceback.print_exc()
            self.report({"ERROR"}, f"FacePolicy bake failed unexpectedly: {type(exc).__name__}: {exc}")
            return {"CANCELLED"}
        finally:
            _redraw(context)
        outcome = job.outcome
        state.status = (f"{result.action.name} · {outcome.audio_seconds:.1f} s audio in {job.elapsed:.1f} s "
                        f"({outcome.audio_seconds / max(outcome.engine_seconds, 1e-6):.0f}× real time)")
        _report_all(self, reports)
        return {"FINISHED"}

    def cancel(self, context):
        # Blender ends the modal itself (the window closes, another file loads): stop the worker, write nothing.
        self._job.cancel()
        if self._job in _jobs:
            _jobs.remove(self._job)
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.facepolicy_job.running = False


def _on_take(op, context, apply) -> set[str]:
    """Run ``apply(target, action)`` for the take named by ``op.action``; FacePolicyError if it is not a take."""
    action = bpy.data.actions.get(op.action)
    if action is None or keys.take_info(action) is None:
        raise FacePolicyError(f'"{op.action}" is not a FacePolicy take')
    apply(bake.resolve_target(context, context.scene.facepolicy), action)
    return {"FINISHED"}


class FACEPOLICY_OT_use_take(bpy.types.Operator):
    """Make this take the active animation of the target"""

    bl_idname = "facepolicy.use_take"
    bl_label = "Use Take"
    bl_options = {"REGISTER", "UNDO"}

    action: StringProperty(name="Take")

    @reports_errors
    def execute(self, context):
        return _on_take(self, context, keys.use_take)


class FACEPOLICY_OT_remove_take(bpy.types.Operator):
    """Delete this take (Ctrl+Z brings it back)"""

    bl_idname = "facepolicy.remove_take"
    bl_label = "Delete Take"
    bl_options = {"REGISTER", "UNDO"}

    action: StringProperty(name="Take")

    @reports_errors
    def execute(self, context):
        return _on_take(self, context, keys.remove_take)


class FACEPOLICY_OT_select_audio(bpy.types.Operator):
    """Choose the voice line (the file browser shows audio files only)"""

    bl_idname = "facepolicy.select_audio"
    bl_label = "Choose Audio"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.wav;*.flac;*.ogg;*.oga;*.mp3;*.aif;*.aiff;*.opus;" + MOVIE_GLOB,
                               options={"HIDDEN"})
    filter_sound: BoolProperty(default=True, options={"HIDDEN"})
    filter_movie: BoolProperty(default=True, options={"HIDDEN"})  # a movie's sound track (core.movie)
    filter_folder: BoolProperty(default=True, options={"HIDDEN"})

    def invoke(self, context, event):
        self.filepath = context.scene.facepolicy.audio_path
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        settings = context.scene.facepolicy
        settings.audio_source = "FILE"
        settings.audio_path = self.filepath
        return {"FINISHED"}


CLASSES = (FACEPOLICY_OT_animate_from_audio, FACEPOLICY_OT_use_take, FACEPOLICY_OT_remove_take,
           FACEPOLICY_OT_select_audio)
