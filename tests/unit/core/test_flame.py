"""FLAME loading: the restricted unpickler, the shape checks, and the jaw made by linear blend skinning."""

import os
import pickle

import numpy as np
import pytest
from flame_synthetic import N_VERTS, synthetic_flame, to_flame_axes, write_synthetic_flame

from facepolicy.core.flame import FlameError, flame_to_blender, load_flame, parse_flame
from facepolicy.core.head import load_default_head


@pytest.fixture(scope="module")
def flame_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("flame") / "generic_model.pkl"
    keep = write_synthetic_flame(path)
    return path, keep


@pytest.mark.parametrize("protocol", [0, 2])
def test_synthetic_flame_loads_with_the_real_shapes(tmp_path, protocol):
    path = tmp_path / "model.pkl"
    write_synthetic_flame(path, protocol=protocol)
    model = load_flame(path)
    ref, _ = synthetic_flame()
    assert model.v_template.shape == (N_VERTS, 3)
    assert model.shapedirs.shape == (N_VERTS, 3, 400) and model.num_expressions == 100
    assert model.posedirs.shape == (N_VERTS, 3, 36)
    assert np.allclose(model.j_regressor, ref["J_regressor"].toarray())   # sparse rebuilt without scipy
    assert np.allclose(model.shapedirs, ref["shapedirs"].x)               # chumpy value
    assert list(model.parents) == [-1, 0, 1, 1, 1]
    assert model.faces.dtype == np.int32 and model.faces.max() < N_VERTS
    assert model.expression_deltas(10).shape == (10, N_VERTS, 3)


def test_jaw_lbs_opens_the_mouth(flame_file):
    path, keep = flame_file
    model = load_flame(path)
    head = load_default_head()
    assert np.allclose(model.posed(0.0), model.v_template, atol=1e-9)
    opened = flame_to_blender(model.posed(0.3))
    rest = flame_to_blender(model.v_template)
    index = {int(h): i for i, h in enumerate(keep)}
    up, lo = index[head.landmarks["lip_upper_mid"]], index[head.landmarks["lip_lower_mid"]]
    assert np.linalg.norm(opened[up] - opened[lo]) > np.linalg.norm(rest[up] - rest[lo]) + 0.01
    assert opened[lo][2] < rest[lo][2] - 0.01                     # the lower lip goes down
    assert np.linalg.norm(opened[up] - rest[up]) < 0.002          # the upper lip stays


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Evals:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


def test_code_carrying_pickles_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    for payload in (_RunsCode(marker), {"v_template": _RunsCode(marker)}, _Evals()):
        data = pickle.dumps(payload, protocol=2)
        with pytest.raises(FlameError, match="not model data"):
            parse_flame(data, "evil.pkl")
    assert not marker.exists()
    # a real model with one poisoned entry is refused as a whole
    model, _ = synthetic_flame()
    model["weights"] = _RunsCode(marker)
    with pytest.raises(FlameError, match="not model data"):
        parse_flame(pickle.dumps(model, protocol=2), "evil.pkl")
    assert not marker.exists()


def test_other_classes_are_refused():
    import collections

    with pytest.raises(FlameError, match="collections.OrderedDict"):
        parse_flame(pickle.dumps(collections.OrderedDict(a=1)), "x.pkl")


@pytest.mark.parametrize("change, message", [
    ({"shapedirs": np.zeros((N_VERTS, 3, 50))}, "shapedirs"),
    ({"posedirs": np.zeros((N_VERTS, 3, 9))}, "posedirs"),
    ({"f": np.array([[0, 1, 99999]], np.uint32)}, "vertices that do not exist"),
    ({"kintree_table": np.zeros((2, 5), np.int64)}, "not a tree"),
])
def test_wrong_shapes_are_refused(tmp_path, change, message):
    path = tmp_path / "bad.pkl"
    write_synthetic_flame(path, **change)
    with pytest.raises(FlameError, match=message):
        load_flame(path)


def test_not_a_flame_file(tmp_path):
    with pytest.raises(FlameError, match="not a readable FLAME"):
        parse_flame(b"hello, I am a text file", "notes.pkl")
    with pytest.raises(FlameError, match="lacks"):
        parse_flame(pickle.dumps({"v_template": np.zeros((5, 3))}), "partial.pkl")
    with pytest.raises(FlameError, match="could not read"):
        load_flame(tmp_path / "missing.pkl")


def test_axes():
    p = np.array([[1.0, 2.0, 3.0]])
    assert np.allclose(flame_to_blender(to_flame_axes(p)), p)
