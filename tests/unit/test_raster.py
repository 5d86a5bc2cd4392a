"""The compiled splat rasterizer against a slow, independent numpy reference (the 3DGS forward pass)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facepolicy.preview import build, raster

# -- reference ---------------------------------------------------------------------------------------------------------


def _sh_basis(d, degree):
    """Real SH, INRIA sign convention, constants derived from their closed forms."""
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    pi = math.pi
    out = [np.full_like(x, 0.5 * math.sqrt(1 / pi))]
    if degree >= 1:
        c1 = math.sqrt(3 / (4 * pi))
        out += [-c1 * y, c1 * z, -c1 * x]
    if degree >= 2:
        a, b, c = 0.5 * math.sqrt(15 / pi), 0.25 * math.sqrt(5 / pi), 0.25 * math.sqrt(15 / pi)
        out += [a * x * y, -a * y * z, b * (2 * z * z - x * x - y * y), -a * x * z, c * (x * x - y * y)]
    if degree >= 3:
        k0, k1 = 0.25 * math.sqrt(35 / (2 * pi)), 0.5 * math.sqrt(105 / pi)
        k2, k3 = 0.25 * math.sqrt(21 / (2 * pi)), 0.25 * math.sqrt(7 / pi)
        k5 = 0.25 * math.sqrt(105 / pi)
        r2 = 4 * z * z - x * x - y * y
        out += [-k0 * y * (3 * x * x - y * y), k1 * x * y * z, -k2 * y * r2,
                k3 * z * (2 * z * z - 3 * x * x - 3 * y * y), -k2 * x * r2, k5 * z * (x * x - y * y),
                -k0 * x * (x * x - 3 * y * y)]
    return np.stack(out, 1)


def _rotation(q):
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], 1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], 1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], 1),
    ], 1)


def reference_render(means, scales, rots, opac, sh, cam: raster.Camera, bg):
    """Per-pixel front-to-back compositing in float64, one gaussian at a time, no tricks."""
    means, scales, rots, opac, sh = (np.asarray(a, np.float64) for a in (means, scales, rots, opac, sh))
    W, H, T16 = cam.width, cam.height, 16
    tiles_x, tiles_y = -(-W // T16), -(-H // T16)
    V = np.asarray(cam.view, np.float64)
    Rv, tv = V[:3, :3], V[:3, 3]
    pc = means @ Rv.T + tv
    tx, ty, tz = pc.T
    M = _rotation(rots) * scales[:, None, :]
    Sigma = M @ M.transpose(0, 2, 1)
    with np.errstate(all="ignore"):
        xl, xr = (-0.15 * W - cam.cx) / cam.fx, (1.15 * W - cam.cx) / cam.fx
        yl, yr = (-0.15 * H - cam.cy) / cam.fy, (1.15 * H - cam.cy) / cam.fy
        txc = np.clip(tx / tz, xl, xr) * tz
        tyc = np.clip(ty / tz, yl, yr) * tz
        J = np.zeros((len(means), 2, 3))
        J[:, 0, 0], J[:, 0, 2] = cam.fx / tz, -cam.fx * txc / tz**2
        J[:, 1, 1], J[:, 1, 2] = cam.fy / tz, -cam.fy * tyc / tz**2
        Tm = J @ Rv
        cov = Tm @ Sigma @ Tm.transpose(0, 2, 1) + 0.3 * np.eye(2)
        a, b, c = cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]
        det = a * c - b * b
        lam = 0.5 * (a + c) + np.sqrt(np.maximum(0.1, (0.5 * (a + c)) ** 2 - det))
        radius = np.ceil(3 * np.sqrt(lam))
        u, v = cam.fx * tx / tz + cam.cx, cam.fy * ty / tz + cam.cy
        x0 = np.clip(np.floor((u - radius) / T16), 0, tiles_x).astype(int)
        x1 = np.clip(np.floor((u + radius) / T16) + 1, 0, tiles_x).astype(int)
        y0 = np.clip(np.floor((v - radius) / T16), 0, tiles_y).astype(int)
        y1 = np.clip(np.floor((v + radius) / T16) + 1, 0, tiles_y).astype(int)
    valid = (tz > cam.near) & (det > 0) & (x1 > x0) & (y1 > y0)
    campos = -Rv.T @ tv
    d = means - campos
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    rgb = np.maximum(np.einsum("nk,nkc->nc", _sh_basis(d, int(round(math.sqrt(sh.shape[1]))) - 1), sh) + 0.5, 0)

    Tr = np.ones((H, W))
    C = np.zeros((H, W, 3))
    done = np.zeros((H, W), bool)
    pyc, pxc = np.mgrid[0:H, 0:W] + 0.5
    for i in np.flatnonzero(valid)[np.argsort(tz[valid], kind="stable")]:
        # Pixels of the tiles this gaussian touches.
        ys = slice(y0[i] * T16, min(y1[i] * T16, H))
        xs = slice(x0[i] * T16, min(x1[i] * T16, W))
        dx, dy = u[i] - pxc[ys, xs], v[i] - pyc[ys, xs]
        conic = np.array([c[i], -b[i], a[i]]) / det[i]
        power = -0.5 * (conic[0] * dx * dx + conic[2] * dy * dy) - conic[1] * dx * dy
        alpha = np.minimum(0.99, opac[i] * np.exp(power))
        ok = ~done[ys, xs] & (power <= 0) & (alpha >= 1 / 255)
        test_T = Tr[ys, xs] * (1 - alpha)
        finish = ok & (test_T < 1e-4)
        done[ys, xs] |= finish
        upd = ok & ~finish
        w = np.where(upd, alpha * Tr[ys, xs], 0.0)
        C[ys, xs] += w[..., None] * rgb[i]
        Tr[ys, xs] = np.where(upd, test_T, Tr[ys, xs])
    return C + Tr[..., None] * np.asarray(bg, np.float64), 1 - Tr


# -- scenes ---------------------------------------------------------------------------------------------------------


def random_scene(seed, n=300, degree=3):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(n, 3)) * [0.6, 0.5, 0.6]
    log_s = rng.normal(-3.0, 0.8, size=(n, 3))
    kinds = rng.integers(0, 10, size=n)
    log_s[kinds == 0] = np.log(1e-4)  # tiny: below a pixel, the low-pass filter dominates
    log_s[kinds == 1] = rng.uniform(0.0, 1.5, size=(int((kinds == 1).sum()), 3))  # huge: cover the image
    means[kinds == 2, 2] = rng.uniform(-6, -3.2, size=int((kinds == 2).sum()))  # behind the camera (at z = -3)
    means[kinds == 3, 2] = rng.uniform(-3.2, -2.9, size=int((kinds == 3).sum()))  # around the near plane
    rots = rng.normal(size=(n, 4))
    opac = rng.uniform(0.05, 1.0, size=n)
    opac[kinds == 1] = rng.uniform(0.05, 0.3, size=int((kinds == 1).sum()))  # faint, so the rest stays visible
    sh = rng.normal(size=(n, (degree + 1) ** 2, 3)) * 0.4
    return means, np.exp(log_s), rots, opac, sh


def make_camera(width=70, height=45, fov=40.0):
    cam = raster.Camera.look_at([0.2, -0.1, -3.0], [0, 0, 0], [0, -1, 0], fov, width, height, near=0.1)
    # An off-centre principal point and unequal focal lengths exercise the general pinhole path.
    return raster.Camera(cam.view, cam.fx * 1.1, cam.fy, cam.cx + 3.3, cam.cy - 2.1, width, height, near=0.1)


@pytest.mark.parametrize("seed,degree", [(0, 3), (1, 3), (2, 2), (3, 1), (4, 0)])
def test_cpu_library_matches_reference(cpu, seed, degree):
    scene = random_scene(seed, degree=degree)
    cam = make_camera()
    bg = (0.1, 0.2, 0.3)
    rgb, alpha = cpu.render(*scene, cam, background=bg, with_alpha=True)
    ref_rgb, ref_alpha = reference_render(*scene, cam, bg)
    assert np.abs(rgb - ref_rgb).max() <= 1e-3
    assert np.abs(alpha - ref_alpha).max() <= 1e-3
    # The scene really exercises the blend: most pixels are covered, and not all the same.
    assert (ref_alpha > 0.5).mean() > 0.5 and ref_rgb.std() > 0.02


def test_tiny_and_huge_gaussians_alone(cpu):
    cam = make_camera(48, 48)
    means = np.array([[0.0, 0.0, 0.0], [0.1, 0.05, 0.5]])
    scales = np.array([[1e-5, 1e-5, 1e-5], [4.0, 3.0, 2.0]])
    rots = np.array([[1.0, 0, 0, 0], [0.9, 0.1, 0.3, 0.2]])
    opac = np.array([0.9, 0.7])
    sh = np.random.default_rng(5).normal(size=(2, 16, 3)) * 0.3
    rgb = cpu.render(means, scales, rots, opac, sh, cam)
    ref, _ = reference_render(means, scales, rots, opac, sh, cam, (0, 0, 0))
    assert np.abs(rgb - ref).max() <= 1e-3
    assert (ref.sum(-1) > 0).all()  # the huge one covers every pixel


def test_everything_behind_camera_gives_background(cpu):
    cam = make_camera(32, 20)
    means, scales, rots, opac, sh = random_scene(7, n=50)
    means[:, 2] = -5.0  # the camera sits at z = -3 looking towards +z
    rgb, alpha = cpu.render(means, scales, rots, opac, sh, cam, background=(0.25, 0.5, 0.75), with_alpha=True)
    assert np.allclose(rgb, [0.25, 0.5, 0.75]) and np.all(alpha == 0)


def test_empty_scene(cpu):
    cam = make_camera(17, 33)
    rgb = cpu.render(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 4)), np.zeros(0), np.zeros((0, 1, 3)), cam,
                     background=(1, 0, 0))
    assert rgb.shape == (33, 17, 3) and np.allclose(rgb, [1, 0, 0])


def test_threads_do_not_change_the_image(cpu):
    scene = random_scene(11, n=400)
    cam = make_camera(96, 80)
    one = cpu.render(*scene, cam, threads=1)
    two = cpu.render(*scene, cam, threads=2)
    assert np.array_equal(one, two)


def _good_args():
    means, scales, rots, opac, sh = random_scene(3, n=5, degree=1)
    return dict(means=means, scales=scales, rotations=rots, opacities=opac, sh=sh, camera=make_camera(16, 16))


@pytest.mark.parametrize("change,message", [
    (dict(means=np.zeros((5, 2))), "means must have shape"),
    (dict(scales=np.zeros((4, 3))), "scales must have shape"),
    (dict(scales=-np.ones((5, 3))), "non-negative"),
    (dict(rotations=np.zeros((5, 3))), "rotations must have shape"),
    (dict(opacities=np.full(5, 1.5)), r"opacities must be in \[0, 1\]"),
    (dict(opacities=np.zeros(6)), "opacities must have shape"),
    (dict(sh=np.zeros((5, 5, 3))), "not a degree 0-3 layout"),
    (dict(sh=np.zeros((5, 4, 4))), "sh must have shape"),
    (dict(means=np.full((5, 3), np.nan)), "NaN or Inf"),
    (dict(sh=np.full((5, 4, 3), np.inf)), "NaN or Inf"),
])
def test_bad_arguments_raise_before_the_call(cpu, change, message):
    args = _good_args()
    args.update(change)
    with pytest.raises(ValueError, match=message):
        cpu.render(**args)


@pytest.mark.parametrize("change,message", [
    (dict(width=0), "width"),
    (dict(height=100000), "height"),
    (dict(fx=-1.0), "fx"),
    (dict(near=0.0), "near"),
    (dict(view=np.diag([2.0, 1, 1, 1])), "orthonormal"),
    (dict(view=np.eye(3)), "4x4"),
])
def test_bad_camera_raises(cpu, change, message):
    args = _good_args()
    cam = args["camera"]
    fields = dict(view=cam.view, fx=cam.fx, fy=cam.fy, cx=cam.cx, cy=cam.cy, width=cam.width, height=cam.height,
                  near=cam.near)
    fields.update(change)
    args["camera"] = raster.Camera(**fields)
    with pytest.raises(ValueError, match=message):
        cpu.render(**args)


def test_nearest_triangles_matches_brute_force(cpu):
    rng = np.random.default_rng(0)
    verts = rng.normal(size=(40, 3))
    faces = rng.integers(0, 40, size=(60, 3))
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    points = np.concatenate([rng.normal(size=(200, 3)) * 1.5, rng.normal(size=(20, 3)) * 30])  # some far away
    face, bary, dist = cpu.nearest_triangles(points, verts, faces)
    closest = np.einsum("pk,pkc->pc", bary.astype(np.float64), verts[faces[face]])
    assert np.allclose(np.linalg.norm(closest - points, axis=1), dist, atol=1e-4)
    assert (bary >= -1e-6).all() and np.allclose(bary.sum(1), 1, atol=1e-5)
    # Brute force over dense samples of every triangle can only be farther than the exact answer.
    s = rng.dirichlet(np.ones(3), size=400)
    samples = np.einsum("sk,fkc->fsc", s, verts[faces]).reshape(-1, 3)
    brute = np.sqrt(((points[:, None, :] - samples[None]) ** 2).sum(-1)).min(1)
    assert (dist <= brute + 1e-5).all()
    assert np.median(brute - dist) < 0.05


def test_cpu_backend_note_when_cuda_is_missing(cpu, monkeypatch, tmp_path):
    monkeypatch.setattr(raster.build, "LIB_DIR", tmp_path)
    (tmp_path / build.CPU_LIBRARY).symlink_to(cpu.path)
    monkeypatch.setattr(raster, "_renderers", {})
    chosen = raster.get_renderer()
    assert chosen.backend == "cpu" and "CUDA library not built" in chosen.note
    with pytest.raises(raster.PreviewUnavailable, match="CUDA library not built"):
        raster.get_renderer("cuda")


def test_unloadable_library_falls_back_to_numpy_with_one_sentence(tmp_path, monkeypatch):
    bad = tmp_path / build.CPU_LIBRARY
    bad.write_text("not a shared library")
    with pytest.raises(raster.PreviewUnavailable, match="could not load the splat renderer"):
        raster.Renderer(bad)
    monkeypatch.setattr(raster.build, "LIB_DIR", tmp_path)
    monkeypatch.setattr(raster, "_renderers", {})
    chosen = raster.get_renderer()
    assert chosen.backend == "numpy"
    assert chosen.note.startswith("The splat library for ") and "cannot be used" in chosen.note
    assert chosen.note.endswith("draws with the slower numpy renderer.") and chosen.note.count(". ") == 0
    assert raster.library_note() == chosen.note


def test_missing_library_falls_back_to_numpy_and_names_the_build(tmp_path, monkeypatch):
    monkeypatch.setattr(raster.build, "LIB_DIR", tmp_path / "empty")
    monkeypatch.setattr(raster, "_renderers", {})
    chosen = raster.get_renderer()
    assert chosen.backend == "numpy" and "python -m facepolicy.preview.build" in chosen.note
    assert build.CPU_LIBRARY in chosen.note
    with pytest.raises(raster.PreviewUnavailable, match="needs the compiled splat library"):
        chosen.nearest_triangles(np.zeros((1, 3)), np.eye(3), np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match="means must have shape"):  # the same checks before drawing
        chosen.render(**dict(_good_args(), means=np.zeros((5, 2))))


@pytest.mark.parametrize("seed,degree", [(0, 3), (2, 2), (4, 0)])
def test_numpy_renderer_matches_the_library_and_the_reference(cpu, seed, degree):
    scene = random_scene(seed, degree=degree)
    cam = make_camera()
    bg = (0.1, 0.2, 0.3)
    rgb, alpha = raster.NumpyRenderer().render(*scene, cam, background=bg, with_alpha=True)
    lib_rgb, lib_alpha = cpu.render(*scene, cam, background=bg, with_alpha=True)
    ref_rgb, ref_alpha = reference_render(*scene, cam, bg)
    assert np.abs(rgb - lib_rgb).max() <= 1e-5 and np.abs(alpha - lib_alpha).max() <= 1e-5
    assert np.abs(rgb - ref_rgb).max() <= 1e-3 and np.abs(alpha - ref_alpha).max() <= 1e-3


def test_numpy_renderer_edge_cases(cpu):
    npr = raster.NumpyRenderer()
    empty = npr.render(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 4)), np.zeros(0), np.zeros((0, 1, 3)),
                       make_camera(17, 33), background=(1, 0, 0))
    assert empty.shape == (33, 17, 3) and np.allclose(empty, [1, 0, 0])
    # Opaque layers saturate pixels (the early stop) and huge gaussians span many tiles.
    cam = make_camera(48, 40)
    means = np.array([[0.0, 0.0, z] for z in np.linspace(-1, 1, 12)])
    scales = np.full((12, 3), 2.0)
    rots = np.tile([1.0, 0, 0, 0], (12, 1))
    opac = np.full(12, 0.99)
    sh = np.random.default_rng(3).normal(size=(12, 4, 3)) * 0.3
    assert np.abs(npr.render(means, scales, rots, opac, sh, cam) - cpu.render(means, scales, rots, opac, sh, cam)
                  ).max() <= 1e-5
