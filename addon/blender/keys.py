"""Keyframe writer: a FaceTrack becomes a new Action (one per take) on a shape-key rig.

Each take is a new Action named ``<object> · <audio stem> · take N``; earlier takes are kept (fake user) and can
be made active again with ``use_take``. Keys are written with ``keyframe_points.add`` + ``foreach_set`` at the
scene's frame rate (the track is resampled, never stretched). Shape keys are matched by name (core.rig); a rig
whose key names match nothing is solved geometrically (core.retarget). Version differences live in ``compat``.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass, field

import bpy
import mathutils
import numpy as np

from ..core import spec
from ..core.errors import RigError
from ..core.facetrack import FaceTrack
from ..core.head import load_default_head
from ..core.retarget import KeySolver, build_key_solver, retarget_track
from ..core.rig import RigMapping, build_mapping, match_name
from . import compat, rig_report

# What the panel's channel toggles switch on and off: group → canonical channels.
CHANNEL_GROUPS: dict[str, tuple[str, ...]] = {
    "lips": tuple(n for n in spec.CHANNEL_NAMES if spec.region_of(n) == "mouth"),
    "brows": tuple(n for n in spec.CHANNEL_NAMES if spec.region_of(n) == "brows"),
    "blinks": tuple(n for n in spec.ARKIT_NAMES if n.startswith(("eyeBlink", "eyeSquint", "eyeWide"))),
    "gaze": tuple(n for n in spec.CHANNEL_NAMES if n.startswith("eyeLook")) + spec.EYE_NAMES,
    "head": spec.HEAD_NAMES,
}
ALL_GROUPS = frozenset(CHANNEL_GROUPS)

# What each per-region intensity slider scales. Blinks are left alone so that a blink still closes the eye.
INTENSITY_REGIONS: dict[str, tuple[str, ...]] = {
    "mouth": CHANNEL_GROUPS["lips"],
    "brows": CHANNEL_GROUPS["brows"],
    "eyes": tuple(n for n in spec.ARKIT_NAMES if n.startswith(("eyeSquint", "eyeWide", "eyeLook"))) + spec.EYE_NAMES,
    "head": spec.HEAD_NAMES,
}

# F-curve groups in the Graph Editor, by canonical region.
_GROUP_TITLES = {"mouth": "Mouth", "brows": "Brows", "eyes": "Eyes", "blinks": "Eyes", "gaze": "Eyes"}

MAX_SMOOTHING_SECONDS = 0.06  # smoothing = 1 is a Gaussian with this standard deviation
TAKE_PROP = "facepolicy"  # ID property on each take's action: {object, audio, take, engine, seed}
KEY_MAP_PROP = "facepolicy_key_map"  # the user's shape-key mapping on the object, JSON (see core.rig.parse_overrides)


@dataclass
class HeadTarget:
    """Where head rotation goes: the object itself (delta rotation) or a pose bone of an armature."""

    object: bpy.types.Object
    bone: str = ""


@dataclass
class WriteOptions:
    start_frame: int = 1
    channels: frozenset[str] = ALL_GROUPS
    intensity: dict[str, float] = field(default_factory=dict)  # region → scale, 1.0 when missing
    smoothing: float = 0.0  # 0..1
    head_target: HeadTarget | None = None
    audio_name: str = ""  # the audio file's stem, for the action name
    mapping: RigMapping | None = None  # None: matched by name, with the object's own overrides
    set_frame_range: bool = True
    # A geometric solve already computed off the main thread (solve_rig_track at the scene's fps), for rigs whose
    # key names match nothing. None: the writer solves such rigs itself.
    solved: FaceTrack | None = None


@dataclass
class TakeResult:
    action: bpy.types.Action
    head_action: bpy.types.Action | None
    take: int
    frame_start: int
    frame_end: int
    n_keys: int  # keyframes per curve
    n_curves: int
    warnings: list[str] = field(default_factory=list)


# --- checks ---------------------------------------------------------------------------------------------------


def _library_problem(id_block: bpy.types.ID) -> str | None:
    if id_block.library is not None:
        return f'is linked from "{id_block.library.filepath}"'
    if id_block.override_library is not None:
        return "is a library override"
    return None


def check_target(obj: bpy.types.Object | None) -> None:
    """Raise RigError, in the user's words, when ``obj`` cannot receive a take as it is."""
    if obj is None:
        raise RigError("no target: pick a mesh with shape keys, or add the FacePolicy head")
    if obj.type != "MESH":
        raise RigError(f'"{obj.name}" is a {obj.type.lower()}, not a mesh with shape keys')
    for block in (obj, obj.data, obj.data.shape_keys):
        problem = block is not None and _library_problem(block)
        if problem:
            raise RigError(f'"{obj.name}" {problem} and cannot be animated here; make it local first '
                           "(Object › Library Override › Make Editable, or Object › Relations › Make Local)")
    key = obj.data.shape_keys
    if key is None or len(key.key_blocks) < 2:
        raise RigError(f'"{obj.name}" has no shape keys to animate; add the FacePolicy head, or give the mesh '
                       "shape keys (the geometric solve maps any sculpted keys)")
    if obj.mode == "EDIT" or obj.data.is_editmode:
        raise RigError(f'"{obj.name}" is in Edit Mode; switch to Object Mode and try again')
    if not key.use_relative:
        raise RigError(f'"{obj.name}": its shape keys are absolute (Relative is off); FacePolicy animates '
                       "relative shape keys")
    if obj.data.users > 1:
        others = sorted(o.name for o in bpy.data.objects if o.data == obj.data and o != obj)
        shown = ", ".join(others[:3]) + (" …" if len(others) > 3 else "")
        raise RigError(f'"{obj.name}" shares its mesh and shape keys with {shown or "other users"}; animating '
                       "it would move them all. Make it single-user (Object › Relations › Make Single User)")


def check_head_target(target: HeadTarget | None) -> None:
    if target is None:
        return
    ob = target.object
    problem = _library_problem(ob)
    if problem:
        raise RigError(f'head target "{ob.name}" {problem}; pick a local object or armature')
    if target.bone:
        if ob.type != "ARMATURE" or ob.pose is None:
            raise RigError(f'head target "{ob.name}" is not an armature, so it has no bone "{target.bone}"')
        if target.bone not in ob.pose.bones:
            raise RigError(f'armature "{ob.name}" has no bone "{target.bone}"')
        if ob.pose.bones[target.bone].rotation_mode == "AXIS_ANGLE":
            raise RigError(f'bone "{target.bone}" uses Axis Angle rotation; switch it to Quaternion or an Euler '
                           "mode to receive head rotation")
    elif ob.rotation_mode == "AXIS_ANGLE":
        raise RigError(f'"{ob.name}" uses Axis Angle rotation; switch it to Quaternion or an Euler mode to '
                       "receive head rotation")


# --- the track as it will be keyed (pure numpy) ----------------------------------------------------------------


def _smooth(values: np.ndarray, fps: float, amount: float) -> np.ndarray:
    """Zero-phase Gaussian smoothing along time; ``amount`` 0..1 scales up to MAX_SMOOTHING_SECONDS."""
    sigma = float(np.clip(amount, 0.0, 1.0)) * MAX_SMOOTHING_SECONDS * fps
    if sigma < 0.3 or len(values) < 2:
        return values
    radius = int(math.ceil(3 * sigma))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (t / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values.astype(np.float64), ((radius, radius), (0, 0)), mode="edge")
    out = np.empty_like(values, dtype=np.float64)
    for c in range(values.shape[1]):
        out[:, c] = np.convolve(padded[:, c], kernel, mode="valid")
    return out.astype(np.float32)


def shape_track(track: FaceTrack, fps: float, options: WriteOptions) -> FaceTrack:
    """The canonical track with the user's toggles, intensities and smoothing applied, resampled to ``fps``."""
    full = track.select(spec.CHANNEL_NAMES)
    values = _smooth(full.values, full.fps, options.smoothing)
    scale = np.ones(spec.NUM_CHANNELS, np.float32)
    for region, names in INTENSITY_REGIONS.items():
        factor = float(options.intensity.get(region, 1.0))
        for n in names:
            scale[spec.CHANNEL_INDEX[n]] = factor
    values = values * scale
    values[:, : spec.NUM_ARKIT] = np.clip(values[:, : spec.NUM_ARKIT], 0.0, 1.0)
    keep = [n for g in sorted(options.channels & ALL_GROUPS) for n in CHANNEL_GROUPS[g]]
    shaped = FaceTrack(full.fps, spec.CHANNEL_NAMES, values, dict(full.meta))
    return shaped.resample(fps).select([n for n in spec.CHANNEL_NAMES if n in set(keep)])


def scene_fps(scene: bpy.types.Scene) -> float:
    return scene.render.fps / scene.render.fps_base


# --- takes ----------------------------------------------------------------------------------------------------


def take_info(action: bpy.types.Action) -> dict | None:
    info = action.get(TAKE_PROP)
    return info.to_dict() if hasattr(info, "to_dict") else None


def list_takes(obj: bpy.types.Object) -> list[bpy.types.Action]:
    """This object's takes (the key actions, not the legacy head actions), oldest first."""
    takes = []
    for action in bpy.data.actions:
        info = take_info(action)
        if info and info.get("object") == obj.name and info.get("role", "face") == "face":
            takes.append(action)
    return sorted(takes, key=lambda a: (take_info(a).get("serial", 0), a.name))


def _next_take_number(obj: bpy.types.Object, audio_name: str) -> int:
    numbers = [take_info(a).get("take", 0) for a in list_takes(obj) if take_info(a).get("audio") == audio_name]
    return max(numbers, default=0) + 1


def _next_serial() -> int:
    return max((take_info(a).get("serial", 0) for a in bpy.data.actions if take_info(a)), default=0) + 1


def take_name(obj_name: str, audio_name: str, take: int, suffix: str = "") -> str:
    tail = f" · take {take}{suffix}"
    head = compat.fit_id_name(f"{obj_name} · {audio_name or 'audio'}", reserve=len(tail.encode("utf-8")))
    return head + tail


def use_take(obj: bpy.types.Object, action: bpy.types.Action) -> None:
    """Make ``action`` (one of ``list_takes(obj)``) the active take, head rotation included."""
    check_target(obj)
    info = take_info(action) or {}
    compat.assign_action(obj.data.shape_keys, action)
    head_name = info.get("head_object")
    head_ob = bpy.data.objects.get(head_name) if head_name else None
    if head_ob is not None and _library_problem(head_ob) is None:
        head_action = bpy.data.actions.get(info.get("head_action", "")) or action
        compat.assign_action(head_ob, head_action)


def action_to_face_track(action: bpy.types.Action, fps: float) -> FaceTrack:
    """Read the shape-key curves of ``action`` back as a FaceTrack (keys matched by name, as core.rig does).

    Used to turn an existing facial action into a style reference. Raises RigError when nothing matches.
    """
    curves = {}
    for fcurve in compat.action_fcurves(action):
        path = fcurve.data_path
        if path.startswith('key_blocks["') and path.endswith('"].value'):
            name = path[len('key_blocks["'):-len('"].value')].replace('\\"', '"').replace("\\\\", "\\")
            hit = match_name(name)
            if hit is not None and len(hit[0]) == 1:
                curves.setdefault(hit[0][0], fcurve)
    if not curves:
        raise RigError(f'action "{action.name}" animates no ARKit-named shape keys, so it cannot be a style reference')
    first, last = (int(math.floor(v)) for v in action.frame_range)
    frames = np.arange(first, last + 1)
    values = np.zeros((len(frames), spec.NUM_CHANNELS), np.float32)
    for name, fcurve in curves.items():
        values[:, spec.CHANNEL_INDEX[name]] = [fcurve.evaluate(float(f)) for f in frames]
    return FaceTrack(fps, spec.CHANNEL_NAMES, values, {"source": action.name})


def remove_take(obj: bpy.types.Object, action: bpy.types.Action) -> bpy.types.Action | None:
    """Delete one of ``obj``'s takes (and its legacy head action). When it was active, the newest remaining take
    becomes active, or none. Returns the take that is active afterwards."""
    check_target(obj)
    info = take_info(action) or {}
    key = obj.data.shape_keys
    was_active = compat.assigned_action(key) == action
    head_ob = bpy.data.objects.get(info.get("head_object", ""))
    head_action = bpy.data.actions.get(info.get("head_action", ""))
    if head_action is not None:
        bpy.data.actions.remove(head_action)
    if head_ob is not None and compat.assigned_action(head_ob) == action:
        compat.assign_action(head_ob, None)
    bpy.data.actions.remove(action)
    remaining = list_takes(obj)
    if was_active and remaining:
        use_take(obj, remaining[-1])
    return compat.assigned_action(key)


# --- writing --------------------------------------------------------------------------------------------------


def rig_mapping(obj: bpy.types.Object) -> RigMapping:
    """How ``obj``'s shape keys map to the canonical channels: by name, with the user's overrides on the object."""
    key = obj.data.shape_keys
    overrides = obj.get(KEY_MAP_PROP, "")
    if hasattr(overrides, "to_dict"):  # stored as an ID property group rather than JSON text
        overrides = overrides.to_dict()
    return build_mapping([kb.name for kb in key.key_blocks], reference=key.reference_key.name, overrides=overrides)


@dataclass
class RigGeometry:
    """A rig's rest shape and key deltas as plain arrays: what the geometric solve needs, safe for a worker thread."""

    key_names: tuple[str, ...]
    vertices: np.ndarray  # (V, 3) the reference key, object space
    deltas: np.ndarray  # (K, V, 3) each key minus the key it is relative to
    landmarks: dict[str, int] = field(default_factory=dict)  # picked by the user (rig_report.set_landmark)

    def fingerprint(self) -> str:
        h = hashlib.blake2b(digest_size=16)
        h.update("\0".join(self.key_names).encode())
        h.update(repr(sorted(self.landmarks.items())).encode())
        h.update(np.ascontiguousarray(self.vertices, np.float32).tobytes())
        h.update(np.ascontiguousarray(self.deltas, np.float32).tobytes())
        return h.hexdigest()


def rig_geometry(obj: bpy.types.Object) -> RigGeometry:
    key = obj.data.shape_keys
    n = len(obj.data.vertices)

    def coords(kb) -> np.ndarray:
        co = np.empty(n * 3, np.float32)
        kb.data.foreach_get("co", co)
        return co.reshape(n, 3)

    ref = key.reference_key
    cache = {ref.name: coords(ref)}
    names, deltas = [], []
    for kb in key.key_blocks:
        if kb == ref:
            continue
        base = kb.relative_key if kb.relative_key is not None else ref
        if base.name not in cache:
            cache[base.name] = coords(base)
        names.append(kb.name)
        deltas.append(coords(kb) - cache[base.name])
    if not names:
        raise RigError(f'"{obj.name}" has no shape keys to solve for')
    return RigGeometry(tuple(names), cache[ref.name], np.stack(deltas), rig_report.landmarks(obj))


_solvers: dict[str, KeySolver] = {}
_solvers_lock = threading.Lock()
POOR_FIT = 0.6  # median relative residual above which the solve is reported as a poor fit


def solver_for_geometry(geometry: RigGeometry) -> KeySolver:
    """The geometric solver for a rig, cached per rig geometry and picked landmarks (4 or more guide the fit).

    Pure numpy (no bpy), so it runs on the bake's worker thread; the rig report uses the same cache.
    """
    fingerprint = geometry.fingerprint()
    with _solvers_lock:
        solver = _solvers.get(fingerprint)
    if solver is None:
        picked = geometry.landmarks if len(geometry.landmarks) >= 4 else None
        solver, _ = build_key_solver(load_default_head(), geometry.vertices, geometry.key_names, geometry.deltas,
                                     target_landmarks=picked)
        with _solvers_lock:
            if len(_solvers) >= 4:
                _solvers.pop(next(iter(_solvers)))
            _solvers[fingerprint] = solver
    return solver


def solve_rig_track(geometry: RigGeometry, shaped: FaceTrack) -> FaceTrack:
    """The rig's own key weights for ``shaped`` (canonical channels), by the geometric retarget."""
    return retarget_track(shaped, solver_for_geometry(geometry))


def _write_curve(fcurve: bpy.types.FCurve, frames: np.ndarray, values: np.ndarray) -> None:
    n = len(frames)
    co = np.empty(2 * n, np.float32)
    co[0::2] = frames
    co[1::2] = values
    points = fcurve.keyframe_points
    points.add(n)
    points.foreach_set("co", co)
    fcurve.update()


def _head_rotations(track: FaceTrack, target: HeadTarget) -> tuple[str, list[np.ndarray]]:
    """The data path and per-index curves that turn ``target`` by the track's yaw/pitch/roll.

    The face is taken to look along −Y with +Z up (Blender's front view). Yaw turns toward the character's left,
    pitch tilts the face down, roll drops the right ear. For a bone the turn is expressed in the armature's
    space and conjugated into the bone's rest frame; for an object it goes into the delta rotation, which
    Blender applies outside the object's own rotation, so it is conjugated by that rotation.
    """
    yaw, pitch, roll = (track.channel(n) for n in spec.HEAD_NAMES)
    ob = target.object
    if target.bone:
        pbone = ob.pose.bones[target.bone]
        rest = pbone.bone.matrix_local.to_quaternion()
        mode = pbone.rotation_mode
        prefix = f'pose.bones["{bpy.utils.escape_identifier(target.bone)}"].'
        euler_path, quat_path = prefix + "rotation_euler", prefix + "rotation_quaternion"

        def to_local(q):
            return rest.inverted() @ q @ rest
    else:
        basis = ob.rotation_quaternion.copy() if ob.rotation_mode == "QUATERNION" else \
            ob.rotation_euler.to_quaternion()
        mode = ob.rotation_mode
        euler_path, quat_path = "delta_rotation_euler", "delta_rotation_quaternion"

        def to_local(q):
            return basis @ q @ basis.inverted()

    n = len(yaw)
    if mode == "QUATERNION":
        out = np.empty((n, 4), np.float32)
        prev = None
        for k in range(n):
            q = to_local(mathutils.Euler((pitch[k], -roll[k], yaw[k]), "YXZ").to_quaternion())
            if prev is not None and q.dot(prev) < 0:
                q.negate()
            out[k] = q
            prev = q
        return quat_path, [out[:, i] for i in range(4)]
    out = np.empty((n, 3), np.float32)
    prev = mathutils.Euler((0.0, 0.0, 0.0), mode)
    for k in range(n):
        q = to_local(mathutils.Euler((pitch[k], -roll[k], yaw[k]), "YXZ").to_quaternion())
        prev = q.to_euler(mode, prev)
        out[k] = prev
    return euler_path, [out[:, i] for i in range(3)]


def _protect_user_action(id_block: bpy.types.ID, warnings: list[str]) -> bpy.types.Action | None:
    """Keep the ID's current action (if it is the user's own) in the file once the take replaces it.

    Returns the action whose fake user was set, so a failed write can clear it again.
    """
    current = compat.assigned_action(id_block)
    if current is None or take_info(current) is not None or current.use_fake_user:
        return None
    current.use_fake_user = True
    warnings.append(f'kept your action "{current.name}" (fake user); the new take replaces it as the active action')
    return current


def write_face_track_to_action(obj: bpy.types.Object, track: FaceTrack, options: WriteOptions | None = None,
                               scene: bpy.types.Scene | None = None, info: dict | None = None) -> TakeResult:
    """Write ``track`` onto ``obj``'s shape keys as a new take and make it the active action.

    Nothing is left behind when this raises: the new actions are removed and the previous assignments restored.
    """
    options = options or WriteOptions()
    scene = scene or bpy.context.scene
    check_target(obj)
    head = options.head_target if "head" in options.channels else None
    check_head_target(head)
    key = obj.data.shape_keys
    mapping = options.mapping or rig_mapping(obj)
    shaped = shape_track(track, scene_fps(scene), options)
    enabled = set(shaped.names)
    if shaped.n_frames == 0:
        raise RigError("the track is empty: the audio is too short to animate")
    if mapping.matches:
        warnings: list[str] = mapping.warnings()
        # A key is animated when one of the channels it mixes is switched on.
        rig = mapping.to_rig_track(shaped).select(
            [m.key for m in mapping.matches if enabled.intersection(m.channels)])
        groups = {m.key: _GROUP_TITLES.get(spec.region_of(m.channels[0]) or "", "Face") for m in mapping.matches}
    else:
        solved = options.solved
        if solved is None or solved.n_frames != shaped.n_frames or solved.fps != shaped.fps:
            solved = solve_rig_track(rig_geometry(obj), shaped)
        rig = solved.select([n for n in solved.names if n in key.key_blocks and n not in spec.ROTATION_CHANNELS])
        groups = dict.fromkeys(rig.names, "Solved")
        fit = solved.meta.get("retarget", {}).get("fit_error", 0.0)
        warnings = [f"no shape-key names match ARKit, so the keys were solved from their shapes (fit error "
                    f"{fit:.2f}" + ("; a poor fit: map the keys by name for better results)" if fit > POOR_FIT
                                    else ")")]
    if not rig.names and head is None:
        raise RigError(f'"{obj.name}": none of its shape keys match a FacePolicy channel (ARKit names); '
                       "check the rig report or map the keys")

    take = _next_take_number(obj, options.audio_name)
    start = int(options.start_frame)
    frames = np.arange(shaped.n_frames, dtype=np.float32) + start
    previous = {"key": (compat.assigned_action(key), key.animation_data is not None)}
    head_id = head.object if head else None
    if head_id is not None:
        previous["head"] = (compat.assigned_action(head_id), head_id.animation_data is not None)
        playing = previous["head"][0]
        if playing is not None and take_info(playing) is None:
            warnings.append(f'head rotation skipped: "{head_id.name}" already plays your action '
                            f'"{playing.name}"; push it to the NLA or pick another head target')
            head_id = None
    created: list[bpy.types.Action] = []
    protected = None
    range_before = (scene.frame_start, scene.frame_end)
    try:
        action = bpy.data.actions.new(take_name(obj.name, options.audio_name, take))
        created.append(action)
        n_curves = 0
        for name in rig.names:
            kb = key.key_blocks[name]
            values = np.clip(rig.channel(name), kb.slider_min, kb.slider_max)
            fcurve = compat.new_fcurve(action, key, f'key_blocks["{bpy.utils.escape_identifier(kb.name)}"].value',
                                       group=groups[name])
            _write_curve(fcurve, frames, values)
            n_curves += 1
        head_action = None
        if head_id is not None:
            if compat.one_action_per_take():
                head_action = action
            else:
                head_action = bpy.data.actions.new(take_name(obj.name, options.audio_name, take, " · head"))
                created.append(head_action)
            path, curves = _head_rotations(shaped, head)
            for index, values in enumerate(curves):
                fcurve = compat.new_fcurve(head_action, head_id, path, index=index, group="Head")
                _write_curve(fcurve, frames, values)
                n_curves += 1

        serial = _next_serial()
        meta = {"object": obj.name, "audio": options.audio_name, "take": take, "serial": serial, "role": "face"}
        meta.update({k: v for k, v in (info or {}).items() if isinstance(v, (int, float, str))})
        if head_id is not None:
            meta["head_object"] = head_id.name
            if head_action is not action:
                meta["head_action"] = head_action.name
                head_action[TAKE_PROP] = dict(meta, role="head")
                head_action.use_fake_user = True
        action[TAKE_PROP] = meta
        action.use_fake_user = True  # earlier takes stay in the file when a later one becomes active
        protected = _protect_user_action(key, warnings)
        compat.assign_action(key, action)
        if head_id is not None:
            compat.assign_action(head_id, head_action)
        end = start + shaped.n_frames - 1
        if options.set_frame_range:
            scene.frame_start, scene.frame_end = start, max(start, end)
    except BaseException:
        compat.restore_action(key, *previous["key"])
        if head_id is not None:
            compat.restore_action(head_id, *previous["head"])
        for a in created:
            bpy.data.actions.remove(a)
        if protected is not None:
            protected.use_fake_user = False
        scene.frame_start, scene.frame_end = range_before
        raise
    missing = [n for n in mapping.unmatched_channels if n in enabled] if mapping.matches else []
    if missing:
        warnings.append(f"{len(missing)} channel(s) have no matching shape key: {', '.join(missing[:6])}"
                        + (" …" if len(missing) > 6 else ""))
    return TakeResult(action, head_action, take, start, end, shaped.n_frames, n_curves, warnings)
