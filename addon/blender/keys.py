"""Keyframe writer: a FaceTrack becomes a new Action (one per take) on a shape-key rig.

Each take is a new Action named ``<object> · <audio stem> · take N``; earlier takes are kept (fake user) and can
be made active again with ``use_take``. Keys are written with ``keyframe_points.add`` + ``foreach_set`` at the
scene's frame rate (the track is resampled, never stretched). Which key each channel drives (by name, or by the
geometric solve) is decided in core.rigtrack; this module only reads the rig and writes curves. Version differences
live in ``compat``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import bpy
import mathutils
import numpy as np

from ..core import spec
from ..core.errors import RigError
from ..core.facetrack import FaceTrack
from ..core.rig import RigMapping, match_name
from ..core.rigtrack import shape_track, solve_message
from . import compat
from .rig_report import rig_plan, track_for_rig

# F-curve groups in the Graph Editor, by canonical region.
_GROUP_TITLES = {"mouth": "Mouth", "brows": "Brows", "eyes": "Eyes", "blinks": "Eyes", "gaze": "Eyes"}

TAKE_PROP = "facepolicy"  # ID property on each take's action: {object, audio, take, engine, seed}


@dataclass
class HeadTarget:
    """Where head rotation goes: the object itself (delta rotation) or a pose bone of an armature."""

    object: bpy.types.Object
    bone: str = ""


@dataclass
class WriteOptions:
    start_frame: int = 1
    channels: frozenset[str] = spec.ALL_TOGGLES  # the panel's toggles switched on (spec.TOGGLE_GROUPS)
    intensity: dict[str, float] = field(default_factory=dict)  # spec.INTENSITY_GROUPS → scale, 1.0 when missing
    smoothing: float = 0.0  # 0..1
    head_target: HeadTarget | None = None
    audio_name: str = ""  # the audio file's stem, for the action name
    mapping: RigMapping | None = None  # None: matched by name, with the object's own overrides
    set_frame_range: bool = True
    # The track already shaped to the rig's keys off the main thread (core.rigtrack.rig_track at the scene's fps,
    # with the same plan). None: the writer shapes it itself.
    rig_track: FaceTrack | None = None


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
    plan = rig_plan(obj, options.mapping)
    shaped = shape_track(track, scene_fps(scene), options)
    if shaped.n_frames == 0:
        raise RigError("the track is empty: the audio is too short to animate")
    rig = options.rig_track
    if rig is None or rig.n_frames != shaped.n_frames or rig.fps != shaped.fps:
        rig = track_for_rig(obj, shaped, plan)
    named_groups = {m.key: _GROUP_TITLES.get(spec.region_of(m.channels[0]) or "", "Face")
                    for m in plan.mapping.matches}
    groups = {n: named_groups.get(n, "Solved") for n in rig.names}
    warnings: list[str] = plan.warnings()
    solved_note = solve_message(rig)
    if solved_note:
        warnings.append(solved_note)
    rig = rig.select([n for n in rig.names if n not in spec.ROTATION_CHANNELS])
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
    enabled = set(shaped.names)
    missing = [n for n in plan.undriven_channels if n in enabled] if plan.mapping.matches else []
    if missing:
        warnings.append(f"{len(missing)} channel(s) have no matching shape key: {', '.join(missing[:6])}"
                        + (" …" if len(missing) > 6 else ""))
    return TakeResult(action, head_action, take, start, end, shaped.n_frames, n_curves, warnings)
