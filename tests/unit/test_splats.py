"""Splats bound to mesh triangles, alignment, and INRIA .ply import/export."""

from __future__ import annotations

import numpy as np
import pytest

from facepolicy.preview import ply, raster
from facepolicy.preview.cloud import GaussianCloud, quat_to_matrix
from facepolicy.preview.splats import (
    BindingError,
    bind_cloud,
    icosphere,
    similarity_from_landmarks,
    similarity_from_matrix,
    splats_from_mesh,
    triangle_frames,
)


def random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def random_cloud(rng, n=200, degree=3, spread=1.0):
    return GaussianCloud(rng.normal(size=(n, 3)) * spread, rng.normal(-3, 0.5, (n, 3)), rng.normal(size=(n, 4)),
                         rng.normal(size=n), rng.normal(size=(n, (degree + 1) ** 2, 3)) * 0.3)


# -- binding ------------------------------------------------------------------------------------------------------


def test_centres_equal_barycentric_interpolation_exactly():
    verts, faces = icosphere(2)
    splats = splats_from_mesh(verts, faces, per_triangle=5, seed=3)
    rng = np.random.default_rng(1)
    for _ in range(3):
        posed = verts * rng.uniform(0.8, 1.2, size=(len(verts), 1)) + rng.normal(scale=0.05, size=verts.shape)
        f = faces[splats.face_index]
        b = splats.bary
        expected = b[:, 0:1] * posed[f[:, 0]] + b[:, 1:2] * posed[f[:, 1]] + b[:, 2:3] * posed[f[:, 2]]
        np.testing.assert_array_equal(splats.centres(posed), expected)
        np.testing.assert_array_equal(splats.cloud(posed).means, expected.astype(np.float32))
    assert (splats.bary >= 0).all() and np.allclose(splats.bary.sum(1), 1)


def test_gaussians_turn_and_grow_with_their_triangles():
    verts, faces = icosphere(1)
    splats = splats_from_mesh(verts, faces, per_triangle=2)
    rest = splats.cloud(verts)
    rng = np.random.default_rng(2)
    R, s, t = random_rotation(rng), 1.7, np.array([0.3, -1.0, 2.0])
    moved = splats.cloud(s * verts @ R.T + t)
    np.testing.assert_allclose(moved.means, s * rest.means @ R.T + t, atol=1e-5)
    np.testing.assert_allclose(quat_to_matrix(moved.rotations), R @ quat_to_matrix(rest.rotations), atol=1e-5)
    np.testing.assert_allclose(moved.log_scales, rest.log_scales + np.log(s), atol=1e-5)


def test_gaussians_lie_flat_on_their_triangle_and_vertex_ones_on_the_surface():
    verts, faces = icosphere(1)
    splats = splats_from_mesh(verts, faces, per_triangle=3)
    cloud = splats.cloud(verts)
    R, _ = triangle_frames(verts, faces)
    normals = R[splats.face_index][:, :, 2]
    axes = quat_to_matrix(cloud.rotations)
    thinnest = axes[np.arange(cloud.n), :, np.argmin(cloud.log_scales, axis=1)]
    on_triangles = 3 * len(faces)
    np.testing.assert_allclose(np.abs((thinnest[:on_triangles] * normals[:on_triangles]).sum(1)), 1, atol=1e-6)
    # A vertex's gaussian lies in the sphere's tangent plane there (its normal is radial), not in one triangle's
    # plane: tilted like a triangle, it would stick out of the silhouette.
    radial = cloud.means[on_triangles:] / np.linalg.norm(cloud.means[on_triangles:], axis=1, keepdims=True)
    np.testing.assert_allclose(np.abs((thinnest[on_triangles:] * radial).sum(1)), 1, atol=1e-5)
    tilt = np.abs((thinnest[on_triangles:] * normals[on_triangles:]).sum(1))
    assert tilt.max() < 0.999  # so they differ from their triangles' planes


def test_vertex_splats_sit_on_every_inner_vertex_and_gaussians_follow_the_triangle_shape():
    verts, faces = icosphere(1)
    splats = splats_from_mesh(verts, faces, per_triangle=1)
    assert splats.n == len(faces) + len(verts)  # a closed mesh: every vertex is inner
    np.testing.assert_allclose(np.sort(splats.cloud(verts).means[len(faces):], axis=0),
                               np.sort(verts.astype(np.float32), axis=0), atol=1e-6)
    verts = np.array([[0.0, 0, 0], [10.0, 0, 0], [0, 1.0, 0], [10.0, 1.0, 0.0]])
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    splats = splats_from_mesh(verts, faces, per_triangle=1)
    assert splats.n == 2  # every vertex lies on an open edge: half its gaussian would hang past the surface
    cloud = splats.cloud(verts)
    # Long thin triangles along x give gaussians whose largest axis lies along x.
    axes = quat_to_matrix(cloud.rotations)
    major = axes[np.arange(cloud.n), :, np.argmax(cloud.log_scales, axis=1)]
    assert (np.abs(major[:, 0]) > 0.95).all()
    assert (cloud.scales.max(1) / cloud.scales.min(1) > 10).all()


def _grid(n: int, size: float):
    """A flat n x n grid of squares over [0, size]^2, two triangles each: its border is its only open edge."""
    xs, ys = np.meshgrid(np.linspace(0, size, n + 1), np.linspace(0, size, n + 1), indexing="ij")
    verts = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], axis=1)
    index = np.arange(verts.shape[0]).reshape(n + 1, n + 1)
    a, b, c, d = index[:-1, :-1].ravel(), index[1:, :-1].ravel(), index[1:, 1:].ravel(), index[:-1, 1:].ravel()
    return verts, np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])


def test_gaussians_end_at_an_open_edge():
    from facepolicy.preview.splats import EDGE_SIGMAS

    verts, faces = _grid(8, 1.0)
    cloud = splats_from_mesh(verts, faces).cloud(verts)
    axes = quat_to_matrix(cloud.rotations)
    cov = np.einsum("nij,nj,nkj->nik", axes, np.exp(2 * cloud.log_scales.astype(float)), axes)
    for axis in (0, 1):
        sigma = np.sqrt(cov[:, axis, axis])
        assert (cloud.means[:, axis] - EDGE_SIGMAS * sigma >= -1e-4).all()
        assert (cloud.means[:, axis] + EDGE_SIGMAS * sigma <= 1 + 1e-4).all()
    # Away from the border nothing is squeezed: the middle squares' gaussians are those of a grid 4 times as large
    # with the same squares.
    big_verts, big_faces = _grid(32, 4.0)
    big = splats_from_mesh(big_verts, big_faces).cloud(big_verts)
    middle = np.all(np.abs(cloud.means[:, :2] - 0.5) < 0.2, axis=1)
    assert middle.sum() > 20
    for i in np.flatnonzero(middle):
        twin = np.argmin(np.abs(big.means - (cloud.means[i] + [1.5, 1.5, 0])).sum(1))
        np.testing.assert_allclose(np.sort(cloud.log_scales[i]), np.sort(big.log_scales[twin]), atol=1e-5)


def test_colours_come_from_the_texture_or_vertex_colours():
    verts, faces = icosphere(1)
    uvs = np.stack([(verts[:, 0] > 0) * 0.5 + 0.25, np.full(len(verts), 0.5)], axis=1)
    texture = np.zeros((8, 8, 3), np.uint8)
    texture[:, :4] = (255, 0, 0)
    texture[:, 4:] = (0, 0, 255)
    # Only triangles whose corners all sit on one side have a single colour.
    one_side = np.all(verts[faces][:, :, 0] > 0, axis=1) | np.all(verts[faces][:, :, 0] <= 0, axis=1)
    splats = splats_from_mesh(verts, faces, per_triangle=2, uvs=uvs, texture=texture)
    rgb = splats.sh[:, 0, :] * 0.28209479177387814 + 0.5
    sel = one_side[splats.face_index]
    right = (verts[faces[splats.face_index]][:, 0, 0] > 0)[sel]
    np.testing.assert_allclose(rgb[sel][right], [[0, 0, 1]] * int(right.sum()), atol=1e-5)
    np.testing.assert_allclose(rgb[sel][~right], [[1, 0, 0]] * int((~right).sum()), atol=1e-5)

    colors = np.tile([0.2, 0.6, 0.4], (len(verts), 1))
    splats = splats_from_mesh(verts, faces, vertex_colors=colors)
    np.testing.assert_allclose(splats.sh[:, 0, :] * 0.28209479177387814 + 0.5, 0 * splats.sh[:, 0, :] + colors[0],
                               atol=1e-6)


def test_mesh_errors_are_clear():
    verts, faces = icosphere(0)
    with pytest.raises(BindingError, match="face indices"):
        splats_from_mesh(verts, faces + 100)
    with pytest.raises(BindingError, match="per_triangle"):
        splats_from_mesh(verts, faces, per_triangle=0)
    with pytest.raises(BindingError, match="needs UVs"):
        splats_from_mesh(verts, faces, texture=np.zeros((2, 2, 3)))
    splats = splats_from_mesh(verts, faces)
    with pytest.raises(BindingError, match="topology"):
        splats.cloud(verts[:-1])


def test_imported_cloud_binds_to_nearest_triangles_and_follows_the_mesh(cpu):
    verts, faces = icosphere(2)
    rng = np.random.default_rng(4)
    d = rng.normal(size=(300, 3))
    points = d / np.linalg.norm(d, axis=1, keepdims=True) * rng.uniform(0.9, 1.1, size=(300, 1))
    cloud = GaussianCloud(points, rng.normal(-4, 0.3, (300, 3)), rng.normal(size=(300, 4)), rng.normal(size=300),
                          rng.normal(size=(300, 4, 3)))
    bound = bind_cloud(cloud, verts, faces, cpu)
    again = bound.cloud(verts)
    np.testing.assert_allclose(again.means, cloud.means, atol=1e-5)
    np.testing.assert_allclose(quat_to_matrix(again.rotations), quat_to_matrix(cloud.rotations), atol=1e-5)
    np.testing.assert_allclose(again.log_scales, cloud.log_scales, atol=1e-5)
    # Every gaussian is bound to a triangle at least as near as any other.
    centroids = verts[faces].mean(1)
    nearest_centroid = np.argmin(((points[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    on_surface = np.einsum("nk,nkc->nc", bound.bary, verts[faces[bound.face_index]])
    d_bound = np.linalg.norm(points - on_surface, axis=1)
    d_centroid = np.linalg.norm(points - centroids[nearest_centroid], axis=1)
    assert (d_bound <= d_centroid + 1e-6).all()
    # Translating the head moves the splats with it.
    np.testing.assert_allclose(bound.cloud(verts + [0, 0.5, 0]).means, cloud.means + [0, 0.5, 0], atol=1e-5)
    far = bind_cloud(cloud, verts, faces, cpu, max_distance=0.05)
    assert 0 < far.n < cloud.n


def test_similarity_from_landmarks_recovers_the_transform():
    rng = np.random.default_rng(5)
    src = rng.normal(size=(8, 3))
    R, s, t = random_rotation(rng), 0.37, np.array([1.0, 2.0, -3.0])
    dst = s * src @ R.T + t
    s2, R2, t2 = similarity_from_landmarks(src, dst + rng.normal(scale=1e-9, size=dst.shape))
    assert abs(s2 - s) < 1e-6 and np.allclose(R2, R, atol=1e-6) and np.allclose(t2, t, atol=1e-6)
    with pytest.raises(BindingError, match="collinear"):
        similarity_from_landmarks(np.outer(np.arange(4.0), [1, 2, 3]), dst[:4])
    with pytest.raises(BindingError, match="at least 3"):
        similarity_from_landmarks(src[:2], dst[:2])


def test_manual_transform_is_checked():
    M = np.eye(4)
    M[:3, :3] = 2.0 * random_rotation(np.random.default_rng(6))
    M[:3, 3] = [1, 2, 3]
    s, R, t = similarity_from_matrix(M)
    assert abs(s - 2.0) < 1e-9 and np.allclose(t, [1, 2, 3])
    with pytest.raises(BindingError, match="shear or a non-uniform scale"):
        similarity_from_matrix(np.diag([1.0, 2.0, 1.0, 1.0]))
    with pytest.raises(BindingError, match="mirrors"):
        similarity_from_matrix(np.diag([-1.0, 1.0, 1.0, 1.0]))


def test_transformed_cloud_renders_like_the_moved_camera(cpu):
    """Moving the splat by (s, R, t) and the camera with it gives the same picture: this checks the
    rotation of positions, quaternions, scales and degree-3 SH colours together."""
    rng = np.random.default_rng(7)
    cloud = random_cloud(rng, n=300, degree=3, spread=0.4)
    cam = raster.Camera.look_at([0.3, -0.2, -3], [0, 0, 0], [0, -1, 0], 35, 64, 48, near=0.1)
    R, s, t = random_rotation(rng), 1.6, np.array([0.5, -0.2, 0.7])
    moved = cloud.transformed(s, R, t)
    view = np.eye(4)
    view[:3, :3] = cam.view[:3, :3] @ R.T
    view[:3, 3] = s * cam.view[:3, 3] - view[:3, :3] @ t
    cam2 = raster.Camera(view, cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height, near=cam.near * s)
    a = cpu.render_cloud(cloud, cam)
    b = cpu.render_cloud(moved, cam2)
    assert np.abs(a - b).max() < 2e-3
    assert a.std() > 0.05


# -- .ply ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_ply_round_trip_is_exact(tmp_path, degree):
    cloud = random_cloud(np.random.default_rng(degree), n=57, degree=degree)
    path = tmp_path / "splat.ply"
    ply.write_ply(path, cloud)
    back = ply.read_ply(path)
    for name in ("means", "log_scales", "rotations", "opacity_logits", "sh"):
        np.testing.assert_array_equal(getattr(back, name), getattr(cloud, name))
    header = path.read_bytes()[:4000].decode("ascii", "replace")
    assert "property float f_dc_0" in header and "property float rot_3" in header
    assert header.count("property float f_rest_") == 3 * ((degree + 1) ** 2 - 1)


def test_bound_splat_exports_its_posed_cloud(tmp_path):
    verts, faces = icosphere(1)
    splats = splats_from_mesh(verts, faces, per_triangle=2)
    posed = verts * 1.1
    ply.write_ply(tmp_path / "head.ply", splats.cloud(posed))
    back = ply.read_ply(tmp_path / "head.ply")
    np.testing.assert_array_equal(back.means, splats.cloud(posed).means)


def test_ply_f_rest_is_channel_major(tmp_path):
    """f_rest_{c*(K-1)+j} is coefficient j+1 of channel c, as the INRIA code writes it."""
    cloud = random_cloud(np.random.default_rng(1), n=2, degree=1)
    ply.write_ply(tmp_path / "a.ply", cloud)
    raw = tmp_path.joinpath("a.ply").read_bytes()
    body = np.frombuffer(raw[raw.index(b"end_header\n") + 11:], "<f4").reshape(2, -1)
    f_rest_4 = body[0, 9 + 4]  # after x y z nx ny nz f_dc_0..2 -> channel 1 (g), coefficient 2
    assert f_rest_4 == cloud.sh[0, 2, 1]


def _write_raw(path, props, rows, count=None, fmt="binary_little_endian", extra=b""):
    count = len(rows) if count is None else count
    header = f"ply\nformat {fmt} 1.0\nelement vertex {count}\n"
    header += "".join(f"property float {p}\n" for p in props) + "end_header\n"
    if fmt == "ascii":
        body = "".join(" ".join(repr(float(v)) for v in r) + "\n" for r in rows).encode()
    else:
        body = np.asarray(rows, "<f4").tobytes()
    path.write_bytes(header.encode() + body + extra)
    return path


def _write_bytes(path, data):
    path.write_bytes(data)
    return path


PROPS = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
         "rot_0", "rot_1", "rot_2", "rot_3"]


def _rows(n=4):
    rows = np.random.default_rng(0).normal(size=(n, len(PROPS)))
    rows[:, 10] = 1.0
    return rows


def test_ascii_ply_without_normals_or_f_rest_reads(tmp_path):
    rows = _rows()
    cloud = ply.read_ply(_write_raw(tmp_path / "a.ply", PROPS, rows, fmt="ascii"))
    assert cloud.n == 4 and cloud.sh_degree == 0
    np.testing.assert_allclose(cloud.means, rows[:, :3], rtol=1e-6)


@pytest.mark.parametrize("make,message", [
    (lambda p: _write_raw(p, [x for x in PROPS if x != "rot_3"], _rows()[:, :-1]), "missing 3DGS attributes: rot_3"),
    (lambda p: _write_raw(p, [x for x in PROPS if not x.startswith("scale")],
                          np.delete(_rows(), [7, 8, 9], axis=1)), "scale_0, scale_1, scale_2"),
    (lambda p: _write_raw(p, PROPS, np.where(np.arange(14) == 7, np.nan, _rows())), r"NaN or Inf values in log_scales"),
    (lambda p: _write_raw(p, PROPS, np.where(np.arange(14) == 0, np.inf, _rows())), r"NaN or Inf values in means"),
    (lambda p: _write_raw(p, PROPS, _rows(), count=5), "declares 5 gaussians but the file holds only 4"),
    (lambda p: _write_raw(p, PROPS, _rows(), count=3), "declares 3 gaussians but the file has 56 bytes more"),
    (lambda p: _write_raw(p, PROPS, _rows(), fmt="ascii", count=6), "declares 6 gaussians but the file holds only 4"),
    (lambda p: _write_raw(p, PROPS + [f"f_rest_{i}" for i in range(5)], np.zeros((2, 19))), "do not match SH degree"),
    (lambda p: _write_bytes(p, b"GIF89a..."), "not a PLY file"),
    (lambda p: _write_bytes(p, b"ply\nformat binary_little_endian 1.0\nelement vertex 3\n"), "no 'end_header'"),
    (lambda p: _write_raw(p, PROPS, np.where(np.arange(14) >= 10, 0.0, _rows())), "all-zero rotation"),
])
def test_malformed_ply_gets_a_clear_error(tmp_path, make, message):
    path = make(tmp_path / "bad.ply")
    with pytest.raises(ply.PlyError, match=message) as info:
        ply.read_ply(path)
    assert str(info.value).startswith('"bad.ply": ')


def test_huge_ply_is_refused_with_a_memory_estimate(tmp_path, monkeypatch):
    names = PROPS + [f"f_rest_{i}" for i in range(45)]
    path = tmp_path / "huge.ply"
    header = "ply\nformat binary_little_endian 1.0\nelement vertex 50000000\n"
    header += "".join(f"property float {p}\n" for p in names) + "end_header\n"
    path.write_bytes(header.encode())  # the header alone: the refusal must come before any data is read
    with pytest.raises(ply.PlyError, match=r"50,000,000 gaussians need about [\d.]+ GB of memory.*limit of 4.0 GB"):
        ply.read_ply(path)
    monkeypatch.setenv(ply.MEMORY_LIMIT_ENV, "1")
    rows = _rows(20000)
    small = _write_raw(tmp_path / "small.ply", PROPS, rows)
    with pytest.raises(ply.PlyError, match="limit of 1.0 MB"):
        ply.read_ply(small)
    assert ply.read_ply(small, max_bytes=10**9).n == 20000


# -- viewport camera ------------------------------------------------------------------------------------------------


def test_camera_from_blender_view_projects_like_blender():
    from facepolicy.preview.scene import camera_from_blender_view

    W, H, near, far = 320, 200, 0.1, 100.0
    P = np.array([[1.7, 0, 0.1, 0], [0, 1.7 * W / H, -0.05, 0],
                  [0, 0, -(far + near) / (far - near), -2 * far * near / (far - near)], [0, 0, -1, 0]])
    rng = np.random.default_rng(0)
    V = np.eye(4)
    V[:3, :3], V[:3, 3] = random_rotation(rng), [0.1, 0.2, -5.0]
    cam = camera_from_blender_view(V, P, W, H)
    pts = np.c_[rng.normal(size=(6, 3)), np.ones(6)]
    clip = pts @ (P @ V).T
    ndc = clip[:, :3] / clip[:, 3:]
    pc = pts @ cam.view.T
    np.testing.assert_allclose(cam.fx * pc[:, 0] / pc[:, 2] + cam.cx, (ndc[:, 0] + 1) * W / 2, atol=1e-9)
    np.testing.assert_allclose(cam.fy * pc[:, 1] / pc[:, 2] + cam.cy, (1 - ndc[:, 1]) * H / 2, atol=1e-9)
    assert abs(cam.near - near) < 1e-9
    ortho = np.diag([0.5, 0.8, -0.02, 1.0])
    with pytest.raises(ValueError, match="orthographic"):
        camera_from_blender_view(V, ortho, W, H)


def test_render_arrays_match_the_cloud():
    from facepolicy.preview.scene import SplatScene

    verts, faces = icosphere(1)
    scene = SplatScene.from_mesh(verts, faces, per_triangle=2, vertex_colors=np.tile([0.3, 0.5, 0.7], (len(verts), 1)))
    posed = verts * [1.0, 1.2, 0.9]
    means, scales, rotations, opacities, sh = scene.render_arrays(posed)
    cloud = scene.cloud(posed)
    np.testing.assert_array_equal(means, cloud.means)
    np.testing.assert_allclose(scales, cloud.scales, rtol=1e-6)
    np.testing.assert_allclose(rotations, cloud.unit_rotations, atol=1e-6)
    np.testing.assert_allclose(opacities, cloud.opacities, rtol=1e-6)
    np.testing.assert_array_equal(sh, cloud.sh)
    # Relighting: a gaussian facing the light is brighter than one facing away.
    light = np.asarray(scene.light_dir) / np.linalg.norm(scene.light_dir)
    facing = means @ light
    assert sh[np.argmax(facing), 0].sum() > sh[np.argmin(facing), 0].sum()


def test_backface_culling_drops_hidden_splats_only(cpu):
    from facepolicy.core.head import load_default_head
    from facepolicy.preview.scene import SplatScene, front_camera, posed_head_vertices

    head = load_default_head()
    scene = SplatScene.from_head(head)
    values = np.zeros(59)
    values[52] = 0.8  # headYaw: the far cheek turns away
    verts = posed_head_vertices(head, values)
    cam = front_camera(head.vertices, 64, 64)
    everything = scene.render_arrays(verts)
    culled = scene.render_arrays(verts, cam)
    assert len(culled[0]) < 0.8 * len(everything[0])
    diff = np.abs(cpu.render(*everything, cam) - cpu.render(*culled, cam))
    assert diff.mean() < 2e-3 and np.percentile(diff, 99) < 0.05
