"""One bake, in three steps: gather the request from Blender (main thread), run the engine (any thread, no bpy),
apply the result to the scene (main thread). The operator and scripts share these steps.
"""

from __future__ import annotations

import functools
import importlib
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from ..core import engine as core_engine
from ..core import spec
from ..core.audio import SpooledAudio
from ..core.engine import BakeOptions, ProgressFn
from ..core.errors import AudioError, Cancelled, FacePolicyError, RigError
from ..core.facetrack import FaceTrack
from ..core.fileio import read_user_text
from ..core.rigtrack import RigGeometry, RigPlan, rig_track
from . import keys, rig_report, sound

# What each engine offers, for engines that do not declare a ``features`` class attribute themselves.
DEFAULT_FEATURES = {"phonetic": frozenset({"transcript", "accuracy", "emotion", "seed"}),
                    "neural": frozenset({"transcript", "accuracy", "style", "emotion", "seed"})}


@functools.cache
def engine_features(name: str) -> tuple[frozenset, str | None]:
    """(features, problem): the options the engine supports, and why it cannot run here (or None).

    Settings for features an engine lacks are neither shown nor read, so a hidden control never causes an error.
    """
    module, cls_name = core_engine.ENGINES.get(name, ("", ""))
    try:
        cls = getattr(importlib.import_module(module, core_engine.__package__), cls_name)
    except (ImportError, AttributeError, ValueError, FacePolicyError) as exc:
        return frozenset(), f"{name} engine unavailable: {exc}"
    return frozenset(getattr(cls, "features", DEFAULT_FEATURES.get(name, frozenset()))), None


CHANNEL_TOGGLES = (("use_lips", "lips"), ("use_brows", "brows"), ("use_blinks", "blinks"),
                   ("use_gaze", "gaze"), ("use_head", "head"))


@dataclass
class BakeRequest:
    """Everything a bake needs, as plain data: safe to hand to a worker thread."""

    object_name: str
    audio_path: str
    audio_name: str
    options: BakeOptions
    start_frame: int = 1
    add_strip: bool = True
    channels: frozenset[str] = spec.ALL_TOGGLES
    intensity: dict[str, float] = field(default_factory=dict)
    smoothing: float = 0.0
    head_object: str = ""
    head_bone: str = ""
    fps: float = 30.0  # the scene's, for shaping the track to the rig on the worker
    plan: RigPlan | None = None  # which key each channel drives (core.rigtrack); None: the writer decides
    geometry: RigGeometry | None = None  # set when the plan solves some channels: the worker solves them
    temp_files: list[str] = field(default_factory=list)

    def write_options(self, **extra) -> keys.WriteOptions:
        return keys.WriteOptions(start_frame=self.start_frame, channels=self.channels, intensity=self.intensity,
                                 smoothing=self.smoothing, audio_name=self.audio_name, **extra)

    def cleanup(self) -> None:
        for path in self.temp_files:
            try:
                os.unlink(path)
            except OSError:
                pass
        self.temp_files.clear()


@dataclass
class BakeOutcome:
    track: FaceTrack
    audio_seconds: float
    engine_seconds: float
    silent: bool
    rig_track: FaceTrack | None = None  # the track in the rig's own keys, shaped on the worker


# --- gather (main thread) --------------------------------------------------------------------------------------


def resolve_target(context, settings) -> bpy.types.Object:
    obj = settings.target or context.active_object
    keys.check_target(obj)
    return obj


def _read_transcript(settings) -> str | None:
    if settings.transcript_source == "FILE":
        path = Path(bpy.path.abspath(settings.transcript_path))
        if not settings.transcript_path:
            raise FacePolicyError("no transcript file was chosen (or set Transcript to None)")
        text = read_user_text(path)  # one rule with the console script: UTF-8, UTF-16/32 with a BOM, Windows-1252
    elif settings.transcript_source == "TEXT":
        if settings.transcript_text is None:
            raise FacePolicyError("no transcript text block was chosen (or set Transcript to None)")
        text = settings.transcript_text.as_string()
    else:
        return None
    return text.strip() or None


def _style(settings, prefs, request_temp: list[str]) -> str | None:
    if settings.style_source == "ACTION":
        if settings.style_action is None:
            raise FacePolicyError("no reference action was chosen for the style")
        track = keys.action_to_face_track(settings.style_action, keys.scene_fps(bpy.context.scene))
        fd, path = tempfile.mkstemp(prefix="facepolicy-style-", suffix=".json")
        os.close(fd)
        request_temp.append(path)
        track.save_json(path)
        return path
    if settings.style_source == "CSV":
        path = bpy.path.abspath(settings.style_csv)
        if not settings.style_csv or not os.path.isfile(path):
            raise FacePolicyError(f'style reference "{settings.style_csv}": file not found')
        return path
    preset = settings.style_preset if settings.style_preset != "DEFAULT" else ""
    return preset or (prefs.default_style if prefs else "") or None


def _audio_from_settings(context, settings, request_temp: list[str]) -> tuple[str, str, int | None]:
    """(path, display stem, start frame of a scene strip or None)."""
    if settings.audio_source == "STRIP":
        strip = next((s for s in sound.sound_strips(context.scene) if s.name == settings.sound_strip), None)
        if strip is None:
            raise AudioError("no sound strip chosen: add one in the Video Sequencer, or pick an audio file")
        path, temporary = sound.strip_audio_path(strip)
        if temporary:
            request_temp.append(path)
        return path, Path(strip.sound.filepath).stem or strip.name, int(strip.frame_start)
    if not settings.audio_path.strip():
        raise AudioError("no audio file: choose a voice line in the FacePolicy panel")
    path = bpy.path.abspath(settings.audio_path)
    if not os.path.exists(path):
        raise AudioError(f'"{path}": file not found')
    return path, Path(path).stem, None


def request_from_settings(context, settings, prefs=None) -> BakeRequest:
    """Check the inputs and freeze them into a request. Raises FacePolicyError before anything runs."""
    obj = resolve_target(context, settings)
    temp: list[str] = []
    try:
        path, stem, strip_start = _audio_from_settings(context, settings, temp)
        channels = frozenset(group for attr, group in CHANNEL_TOGGLES if getattr(settings, attr))
        head_object, head_bone = "", ""
        if "head" in channels:
            head = keys.HeadTarget(obj)
            if settings.head_target == "BONE":
                if settings.head_armature is None or not settings.head_bone:
                    raise RigError("head rotation onto a bone: pick the armature and the bone (or turn Head off)")
                head = keys.HeadTarget(settings.head_armature, settings.head_bone)
            keys.check_head_target(head)
            head_object, head_bone = head.object.name, head.bone
        if not channels:
            raise FacePolicyError("every channel is switched off: turn on lips, brows, blinks, gaze or head")
        features, problem = engine_features(settings.engine)
        if problem:
            raise FacePolicyError(problem)
        options = BakeOptions(engine=settings.engine, device=prefs.device.lower() if prefs else "auto",
                              threads=prefs.threads if prefs else 0)
        if "transcript" in features:
            options.transcript = _read_transcript(settings)
            options.transcript_language = settings.transcript_language  # AUTO: detected
        if "seed" in features:
            options.seed = settings.seed
        if "style" in features:
            options.style, options.strength = _style(settings, prefs, temp), settings.style_strength
        if "emotion" in features:
            options.emotion, options.emotion_intensity = settings.emotion, settings.emotion_intensity
        if "accuracy" in features and settings.accuracy != "DEFAULT":
            options.accuracy = settings.accuracy.lower()
        if prefs and prefs.model_dir:
            options.model_dir = bpy.path.abspath(prefs.model_dir)
        plan = rig_report.rig_plan(obj)
        return BakeRequest(
            object_name=obj.name, audio_path=path, audio_name=stem, options=options,
            start_frame=strip_start if strip_start is not None else settings.start_frame,
            add_strip=settings.add_sound_strip and strip_start is None, channels=channels,
            intensity={"mouth": settings.intensity_mouth, "brows": settings.intensity_brows,
                       "eyes": settings.intensity_eyes},
            smoothing=settings.smoothing, head_object=head_object, head_bone=head_bone,
            fps=keys.scene_fps(context.scene), plan=plan,
            geometry=rig_report.rig_geometry(obj) if plan.needs_solve else None, temp_files=temp,
        )
    except BaseException:
        for p in temp:
            os.unlink(p)
        raise


# --- run (any thread; never touches bpy) -----------------------------------------------------------------------


def run_engine(request: BakeRequest, progress: ProgressFn | None = None,
               cancel: threading.Event | None = None) -> BakeOutcome:
    progress = progress or (lambda f, m: None)
    cancel = cancel or threading.Event()
    t0 = time.perf_counter()
    progress(0.0, "reading audio")
    # A file over 15 minutes is spooled to disk and animated in segments; a movie's sound comes through the video
    # extra, or Blender's own Audaspace where that is not installed.
    audio = sound.load_line_audio(request.audio_path)
    try:
        core_engine.check_cancel(cancel)
        track = core_engine.animate(audio, request.options, progress, cancel)
        silent = audio.is_silent()
    finally:
        if isinstance(audio, SpooledAudio):
            audio.close()
    shaped_to_rig = None
    if request.plan is not None:
        if request.plan.needs_solve:
            progress(0.95, "fitting the rig's shape keys")
        shaped = keys.shape_track(track, request.fps, request.write_options())
        shaped_to_rig = rig_track(shaped, request.plan, request.geometry)
        core_engine.check_cancel(cancel)
    return BakeOutcome(track, audio.duration, time.perf_counter() - t0, silent, shaped_to_rig)


# --- apply (main thread) ---------------------------------------------------------------------------------------


def apply_outcome(scene: bpy.types.Scene, request: BakeRequest, outcome: BakeOutcome) -> tuple[keys.TakeResult,
                                                                                                  list[tuple]]:
    """Write the take and the sound strip. Returns the take and the (level, message) reports to show."""
    obj = bpy.data.objects.get(request.object_name)
    if obj is None:
        raise RigError(f'"{request.object_name}" no longer exists')
    head = None
    if request.head_object:
        head_ob = bpy.data.objects.get(request.head_object)
        if head_ob is None:
            raise RigError(f'head target "{request.head_object}" no longer exists')
        head = keys.HeadTarget(head_ob, request.head_bone)
    write = request.write_options(head_target=head, mapping=request.plan.mapping if request.plan else None,
                                  rig_track=outcome.rig_track)
    info = {"engine": request.options.engine, "seed": request.options.seed,
            "audio_path": request.audio_path if request.audio_path not in request.temp_files else ""}
    result = keys.write_face_track_to_action(obj, outcome.track, write, scene=scene, info=info)
    reports = [("WARNING", str(w)) for w in outcome.track.meta.get("warnings", ())]
    reports += [("WARNING", w) for w in result.warnings]
    if request.add_strip:
        _, warning = sound.add_sound_strip(scene, obj.name, request.audio_path, request.start_frame)
        if warning:
            reports.append(("WARNING", warning))
    if outcome.silent:
        reports.append(("INFO", "the audio is silent: baked a calm face with blinks"))
    speed = outcome.audio_seconds / outcome.engine_seconds if outcome.engine_seconds > 0 else float("inf")
    reports.append(("INFO", f'"{result.action.name}": frames {result.frame_start}–{result.frame_end}, '
                            f"{outcome.audio_seconds:.1f} s of audio in {outcome.engine_seconds:.1f} s "
                            f"({speed:.0f}× real time)"))
    return result, reports


class JobProgress:
    """Written by the worker thread, read by the main thread: plain attributes, no bpy."""

    def __init__(self) -> None:
        self.fraction = 0.0
        self.message = "starting"

    def __call__(self, fraction: float, message: str) -> None:
        self.fraction = min(1.0, max(self.fraction, float(fraction)))
        self.message = message


class BakeJob:
    """A bake whose engine runs on a worker thread while the main thread polls it (the operator's modal timer).

    The worker only runs ``run_engine``; ``finish`` applies the result on the main thread, so a cancelled or
    failed job never writes anything.
    """

    def __init__(self, request: BakeRequest) -> None:
        self.request = request
        self.progress = JobProgress()
        self.cancel_event = threading.Event()
        self.outcome: BakeOutcome | None = None
        self.error: BaseException | None = None
        self.started = time.perf_counter()
        self._thread = threading.Thread(target=self._work, name="facepolicy-bake", daemon=True)

    def start(self) -> BakeJob:
        self._thread.start()
        return self

    def _work(self) -> None:
        try:
            self.outcome = run_engine(self.request, self.progress, self.cancel_event)
        except BaseException as exc:  # handed to the main thread by finish()
            self.error = exc

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def cancel(self) -> None:
        self.cancel_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self.running

    def finish(self, scene: bpy.types.Scene) -> tuple[keys.TakeResult, list[tuple]]:
        """Apply the finished job. Raises Cancelled or the engine's error, having written nothing."""
        if self.running:
            raise RuntimeError("the bake is still running")
        try:
            if self.cancel_event.is_set() or isinstance(self.error, Cancelled):
                raise Cancelled("cancelled: nothing was changed")
            if self.error is not None:
                raise self.error
            return apply_outcome(scene, self.request, self.outcome)
        finally:
            self.request.cleanup()


def bake(context, request: BakeRequest, progress: ProgressFn | None = None,
         cancel: threading.Event | None = None) -> tuple[keys.TakeResult, list[tuple]]:
    """The whole bake on the calling thread (background mode, scripts, tests)."""
    outcome = run_engine(request, progress, cancel)
    return apply_outcome(context.scene, request, outcome)
