"""Geometric retarget: the numerical parts against scipy, and the end-to-end quality on a re-meshed copy."""

import numpy as np
import pytest
from scipy.optimize import lsq_linear

from facepolicy.core import retarget as rt
from facepolicy.core import spec
from facepolicy.core.errors import RigError
from facepolicy.core.facetrack import FaceTrack
from facepolicy.core.head import load_default_head


def random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def smooth_weights(rng, n_frames, n_keys, knots=12):
    raw = rng.uniform(0, 1, (knots, n_keys))
    t = np.linspace(0, knots - 1, n_frames)
    return np.stack([np.interp(t, np.arange(knots), raw[:, j]) for j in range(n_keys)], axis=1)


def test_bounded_solve_matches_scipy_per_frame():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(60, 8))
    y = rng.normal(size=(25, 60)) * 2.0
    x, info = rt.solve_bounded_smooth(a.T @ a, y @ a, smoothness=0.0, tol=1e-6, max_iter=20000)
    assert info.converged
    for t in range(len(y)):
        ref = lsq_linear(a, y[t], bounds=(0.0, 1.0), method="bvls").x
        assert np.allclose(x[t], ref, atol=1e-3)


def test_smooth_solve_is_optimal():
    """KKT conditions of the boxed, temporally smoothed problem; and the exact answer when no bound is active."""
    rng = np.random.default_rng(2)
    n_t, n_k, lam = 40, 6, 3.0
    a = rng.normal(size=(30, n_k))
    h = a.T @ a
    b = rng.normal(size=(n_t, n_k)) * 60.0 + 15.0
    x, info = rt.solve_bounded_smooth(h, b, smoothness=lam, tol=1e-6, max_iter=50000)
    assert info.converged
    lap = np.diag(np.r_[1.0, 2.0 * np.ones(n_t - 2), 1.0]) - np.eye(n_t, k=1) - np.eye(n_t, k=-1)
    grad = x @ h - b + lam * lap @ x
    g_tol = 1e-3 * np.abs(b).max()
    assert np.all(grad[x <= 1e-6] >= -g_tol)
    assert np.all(grad[x >= 1 - 1e-6] <= g_tol)
    inner = (x > 1e-6) & (x < 1 - 1e-6)
    assert np.abs(grad[inner]).max() < g_tol
    assert (x <= 1e-6).any() and (x >= 1 - 1e-6).any()  # the bounds mattered in this case

    x_true = rng.uniform(0.2, 0.8, (n_t, n_k))
    b_free = x_true @ h + lam * lap @ x_true
    x_free, _ = rt.solve_bounded_smooth(h, b_free, smoothness=lam, tol=1e-6, max_iter=50000)
    assert np.allclose(x_free, x_true, atol=1e-4)


def test_nearest_and_surface_projection():
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(500, 3))
    q = rng.normal(size=(50, 3))
    idx, dist = rt.nearest(pts, q, k=3)
    ref = np.argsort(np.linalg.norm(q[:, None] - pts[None], axis=2), axis=1)[:, :3]
    assert np.array_equal(idx, ref)
    assert np.allclose(dist[:, 0], np.linalg.norm(pts[idx[:, 0]] - q, axis=1))

    head = load_default_head()
    tri = head.faces[rng.choice(len(head.faces), 200, replace=False)]
    bary = rng.dirichlet([1, 1, 1], size=len(tri))
    on_surface = np.einsum("ti,tic->tc", bary, head.vertices[tri].astype(float))
    ids, w, d = rt.project_to_surface(head.vertices.astype(float), head.faces, on_surface)
    # exact except where two surfaces nearly touch (teeth, lids on the eyeball): then a point of the other one
    exact = d < 1e-6
    assert exact.mean() > 0.95 and d.max() < 0.003
    back = np.einsum("ti,tic->tc", w, head.vertices[ids].astype(float))
    assert np.allclose(back[exact], on_surface[exact], atol=1e-6)


def test_similarity_from_pairs():
    rng = np.random.default_rng(4)
    src = rng.normal(size=(20, 3))
    rot = random_rotation(rng)
    s, r, t = rt.similarity_from_pairs(src, 2.5 * src @ rot.T + [1.0, 2.0, 3.0])
    assert s == pytest.approx(2.5) and np.allclose(r, rot) and np.allclose(t, [1, 2, 3])


@pytest.fixture(scope="module")
def remeshed_copy():
    """The default head rotated, scaled, moved, re-meshed (a new vertex in every quad, fan triangles), with its
    vertices shuffled, carrying a random 30 of its own keys."""
    rng = np.random.default_rng(7)
    head = load_default_head()
    v, d = head.vertices.astype(np.float64), head.deltas.astype(np.float64)
    quads = [p for p in head.polygons if len(p) == 4]
    v2 = np.concatenate([v, np.array([v[q].mean(axis=0) for q in quads])])
    d2 = np.concatenate([d, np.stack([d[:, q].mean(axis=1) for q in quads], axis=1)], axis=1)
    perm = rng.permutation(len(v2))
    rot, scale, shift = random_rotation(rng), 3.7, np.array([0.3, -1.2, 2.0])
    target_v = scale * v2[perm] @ rot.T + shift
    target_d = scale * d2[:, perm] @ rot.T
    keys = np.sort(rng.choice(52, 30, replace=False))
    names = [f"Key {k:02d}" for k in range(len(keys))]  # names that match nothing: only geometry helps
    solver, corr = rt.build_key_solver(head, target_v, names, target_d[keys])
    return head, keys, solver, corr, scale, rot, perm


def test_alignment_recovers_the_similarity(remeshed_copy):
    _, _, _, corr, scale, rot, _ = remeshed_copy
    assert corr.scale == pytest.approx(scale, rel=0.01)
    assert np.abs(corr.rotation - rot).max() < 0.02


@pytest.mark.parametrize("smoothness", [0.0, 0.02])
def test_retarget_quality_on_a_remeshed_copy(remeshed_copy, smoothness):
    head, keys, solver, _, _, _, _ = remeshed_copy
    rng = np.random.default_rng(11)
    truth = smooth_weights(rng, 300, len(keys))
    source = np.zeros((300, 52))
    source[:, keys] = truth
    solved, info = solver.solve(source, smoothness=smoothness)
    assert info.converged
    assert solved.min() >= 0.0 and solved.max() <= 1.0
    rms = float(np.sqrt(np.mean((solved - truth) ** 2)))
    assert rms < 0.05, rms
    assert np.median(solver.fit_error(source, solved)) < 0.2


def test_retarget_track(remeshed_copy):
    head, keys, solver, _, _, _, _ = remeshed_copy
    values = np.zeros((20, spec.NUM_CHANNELS), np.float32)
    values[:, keys[0]] = np.linspace(0, 1, 20)
    values[:, spec.CHANNEL_INDEX["headYaw"]] = 0.25
    out = rt.retarget_track(FaceTrack(30.0, spec.CHANNEL_NAMES, values), solver)
    assert out.names[: len(keys)] == solver.key_names
    assert np.allclose(out.channel("headYaw"), 0.25)
    assert out.channel(solver.key_names[0])[-1] > 0.8
    assert out.meta["retarget"]["method"] == "geometric"


def test_bad_shapes_are_refused():
    head = load_default_head()
    with pytest.raises(RigError, match="deltas"):
        rt.build_key_solver(head, head.vertices, ["a", "b"], np.zeros((3, head.num_vertices, 3)))
    with pytest.raises(RigError, match="no shape keys"):
        rt.build_key_solver(head, head.vertices, [], np.zeros((0, head.num_vertices, 3)))
