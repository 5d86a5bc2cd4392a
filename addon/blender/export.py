"""FBX, glTF binary and .blend files from FaceTracks, for game engines and for batch baking.

``export_scene`` is the batch's SceneExporter: it starts each row from a fresh file (the --blend, or an empty
scene with the bundled head), writes every take with ``keys.write_face_track_to_action`` and writes the
files through core.fileio's temporary-file-and-rename, so an interruption never leaves a partial file. Frame 0
of the FBX and glb is audio time 0, as in the csv and json; the .blend keeps the character's first frame, where
its take and its sound strip both start.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import bpy
import numpy as np

from ..core.errors import FacePolicyError, RigError
from ..core.fileio import atomic_path
from . import compat, keys

ROOT_BONE = "root"


# --- the character --------------------------------------------------------------------------------------


def _animatable(ob) -> bool:
    return ob.type == "MESH" and ob.data.shape_keys is not None and len(ob.data.shape_keys.key_blocks) > 1


def find_target(name: str | None, source: str) -> bpy.types.Object:
    """The object to animate: ``name``, else the active mesh with shape keys, else the only one."""
    candidates = sorted(ob.name for ob in bpy.data.objects if _animatable(ob))
    listed = ", ".join(candidates[:8]) + (" …" if len(candidates) > 8 else "") if candidates else "none"
    if name:
        ob = bpy.data.objects.get(name)
        if ob is None:
            raise RigError(f'{source} has no object "{name}"; meshes with shape keys: {listed}')
        return ob
    active = bpy.context.view_layer.objects.active
    if active is not None and _animatable(active):
        return active
    if len(candidates) == 1:
        return bpy.data.objects[candidates[0]]
    if not candidates:
        raise RigError(f"{source} has no mesh with shape keys to animate")
    raise RigError(f"{source} has several meshes with shape keys ({listed}); choose one with --object NAME")


def fresh_scene_with_character(blend: str | None, object_name: str | None) -> bpy.types.Object:
    """Replace everything in this Blender session with the row's character, and return the object to animate."""
    if blend:
        run_operator(bpy.ops.wm.open_mainfile, "opening the .blend", Path(blend), filepath=blend, load_ui=False)
        return find_target(object_name, f'"{Path(blend).name}"')
    if object_name:
        raise RigError(f'--object "{object_name}" needs --blend FILE (without it the bundled head is used)')
    return _fresh_default_head()


_head_template: dict[str, str] = {}  # this process's snapshot of an empty scene with the bundled head
_TEMPLATE_PREFIX = "facepolicy-head-"


def _template_folder() -> Path:
    """A folder for this process's snapshot, removed at exit; those of processes that were killed are swept."""
    root = Path(tempfile.gettempdir())
    for stale in root.glob(f"{_TEMPLATE_PREFIX}*"):
        try:
            os.kill(int(stale.name.removeprefix(_TEMPLATE_PREFIX)), 0)
        except ProcessLookupError:
            shutil.rmtree(stale, ignore_errors=True)
        except (ValueError, PermissionError):
            pass  # not ours, or another user's live process
    folder = root / f"{_TEMPLATE_PREFIX}{os.getpid()}"
    folder.mkdir(exist_ok=True)
    atexit.register(shutil.rmtree, folder, True)
    return folder


def _fresh_default_head() -> bpy.types.Object:
    """An empty scene with the bundled head. The first call builds it and keeps a snapshot .blend, which later
    rows open: four times cheaper than rebuilding the 52-key mesh, and exactly the same state."""
    template = _head_template.get("path")
    if template and Path(template).is_file():
        bpy.ops.wm.open_mainfile(filepath=template, load_ui=False)
        obj = bpy.data.objects.get(_head_template["object"])
        if obj is not None:
            bpy.context.view_layer.objects.active = obj
            return obj
    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True, load_ui=False)
    from .head import add_default_head

    obj = add_default_head(bpy.context)
    folder = _template_folder()
    path = str(folder / "head.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path, copy=True, check_existing=False)
    _head_template.update(path=path, object=obj.name)
    return obj


def set_scene_fps(scene: bpy.types.Scene, fps: float) -> None:
    """fps as Blender stores it: an integer rate and a base (23.976 = 24 / 1.001)."""
    rate = max(1, round(fps))
    scene.render.fps = rate
    scene.render.fps_base = rate / fps


# --- a single-bone skeleton (Unreal imports a skinned mesh with morph targets as a skeletal mesh) ----------


def is_skinned(obj: bpy.types.Object) -> bool:
    return any(m.type == "ARMATURE" for m in obj.modifiers) or (obj.parent is not None
                                                                  and obj.parent.type == "ARMATURE")


def add_skeleton(obj: bpy.types.Object) -> bpy.types.Object:
    """Skin ``obj`` (every vertex, weight 1) to a new armature with one bone, ROOT_BONE, at the object's origin
    (the bundled head's neck base); the bone then carries the head rotation. Returns the armature."""
    scene = bpy.context.scene
    view_layer = bpy.context.view_layer
    arm_data = bpy.data.armatures.new(f"{obj.name} skeleton")
    arm = bpy.data.objects.new(f"{obj.name} skeleton", arm_data)
    scene.collection.objects.link(arm)
    arm.matrix_world = obj.matrix_world.copy()
    view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        bone = arm_data.edit_bones.new(ROOT_BONE)
        bone.head = (0.0, 0.0, 0.0)
        bone.tail = (0.0, 0.0, 0.1)
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    obj.vertex_groups.new(name=ROOT_BONE).add(range(len(obj.data.vertices)), 1.0, "REPLACE")
    obj.modifiers.new("FacePolicy skeleton", "ARMATURE").object = arm
    obj.parent = arm
    obj.matrix_parent_inverse = arm.matrix_world.inverted()
    view_layer.objects.active = obj
    return arm


# --- writers -----------------------------------------------------------------------------------------------


def _select_only(objects) -> None:
    for ob in bpy.context.view_layer.objects:
        ob.select_set(False)
    for ob in objects:
        ob.select_set(True)
    bpy.context.view_layer.objects.active = objects[0]


def _with_children(obj: bpy.types.Object) -> list[bpy.types.Object]:
    return [obj] + [c for c in obj.children_recursive if c.type == "MESH"]


def _supported(operator, wanted: dict) -> dict:
    """Only the keyword arguments this Blender's exporter has (its options grow between versions)."""
    props = operator.get_rna_type().properties
    return {k: v for k, v in wanted.items() if k in props}


def run_operator(operator, what: str, path: Path, **kwargs) -> None:
    """Call a file operator with user-facing errors.

    A Python operator turns any exception, Ctrl-C included, into RuntimeError; Ctrl-C is raised again as
    KeyboardInterrupt so that it stops the batch instead of failing one line.
    """
    try:
        result = operator(**kwargs)
    except RuntimeError as exc:
        text = str(exc)
        if "KeyboardInterrupt" in text:
            raise KeyboardInterrupt from None
        lines = [line for line in text.strip().splitlines() if line.strip() and not line.startswith("Location:")]
        reason = lines[-1].removeprefix("Error: ") if lines else type(exc).__name__
        raise FacePolicyError(f'"{path.name}": {what} failed ({reason})') from None
    if "FINISHED" not in result:
        raise FacePolicyError(f'"{path.name}": {what} did not finish ({", ".join(sorted(result))})')


def export_fbx(objects: list[bpy.types.Object], path) -> None:
    """FBX of ``objects`` with the active take as the one baked take: blend-shape channels with DeformPercent
    curves, and the skeleton's bone curves when there is one. Modifiers are not applied (that would drop the
    shape keys); an armature modifier is exported as the skin."""
    path = Path(path)
    _select_only(objects)
    options = _supported(bpy.ops.export_scene.fbx, {
        "check_existing": False, "use_selection": True, "object_types": {"MESH", "ARMATURE"},
        "use_mesh_modifiers": False, "mesh_smooth_type": "FACE", "add_leaf_bones": False,
        "bake_anim": True, "bake_anim_use_all_bones": True, "bake_anim_use_nla_strips": False,
        "bake_anim_use_all_actions": False, "bake_anim_force_startend_keying": True,
        "bake_anim_step": 1.0, "bake_anim_simplify_factor": 0.0, "use_armature_deform_only": True,
        "path_mode": "AUTO", "embed_textures": False,
    })
    with atomic_path(path) as tmp:
        run_operator(bpy.ops.export_scene.fbx, "the FBX export", path, filepath=str(tmp), **options)


def export_glb(objects: list[bpy.types.Object], path) -> None:
    """glTF binary: the meshes with their morph targets, the active take as a morph-weights animation, and the
    skeleton (a skin whose joint carries the head rotation) when there is one."""
    path = Path(path)
    _select_only(objects)
    options = _supported(bpy.ops.export_scene.gltf, {
        "check_existing": False, "export_format": "GLB", "use_selection": True, "export_apply": False,
        "export_animations": True, "export_animation_mode": "ACTIVE_ACTIONS", "export_morph": True,
        "export_morph_normal": False, "export_morph_animation": True, "export_force_sampling": True,
        "export_optimize_animation_size": False, "export_optimize_animation_keep_anim_armature": True,
        "export_anim_single_armature": True, "export_frame_range": True, "export_yup": True,
        "export_current_frame": False, "export_skins": True, "export_lights": False, "export_cameras": False,
        "export_extras": False, "will_save_settings": False,
    })
    render = bpy.context.scene.render
    base = render.fps_base
    # The glTF exporter (4.2 to 5.0) turns frame f into f / (fps * fps_base) seconds, but Blender's rate is
    # fps / fps_base: at 29.97 fps its keys would run 0.2 % fast against the audio. While it runs, the inverse
    # base makes its product the true rate; nothing else it reads depends on the base (it samples whole frames).
    render.fps_base = 1.0 / base
    try:
        with atomic_path(path) as tmp:
            run_operator(bpy.ops.export_scene.gltf, "the glTF export", path, filepath=str(tmp), **options)
    finally:
        render.fps_base = base


def save_blend(path, audio: str | None = None, obj: bpy.types.Object | None = None,
               start_frame: int = 1) -> list[str]:
    """A copy of the session as a .blend (the open file stays as it is); the audio as a sound strip at
    ``start_frame``, the frame of the take's first key, when it can.

    Returns warnings (a Blender built without audio cannot add the strip).
    """
    warnings = []
    if audio and obj is not None:
        from . import sound

        _strip, warning = sound.add_sound_strip(bpy.context.scene, obj.name, str(audio), start_frame)
        if warning:
            warnings.append(warning)
    prefs = bpy.context.preferences.filepaths
    keep_versions = prefs.save_version
    prefs.save_version = 0  # no .blend1 backup of the temporary file
    try:
        with atomic_path(path) as tmp:
            run_operator(bpy.ops.wm.save_as_mainfile, "saving the .blend", Path(path), filepath=str(tmp), copy=True,
                         check_existing=False)
    finally:
        prefs.save_version = keep_versions
    return warnings


def _move_take(take: keys.TakeResult, scene: bpy.types.Scene, start: int) -> None:
    """Slide a take in time so that its first key, and the scene's frame range, begin at frame ``start``."""
    offset = start - take.frame_start
    if offset == 0:
        return
    for action in {take.action, take.head_action} - {None}:
        for fcurve in compat.action_fcurves(action):
            points = fcurve.keyframe_points
            xy = np.empty(2 * len(points), np.float32)
            for prop in ("co", "handle_left", "handle_right"):
                points.foreach_get(prop, xy)
                xy[0::2] += offset
                points.foreach_set(prop, xy)
            fcurve.update()
    take.frame_start, take.frame_end = start, take.frame_end + offset
    scene.frame_start, scene.frame_end = take.frame_start, take.frame_end


# --- the batch's SceneExporter -----------------------------------------------------------------------------


def export_scene(tracks, row, opts, targets) -> list[str]:
    """Write ``targets`` ({format: {take: path}}) for one batch row; see core.batch.SceneExporter. Returns
    warnings (a .blend saved without its sound strip).

    With ``opts.fbx_armature`` a character that has no armature gets a one-bone skeleton for this row, and the
    bone carries the head rotation in every format (Unreal then imports the FBX as a skeletal mesh).
    """
    obj = fresh_scene_with_character(opts.blend, row.object)
    scene = bpy.context.scene
    set_scene_fps(scene, opts.fps)
    blend_start = scene.frame_start  # the character's own timeline (1 for the bundled head)
    skeleton = add_skeleton(obj) if opts.fbx_armature and not is_skinned(obj) else None
    head = keys.HeadTarget(skeleton, ROOT_BONE) if skeleton is not None else None
    objects = _with_children(obj) + ([skeleton] if skeleton is not None else [])
    audio_name = Path(row.audio).stem
    warnings: list[str] = []
    for take, track in enumerate(tracks, start=1):
        # The FBX take (animation stack) is named after the scene: name it after the line, as Unreal shows it.
        scene.name = compat.fit_id_name(Path(targets_stem(targets, take)).name)
        # FBX and glTF store a key at frame f at f / fps seconds, so the take starts at frame 0: their first key
        # is audio time 0, like the csv and json. The .blend keeps the character's timeline instead.
        result = keys.write_face_track_to_action(
            obj, track, keys.WriteOptions(start_frame=0, audio_name=audio_name, head_target=head), scene=scene,
            info={"engine": row.engine, "seed": int(track.meta.get("seed", row.seed))},
        )
        if "glb" in targets:
            export_glb(objects, targets["glb"][take])
        if "fbx" in targets:
            export_fbx(objects, targets["fbx"][take])
        if "blend" in targets:
            _move_take(result, scene, blend_start)
            warnings += save_blend(targets["blend"][take], audio=row.audio, obj=obj, start_frame=blend_start)
    return list(dict.fromkeys(warnings))


def targets_stem(targets: dict, take: int) -> str:
    """The output name (without extension) of one take, from any of its target paths."""
    return Path(next(iter(targets.values()))[take]).stem
