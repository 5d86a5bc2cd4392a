"""The panel's Live mode: a microphone drives the target's shape keys in the viewport as the user speaks, and Record
keeps the performance as a new take (an Action, with the recorded audio as a sound strip) when it stops.

A worker thread reads the audio source and runs the live stream (core.stream), shaping each frame to the rig's own
keys by the bakes' per-channel rule (core.rigtrack: by name, else the geometric solve); ``LiveSession.tick``, run by
a timer on the main thread, sets the newest frame's key values, so the UI never waits for the model. bpy is touched
on the main thread only (start, tick, stop). Timers do not run in the bpy module: tests call ``tick`` themselves.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import bpy
import numpy as np

from ..core import spec
from ..core.errors import FacePolicyError
from ..core.facetrack import FaceTrack
from ..core.pcm import Resampler
from ..core.rigtrack import rig_track, shape_track
from ..core.stream import FaceStream
from . import compat, keys, rig_report, sound

TICK_SECONDS = 1.0 / 60  # how often the timer sets the keys: twice per model frame, so no frame waits long
LIVE_NAME = "live"  # the take's "audio" name: actions are called "<object> · live · take N"


class LiveSession:
    """One Live run on ``obj``: ``source`` has ``rate``, ``read(timeout)`` (a block of float samples, possibly
    none) and ``close()``. ``options``: the channel toggles, intensities and start frame of the recorded take;
    ``record``: keep the frames and the audio for a take when stopped."""

    def __init__(self, obj: bpy.types.Object, stream: FaceStream, source, options: keys.WriteOptions,
                 record: bool = True):
        keys.check_target(obj)
        self.obj, self.stream, self.source = obj, stream, source
        self.options, self.record = options, record
        self.plan = rig_report.rig_plan(obj, options.mapping)
        self.geometry = rig_report.rig_geometry(obj) if self.plan.needs_solve else None
        self.resampler = Resampler(int(source.rate))
        self.frames: list[np.ndarray] = []  # the performance at the stream's rate, for the take
        self.audio_path: str | None = None
        self._audio = None
        if record:
            fd, self.audio_path = tempfile.mkstemp(prefix="facepolicy-live-", suffix=".wav")
            os.close(fd)
            import soundfile

            # The heard audio goes straight to disk, so a long performance does not grow in memory.
            self._audio = soundfile.SoundFile(self.audio_path, "w", spec.SAMPLE_RATE, 1, subtype="PCM_16")
        self._latest: tuple[tuple[str, ...], np.ndarray] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.frames_out = 0
        self.started = time.perf_counter()
        # The live values must show: an action on the keys would overwrite them at every redraw, so it is set
        # aside until the session stops.
        key = obj.data.shape_keys
        self._previous = (compat.assigned_action(key), key.animation_data is not None)
        if self._previous[0] is not None:
            compat.assign_action(key, None)

    # --- the worker thread ---------------------------------------------------------------------------------------

    def start(self) -> LiveSession:
        self._thread = threading.Thread(target=self._run, name="facepolicy-live", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.feed(self.source.read(0.1))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which reports it and stops
            self.error = exc

    def feed(self, block: np.ndarray) -> None:
        """Hear one block of the source's samples (worker thread; tests call it directly)."""
        samples = self.resampler.push(np.asarray(block, np.float32))
        self._hear(samples)

    def _hear(self, samples: np.ndarray) -> None:
        if self._audio is not None and len(samples):
            self._audio.write(np.clip(samples, -1.0, 1.0))
        self.stream.push(samples)
        self._show(self.stream.pull())

    def _show(self, frames: np.ndarray) -> None:
        """Keep ``frames`` for the take and their newest one, in the rig's own keys, for the next tick."""
        if not len(frames):
            return
        self.frames_out += len(frames)
        if self.record:
            self.frames.extend(frames)
        fps = self.stream.fps
        shaped = shape_track(FaceTrack(fps, spec.CHANNEL_NAMES, frames[-1:]), fps, self.options)
        rig = rig_track(shaped, self.plan, self.geometry)
        weights = rig.select([n for n in rig.names if n not in spec.ROTATION_CHANNELS])
        with self._lock:
            self._latest = (weights.names, weights.values[0])

    # --- the main thread -------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def tick(self) -> int:
        """Set the newest frame's key values (the timer's work); returns how many keys were set. Raises what the
        worker thread failed with."""
        if self.error is not None:
            raise self.error
        with self._lock:
            latest, self._latest = self._latest, None
        if latest is None:
            return 0
        blocks = self.obj.data.shape_keys.key_blocks
        for name, value in zip(*latest, strict=True):
            kb = blocks.get(name)
            if kb is not None:
                kb.value = float(np.clip(value, kb.slider_min, kb.slider_max))
        return len(latest[0])

    def stop(self, scene: bpy.types.Scene | None = None) -> keys.TakeResult | None:
        """End the session: the frames the look-ahead still holds are shown, the keys get their action back, and
        with Record a new take is written (start frame: ``options.start_frame``) with the audio as a sound strip,
        packed into the file. Returns the take, or None without Record or without a frame."""
        scene = scene or bpy.context.scene
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.source.close()
        failed = self.error
        if failed is None:
            self._hear(self.resampler.finish())
            self._show(self.stream.finish())
            self.tick()
        if self._audio is not None:
            self._audio.close()
        key = self.obj.data.shape_keys
        if self._previous[0] is not None:
            compat.assign_action(key, self._previous[0])
        try:
            if failed is not None:
                raise failed
            if not self.record or not self.frames:
                return None
            return self._write_take(scene)
        finally:
            if self.audio_path:
                Path(self.audio_path).unlink(missing_ok=True)

    def _write_take(self, scene: bpy.types.Scene) -> keys.TakeResult:
        track = FaceTrack(self.stream.fps, spec.CHANNEL_NAMES, np.stack(self.frames),
                          {"engine": "neural", "live": True, "evidence": self.stream.evidence})
        result = keys.write_face_track_to_action(self.obj, track, self.options, scene,
                                                 info={"engine": "neural live", "seed": self.stream.settings.seed})
        strip, problem = sound.add_sound_strip(scene, self.obj.name, self.audio_path, self.options.start_frame)
        if strip is not None:
            strip.sound.pack()  # the take keeps its audio when the temporary file is gone
        else:
            result.warnings.append(problem)
        return result


def write_options(settings, start_frame: int) -> keys.WriteOptions:
    """The take's write options from the panel's settings (the same toggles and intensities as a bake)."""
    from .bake import CHANNEL_TOGGLES

    channels = frozenset(group for attr, group in CHANNEL_TOGGLES if getattr(settings, attr)) - {"head"}
    if not channels:
        raise FacePolicyError("every channel is switched off: turn on lips, brows, blinks or gaze")
    return keys.WriteOptions(start_frame=start_frame, channels=channels, audio_name=LIVE_NAME,
                             intensity={"mouth": settings.intensity_mouth, "brows": settings.intensity_brows,
                                        "eyes": settings.intensity_eyes}, smoothing=settings.smoothing)


def stream_from_settings(settings, prefs=None) -> FaceStream:
    """The live stream the panel's engine settings ask for: style (preset, action or Live Link CSV), strength,
    emotion, seed and accuracy (Fast: the model listens alone), with the preferences' model folder and device."""
    from ..core.engine import get_engine
    from ..core.policy import emotion_vector

    engine = get_engine("neural")
    # One thread per ONNX call: the live plans are small, and more threads cost CPU without cutting the latency.
    model_dir = bpy.path.abspath(prefs.model_dir) if prefs and prefs.model_dir else None
    policy = engine.policy(prefs.device.lower() if prefs else "auto", threads=1, model_dir=model_dir)
    if settings.style_source == "ACTION":
        if settings.style_action is None:
            raise FacePolicyError("no reference action was chosen for the style")
        track = keys.action_to_face_track(settings.style_action, keys.scene_fps(bpy.context.scene))
        style = policy.style_from_track(track, settings.style_action.name)
    elif settings.style_source == "CSV":
        style, _ = engine.style_code(policy, bpy.path.abspath(settings.style_csv) or settings.style_csv)
    else:
        preset = settings.style_preset if settings.style_preset != "DEFAULT" else ""
        style, _ = engine.style_code(policy, preset or (prefs.default_style if prefs else "") or None)
    return FaceStream(policy, policy.settings(seed=settings.seed, style_scale=settings.style_strength), style,
                      emotion_vector(settings.emotion, settings.emotion_intensity),
                      evidence=settings.accuracy != "FAST")
