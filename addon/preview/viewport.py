"""Gaussian-splat preview in the 3D viewport: a POST_PIXEL draw handler over the active 3D view.

Main thread: read the evaluated mesh and the view, hand a job to the worker, upload finished images as a texture and
draw it. Worker thread: move the bound splats onto the mesh and rasterize (the ctypes call releases the GIL).
A timer on the main thread notices finished images and redraws; frame changes and edits start new jobs.
In background mode there is no viewport: the toggle refuses with a note (use `facepolicy preview` instead).

The lead wires CLASSES into registration and calls register_extra() / unregister_extra().
"""

from __future__ import annotations

import textwrap
import threading
import time

import bpy
import numpy as np
from bpy_extras.io_utils import ImportHelper

from ..core.errors import FacePolicyError

BACKGROUND_NOTE = ("The splat preview draws in the 3D viewport, which background mode does not have; "
                   "use `facepolicy preview TRACK.json -o sheet.png` for a headless contact sheet.")
MAX_RENDER_SIDE = 640  # the render is scaled up to the region; this keeps playback interactive on a CPU
POLL_SECONDS = 1.0 / 60.0


class _Job:
    def __init__(self, key, scene, vertices, camera):
        self.key, self.scene, self.vertices, self.camera = key, scene, vertices, camera


class _Worker:
    """One background thread that always renders the latest submitted job (older pending jobs are dropped)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: _Job | None = None
        self._stop = False
        self._thread: threading.Thread | None = None
        self.result = None  # (key, rgba (H, W, 4) float32 bottom row first, milliseconds)
        self.error = ""
        self.fresh = False

    def submit(self, job: _Job) -> None:
        with self._lock:
            self._pending = job
        if self._thread is None or not self._thread.is_alive():
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="facepolicy-splat-preview", daemon=True)
            self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._thread = None

    def _run(self) -> None:
        from .raster import get_renderer

        while not self._stop:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                job, self._pending = self._pending, None
            if job is None or self._stop:
                continue
            try:
                t0 = time.perf_counter()
                arrays = job.scene.render_arrays(job.vertices, job.camera)
                rgb, alpha = get_renderer().render(*arrays, job.camera, with_alpha=True)
                rgba = np.concatenate([rgb, alpha[..., None]], axis=2)[::-1]  # GL textures start at the bottom
                with self._lock:
                    self.result = (job.key, np.ascontiguousarray(rgba, np.float32),
                                   (time.perf_counter() - t0) * 1e3)
                    self.error = ""
                    self.fresh = True
            except Exception as exc:  # shown in the panel: a dead worker thread would freeze the preview
                with self._lock:
                    self.error = str(exc)
                    self.fresh = True


class _State:
    def __init__(self):
        self.enabled = False
        self.object_name = ""
        self.area_pointer = 0
        self.scene = None
        self.topology = None
        self.vertices = None
        self.mesh_version = 0
        self.ply_scene = None  # a bound .ply to draw instead of splats made from the mesh (for ply_object)
        self.ply_object = ""
        self.worker = _Worker()
        self.handle = None
        self.texture = None
        self.texture_key = None
        self.last_key = None
        self.note = ""
        self.backend = ""  # "cpu (why not CUDA)" or "cuda"


_state = _State()


def status_text() -> str:
    """One line for the panel: what the preview is doing, or why it is off."""
    if bpy.app.background:
        return "Off: no viewport in background mode"
    if not _state.enabled:
        return _state.note or "Off"
    result = _state.worker.result
    parts = [f"{_state.object_name}"]
    if _state.scene is not None:
        parts.append(f"{_state.scene.splats.n:,} gaussians")
    if result is not None:
        parts.append(f"{result[2]:.0f} ms/frame")
    if _state.backend:
        parts.append(_state.backend)
    if _state.note:
        parts.append(_state.note)
    if _state.worker.error:
        parts.append(f"error: {_state.worker.error}")
    return " · ".join(parts)


# -- main-thread helpers --------------------------------------------------------------------------------------------


def _mesh_arrays(obj, depsgraph):
    """World-space vertices (V, 3) and triangles (F, 3) of the evaluated mesh (shape keys and modifiers applied)."""
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        n = len(mesh.vertices)
        co = np.empty(n * 3, np.float32)
        mesh.vertices.foreach_get("co", co)
        mesh.calc_loop_triangles()
        tris = np.empty(len(mesh.loop_triangles) * 3, np.int32)
        mesh.loop_triangles.foreach_get("vertices", tris)
    finally:
        evaluated.to_mesh_clear()
    M = np.array(obj.matrix_world, np.float64)
    verts = co.reshape(-1, 3).astype(np.float64) @ M[:3, :3].T + M[:3, 3]
    return verts, tris.reshape(-1, 3)


def _build_scene(verts, tris, mirrored: bool):
    from .scene import SplatScene

    colors = None
    try:
        from ..core.head import load_default_head
        from .scene import head_vertex_colors, splat_faces

        head = load_default_head()
        if head.num_vertices == len(verts):  # the bundled head: its region colours, and no splats on its neck cap
            colors = head_vertex_colors(head)
            tris = splat_faces(head, tris)
    except FacePolicyError:
        colors = None
    scene = SplatScene.from_mesh(verts, tris, per_triangle=1, vertex_colors=colors)
    # The bundled head's triangles wind outwards, so its back faces can be skipped (unless a negative scale
    # mirrored the object, which turns the winding inside out).
    scene.cull_backfaces = colors is not None and not mirrored
    return scene


def _view3d_area(context):
    if context.area is not None and context.area.type == "VIEW_3D":
        return context.area
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                return area
    return None


def _tag_redraw() -> None:
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D" and area.as_pointer() == _state.area_pointer:
                area.tag_redraw()


def _poll_timer():
    if not _state.enabled:
        return None
    worker = _state.worker
    if worker.fresh:
        worker.fresh = False
        _tag_redraw()
    return POLL_SECONDS


def _draw() -> None:
    """POST_PIXEL callback. Never raises: a failure turns into the note shown in the panel."""
    context = bpy.context
    if not _state.enabled or context.area is None or context.area.as_pointer() != _state.area_pointer:
        return
    try:
        _submit_if_changed(context)
        _draw_latest(context.region)
    except Exception as exc:  # a draw callback must not propagate errors into Blender's drawing
        _state.note = f"preview stopped: {exc}"
        _state.enabled = False
        bpy.app.timers.register(disable, first_interval=0.0)  # not from inside the handler being removed


def _submit_if_changed(context) -> None:
    from .scene import camera_from_blender_view

    if _state.vertices is None:
        return
    region, rv3d = context.region, context.region_data
    scale = min(1.0, MAX_RENDER_SIDE / max(region.width, region.height))
    width, height = max(16, int(region.width * scale)), max(16, int(region.height * scale))
    view = np.array(rv3d.view_matrix, np.float64)
    window = np.array(rv3d.window_matrix, np.float64)
    key = (_state.mesh_version, width, height, view.tobytes(), window.tobytes())
    if key == _state.last_key:
        return
    try:
        camera = camera_from_blender_view(view, window, width, height)
    except ValueError as exc:
        _state.note = str(exc)
        return
    _state.note = ""
    _state.last_key = key
    _state.worker.submit(_Job(key, _state.scene, _state.vertices, camera))


def _read_mesh(depsgraph) -> None:
    """Refresh the posed vertices (and, when the topology changed, the splats) from the evaluated object."""
    obj = bpy.data.objects.get(_state.object_name)
    if obj is None or obj.type != "MESH":
        _state.note = f"object {_state.object_name!r} is gone"
        _state.vertices = None
        return
    verts, tris = _mesh_arrays(obj, depsgraph)
    topology = (len(verts), tris.tobytes())
    if _state.scene is None or _state.topology != topology:
        ply = _state.ply_scene
        if ply is not None and _state.ply_object == obj.name and ply.splats.n_vertices == len(verts):
            _state.scene = ply
        else:
            _state.scene = _build_scene(verts, tris, mirrored=obj.matrix_world.determinant() < 0)
        _state.topology = topology
    _state.vertices = verts
    _state.mesh_version += 1


def _draw_latest(region) -> None:
    import gpu
    from gpu_extras.presets import draw_texture_2d

    result = _state.worker.result
    if result is None:
        return
    key, rgba, _ = result
    if _state.texture is None or _state.texture_key is not key:
        h, w = rgba.shape[:2]
        buffer = gpu.types.Buffer("FLOAT", rgba.size, rgba.reshape(-1))
        _state.texture = gpu.types.GPUTexture((w, h), format="RGBA32F", data=buffer)
        _state.texture_key = key
    gpu.state.blend_set("ALPHA_PREMULT")
    draw_texture_2d(_state.texture, (0, 0), region.width, region.height)
    gpu.state.blend_set("NONE")


def _on_scene_change(scene, depsgraph=None) -> None:
    """Frame change (also during playback) or an edit: re-read the mesh, then redraw starts a new render."""
    if not _state.enabled:
        return
    try:
        _read_mesh(depsgraph if depsgraph is not None else bpy.context.evaluated_depsgraph_get())
    except FacePolicyError as exc:
        _state.note = str(exc)
    _tag_redraw()


@bpy.app.handlers.persistent
def _on_frame_change(scene, depsgraph=None) -> None:
    _on_scene_change(scene, depsgraph)


@bpy.app.handlers.persistent
def _on_depsgraph_update(scene, depsgraph=None) -> None:
    _on_scene_change(scene, depsgraph)


@bpy.app.handlers.persistent
def _on_load_pre(*_args) -> None:
    """A new file has other objects and areas: stop the preview instead of drawing into nothing."""
    disable()
    _state.ply_scene, _state.ply_object = None, ""


# -- enable / disable -------------------------------------------------------------------------------------------------


def enable(context, obj) -> None:
    """Start previewing ``obj`` in the active 3D view. Raises FacePolicyError with the reason when it cannot."""
    if bpy.app.background:
        raise FacePolicyError(BACKGROUND_NOTE)
    if obj is None or obj.type != "MESH":
        raise FacePolicyError("select a mesh object (the face) to preview as splats")
    area = _view3d_area(context)
    if area is None:
        raise FacePolicyError("no 3D viewport is open")
    from .raster import get_renderer

    renderer = get_renderer()  # the numpy renderer, with its note, where the library is missing
    disable()
    _state.enabled = True
    _state.object_name = obj.name
    _state.area_pointer = area.as_pointer()
    _state.note = ""
    _state.backend = renderer.backend + (f" ({renderer.note})" if renderer.note else "")
    _read_mesh(context.evaluated_depsgraph_get())
    _state.handle = bpy.types.SpaceView3D.draw_handler_add(_draw, (), "WINDOW", "POST_PIXEL")
    bpy.app.timers.register(_poll_timer, first_interval=POLL_SECONDS)
    area.tag_redraw()


def disable() -> None:
    """Stop the preview and free its handler, timer, worker and texture (safe to call when it is off)."""
    if _state.handle is not None:
        bpy.types.SpaceView3D.draw_handler_remove(_state.handle, "WINDOW")
        _state.handle = None
    if bpy.app.timers.is_registered(_poll_timer):
        bpy.app.timers.unregister(_poll_timer)
    _state.worker.stop()
    was_enabled = _state.enabled
    _state.enabled = False
    _state.scene = _state.topology = _state.vertices = None
    _state.texture = _state.texture_key = _state.last_key = None
    _state.worker.result = None
    if was_enabled and not bpy.app.background:
        _tag_redraw()


class FACEPOLICY_OT_splat_preview(bpy.types.Operator):
    """Show or hide the Gaussian-splat preview of the active mesh in this 3D view"""

    bl_idname = "facepolicy.splat_preview"
    bl_label = "Splat Preview"
    bl_options = {"REGISTER"}

    def execute(self, context):
        if _state.enabled:
            disable()
            self.report({"INFO"}, "Splat preview off")
            return {"FINISHED"}
        try:
            enable(context, context.active_object)
        except FacePolicyError as exc:
            _state.note = str(exc)
            self.report({"WARNING"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Splat preview on: {_state.object_name}, {_state.backend}")
        return {"FINISHED"}


def bind_ply_to_object(filepath, obj, depsgraph, max_distance: float):
    """Read a 3DGS .ply given in ``obj``'s local space and bind it to the object's evaluated mesh (world space).
    Returns the SplatScene and how many gaussians the file held."""
    from .ply import read_ply
    from .scene import SplatScene
    from .splats import bind_cloud, similarity_from_matrix

    if obj is None or obj.type != "MESH":
        raise FacePolicyError("select the mesh (the face) the splat belongs to")
    cloud = read_ply(filepath)
    scale, rotation, translation = similarity_from_matrix(np.array(obj.matrix_world, np.float64))
    verts, tris = _mesh_arrays(obj, depsgraph)
    bound = bind_cloud(cloud.transformed(scale, rotation, translation), verts, tris, max_distance=max_distance * scale)
    return SplatScene(bound), cloud.n


class FACEPOLICY_OT_splat_import_ply(bpy.types.Operator, ImportHelper):
    """Bind a 3D Gaussian Splatting capture (.ply, aligned to the active mesh in its local space) to the mesh's
    triangles and show it in the splat preview"""

    bl_idname = "facepolicy.splat_import_ply"
    bl_label = "Import Splat (.ply)"
    bl_options = {"REGISTER"}

    filename_ext = ".ply"
    filter_glob: bpy.props.StringProperty(default="*.ply", options={"HIDDEN"})
    max_distance: bpy.props.FloatProperty(
        name="Max Distance", default=0.02, min=0.0, unit="LENGTH",
        description="Leave out gaussians farther than this from the surface (floaters of the capture)")

    def execute(self, context):
        obj = context.active_object
        try:
            if bpy.app.background:
                raise FacePolicyError(BACKGROUND_NOTE)
            scene, n_read = bind_ply_to_object(self.filepath, obj, context.evaluated_depsgraph_get(),
                                               self.max_distance)
        except FacePolicyError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        _state.ply_scene, _state.ply_object = scene, obj.name
        try:
            enable(context, obj)
        except FacePolicyError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Bound {scene.splats.n:,} of {n_read:,} gaussians to {obj.name}")
        return {"FINISHED"}


class FACEPOLICY_PT_splat_preview(bpy.types.Panel):
    bl_label = "Splat Preview"
    bl_idname = "FACEPOLICY_PT_splat_preview"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "FacePolicy"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        from .raster import library_note

        layout = self.layout
        layout.operator(FACEPOLICY_OT_splat_preview.bl_idname, text="Hide Splats" if _state.enabled
                        else "Show Splats", icon="SHADING_RENDERED", depress=_state.enabled)
        layout.operator(FACEPOLICY_OT_splat_import_ply.bl_idname, icon="IMPORT")
        layout.label(text=status_text())
        note = library_note()
        if note:
            # A label does not wrap: cut the sentence into lines that fit the sidebar's width.
            column = layout.column(align=True)
            for i, line in enumerate(textwrap.wrap(note, max(20, context.region.width // 7))):
                column.label(text=line, icon="INFO" if i == 0 else "BLANK1")


CLASSES = (FACEPOLICY_OT_splat_preview, FACEPOLICY_OT_splat_import_ply, FACEPOLICY_PT_splat_preview)


def register_extra() -> None:
    if _on_load_pre not in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.append(_on_load_pre)
    if _on_frame_change not in bpy.app.handlers.frame_change_post:
        bpy.app.handlers.frame_change_post.append(_on_frame_change)
    if _on_depsgraph_update not in bpy.app.handlers.depsgraph_update_post:
        bpy.app.handlers.depsgraph_update_post.append(_on_depsgraph_update)


def unregister_extra() -> None:
    disable()
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
    if _on_frame_change in bpy.app.handlers.frame_change_post:
        bpy.app.handlers.frame_change_post.remove(_on_frame_change)
    if _on_depsgraph_update in bpy.app.handlers.depsgraph_update_post:
        bpy.app.handlers.depsgraph_update_post.remove(_on_depsgraph_update)
