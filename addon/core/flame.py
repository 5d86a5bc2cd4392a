"""Read a user's FLAME model file (FLAME 2020/2023 ``.pkl``) safely, and make expression and jaw shapes from it.

The file is a Python pickle. It is read by a restricted unpickler that builds only numpy arrays, a stand-in for
scipy.sparse matrices (rebuilt densely here, without scipy, which Blender lacks) and a stand-in for chumpy arrays.
Any other class or function a pickle names is refused before it can run: a pickle that tries to run code fails.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FacePolicyError

try:  # numpy >= 2 moved the pickle helpers to numpy._core (numpy.core stays as a deprecated alias)
    from numpy._core import multiarray as _multiarray
except ImportError:
    from numpy.core import multiarray as _multiarray

N_SHAPE = 300           # FLAME 2020/2023: 300 identity components, then expression components
N_JOINTS = 5            # global, neck, jaw, left eye, right eye
JAW = 2


class FlameError(FacePolicyError):
    """The FLAME file cannot be used (unsafe, not a FLAME model, or wrong shapes)."""


class _SparseStandIn:
    """Holds a pickled scipy.sparse matrix's state; ``to_dense`` rebuilds it without scipy."""

    def __init__(self, *args, **kwargs):
        self.state: dict = {}

    def __setstate__(self, state):
        self.state = dict(state) if isinstance(state, dict) else {"args": state}

    def to_dense(self, fmt: str) -> np.ndarray:
        st = self.state
        shape = tuple(st.get("_shape") or st.get("shape") or ())
        if len(shape) != 2:
            raise FlameError("a sparse matrix in the FLAME file has no 2-D shape")
        out = np.zeros(shape, np.float64)
        if fmt == "coo":
            rows, cols = np.asarray(st["row"]), np.asarray(st["col"])
            np.add.at(out, (rows, cols), np.asarray(st["data"], np.float64))
            return out
        data, indices, indptr = (np.asarray(st[k]) for k in ("data", "indices", "indptr"))
        major = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        if fmt == "csc":
            np.add.at(out, (indices, major), data)
        else:
            np.add.at(out, (major, indices), data)
        return out


def _sparse_class(fmt: str):
    return type(f"{fmt}_matrix", (_SparseStandIn,), {"format": fmt})


class _ChumpyStandIn:
    """chumpy.Ch arrays: their value is the ndarray in the pickled state (``x``)."""

    def __init__(self, *args, **kwargs):
        self.state: dict = {}

    def __setstate__(self, state):
        self.state = dict(state) if isinstance(state, dict) else {}

    def to_array(self) -> np.ndarray:
        for key in ("x", "a", "r"):
            if isinstance(self.state.get(key), np.ndarray):
                return self.state[key]
        arrays = [v for v in self.state.values() if isinstance(v, np.ndarray)]
        if not arrays:
            raise FlameError("a chumpy array in the FLAME file holds no data")
        return max(arrays, key=lambda a: a.size)


def _reconstructor(cls, base, state):
    """copyreg._reconstructor restricted to the stand-ins above (scipy.sparse and chumpy pickle through it)."""
    if not (isinstance(cls, type) and issubclass(cls, _SparseStandIn | _ChumpyStandIn)) or base is not object:
        raise FlameError("the FLAME file asks to build an object that is not model data; it was not loaded")
    return cls()


_SPARSE = {f"scipy.sparse.{mod}": fmt for fmt in ("csc", "csr", "coo") for mod in (fmt, f"_{fmt}")}
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("copy_reg", "_reconstructor"): _reconstructor,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("__builtin__", "object"): object,
    ("builtins", "object"): object,
    ("__builtin__", "set"): set,         # chumpy keeps sets of names in its state
    ("builtins", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
    ("builtins", "frozenset"): frozenset,
    ("chumpy.ch", "Ch"): _ChumpyStandIn,
    ("chumpy.reordering", "Select"): _ChumpyStandIn,
}


def _encode_latin1(text, encoding="latin1"):
    """``_codecs.encode`` as numpy's protocol-2 pickles use it for raw bytes; only text → bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise FlameError("the FLAME file asks for an unexpected codec call; it was not loaded")
    return text.encode("latin1")


class _FlameUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module in _SPARSE and name == f"{_SPARSE[module]}_matrix":
            return _sparse_class(_SPARSE[module])
        if (module, name) == ("_codecs", "encode"):
            return _encode_latin1
        raise FlameError(f"the FLAME file asks for {module}.{name}, which is not model data; it was not loaded "
                         "(a model file holds only arrays; this one may be damaged or unsafe)")


def _as_array(value, name: str) -> np.ndarray:
    if isinstance(value, _ChumpyStandIn):
        return np.asarray(value.to_array())
    if isinstance(value, _SparseStandIn):
        return value.to_dense(getattr(value, "format", "csc"))
    if isinstance(value, np.ndarray):
        return value
    raise FlameError(f'"{name}" in the FLAME file is a {type(value).__name__}, not an array')


@dataclass(frozen=True)
class FlameModel:
    v_template: np.ndarray    # (N, 3) metres, FLAME axes (+Y up, facing +Z)
    shapedirs: np.ndarray     # (N, 3, S): identity components, then expression components
    posedirs: np.ndarray      # (N, 3, 36): pose correctives for joints 1..4
    j_regressor: np.ndarray   # (5, N) dense
    weights: np.ndarray       # (N, 5) skinning weights
    parents: np.ndarray       # (5,) parent joint index, -1 for the root
    faces: np.ndarray         # (F, 3) int32

    @property
    def num_expressions(self) -> int:
        return max(self.shapedirs.shape[2] - N_SHAPE, 0)

    def expression_deltas(self, n: int) -> np.ndarray:
        """(n, N, 3): the first n expression components at coefficient 1."""
        n = min(n, self.num_expressions)
        return np.transpose(self.shapedirs[:, :, N_SHAPE:N_SHAPE + n], (2, 0, 1)).astype(np.float32)

    def posed(self, jaw_angle: float) -> np.ndarray:
        """(N, 3) template with the jaw opened by ``jaw_angle`` radians: FLAME's linear blend skinning with its
        pose-corrective blend shapes."""
        joints = self.j_regressor @ self.v_template                                  # (5, 3)
        rots = np.repeat(np.eye(3)[None], N_JOINTS, axis=0)
        c, s = np.cos(jaw_angle), np.sin(jaw_angle)
        rots[JAW] = [[1, 0, 0], [0, c, -s], [0, s, c]]                               # about +X opens the mouth
        pose_feature = (rots[1:] - np.eye(3)).reshape(-1)                             # (36,)
        v = self.v_template + self.posedirs @ pose_feature
        world = np.zeros((N_JOINTS, 4, 4))
        for j in range(N_JOINTS):
            local = np.eye(4)
            local[:3, :3] = rots[j]
            p = self.parents[j]
            local[:3, 3] = joints[j] - (joints[p] if p >= 0 else 0.0)
            world[j] = local if p < 0 else world[p] @ local
        skin = world.copy()
        skin[:, :3, 3] -= np.einsum("jab,jb->ja", world[:, :3, :3], joints)           # remove the rest pose
        blended = np.einsum("nj,jab->nab", self.weights, skin)                          # (N, 4, 4)
        return np.einsum("nab,nb->na", blended[:, :3, :3], v) + blended[:, :3, 3]


_EXPECTED = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


def parse_flame(data: bytes, source: str = "FLAME file") -> FlameModel:
    try:
        raw = _FlameUnpickler(io.BytesIO(data), encoding="latin1").load()
    except FlameError as exc:
        raise FlameError(f'"{source}": {exc}') from None
    except Exception as exc:  # truncated or not a pickle at all
        raise FlameError(f'"{source}" is not a readable FLAME .pkl file ({type(exc).__name__}: {exc})') from None
    if not isinstance(raw, dict):
        raise FlameError(f'"{source}" is not a FLAME model (expected a dictionary of arrays)')
    missing = [k for k in _EXPECTED if k not in raw]
    if missing:
        raise FlameError(f'"{source}" is not a FLAME model: it lacks {", ".join(missing)}')
    arr = {k: _as_array(raw[k], k) for k in _EXPECTED}
    v = arr["v_template"].astype(np.float64)
    n = len(v)

    def need(cond, what):
        if not cond:
            raise FlameError(f'"{source}": {what}; this is not a FLAME 2020/2023 model')

    need(v.ndim == 2 and v.shape[1] == 3 and n > 3, f"v_template has shape {v.shape}, expected (N, 3)")
    sd, pd = arr["shapedirs"], arr["posedirs"]
    need(sd.ndim == 3 and sd.shape[:2] == (n, 3) and sd.shape[2] > N_SHAPE,
         f"shapedirs has shape {sd.shape}, expected ({n}, 3, {N_SHAPE} + expressions)")
    need(pd.ndim == 3 and pd.shape == (n, 3, 9 * (N_JOINTS - 1)),
         f"posedirs has shape {pd.shape}, expected ({n}, 3, 36)")
    jr, w, kt, f = arr["J_regressor"], arr["weights"], arr["kintree_table"], arr["f"]
    need(jr.shape == (N_JOINTS, n), f"J_regressor has shape {jr.shape}, expected ({N_JOINTS}, {n})")
    need(w.shape == (n, N_JOINTS), f"weights has shape {w.shape}, expected ({n}, {N_JOINTS})")
    need(kt.shape == (2, N_JOINTS), f"kintree_table has shape {kt.shape}, expected (2, {N_JOINTS})")
    need(f.ndim == 2 and f.shape[1] == 3 and len(f) > 0, f"f has shape {f.shape}, expected (F, 3)")
    need(int(f.min()) >= 0 and int(f.max()) < n, "f refers to vertices that do not exist")
    parents = kt[0].astype(np.int64)
    parents[parents > N_JOINTS] = -1  # FLAME stores the root's parent as a large unsigned number
    need(parents[0] < 0 and all(0 <= parents[j] < j for j in range(1, N_JOINTS)), "kintree_table is not a tree")
    return FlameModel(v, sd.astype(np.float64), pd.astype(np.float64), jr.astype(np.float64), w.astype(np.float64),
                      parents, f.astype(np.int32))


def load_flame(path) -> FlameModel:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FlameError(f'"{path.name}": could not read the file ({exc.strerror or exc})') from None
    return parse_flame(data, path.name)


def flame_to_blender(points: np.ndarray) -> np.ndarray:
    """FLAME axes (+Y up, facing +Z) → Blender's (+Z up, facing −Y), same units (metres)."""
    p = np.asarray(points)
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)
