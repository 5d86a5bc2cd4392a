"""ctypes binding of the splat rasterizer (csrc/splat.cpp): numpy arrays in, an image out.

Every argument is checked here, in Python, before the C call: bad shapes or values raise ValueError and can never
crash the host process (Blender). The CUDA library is used when it loads and a device exists; otherwise the CPU
library, with a note saying why (``Renderer.note``); where this platform's CPU library is missing or will not load,
the numpy renderer (numpy_raster.py) draws the same pictures, slower, with a note saying so.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import FacePolicyError
from . import build
from .cloud import GaussianCloud, sh_degree_of

ABI_VERSION = 1
MAX_IMAGE_SIDE = 8192
MAX_GAUSSIANS = 20_000_000
BACKEND_ENV = "FACEPOLICY_SPLAT_BACKEND"  # "cpu" or "cuda" forces a backend

_f32p = ctypes.POINTER(ctypes.c_float)
_i32p = ctypes.POINTER(ctypes.c_int)


class PreviewUnavailable(FacePolicyError):
    """The rasterizer library is missing or cannot be loaded."""


@dataclass(frozen=True)
class Camera:
    """A pinhole camera. ``view`` is world -> camera (4x4), OpenCV axes: x right, y down, z forward."""

    view: np.ndarray
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    near: float = 0.01

    @classmethod
    def look_at(cls, eye, target, up, fov_y_deg: float, width: int, height: int, near: float = 0.01) -> Camera:
        eye, target, up = (np.asarray(v, np.float64) for v in (eye, target, up))
        forward = target - eye
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, up)
        if np.linalg.norm(right) < 1e-9:
            raise ValueError("look_at: the up vector is parallel to the viewing direction")
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        view = np.eye(4)
        view[0, :3], view[1, :3], view[2, :3] = right, down, forward
        view[:3, 3] = -view[:3, :3] @ eye
        f = 0.5 * height / np.tan(np.radians(fov_y_deg) / 2)
        return cls(view, f, f, width / 2, height / 2, int(width), int(height), near)

    def params(self) -> np.ndarray:
        """The 21 floats the C ABI takes: view (row-major), fx, fy, cx, cy, near."""
        return np.concatenate([np.asarray(self.view, np.float64).reshape(16),
                               [self.fx, self.fy, self.cx, self.cy, self.near]]).astype(np.float32)

    def validate(self) -> None:
        for name in ("width", "height"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or not 1 <= v <= MAX_IMAGE_SIDE:
                raise ValueError(f"camera {name} must be an integer in 1..{MAX_IMAGE_SIDE}, got {v!r}")
        view = np.asarray(self.view, np.float64)
        if view.shape != (4, 4) or not np.isfinite(view).all():
            raise ValueError(f"camera view must be a finite 4x4 matrix, got shape {view.shape}")
        R = view[:3, :3]
        if np.abs(R @ R.T - np.eye(3)).max() > 1e-3:
            raise ValueError("camera view rotation is not orthonormal (no scale or shear allowed in the view matrix)")
        for name in ("fx", "fy"):
            v = float(getattr(self, name))
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"camera {name} must be positive, got {v}")
        for name in ("cx", "cy"):
            if not np.isfinite(float(getattr(self, name))):
                raise ValueError(f"camera {name} must be finite")
        if not (np.isfinite(self.near) and self.near > 0):
            raise ValueError(f"camera near must be positive, got {self.near}")


def _as_array(name: str, value, shape: tuple) -> np.ndarray:
    arr = np.ascontiguousarray(value, dtype=np.float32)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or Inf values")
    return arr


def _library_path(filename: str) -> Path:
    return build.LIB_DIR / filename


class _Rasterizer:
    """What every renderer shares: the checks on the arguments (so bad input raises ValueError and never reaches
    C), and render_cloud. Subclasses set ``backend`` and draw in ``_draw``."""

    backend = ""
    note = ""

    def device_count(self) -> int:
        return 0

    def render(self, means, scales, rotations, opacities, sh, camera: Camera, background=(0.0, 0.0, 0.0),
               threads: int = 0, with_alpha: bool = False):
        """Render N gaussians. scales are linear, rotations w, x, y, z quaternions, opacities in [0, 1],
        sh (N, K, 3) with K in (1, 4, 9, 16). Returns rgb (H, W, 3) float32, and alpha (H, W) if ``with_alpha``."""
        camera.validate()
        means = np.asarray(means)
        if means.ndim != 2 or means.shape[1:] != (3,):
            raise ValueError(f"means must have shape (N, 3), got {means.shape}")
        n = int(means.shape[0])
        if n > MAX_GAUSSIANS:
            raise ValueError(f"{n} gaussians is more than the renderer's limit of {MAX_GAUSSIANS}")
        means = _as_array("means", means, (n, 3))
        scales = _as_array("scales", scales, (n, 3))
        if (scales < 0).any():
            raise ValueError("scales must be non-negative (they are linear, not log)")
        rotations = _as_array("rotations", rotations, (n, 4))
        opacities = np.asarray(opacities)
        if opacities.shape == (n, 1):
            opacities = opacities[:, 0]
        opacities = _as_array("opacities", opacities, (n,))
        if ((opacities < 0) | (opacities > 1)).any():
            raise ValueError("opacities must be in [0, 1] (activated, not logits)")
        sh = np.asarray(sh)
        if sh.ndim != 3 or sh.shape[0] != n or sh.shape[2] != 3:
            raise ValueError(f"sh must have shape ({n}, K, 3), got {sh.shape}")
        degree = sh_degree_of(sh.shape[1])
        sh = _as_array("sh", sh, sh.shape)
        background = _as_array("background", background, (3,))
        if not isinstance(threads, (int, np.integer)) or threads < 0:
            raise ValueError(f"threads must be a non-negative integer, got {threads!r}")
        rgb, alpha = self._draw(camera, means, scales, rotations, opacities, sh, degree, background, int(threads),
                                with_alpha)
        return (rgb, alpha) if with_alpha else rgb

    def _draw(self, camera, means, scales, rotations, opacities, sh, degree, background, threads, with_alpha):
        raise NotImplementedError

    def render_cloud(self, cloud: GaussianCloud, camera: Camera, background=(0.0, 0.0, 0.0), threads: int = 0,
                     with_alpha: bool = False):
        return self.render(cloud.means, cloud.scales, cloud.unit_rotations, cloud.opacities, cloud.sh, camera,
                           background, threads, with_alpha)


class Renderer(_Rasterizer):
    """One loaded library. Thread-safe: calls into it are serialised."""

    def __init__(self, path: Path, note: str = ""):
        self.path = Path(path)
        try:
            lib = ctypes.CDLL(str(self.path))
        except OSError as exc:
            raise PreviewUnavailable(f"could not load the splat renderer {self.path.name}: {exc}") from None
        try:
            lib.fps_abi_version.restype = ctypes.c_int
        except AttributeError:
            raise PreviewUnavailable(f"{self.path.name} is not a FacePolicy splat renderer (no fps_abi_version)") \
                from None
        if lib.fps_abi_version() != ABI_VERSION:
            raise PreviewUnavailable(f"{self.path.name} is from another version of FacePolicy; rebuild it with "
                                     "`python -m facepolicy.preview.build`")
        lib.fps_backend.restype = ctypes.c_int
        lib.fps_device_count.restype = ctypes.c_int
        lib.fps_last_error.restype = ctypes.c_char_p
        lib.fps_render.restype = ctypes.c_int
        lib.fps_render.argtypes = [_f32p, ctypes.c_int, ctypes.c_int, ctypes.c_int, _f32p, _f32p, _f32p, _f32p,
                                   _f32p, ctypes.c_int, _f32p, _f32p, _f32p, ctypes.c_int]
        lib.fps_nearest_triangles.restype = ctypes.c_int
        lib.fps_nearest_triangles.argtypes = [_f32p, ctypes.c_int, _f32p, ctypes.c_int, _i32p, ctypes.c_int,
                                              _i32p, _f32p, _f32p, ctypes.c_int]
        self._lib = lib
        self._lock = threading.Lock()
        self.backend = "cuda" if lib.fps_backend() == 1 else "cpu"
        self.note = note

    def device_count(self) -> int:
        return int(self._lib.fps_device_count())

    def _check(self, status: int) -> None:
        if status != 0:
            message = self._lib.fps_last_error().decode("utf-8", "replace")
            raise FacePolicyError(f"splat rendering failed: {message}")

    def _draw(self, camera, means, scales, rotations, opacities, sh, degree, background, threads, with_alpha):
        rgb = np.empty((camera.height, camera.width, 3), np.float32)
        alpha = np.empty((camera.height, camera.width), np.float32) if with_alpha else None
        cam = camera.params()

        def ptr(a):
            return a.ctypes.data_as(_f32p) if a is not None else None

        with self._lock:
            status = self._lib.fps_render(ptr(cam), camera.width, camera.height, len(means), ptr(means), ptr(scales),
                                          ptr(rotations), ptr(opacities), ptr(sh), degree, ptr(background),
                                          ptr(rgb), ptr(alpha), threads)
        self._check(status)
        return rgb, alpha

    def nearest_triangles(self, points, vertices, faces, threads: int = 0):
        """Exact closest point on a triangle mesh for each point: (face index (P,), barycentric (P, 3),
        distance (P,))."""
        points = np.asarray(points)
        if points.ndim != 2 or points.shape[1:] != (3,):
            raise ValueError(f"points must have shape (P, 3), got {points.shape}")
        points = _as_array("points", points, points.shape)
        vertices = np.asarray(vertices)
        if vertices.ndim != 2 or vertices.shape[1:] != (3,) or len(vertices) == 0:
            raise ValueError(f"vertices must have shape (V, 3) with V > 0, got {vertices.shape}")
        vertices = _as_array("vertices", vertices, vertices.shape)
        faces = np.asarray(faces)
        if faces.ndim != 2 or faces.shape[1:] != (3,) or len(faces) == 0:
            raise ValueError(f"faces must have shape (F, 3) with F > 0, got {faces.shape}")
        if not np.issubdtype(faces.dtype, np.integer):
            raise ValueError(f"faces must be integers, got {faces.dtype}")
        if faces.min() < 0 or faces.max() >= len(vertices):
            raise ValueError(f"face indices must be in 0..{len(vertices) - 1}")
        faces = np.ascontiguousarray(faces, np.int32)
        n = len(points)
        face = np.empty(n, np.int32)
        bary = np.empty((n, 3), np.float32)
        dist = np.empty(n, np.float32)
        with self._lock:
            status = self._lib.fps_nearest_triangles(
                points.ctypes.data_as(_f32p), n, vertices.ctypes.data_as(_f32p), len(vertices),
                faces.ctypes.data_as(_i32p), len(faces), face.ctypes.data_as(_i32p), bary.ctypes.data_as(_f32p),
                dist.ctypes.data_as(_f32p), int(threads))
        self._check(status)
        return face, bary, dist


class NumpyRenderer(_Rasterizer):
    """The fallback when the compiled library is missing or cannot be loaded: the same pictures (numpy_raster.py),
    several times slower. ``note`` says why it is used."""

    backend = "numpy"
    path = None

    def __init__(self, note: str = ""):
        self.note = note

    def _draw(self, camera, means, scales, rotations, opacities, sh, degree, background, threads, with_alpha):
        from . import numpy_raster

        rgb, alpha = numpy_raster.render(camera.params(), camera.width, camera.height, means, scales, rotations,
                                         opacities, sh, degree, background)
        return rgb, alpha if with_alpha else None

    def nearest_triangles(self, points, vertices, faces, threads: int = 0):
        raise PreviewUnavailable(f"binding a .ply to a mesh needs the compiled splat library ({self.note})")


_renderers: dict[str, _Rasterizer] = {}
_renderers_lock = threading.Lock()


def _library_missing_note() -> tuple[Renderer | None, str]:
    """The CPU library, or None and the one sentence that says why the numpy renderer draws instead."""
    path = _library_path(build.CPU_LIBRARY)
    platform = build.host_platform() or sys.platform
    fallback = "the splat preview draws with the slower numpy renderer"
    if not path.exists():
        return None, (f"No splat library for {platform} in this installation ({path.name}; "
                      f"`python -m facepolicy.preview.build` makes it), so {fallback}.")
    try:
        return Renderer(path), ""
    except PreviewUnavailable as exc:
        return None, f"The splat library for {platform} cannot be used ({exc}), so {fallback}."


def cpu_renderer() -> _Rasterizer:
    """The CPU library, or the numpy renderer (with ``note`` saying why) when it is missing or will not load."""
    with _renderers_lock:
        if "cpu" not in _renderers:
            library, why = _library_missing_note()
            _renderers["cpu"] = library if library is not None else NumpyRenderer(why)
        return _renderers["cpu"]


def library_note() -> str:
    """One sentence when this platform's compiled library cannot draw (the preview then uses numpy), else ""."""
    renderer = cpu_renderer()
    return renderer.note if renderer.backend == "numpy" else ""


def _try_cuda() -> tuple[Renderer | None, str]:
    path = _library_path(build.CUDA_LIBRARY)
    if not path.exists():
        return None, "CUDA library not built (the build makes it where nvcc exists); rendering on the CPU"
    try:
        renderer = Renderer(path)
    except PreviewUnavailable as exc:
        return None, f"{exc}; rendering on the CPU"
    if renderer.device_count() < 1:
        return None, "no CUDA device or driver found; rendering on the CPU"
    return renderer, ""


def get_renderer(prefer: str | None = None) -> _Rasterizer:
    """The renderer to use: CUDA when its library loads and a device exists, else the CPU library, else numpy
    (with ``note`` set to why).

    ``prefer`` (or the FACEPOLICY_SPLAT_BACKEND environment variable) may be "cpu", "cuda" or "numpy"; "cuda" raises
    PreviewUnavailable when CUDA cannot be used.
    """
    prefer = (prefer or os.environ.get(BACKEND_ENV) or "auto").lower()
    if prefer not in ("auto", "cpu", "cuda", "numpy"):
        raise ValueError(f"backend must be auto, cpu, cuda or numpy, got {prefer!r}")
    if prefer == "cpu":
        return cpu_renderer()
    if prefer == "numpy":
        return NumpyRenderer()
    with _renderers_lock:
        cached = _renderers.get("auto")
    if cached is not None and (prefer == "auto" or cached.backend == "cuda"):
        return cached
    cuda, why = _try_cuda()
    if cuda is None and prefer == "cuda":
        raise PreviewUnavailable(why.replace("; rendering on the CPU", ""))
    chosen = cuda if cuda is not None else cpu_renderer()
    if cuda is None and chosen.backend == "cpu":
        chosen = Renderer(chosen.path, note=why)
    with _renderers_lock:
        _renderers["auto"] = chosen
    return chosen
