"""What the preview draws: splats bound to a head, relit each frame, posed from FaceTrack values, and a camera.

Used by both the viewport draw handler and the headless contact sheet (``facepolicy preview``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core import spec
from .cloud import SH_C0, GaussianCloud, rgb_to_sh_dc
from .raster import Camera
from .splats import BoundSplats, splats_from_mesh, vertex_normals

# Colours of the default head's regions (linear-ish sRGB, 0..1): it ships no texture.
REGION_COLORS = {
    "lips": (0.70, 0.38, 0.38),
    "brows": (0.28, 0.20, 0.15),
    "teeth": (0.93, 0.91, 0.85),
    "tongue": (0.72, 0.33, 0.36),
    "eyeball": (0.93, 0.92, 0.90),
}
SKIN = (0.86, 0.66, 0.56)
IRIS = (0.30, 0.42, 0.55)
PUPIL = (0.04, 0.04, 0.05)
LIGHT_DIR = (0.45, -0.85, 0.55)  # from the front (-Y), a little from the left and above (+Z up)
BACKFACE_COSINE = 0.3  # cull a gaussian when its normal points away from the camera by more than this


def _soft_ellipse(points: np.ndarray, centre: np.ndarray, half_width: float, half_height: float) -> np.ndarray:
    """1 at the centre of an ellipse in the front (x, z) plane, fading to 0 at its border."""
    r2 = ((points[:, 0] - centre[0]) / half_width) ** 2 + ((points[:, 2] - centre[2]) / half_height) ** 2
    return np.clip(1.0 - r2, 0.0, 1.0) ** 0.35


def head_vertex_colors(head) -> np.ndarray:
    """(V, 3) albedo for the default head (it ships no texture): skin, lips and brows placed from the landmarks,
    teeth, tongue and eye whites from the vertex groups, irises and pupils around the gaze axis."""
    v = np.asarray(head.vertices, np.float64)
    colors = np.tile(np.asarray(SKIN, np.float64), (len(v), 1))
    lm = {name: v[i] for name, i in head.landmarks.items()}

    def mix(idx, rgb, weight):
        colors[idx] = colors[idx] * (1 - weight[:, None]) + np.asarray(rgb) * weight[:, None]

    if {"mouth_corner_left", "mouth_corner_right", "lip_upper_mid", "lip_lower_mid"} <= lm.keys() \
            and "lips" in head.vertex_groups:
        idx = head.vertex_groups["lips"]
        centre = 0.5 * (lm["mouth_corner_left"] + lm["mouth_corner_right"])
        half_width = 0.5 * abs(lm["mouth_corner_left"][0] - lm["mouth_corner_right"][0]) * 1.05
        half_height = abs(lm["lip_upper_mid"][2] - lm["lip_lower_mid"][2]) * 0.5 + 0.009
        mix(idx, REGION_COLORS["lips"], _soft_ellipse(v[idx], centre, half_width, half_height))
    if "brows" in head.vertex_groups:
        idx = head.vertex_groups["brows"]
        for side in ("left", "right"):
            inner, outer = lm.get(f"eye_inner_{side}"), lm.get(f"eye_outer_{side}")
            if inner is None or outer is None:
                continue
            centre = 0.5 * (inner + outer) + [0.0, 0.0, 0.018]
            half_width = 0.62 * abs(outer[0] - inner[0]) + 0.004
            mix(idx, REGION_COLORS["brows"], 0.85 * _soft_ellipse(v[idx], centre, half_width, 0.0055))
    for group in ("teeth", "tongue"):
        if group in head.vertex_groups:
            colors[head.vertex_groups[group]] = REGION_COLORS[group]
    gaze = np.asarray(head.meta.get("gaze_axis", (0.0, -1.0, 0.0)), np.float64)
    for side in ("left", "right"):
        group, pivot = f"eyeball_{side}", f"eye_{side}"
        if group not in head.vertex_groups or pivot not in head.pivots:
            continue
        idx = head.vertex_groups[group]
        colors[idx] = REGION_COLORS["eyeball"]
        d = v[idx] - head.pivots[pivot]
        cos = d @ gaze / np.maximum(np.linalg.norm(d, axis=1), 1e-12)
        colors[idx[cos > np.cos(np.radians(25))]] = IRIS
        colors[idx[cos > np.cos(np.radians(12))]] = PUPIL
    return colors


def splat_faces(head, faces: np.ndarray) -> np.ndarray:
    """The triangles of the default head (as the asset or Blender triangulates it) that carry splats: all but the
    neck's cap (head.json's neck_cap_polygons). Seen from the front the cap is edge-on, and flat gaussians on it
    draw a streak; without it the neck is an open edge, which splats_from_mesh ends cleanly."""
    faces = np.asarray(faces)
    span = head.meta.get("neck_cap_polygons")
    if span is None:
        return faces
    cap_vertices = np.unique(np.concatenate(head.polygons[span[0]:span[1]]))
    return faces[~np.isin(faces, cap_vertices).all(axis=1)]


def _rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def head_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation for spec's head angles on the default head (+Z up, facing -Y): yaw +left, pitch +down,
    roll +right ear down."""
    return _rot_z(yaw) @ _rot_x(pitch) @ _rot_y(-roll)


def posed_head_vertices(head, values: np.ndarray, names=spec.CHANNEL_NAMES) -> np.ndarray:
    """Vertices (V, 3) of the default head for one frame of FaceTrack values: shape keys, then the eyeballs turned
    by the gaze angles about their centres, then the whole head turned about its pivot."""
    values = np.asarray(values, np.float64)
    index = {n: i for i, n in enumerate(names)}

    def get(name):
        return float(values[index[name]]) if name in index else 0.0

    weights = np.array([get(n) for n in spec.ARKIT_NAMES], np.float32)
    verts = head.decode(weights).astype(np.float64)
    for side, suffix in (("left", "Left"), ("right", "Right")):
        group, pivot = f"eyeball_{side}", f"eye_{side}"
        if group in head.vertex_groups and pivot in head.pivots:
            R = _rot_z(get(f"eyeYaw{suffix}")) @ _rot_x(get(f"eyePitch{suffix}"))
            idx = head.vertex_groups[group]
            verts[idx] = (verts[idx] - head.pivots[pivot]) @ R.T + head.pivots[pivot]
    R = head_rotation(get("headYaw"), get("headPitch"), get("headRoll"))
    pivot = head.pivots.get("head", np.zeros(3))
    return (verts - pivot) @ R.T + pivot


@dataclass
class SplatScene:
    """Bound splats plus, for splats made from a mesh, their albedo: those are relit every frame from the
    deformed normals (an imported 3DGS capture carries its own lighting and is drawn as it is)."""

    splats: BoundSplats
    albedo: np.ndarray | None = None
    light_dir: tuple = LIGHT_DIR
    ambient: float = 0.38
    diffuse: float = 0.72
    cull_backfaces: bool = False  # only for meshes whose triangles wind outwards (the default head does)

    @classmethod
    def from_mesh(cls, vertices, faces, per_triangle: int = 1, vertex_colors=None, seed: int = 0) -> SplatScene:
        splats = splats_from_mesh(vertices, faces, per_triangle, vertex_colors=vertex_colors, seed=seed)
        return cls(splats, albedo=splats.sh[:, 0, :].astype(np.float64) * SH_C0 + 0.5)

    @classmethod
    def from_head(cls, head, per_triangle: int = 1) -> SplatScene:
        scene = cls.from_mesh(head.vertices, splat_faces(head, head.faces), per_triangle,
                              vertex_colors=head_vertex_colors(head))
        scene.cull_backfaces = True
        return scene

    def cloud(self, vertices) -> GaussianCloud:
        """The posed (and relit) gaussians, e.g. to export them."""
        cloud = self.splats.cloud(vertices)
        if self.albedo is None:
            return cloud
        return GaussianCloud(cloud.means, cloud.log_scales, cloud.rotations, cloud.opacity_logits,
                             self._relit_sh(self._normals(vertices), cloud.sh))

    def render_arrays(self, vertices, camera: Camera | None = None) -> tuple[np.ndarray, ...]:
        """Renderer.render's gaussian arguments for one posed frame (the fast per-frame path). With ``camera`` and
        ``cull_backfaces``, gaussians on surfaces facing away from it are left out: on a closed, opaque head they are
        hidden anyway, and skipping them saves about 40 % of the rasterizer's time."""
        means, scales, rotations, opacities, sh = self.splats.render_arrays(vertices)
        if self.albedo is None:
            return means, scales, rotations, opacities, sh
        normals = self._normals(vertices)
        sh = self._relit_sh(normals, sh)
        if camera is not None and self.cull_backfaces:
            campos = -np.asarray(camera.view, np.float64)[:3, :3].T @ np.asarray(camera.view, np.float64)[:3, 3]
            to_splat = means - campos
            cosine = (to_splat * normals).sum(1) / np.maximum(np.sqrt((to_splat * to_splat).sum(1)), 1e-12)
            keep = cosine < BACKFACE_COSINE
            return means[keep], scales[keep], rotations[keep], opacities[keep], sh[keep]
        return means, scales, rotations, opacities, sh

    def _normals(self, vertices) -> np.ndarray:
        """Smooth unit normals (N, 3) at the gaussians, interpolated from the vertex normals."""
        normals = vertex_normals(vertices, self.splats.faces)
        f = self.splats.faces[self.splats.face_index]
        b = self.splats.bary
        n = b[:, 0:1] * normals[f[:, 0]] + b[:, 1:2] * normals[f[:, 1]] + b[:, 2:3] * normals[f[:, 2]]
        return n / np.maximum(np.sqrt((n * n).sum(1, keepdims=True)), 1e-12)

    def _relit_sh(self, normals: np.ndarray, sh: np.ndarray) -> np.ndarray:
        light = np.asarray(self.light_dir, np.float64)
        light /= np.linalg.norm(light)
        shade = self.ambient + self.diffuse * np.clip(normals @ light, 0.0, None)
        out = np.array(sh, np.float32, copy=True)
        out[:, 0, :] = rgb_to_sh_dc(np.clip(self.albedo * shade[:, None], 0.0, 1.0))
        return out


def front_camera(vertices: np.ndarray, width: int, height: int, fov_y_deg: float = 30.0, margin: float = 1.15,
                 forward=(0.0, 1.0, 0.0), up=(0.0, 0.0, 1.0)) -> Camera:
    """A camera looking along ``forward`` (default +Y: at the default head's face) that frames ``vertices``."""
    v = np.asarray(vertices, np.float64)
    forward = np.asarray(forward, np.float64) / np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    lo, hi = v.min(0), v.max(0)
    centre = 0.5 * (lo + hi)
    d = v - centre
    # Fit the silhouette's half width and half height (in the image plane) into the field of view.
    half_w, half_h = np.abs(d @ right).max(), np.abs(d @ true_up).max()
    depth = np.abs(d @ forward).max()
    tan_y = np.tan(np.radians(fov_y_deg) / 2)
    tan_x = tan_y * width / height
    distance = margin * max(half_w / tan_x, half_h / tan_y) + depth
    return Camera.look_at(centre - forward * distance, centre, up, fov_y_deg, width, height,
                          near=max(1e-4, 0.01 * distance))


def camera_from_blender_view(view_matrix, window_matrix, width: int, height: int) -> Camera:
    """Our pinhole Camera for a Blender 3D view: ``view_matrix`` is world -> view (looking down -Z, +Y up) and
    ``window_matrix`` the perspective projection, both 4x4 (RegionView3D.view_matrix / window_matrix).

    Orthographic views have no pinhole equivalent and raise ValueError."""
    V = np.asarray(view_matrix, np.float64)
    P = np.asarray(window_matrix, np.float64)
    if V.shape != (4, 4) or P.shape != (4, 4):
        raise ValueError("view and window matrices must be 4x4")
    if abs(P[3, 2] + 1.0) > 1e-6 or abs(P[3, 3]) > 1e-6:
        raise ValueError("the 3D view is orthographic; the splat preview needs a perspective view")
    flip = np.diag([1.0, -1.0, -1.0, 1.0])  # Blender view axes (x right, y up, -z forward) -> OpenCV's
    view = flip @ V
    # NDC x = P00 * x/z - P02 with z the OpenCV depth, and pixel u = (x_ndc + 1) * W / 2 (likewise v from the top).
    fx, fy = P[0, 0] * width / 2, P[1, 1] * height / 2
    cx, cy = width / 2 * (1 - P[0, 2]), height / 2 * (1 + P[1, 2])
    near = P[2, 3] / (P[2, 2] - 1.0)  # the clip start of the projection
    return Camera(view, fx, fy, cx, cy, int(width), int(height), near=float(max(near, 1e-6)))
