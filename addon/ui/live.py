"""The Live toggle: the microphone drives the target's shape keys (blender.live), a timer sets them; stopping with
Record on keeps the performance as a new take."""

from __future__ import annotations

import bpy

from ..blender import live
from ..blender.bake import resolve_target
from ..core.pcm import Microphone
from .prefs import get_preferences
from .report import reports_errors

_session: list[live.LiveSession] = []  # the running session, if any (one at a time)


def live_session() -> live.LiveSession | None:
    return _session[0] if _session else None


def _tick() -> float | None:
    """The timer: set the keys from the newest frame; stops the session (and the timer) if it failed."""
    session = live_session()
    if session is None:
        return None
    try:
        session.tick()
    except Exception as exc:  # noqa: BLE001 - the worker's failure, reported once the session is closed
        _session.clear()
        try:
            session.stop()
        except Exception:  # noqa: BLE001, S110 - the same failure again
            pass
        bpy.context.window_manager.facepolicy_job.status = f"Live stopped: {exc}"
        return None
    return live.TICK_SECONDS


class FACEPOLICY_OT_live(bpy.types.Operator):
    """Drive the target's shape keys from the microphone as you speak; press again to stop (with Record on, the
    performance becomes a new take with its audio)"""

    bl_idname = "facepolicy.live"
    bl_label = "Live"

    @reports_errors
    def execute(self, context):
        session = live_session()
        if session is not None:
            return self._stop(context, session)
        settings = context.scene.facepolicy
        obj = resolve_target(context, settings)
        options = live.write_options(settings, context.scene.frame_current)
        mic = Microphone()  # first: without one, nothing else is worth loading
        try:
            stream = live.stream_from_settings(settings, get_preferences(context))
            session = live.LiveSession(obj, stream, mic, options, record=settings.live_record).start()
        except BaseException:
            mic.close()
            raise
        _session.append(session)
        bpy.app.timers.register(_tick, first_interval=live.TICK_SECONDS)
        for warning in stream.warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Live on {obj.name}: speak; press Live again to stop")
        return {"FINISHED"}

    def _stop(self, context, session):
        _session.clear()
        result = session.stop(context.scene)
        if result is None:
            self.report({"INFO"}, f"Live stopped after {session.frames_out} frames")
            return {"FINISHED"}
        for warning in result.warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f'Recorded "{result.action.name}": frames {result.frame_start}–{result.frame_end}')
        return {"FINISHED"}


CLASSES = (FACEPOLICY_OT_live,)


def unregister_extra() -> None:
    session = live_session()
    if session is not None:
        _session.clear()
        session.stop()
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)
