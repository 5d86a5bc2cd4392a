"""pocketsphinx's all-phone recognition, its scoring and its search, run a whole chunk at a time in a small compiled
library (csrc/ptm_scores.cpp); the decoder makes only the chunk's features.

All-phone recognition (core.recognition) spent about 60 % of its time scoring Gaussians one at a time and most of the
rest in the search's language-model lookups. The phone loop of the bundled phonetically-tied en-us model uses only its
126 context-independent senones, so here every Gaussian of a frame is scored at once, with the decoder's own float
operations in its order, and the search runs over the scores as the decoder's does, its phone language model looked
up once per phone triple through the decoder's own functions (``phone_loop``). The scores are the decoder's own, bit
for bit, and so are the phones (tests/unit/core/test_ptm_scores.py; every clip of the evaluation sets), in about a
fifth of the time (bench/bench_recognition.py; docs/BENCHMARKS.md, issue 17).

Forced alignment (core.align) keeps pocketsphinx's own searches, which score only the context-dependent senones they
have alive and normalise each frame over those; ``hook_decoder`` puts the library's scoring step in the decoder's
place (fp_ptm_hook), keeping the same state in the decoder's own structures, so the scores are its own, bit for bit,
and so are the alignments (tests/unit/core/test_align_scores.py), in about a third of the time.

Where the library was not built for this platform, or the model is not the phonetically-tied one this reads, the
decoders run as before (``scorer()`` is None, hook_decoder False): the same phones, slower.
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
# search starts in silence, whose three-state model is the only one in play for its first three frames (Scorer.scores,
# which scores every frame as a search keeping every phone alive would).
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


def read_mdef(path: Path) -> tuple[dict[str, int], list[str], np.ndarray]:
    """A binary model definition's counts (n_ciphone, n_emit_state, n_ci_sen, n_sen, sil, ...) and its
    context-independent phones: their names and (phones, states) senone ids. Only those parts of the file are read."""
    with open(path, "rb") as fh:
        data = fh.read(4096)  # the counts and the phone names follow the format description (about 1 kB)
        if data[:4] != b"BMDF":  # the magic as this byte order writes it (b"FDMB": the other)
            raise ModelMismatch("not a little-endian binary model definition")
        i = 12 + int(np.frombuffer(data, "<i4", 1, 8)[0])  # after magic, version and the padded format description
        keys = ("n_ciphone", "n_phone", "n_emit_state", "n_ci_sen", "n_sen", "n_tmat", "n_sseq", "n_ctx", "n_cd_tree",
                "sil")
        header = dict(zip(keys, (int(v) for v in np.frombuffer(data, "<i4", len(keys), i)), strict=True))
        start = i + 4 * len(keys)  # the phone names
        names, i = [], start
        for _ in range(header["n_ciphone"]):
            end = data.index(b"\0", i)
            names.append(data[i:end].decode("ascii"))
            i = end + 1
        tree = start + ((i - start + 3) & ~3)  # the context tree, 8 bytes a node, then 12 bytes a phone
        phones = tree + 8 * header["n_cd_tree"]
        fh.seek(phones)
        entries = np.frombuffer(fh.read(12 * header["n_ciphone"]), "<i4").reshape(-1, 3)  # ssid, tmat, attributes
        n_state = header["n_emit_state"]
        sseq = phones + 12 * header["n_phone"] + 4  # after the phones and the sequences' size
        senid = np.empty((header["n_ciphone"], n_state), np.int32)
        for ci, (ssid, tmat, _) in enumerate(entries):
            if tmat != ci:
                raise ModelMismatch("a context-independent phone with another phone's transitions")
            fh.seek(sseq + 2 * n_state * int(ssid))
            senid[ci] = np.frombuffer(fh.read(2 * n_state), "<u2")
    if sorted(senid.ravel().tolist()) != list(range(header["n_ci_sen"])):
        raise ModelMismatch("context-independent phones whose senones are not the first ones")
    return header, names, senid


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
    names: list[str]  # the phones (codebooks) by index
    senid: np.ndarray  # (phones, 3) int32: each phone's senones


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
    mdef, names, senid = read_mdef(hmm / "mdef")
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
    sen2cb = np.empty(n_ci, np.int32)
    sen2cb[senid] = np.arange(len(senid))[:, None]  # a phone's senones use its codebook
    return PtmModel(np.ascontiguousarray(means.transpose(0, 1, 3, 2)),
                    np.ascontiguousarray(prec.transpose(0, 1, 3, 2)), np.ascontiguousarray(det),
                    np.ascontiguousarray(mixw[:, :, :n_ci]), sen2cb, log_add_table(base), mdef["n_sen"],
                    mdef["sil"], topn, base, names, np.ascontiguousarray(senid))


@dataclass
class PhoneLoop:
    """The all-phone search's numbers, the decoder's own: transitions, phone language model, beams."""

    tp: np.ndarray  # (phones, 3, 4) uint8: negated log transition probabilities in units of 2**10
    trigram: np.ndarray  # (phones, phones, phones) int32: the search's trigram lookups, >> 10
    bigram: np.ndarray  # (phones, phones) int32
    beam: int  # log units >> 10 (negative)
    pbeam: int


def log_units(p: float, base: float = 1.0001) -> int:
    """A probability as the decoder's beams hold it: (int)(log(p) * (1 / log(base))) >> 10."""
    return int(math.log(p) * (1.0 / math.log(base))) >> _SHIFT


def phone_loop(lib, ps, model: PtmModel, lm_path: str, hmm: str, beam: float, pbeam: float, tmatfloor: float,
               base: float = 1.0001) -> PhoneLoop:
    """The numbers of decoder ``ps``'s all-phone search (``lib``: core.ps_native.native_library("scoring")): its
    phone language model ``lm_path`` read as the decoder reads it (with its language weight and word insertion
    penalty), looked up for every phone triple through the decoder's own functions (fp_phone_lm_tables), and the
    transition matrices of ``hmm`` read by the decoder's own reader."""
    n = len(model.names)
    lm = lib.ngram_model_read(lib.ps_get_config(ps), lm_path.encode(), 0, lib.ps_get_logmath(ps))  # 0: any format
    if not lm:
        raise ModelMismatch("the phone language model could not be read")
    try:
        unknown = lib.ngram_unknown_wid(lm)
        sil = lib.ngram_wid(lm, model.names[model.sil].encode())
        if sil == unknown:
            raise ModelMismatch("the phone language model has no silence")
        wid = np.array([lib.ngram_wid(lm, name.encode()) for name in model.names], np.int32)
        wid[wid == unknown] = sil  # fillers and other phones it does not know: silence, as the decoder maps them
        trigram = np.empty((n, n, n), np.int32)
        bigram = np.empty((n, n), np.int32)
        # The decoder's own lookups, called from the library (74 088 of them take a few milliseconds there).
        ok = _library().fp_phone_lm_tables(ctypes.cast(lib.ngram_tg_score, _P).value,
                                           ctypes.cast(lib.ngram_bg_score, _P).value, lm, wid.ctypes.data, n,
                                           trigram.ctypes.data, bigram.ctypes.data)
        if ok != 0:
            raise ModelMismatch("the phone language model's scores could not be looked up")
    finally:
        lib.ngram_model_free(lm)
    lmath = lib.ps_get_logmath(ps)
    tmat = lib.tmat_init(str(Path(hmm) / "transition_matrices").encode(), lmath, tmatfloor, 0)
    if not tmat:
        raise ModelMismatch("the transition matrices could not be read")
    try:
        fields = ctypes.cast(tmat, ctypes.POINTER(_P))  # struct {uint8 ***tp; int16 n_tmat; int16 n_state;}
        counts = ctypes.cast(tmat + ctypes.sizeof(_P), ctypes.POINTER(ctypes.c_int16))
        n_tmat, n_state = counts[0], counts[1]
        if n_tmat < n or n_state != 3:
            raise ModelMismatch("transition matrices of another shape")
        rows = ctypes.cast(ctypes.cast(fields[0], ctypes.POINTER(_P))[0], ctypes.POINTER(_P))[0]  # one block
        tp = np.ctypeslib.as_array(ctypes.cast(rows, ctypes.POINTER(ctypes.c_uint8)),
                                   shape=(n_tmat * n_state * (n_state + 1),)).reshape(n_tmat, n_state, 4)[:n].copy()
    finally:
        lib.tmat_free(tmat)
    return PhoneLoop(np.ascontiguousarray(tp), trigram, bigram, log_units(beam, base), log_units(pbeam, base))


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
    try:
        search, tables = lib.fp_allphone, lib.fp_phone_lm_tables
    except AttributeError:
        return None
    search.restype = _I
    search.argtypes = [_P, _I, _P, _P, _P, _P, _P, _P, _I, _I, _I, _I, _I, _I, _P, _P, _P, _P, _I, ctypes.c_int32,
                       ctypes.c_int32, _P, _P, _I]
    tables.restype = _I
    tables.argtypes = [_P, _P, _P, _P, _I, _P, _P]
    try:
        hook = lib.fp_ptm_hook
    except AttributeError:
        return None
    hook.restype = _I
    hook.argtypes = [_P, _P, _P, _P, _I, _I, _I, _I]
    return lib


class Scorer:
    """The model's CI senone scores and all-phone recognition for the decoder's features (one Scorer, any number of
    threads: each call keeps its own state)."""

    def __init__(self, model: PtmModel, lib):
        self.model, self._lib = model, lib
        self.width = model.mean_t.shape[1] * model.mean_t.shape[2]  # floats per feature frame, all streams

    def _fresh_kept(self) -> np.ndarray:
        """Each codebook's best densities as a fresh decoder starts them: (codebooks, streams, topn, 2) int32."""
        n_mgau, n_feat = self.model.mean_t.shape[:2]
        kept = np.empty((n_mgau, n_feat, self.model.topn, 2), np.int32)
        kept[..., 0] = np.arange(self.model.topn)
        kept[..., 1] = np.iinfo(np.int32).min
        return kept

    def hook(self, ps: int) -> bool:
        """Whether decoder ``ps`` (a ps_decoder_t address) now scores its senones through the library: its model is
        this Scorer's, number for number (fp_ptm_hook checks), or it is left as it was."""
        m = self.model
        return self._lib.fp_ptm_hook(ps, m.mean_t.ctypes.data, m.prec_t.ctypes.data, m.det.ctypes.data,
                                     *m.mean_t.shape) == 0

    def scores(self, features: np.ndarray) -> np.ndarray:
        """(frames, CI senones) int32 scores of (frames, dimensions) float32 ``features``."""
        m = self.model
        feat = np.ascontiguousarray(features, np.float32)
        n_mgau, n_feat, veclen, n_density = m.mean_t.shape
        if feat.ndim != 2 or feat.shape[1] != n_feat * veclen:
            raise ValueError(f"features of {feat.shape}, not (frames, {n_feat * veclen})")
        kept = self._fresh_kept()
        out = np.empty((len(feat), m.sen2cb.size), np.int32)
        if len(feat):
            ok = self._lib.fp_ptm_senones(feat.ctypes.data, len(feat), m.mean_t.ctypes.data, m.prec_t.ctypes.data,
                                          m.det.ctypes.data, m.mixw.ctypes.data, m.sen2cb.ctypes.data,
                                          m.table.ctypes.data, n_mgau, n_feat, veclen, n_density, m.sen2cb.size,
                                          m.topn, _FIRST_FRAMES, m.sil, kept.ctypes.data, out.ctypes.data)
            if ok != 0:
                raise ModelMismatch("the scorer refused the model's sizes")
        return out

    def recognise(self, features: np.ndarray, loop: PhoneLoop,
                  room: int | None = None) -> list[tuple[str, int, int]] | None:
        """All-phone recognition of (frames, dimensions) float32 ``features`` as the decoder's search does it over
        these scores: (phone, first frame, last frame) per segment, or None when no path ended (the decoder has
        no hypothesis then). ``room``: segments to allow for at first (default: one per two frames; more are made
        room for)."""
        m = self.model
        feat = np.ascontiguousarray(features, np.float32)
        n_mgau, n_feat, veclen, n_density = m.mean_t.shape
        if feat.ndim != 2 or feat.shape[1] != n_feat * veclen:
            raise ValueError(f"features of {feat.shape}, not (frames, {n_feat * veclen})")
        room = room or max(64, len(feat) // 2)
        while True:
            kept = self._fresh_kept()
            segments = np.zeros((room, 3), np.int32)
            count = self._lib.fp_allphone(feat.ctypes.data, len(feat), m.mean_t.ctypes.data, m.prec_t.ctypes.data,
                                          m.det.ctypes.data, m.mixw.ctypes.data, m.sen2cb.ctypes.data,
                                          m.table.ctypes.data, n_mgau, n_feat, veclen, n_density, m.sen2cb.size,
                                          m.topn, m.senid.ctypes.data, loop.tp.ctypes.data, loop.trigram.ctypes.data,
                                          loop.bigram.ctypes.data, m.sil, loop.beam, loop.pbeam, kept.ctypes.data,
                                          segments.ctypes.data, room)
            if count != -2:
                break
            room = int(segments[0, 0])  # more segments than frames/2: room for all of them
        if count < 0:
            raise ModelMismatch("the search refused the model's sizes")
        if count == 0:
            return None
        return [(m.names[p], int(a), int(b)) for p, a, b in segments[:count]]


_lock = threading.Lock()

# The pocketsphinx whose scoring and search the library reproduces (checked on 5.1.1; its model files, front end and
# search are the same throughout 5.x). Another major version may score or search differently: it runs itself.
VERIFIED_MAJOR = "5"


# The pocketsphinx releases whose structures fp_ptm_hook reads (the decoder's first fields, its acoustic model's, the
# phonetically-tied model's, its Gaussians' and log tables'): unchanged from 5.0.0 to 5.1.1 in pocketsphinx's history,
# checked on 5.1.1. A later release may lay them out otherwise: its decoders score themselves.
HOOK_VERIFIED = ("5.0", "5.1")


@functools.cache
def _pocketsphinx_version() -> str:  # read once: importlib.metadata parses the installed files
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pocketsphinx")
    except PackageNotFoundError:
        return ""


def pocketsphinx_verified() -> bool:
    """Whether the installed pocketsphinx is of the major version the library reproduces."""
    return _pocketsphinx_version().split(".")[0] == VERIFIED_MAJOR


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
    (the decoder then runs as before)."""
    if ds != 1 or not hmm or not pocketsphinx_verified():
        return None
    with _lock:
        return _scorer_for(str(hmm), int(topn), float(varfloor), float(base))


def hook_decoder(ps: int, config) -> bool:
    """Whether pocketsphinx decoder ``ps`` (its ps_decoder_t address, a native decoder's) now scores its senones
    through the library (fp_ptm_hook: the decoder's own searches over the same scores, each frame's Gaussians
    scored at once): only for the model and settings ``config`` (the decoder's pocketsphinx Config) names when the
    library reproduces them and the decoder's own Gaussians equal the library's copy; otherwise it is left as it was.
    Forced alignment (core.align) uses it."""
    if config["ds"] != 1 or ".".join(_pocketsphinx_version().split(".")[:2]) not in HOOK_VERIFIED:
        return False
    found = scorer(config["hmm"], config["topn"], config["varfloor"], config["logbase"], config["ds"])
    return found is not None and found.hook(ps)
