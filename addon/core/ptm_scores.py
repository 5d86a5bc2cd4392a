"""pocketsphinx's acoustic scores for all-phone recognition, computed a whole chunk at a time (csrc/ptm_scores.cpp).

All-phone recognition (core.recognition) spent about 60 % of its time scoring Gaussians: pocketsphinx scores the
bundled phonetically-tied en-us model one Gaussian at a time. The phone loop uses only the 126 context-independent
senones, so here every Gaussian of a frame is scored at once in a small compiled library, with the decoder's own float
operations in its order, and the scores are handed back to the same decoder's search as a senone-score file
(ps_decode_senscr): the phones are the decoder's own, bit for bit, in about half the time
(tests/unit/core/test_ptm_scores.py; bench/bench_recognition.py; docs/BENCHMARKS.md, issue 17).

Where the library was not built for this platform, or the model is not the phonetically-tied one this reads, the
decoders score as before (``scorer()`` is None): the same phones, slower.
"""

from __future__ import annotations

import ctypes
import functools
import math
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LIB_DIR = Path(__file__).resolve().parent / "lib"
SOURCE = Path(__file__).resolve().parent / "csrc" / "ptm_scores.cpp"
if sys.platform == "win32":
    LIBRARY = "fpptm.dll"
elif sys.platform == "darwin":
    LIBRARY = "libfpptm.dylib"
else:
    LIBRARY = "libfpptm.so"

# The decoder's fixed points (pocketsphinx 5): scores shift by 10 bits into int16 senone scores; a phone-loop
# search starts in silence, whose three-state model is the only one in play for its first three frames.
_SHIFT = 10
_FIRST_FRAMES = 3
_BYTE_ORDER = 0x11223344  # the s3 files' byte-order mark


class ModelMismatch(ValueError):
    """The acoustic model is not one this module reads (scores fall back to the decoder's own)."""


def _s3_body(data: bytes) -> int:
    """Offset of an s3 file's body: after its text header and byte-order mark (little-endian only)."""
    end = data.find(b"endhdr\n")
    if not data.startswith(b"s3\n") or end < 0:
        raise ModelMismatch("not an s3 parameter file")
    end += len(b"endhdr\n")
    if int(np.frombuffer(data, "<u4", 1, end)[0]) != _BYTE_ORDER:
        raise ModelMismatch("a big-endian parameter file")
    return end + 4


def read_gaussians(path: Path) -> np.ndarray:
    """A means or variances file: (codebooks, streams, densities, dimensions) float32."""
    data = path.read_bytes()
    i = _s3_body(data)
    n_mgau, n_feat, n_density = (int(v) for v in np.frombuffer(data, "<i4", 3, i))
    veclen = np.frombuffer(data, "<i4", n_feat, i + 12)
    if len(set(veclen.tolist())) != 1:
        raise ModelMismatch("feature streams of different lengths")
    i += 12 + 4 * n_feat
    total = int(np.frombuffer(data, "<i4", 1, i)[0])
    if total != n_mgau * n_feat * n_density * int(veclen[0]):
        raise ModelMismatch(f"{path.name}: sizes do not match")
    return np.frombuffer(data, "<f4", total, i + 4).reshape(n_mgau, n_feat, n_density, int(veclen[0]))


def read_mixture_weights(path: Path, n_feat: int, n_density: int) -> np.ndarray:
    """A sendump file (8-bit, unclustered): (streams, densities, senones) uint8 negated log weights."""
    data = path.read_bytes()
    i = 0
    fields = {}
    for _ in range(2):  # title, header
        n = int(np.frombuffer(data, "<i4", 1, i)[0])
        i += 4 + n
    while True:
        n = int(np.frombuffer(data, "<i4", 1, i)[0])
        i += 4
        if n == 0:
            break
        key, _, value = data[i : i + n].rstrip(b"\0").decode("ascii", "replace").partition(" ")
        fields[key] = value
        i += n
    if int(fields.get("cluster_count", "0")) != 0:
        raise ModelMismatch("clustered mixture weights")
    rows, cols = (int(v) for v in np.frombuffer(data, "<i4", 2, i))
    if rows != n_density:
        raise ModelMismatch("mixture weights of another codebook size")
    return np.frombuffer(data, "u1", n_feat * rows * cols, i + 8).reshape(n_feat, rows, cols)


def read_mdef_header(path: Path) -> dict[str, int]:
    """The binary model definition's counts (n_ciphone, n_emit_state, n_ci_sen, n_sen, sil)."""
    with open(path, "rb") as fh:
        data = fh.read(4096)  # the counts follow the format description (about 1 kB); the tables are not read
    if data[:4] != b"BMDF":  # the magic as this byte order writes it (b"FDMB": the other)
        raise ModelMismatch("not a little-endian binary model definition")
    i = 12 + int(np.frombuffer(data, "<i4", 1, 8)[0])  # after magic, version and the padded format description
    names = ("n_ciphone", "n_phone", "n_emit_state", "n_ci_sen", "n_sen", "n_tmat", "n_sseq", "n_ctx", "n_cd_tree",
             "sil")
    return dict(zip(names, (int(v) for v in np.frombuffer(data, "<i4", len(names), i)), strict=True))


def log_add_table(base: float, shift: int = _SHIFT) -> np.ndarray:
    """The decoder's 8-bit log-add table for scores in units of 2**shift of log ``base``: entry d is
    log_base(1 + base**-d) rounded to those units, the first value each index gets."""
    inv = 1.0 / math.log(base)
    table = np.zeros(256, np.uint8)
    seen = np.zeros(256, bool)
    byx, i = 1.0, 0
    while True:
        k = int(math.log(1.0 + byx) * inv + 0.5 * (1 << shift)) >> shift
        j = i >> shift
        if j < 256 and not seen[j]:
            table[j], seen[j] = k, True
        if k <= 0:
            return table
        byx /= base
        i += 1


@dataclass
class PtmModel:
    """A phonetically-tied model's Gaussians as the decoder precomputes them, and its CI senones' weights."""

    mean_t: np.ndarray  # (codebooks, streams, dimensions, densities) float32
    prec_t: np.ndarray  # the same layout: 1 / (2 var) in log units, truncated as the decoder does
    det: np.ndarray  # (codebooks, streams, densities) float32
    mixw: np.ndarray  # (streams, densities, CI senones) uint8
    sen2cb: np.ndarray  # (CI senones,) int32
    table: np.ndarray  # (256,) uint8
    n_sen: int  # all senones of the model (the score file's header)
    sil: int  # the silence phone's codebook
    topn: int
    base: float  # the log base of the scores


def load_model(hmm: Path, topn: int = 4, varfloor: float = 1e-4, base: float = 1.0001) -> PtmModel:
    """The model folder ``hmm`` (means, variances, sendump, mdef, feat.params) as the decoder computes with it."""
    hmm = Path(hmm)
    params = (hmm / "feat.params").read_text().split() if (hmm / "feat.params").exists() else []
    settings = dict(zip(params[::2], params[1::2], strict=False))
    if settings.get("-model", "ptm") != "ptm" or settings.get("-feat", "1s_c_d_dd") != "1s_c_d_dd":
        raise ModelMismatch("not a phonetically-tied 1s_c_d_dd model")
    means = read_gaussians(hmm / "means")
    var = read_gaussians(hmm / "variances").copy()
    if means.shape != var.shape:
        raise ModelMismatch("means and variances differ in shape")
    n_mgau, n_feat, n_density, veclen = means.shape
    spec = settings.get("-svspec")
    expected = "/".join(f"{k * veclen}-{(k + 1) * veclen - 1}" for k in range(n_feat))
    if n_feat > 1 and spec != expected:
        raise ModelMismatch(f"feature streams {spec!r}, not {expected!r}")
    mdef = read_mdef_header(hmm / "mdef")
    if mdef["n_ciphone"] != n_mgau or mdef["n_emit_state"] != 3 or mdef["n_ci_sen"] != 3 * n_mgau:
        raise ModelMismatch("not one codebook per phone with three states each")
    if not (0 < topn <= n_density <= 256 and n_feat <= 8):
        raise ModelMismatch("sizes the scorer does not handle")
    mixw = read_mixture_weights(hmm / "sendump", n_feat, n_density)
    var[var < np.float32(varfloor)] = np.float32(varfloor)
    v = var.astype(np.float64)
    inv = 1.0 / math.log(base)
    # The decoder's integers: (int)(log(x) / log(base)) per dimension, summed in float32 (exact: small integers).
    det = np.trunc(np.log(1.0 / np.sqrt(v * 2.0 * math.pi)) * inv).sum(axis=-1).astype(np.float32)
    prec = np.trunc((1.0 / (v * 2.0)) * inv).astype(np.float32)
    n_ci = mdef["n_ci_sen"]
    return PtmModel(np.ascontiguousarray(means.transpose(0, 1, 3, 2)),
                    np.ascontiguousarray(prec.transpose(0, 1, 3, 2)), np.ascontiguousarray(det),
                    np.ascontiguousarray(mixw[:, :, :n_ci]), (np.arange(n_ci) // 3).astype(np.int32),
                    log_add_table(base), mdef["n_sen"], mdef["sil"], topn, base)


_P = ctypes.c_void_p
_I = ctypes.c_int


@functools.cache
def _library(path: Path = LIB_DIR / LIBRARY):
    try:
        lib = ctypes.CDLL(str(path))
        fn = lib.fp_ptm_senones
    except (OSError, AttributeError):
        return None
    fn.restype = _I
    fn.argtypes = [_P, _I, _P, _P, _P, _P, _P, _P, _I, _I, _I, _I, _I, _I, _I, _I, _P, _P]
    return lib


class Scorer:
    """Senone-score files of the model's CI senones for the decoder's features (one Scorer, any number of threads:
    each call keeps its own state)."""

    def __init__(self, model: PtmModel, lib):
        self.model, self._lib = model, lib
        n_ci = model.sen2cb.size
        self.width = model.mean_t.shape[1] * model.mean_t.shape[2]  # floats per feature frame, all streams
        self._header = (f"s3\nversion 0.1\nn_sen {model.n_sen}\nlogbase {model.base:f}\nendhdr\n".encode()
                        + np.array([_BYTE_ORDER], "<u4").tobytes())
        first = np.flatnonzero(model.sen2cb == model.sil)
        self._first = self._frame_layout(first, n_ci)
        self._rest = self._frame_layout(np.arange(n_ci), n_ci)

    @staticmethod
    def _frame_layout(ids: np.ndarray, n_ci: int):
        """A frame record's dtype and its constant part for the senones ``ids`` in play: (count, deltas, scores)."""
        dtype = np.dtype([("n", "<i2"), ("delta", "u1", len(ids)), ("score", "<i2", len(ids))])
        return dtype, ids, np.diff(np.concatenate([[0], ids])).astype(np.uint8)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """(frames, CI senones) int32 scores of (frames, dimensions) float32 ``features``."""
        m = self.model
        feat = np.ascontiguousarray(features, np.float32)
        n_mgau, n_feat, veclen, n_density = m.mean_t.shape
        if feat.ndim != 2 or feat.shape[1] != n_feat * veclen:
            raise ValueError(f"features of {feat.shape}, not (frames, {n_feat * veclen})")
        kept = np.empty((n_mgau, n_feat, m.topn, 2), np.int32)
        kept[..., 0] = np.arange(m.topn)  # a fresh decoder's start
        kept[..., 1] = np.iinfo(np.int32).min
        out = np.empty((len(feat), m.sen2cb.size), np.int32)
        if len(feat):
            ok = self._lib.fp_ptm_senones(feat.ctypes.data, len(feat), m.mean_t.ctypes.data, m.prec_t.ctypes.data,
                                          m.det.ctypes.data, m.mixw.ctypes.data, m.sen2cb.ctypes.data,
                                          m.table.ctypes.data, n_mgau, n_feat, veclen, n_density, m.sen2cb.size,
                                          m.topn, _FIRST_FRAMES, m.sil, kept.ctypes.data, out.ctypes.data)
            if ok != 0:
                raise ModelMismatch("the scorer refused the model's sizes")
        return out

    def senone_file(self, features: np.ndarray) -> bytes:
        """The decoder's senone-score file (acmod's format: each frame's count, the senones in play as deltas and
        their int16 scores) for ``features``."""
        scores = self.scores(features)
        parts = [self._header]
        for (dtype, ids, delta), rows in ((self._first, scores[:_FIRST_FRAMES]), (self._rest, scores[_FIRST_FRAMES:])):
            if not len(rows):
                continue
            block = np.empty(len(rows), dtype)
            block["n"], block["delta"] = len(ids), delta
            block["score"] = rows[:, ids]  # each frame's best is 0, the worst well inside int16
            parts.append(block.tobytes())
        return b"".join(parts)


_lock = threading.Lock()


@functools.cache
def _scorer_for(hmm: str, topn: int, varfloor: float, base: float) -> Scorer | None:
    lib = _library()
    if lib is None:
        return None
    try:
        return Scorer(load_model(Path(hmm), topn, varfloor, base), lib)
    except (OSError, ValueError):
        return None


def scorer(hmm: str, topn: int = 4, varfloor: float = 1e-4, base: float = 1.0001, ds: int = 1) -> Scorer | None:
    """The Scorer for the decoder settings given (its model folder ``hmm``, top-N, variance floor, log base and
    frame downsampling), or None where the library is missing or the model or settings are not ones it reproduces
    (the decoder then scores as before)."""
    if ds != 1 or not hmm:
        return None
    with _lock:
        return _scorer_for(str(hmm), int(topn), float(varfloor), float(base))
