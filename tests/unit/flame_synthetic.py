"""Write a synthetic FLAME model file with the real format: the same keys, dtypes and shapes as FLAME 2020
(v_template 5023×3, shapedirs 5023×3×400 as a chumpy array, posedirs 5023×3×36, J_regressor a scipy CSC matrix,
weights 5023×5, kintree_table 2×5 with the root's parent 2³²−1, f uint32).

Its template is the default head's 5023 front-most vertices in FLAME axes (+Y up, facing +Z), its expression
components are the principal directions of the head's ARKit deltas, and its jaw skinning weights follow the
head's jawOpen drop, so the jaw joint opens the mouth. The identity components are small noise.
"""

from __future__ import annotations

import functools
import pickle
import sys
import types

import numpy as np
import scipy.sparse

from facepolicy.core.head import load_default_head

N_VERTS = 5023


def _fake_chumpy():
    """A module named chumpy.ch with a class Ch, so the pickle names chumpy exactly as real FLAME files do."""
    if "chumpy.ch" not in sys.modules:
        pkg = types.ModuleType("chumpy")
        mod = types.ModuleType("chumpy.ch")

        class Ch:
            def __init__(self, x):
                self.x = x
                self._dirty_vars = set()

        Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
        mod.Ch = Ch
        pkg.ch = mod
        sys.modules["chumpy"], sys.modules["chumpy.ch"] = pkg, mod
    return sys.modules["chumpy.ch"].Ch


def to_flame_axes(p):
    p = np.asarray(p)
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


def synthetic_flame() -> tuple[dict, np.ndarray]:
    """(the model dict as FLAME stores it, the head vertex index of each FLAME vertex); a fresh dict each call."""
    model, keep = _synthetic_flame()
    return dict(model), keep


@functools.cache
def _synthetic_flame(seed: int = 0) -> tuple[dict, np.ndarray]:
    rng = np.random.default_rng(seed)
    head = load_default_head()
    keep = np.sort(np.argsort(head.vertices[:, 1], kind="stable")[:N_VERTS])  # the front-most 5023 vertices
    remap = -np.ones(head.num_vertices, np.int64)
    remap[keep] = np.arange(N_VERTS)
    tris = remap[head.faces]
    tris = tris[(tris >= 0).all(axis=1)]
    v = to_flame_axes(head.vertices[keep]).astype(np.float64)

    arkit = to_flame_axes(head.deltas[:, keep]).reshape(52, -1).astype(np.float64)  # (52, 3N)
    _, sing, vt = np.linalg.svd(arkit, full_matrices=False)
    expr = np.zeros((100, N_VERTS * 3))
    expr[:52] = vt * (sing[:, None] / 2.0)            # coefficient ±2 spans the ARKit range
    expr[52:] = rng.normal(scale=1e-5, size=(48, N_VERTS * 3))
    ident = rng.normal(scale=1e-4, size=(300, N_VERTS * 3))
    shapedirs = np.concatenate([ident, expr]).T.reshape(N_VERTS, 3, 400)

    pivots = {k: to_flame_axes(head.pivots[k]) for k in ("neck", "head", "jaw", "eye_left", "eye_right")}
    regressor = np.zeros((5, N_VERTS))
    for j, name in enumerate(("neck", "head", "jaw", "eye_left", "eye_right")):
        near = np.argsort(np.linalg.norm(v - pivots[name], axis=1))[:6]
        w = 1.0 / (np.linalg.norm(v[near] - pivots[name], axis=1) + 1e-4)
        regressor[j, near] = w / w.sum()
    # The regressed joints are close to the pivots (a blend of nearby vertices), as in FLAME.
    # jaw skinning weight: how far the vertex drops under the head's jawOpen (the lower lip, chin, teeth)
    drop = -head.delta("jawOpen")[keep, 2]
    jaw_w = np.clip(drop / (0.6 * drop.max()), 0.0, 1.0)
    weights = np.zeros((N_VERTS, 5))
    weights[:, 1], weights[:, 2] = 1.0 - jaw_w, jaw_w
    for j, group in ((3, "eyeball_left"), (4, "eyeball_right")):
        ids = remap[head.vertex_groups[group]]
        weights[ids[ids >= 0]] = np.eye(5)[j]

    ch = _fake_chumpy()
    model = {
        "v_template": v,
        "shapedirs": ch(shapedirs),
        "posedirs": rng.normal(scale=1e-5, size=(N_VERTS, 3, 36)),
        "J_regressor": scipy.sparse.csc_matrix(regressor),
        "weights": weights,
        "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
        "f": tris.astype(np.uint32),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    return model, keep


def write_synthetic_flame(path, protocol: int = 2, **changes) -> np.ndarray:
    """Write the synthetic model (with ``changes`` applied to its dict); returns the kept head vertex indices."""
    model, keep = synthetic_flame()
    model.update(changes)
    with open(path, "wb") as fh:
        pickle.dump(model, fh, protocol=protocol)
    return keep
