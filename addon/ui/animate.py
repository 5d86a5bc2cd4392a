"""The Animate from Audio operator: a worker thread in the UI (modal timer, progress, Esc), synchronous in
background mode. It writes nothing until the engine has finished, so cancel and errors leave the scene as it was,
and Blender records the whole bake as one undo step.
"""

from __future__ import annotations

import threading
import time

import bpy
from bpy.props import BoolProperty, StringProperty

from ..blender import bake, keys
from ..core.errors import Cancelled, FacePolicyError
from .prefs import get_preferences


class _Progress:
    """Written by the worker thread, read by the modal timer: plain attributes, no bpy."""

    def __init__(self) -> None:
        self.fraction = 0.0
        self.message = "starting"

    def __call__(self, fraction: float, message: str) -> None:
        self.fraction = min(1.0, max(self.fraction, float(fraction)))
        self.message = message


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
        job = getattr(context.window_manager, "facepolicy_job", None)
        if job is not None and job.running:
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

    def execute(self, context):
        try:
            request = self._request(context)
        except FacePolicyError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        try:
            _, reports = bake.bake(context, request)
            self._keep_seed(context, request)
        except FacePolicyError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        finally:
            request.cleanup()
        _report_all(self, reports)
        return {"FINISHED"}

    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        try:
            self._req = self._request(context)
        except FacePolicyError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self._progress = _Progress()
        self._cancel = threading.Event()
        self._outcome = None
        self._error = None
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._work, name="facepolicy-bake", daemon=True)
        self._thread.start()
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        job = wm.facepolicy_job
        job.running, job.progress, job.status = True, 0.0, "Starting…"
        return {"RUNNING_MODAL"}

    def _work(self) -> None:
        try:
            self._outcome = bake.run_engine(self._req, self._progress, self._cancel)
        except BaseException as exc:  # reported on the main thread
            self._error = exc

    def modal(self, context, event):
        job = context.window_manager.facepolicy_job
        if event.type == "ESC" and event.value == "PRESS":
            self._cancel.set()
            job.status = "Cancelling…"
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        elapsed = time.perf_counter() - self._t0
        if self._thread.is_alive():
            if not self._cancel.is_set():
                job.progress = self._progress.fraction
                job.status = f"{self._progress.message} · {elapsed:.1f} s"
            _redraw(context)
            return {"RUNNING_MODAL"}
        return self._finish(context)

    def _finish(self, context):
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        job = wm.facepolicy_job
        job.running, job.progress = False, 0.0
        request, self._req = self._req, None
        try:
            if self._cancel.is_set() or isinstance(self._error, Cancelled):
                job.status = "Cancelled: nothing was changed"
                self.report({"WARNING"}, job.status)
                return {"CANCELLED"}
            if self._error is not None:
                raise self._error
            result, reports = bake.apply_outcome(context.scene, request, self._outcome)
            self._keep_seed(context, request)
        except FacePolicyError as exc:
            job.status = f"Failed: {exc}"
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except Exception as exc:
            job.status = "Failed: see the system console"
            self.report({"ERROR"}, f"FacePolicy bake failed unexpectedly: {type(exc).__name__}: {exc}")
            return {"CANCELLED"}
        finally:
            request.cleanup()
            _redraw(context)
        outcome = self._outcome
        job.status = (f"{result.action.name} · {outcome.audio_seconds:.1f} s audio in "
                      f"{time.perf_counter() - self._t0:.1f} s "
                      f"({outcome.audio_seconds / max(outcome.engine_seconds, 1e-6):.0f}× real time)")
        _report_all(self, reports)
        return {"FINISHED"}

    def cancel(self, context):
        # Blender ends the modal without our _finish (the window closes, a new file loads): stop the worker.
        self._cancel.set()
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.facepolicy_job.running = False


class FACEPOLICY_OT_use_take(bpy.types.Operator):
    """Make this take the active animation of the target"""

    bl_idname = "facepolicy.use_take"
    bl_label = "Use Take"
    bl_options = {"REGISTER", "UNDO"}

    action: StringProperty(name="Take")

    def execute(self, context):
        settings = context.scene.facepolicy
        action = bpy.data.actions.get(self.action)
        if action is None or keys.take_info(action) is None:
            self.report({"ERROR"}, f'"{self.action}" is not a FacePolicy take')
            return {"CANCELLED"}
        try:
            obj = bake.resolve_target(context, settings)
            keys.use_take(obj, action)
        except FacePolicyError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


CLASSES = (FACEPOLICY_OT_animate_from_audio, FACEPOLICY_OT_use_take)
