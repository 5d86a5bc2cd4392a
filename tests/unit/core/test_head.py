"""The bundled default head: structure, and that its shapes do what their ARKit names say (landmark distances)."""

import json

import numpy as np
import pytest

from facepolicy.core import spec
from facepolicy.core.assets import asset_root
from facepolicy.core.head import LANDMARK_NAMES, LIP_PAIRS, load_default_head


@pytest.fixture(scope="module")
def head():
    return load_default_head()


def weights(**named):
    w = np.zeros(spec.NUM_ARKIT, np.float32)
    for name, value in named.items():
        w[spec.ARKIT_NAMES.index(name)] = value
    return w


def dist(head, verts, a, b):
    return float(np.linalg.norm(verts[head.landmarks[a]] - verts[head.landmarks[b]]))


def test_structure(head):
    v = head.num_vertices
    assert head.vertices.shape == (v, 3) and head.vertices.dtype == np.float32
    assert head.shape_names == spec.ARKIT_NAMES
    assert head.deltas.shape == (52, v, 3)
    assert head.faces.dtype == np.int32 and head.faces.shape[1] == 3
    assert head.faces.min() == 0 and head.faces.max() == v - 1
    assert len(head.uvs) == len(head.polygon_vertices) == head.polygon_sizes.sum()
    assert np.all((head.uvs >= 0) & (head.uvs <= 1))
    assert sum(len(p) - 2 for p in head.polygons) == len(head.faces)
    # every shape moves something, and only tongueOut moves the tongue tip out
    assert np.all(np.abs(head.deltas).reshape(52, -1).max(axis=1) > 1e-3)
    for name in ("lips", "jaw", "eyes", "brows", "eyeball_left", "eyeball_right", "teeth", "tongue"):
        ids = head.vertex_groups[name]
        assert len(ids) > 20 and ids.min() >= 0 and ids.max() < v, name
    assert np.array_equal(head.lip_vertex_indices, head.vertex_groups["lips"])
    assert set(head.landmarks) == set(LANDMARK_NAMES)
    assert all(0 <= i < v for i in head.landmarks.values())


def test_units_and_orientation(head):
    lo, hi = head.vertices.min(axis=0), head.vertices.max(axis=0)
    assert 0.2 < hi[2] - lo[2] < 0.35          # head and neck, metres, +Z up
    assert 0.12 < hi[0] - lo[0] < 0.22         # ear to ear
    p = {k: head.vertices[i] for k, i in head.landmarks.items()}
    assert p["nose_tip"][1] < p["eye_inner_left"][1]                    # facing -Y
    assert p["eye_outer_left"][0] > 0 > p["eye_outer_right"][0]         # character's left is +X
    assert p["chin"][2] < p["lip_lower_mid"][2] < p["nose_tip"][2] < p["eyelid_upper_left"][2]
    width = np.linalg.norm(p["mouth_corner_left"] - p["mouth_corner_right"])
    assert 0.035 < width < 0.065
    for pair in LIP_PAIRS:  # closed mouth at rest
        assert dist(head, head.vertices, *pair) < 0.004


def test_asset_is_small_and_licensed():
    d = asset_root() / "heads" / "default"
    assert sum(p.stat().st_size for p in d.glob("head.*")) < 5e6
    assert "CC0" in (d / "LICENSE.md").read_text()
    readme = (d / "README.md").read_text()
    assert "Mika Suominen" in readme and "MakeHuman" in readme
    meta = json.loads((d / "head.json").read_text())
    assert meta["units"] == "metres"


def test_jaw_open_opens_every_lip_pair(head):
    rest = head.inner_lip_gaps(head.vertices)
    opened = head.inner_lip_gaps(head.decode(weights(jawOpen=1.0)))
    assert np.all(opened > rest + 0.02)
    closed = head.inner_lip_gaps(head.decode(weights(jawOpen=0.5, mouthClose=0.5)))
    assert np.all(closed < 0.005)  # mouthClose cancels the jaw's lip gap


def test_blinks_close_one_eye_each(head):
    rest_l, rest_r = head.eyelid_gap(head.vertices, "left"), head.eyelid_gap(head.vertices, "right")
    assert rest_l > 0.008 and abs(rest_l - rest_r) < 1e-4
    blink_l = head.decode(weights(eyeBlinkLeft=1.0))
    assert head.eyelid_gap(blink_l, "left") < 0.2 * rest_l
    assert head.eyelid_gap(blink_l, "right") == pytest.approx(rest_r, abs=1e-5)
    blink_r = head.decode(weights(eyeBlinkRight=1.0))
    assert head.eyelid_gap(blink_r, "right") < 0.2 * rest_r
    assert head.eyelid_gap(head.decode(weights(eyeWideLeft=1.0)), "left") > rest_l + 0.002


def test_smile_pucker_and_tongue(head):
    rest = head.vertices
    smile = head.decode(weights(mouthSmileLeft=1.0))
    left, right = head.landmarks["mouth_corner_left"], head.landmarks["mouth_corner_right"]
    assert smile[left][2] > rest[left][2] + 0.003            # left corner goes up
    assert abs(smile[right][2] - rest[right][2]) < 0.001
    width = dist(head, rest, "mouth_corner_left", "mouth_corner_right")
    assert dist(head, head.decode(weights(mouthPucker=1.0)), "mouth_corner_left", "mouth_corner_right") < width - 0.005
    tongue = head.vertex_groups["tongue"]
    out = head.decode(weights(tongueOut=1.0))
    assert out[tongue, 1].min() < rest[tongue, 1].min() - 0.01   # tongue moves forward (-Y)


def test_eye_look_rotates_the_eyeball_rigidly(head):
    ball = head.vertex_groups["eyeball_left"]
    c = head.pivots["eye_left"]
    rest = head.vertices[ball] - c
    assert np.allclose(np.linalg.norm(rest, axis=1), head.eye_radius, atol=1e-5)
    looked = head.decode(weights(eyeLookOutLeft=1.0))[ball] - c
    assert np.allclose(np.linalg.norm(looked, axis=1), head.eye_radius, atol=1e-5)  # a rotation about the pivot
    front = np.argmin(rest[:, 1])  # the pupil pole
    assert looked[front, 0] > rest[front, 0] + 0.002  # looking out = towards +X for the left eye


def test_decode_batch_subset_and_channels(head):
    rng = np.random.default_rng(0)
    w = rng.uniform(0, 1, (5, 52)).astype(np.float32)
    full = head.decode(w)
    assert full.shape == (5, head.num_vertices, 3)
    ref = head.vertices + np.einsum("k,kvc->vc", w[2], head.deltas)
    assert np.allclose(full[2], ref, atol=1e-5)
    lips = head.lip_vertex_indices
    assert np.allclose(head.decode(w, lips), full[:, lips], atol=1e-6)
    canon = np.concatenate([w, np.ones((5, spec.NUM_CHANNELS - 52), np.float32)], axis=1)
    assert np.allclose(head.decode(canon), full)
    with pytest.raises(ValueError):
        head.decode(np.zeros((3, 10)))
    assert load_default_head() is load_default_head()
