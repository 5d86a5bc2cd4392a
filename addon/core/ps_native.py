"""pocketsphinx, loaded (``load_pocketsphinx``), and its C functions called over ctypes, which releases the GIL for each
call: decoders then run on several threads at once, and Blender's Python keeps running while one decodes. The Python
binding holds the GIL for a whole call. Where the functions are not exported (the Windows wheel exports only the
module's init function) the callers use the binding: the same C code, one call at a time.  Recognition
(core.recognition) and forced alignment (core.align) both decode through here.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

from .errors import FacePolicyError


class AlignerMissing(FacePolicyError):
    """pocketsphinx cannot be loaded (not installed, or a broken install)."""


def load_pocketsphinx():
    """The pocketsphinx module; AlignerMissing (one sentence) when it is not installed."""
    try:
        import pocketsphinx
    except ImportError as exc:
        raise AlignerMissing(f"pocketsphinx cannot be loaded (pip install pocketsphinx; importing it said: {exc})"
                             ) from None
    return pocketsphinx



_V = ctypes.c_void_p
_I32P = ctypes.POINTER(ctypes.c_int32)
_IP = ctypes.POINTER(ctypes.c_int)
RECOGNITION = {  # name: (result type, argument types)
    "ps_config_parse_json": (_V, [_V, ctypes.c_char_p]), "ps_config_free": (ctypes.c_int, [_V]),
    "ps_init": (_V, [_V]), "ps_free": (ctypes.c_int, [_V]), "ps_reinit_feat": (ctypes.c_int, [_V, _V]),
    "ps_start_utt": (ctypes.c_int, [_V]), "ps_end_utt": (ctypes.c_int, [_V]),
    "ps_process_raw": (ctypes.c_int, [_V, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int]),
    "ps_get_hyp": (ctypes.c_char_p, [_V, _I32P]), "ps_seg_iter": (_V, [_V]), "ps_seg_next": (_V, [_V]),
    "ps_seg_word": (ctypes.c_char_p, [_V]), "ps_seg_frames": (None, [_V, _IP, _IP]),
}
# What core.ptm_scores needs from a decoder: the front end's and feature computer's functions (the features of a
# chunk, as the decoder makes them), and its phone language model's lookups and transition matrices.
SCORING = {
    **RECOGNITION,
    "ps_get_fe": (_V, [_V]), "ps_get_feat": (_V, [_V]), "fe_start_utt": (ctypes.c_int, [_V]),
    "fe_process_frames": (ctypes.c_int, [_V, ctypes.POINTER(_V), ctypes.POINTER(ctypes.c_size_t), _V, _I32P]),
    "fe_end_utt": (ctypes.c_int, [_V, _V, _I32P]), "fe_get_output_size": (ctypes.c_int, [_V]),
    "feat_array_alloc": (_V, [_V, ctypes.c_int32]), "feat_array_free": (None, [_V]),
    "feat_s2mfc2feat_live": (ctypes.c_int32, [_V, _V, _I32P, ctypes.c_int32, ctypes.c_int32, _V]),
    # the phone loop's numbers as the decoder has them: its language model's lookups and transition matrices
    "ps_get_config": (_V, [_V]), "ps_get_logmath": (_V, [_V]),
    "ngram_model_read": (_V, [_V, ctypes.c_char_p, ctypes.c_int, _V]), "ngram_model_free": (ctypes.c_int, [_V]),
    "ngram_wid": (ctypes.c_int32, [_V, ctypes.c_char_p]), "ngram_unknown_wid": (ctypes.c_int32, [_V]),
    "ngram_tg_score": (ctypes.c_int32, [_V, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, _I32P]),
    "ngram_bg_score": (ctypes.c_int32, [_V, ctypes.c_int32, ctypes.c_int32, _I32P]),
    "tmat_init": (_V, [ctypes.c_char_p, _V, ctypes.c_double, ctypes.c_int32]), "tmat_free": (None, [_V]),
}
ALIGNMENT = {
    **RECOGNITION,
    "ps_lookup_word": (ctypes.c_char_p, [_V, ctypes.c_char_p]),
    "ps_add_word": (ctypes.c_int, [_V, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]),
    "ps_set_align_text": (ctypes.c_int, [_V, ctypes.c_char_p]), "ps_set_alignment": (ctypes.c_int, [_V, _V]),
    "ps_get_alignment": (_V, [_V]), "ps_alignment_words": (_V, [_V]),
    "ps_alignment_iter_name": (ctypes.c_char_p, [_V]), "ps_alignment_iter_seg": (ctypes.c_int, [_V, _IP, _IP]),
    "ps_alignment_iter_next": (_V, [_V]), "ps_alignment_iter_children": (_V, [_V]),
    "ps_alignment_iter_free": (ctypes.c_int, [_V]), "ps_activate_search": (ctypes.c_int, [_V, ctypes.c_char_p]),
}


@functools.cache
def native_library(functions: str = "recognition"):
    """pocketsphinx's extension module as a C library with the ``functions`` ("recognition", "scoring" or
    "alignment") typed, or None where one of them is not exported."""
    table = {"alignment": ALIGNMENT, "scoring": SCORING}.get(functions, RECOGNITION)
    try:
        from pocketsphinx import _pocketsphinx as extension

        lib = ctypes.CDLL(extension.__file__)
        for name, (restype, argtypes) in table.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
    except (ImportError, OSError, AttributeError):
        return None
    return lib


def can_score() -> bool:
    """Whether decoders here expose what core.ptm_scores needs (the front end's and the language model's
    functions)."""
    return native_library("scoring") is not None


class NativeDecoder:
    """One pocketsphinx decoder made from a settings JSON and driven through the C functions."""

    def __init__(self, lib, config_json: bytes):
        config = lib.ps_config_parse_json(None, config_json)
        if not config:
            raise OSError("pocketsphinx could not read the decoder settings")
        self._lib, self._ps = lib, lib.ps_init(config)
        lib.ps_config_free(config)  # the decoder keeps its own reference
        if not self._ps:
            raise OSError("pocketsphinx could not start a decoder")

    @property
    def handle(self) -> int:
        """The decoder's address (a ps_decoder_t*)."""
        return self._ps

    def feed(self, pcm: bytes) -> None:
        """Decode ``pcm`` as one utterance from a fresh front end (the module's ``feed`` rule)."""
        lib, ps = self._lib, self._ps
        lib.ps_reinit_feat(ps, None)
        lib.ps_start_utt(ps)
        try:
            if pcm:
                lib.ps_process_raw(ps, pcm, len(pcm) // 2, 0, 1)
        finally:
            lib.ps_end_utt(ps)

    def run(self, pcm: bytes) -> bool:
        """feed, then whether there is a hypothesis (not for the phones' pass of an alignment)."""
        self.feed(pcm)
        score = ctypes.c_int32()
        return self._lib.ps_get_hyp(self._ps, ctypes.byref(score)) is not None

    def features(self, pcm: bytes, width: int) -> np.ndarray:
        """(frames, ``width``) float32: the features the decoder computes for ``pcm`` as one utterance from a fresh
        front end (feed's rule), as it does for a whole utterance (cepstra, then their batch mean removed and the
        deltas); ``width``: floats per frame, all streams (39 for the bundled model). Needs
        native_library("scoring")."""
        lib, ps = self._lib, self._ps
        lib.ps_reinit_feat(ps, None)
        fe, fcb = lib.ps_get_fe(ps), lib.ps_get_feat(ps)
        lib.fe_start_utt(fe)  # as starting an utterance does
        n_samples = len(pcm) // 2
        left, frames = ctypes.c_size_t(n_samples), ctypes.c_int32(0)
        lib.fe_process_frames(fe, None, ctypes.byref(left), None, ctypes.byref(frames))  # how many frames
        cep = np.zeros((frames.value + 1, lib.fe_get_output_size(fe)), np.float32)
        rows = (_V * len(cep))(*(cep.ctypes.data + k * cep.strides[0] for k in range(len(cep))))
        speech = ctypes.create_string_buffer(pcm, len(pcm))
        cursor, left = _V(ctypes.addressof(speech)), ctypes.c_size_t(n_samples)
        lib.fe_start_utt(fe)
        lib.fe_process_frames(fe, ctypes.byref(cursor), ctypes.byref(left), ctypes.cast(rows, _V),
                              ctypes.byref(frames))
        tail = ctypes.c_int32(0)
        lib.fe_end_utt(fe, rows[frames.value], ctypes.byref(tail))
        count = frames.value + tail.value
        if count <= 0:
            return np.zeros((0, width), np.float32)
        feat = lib.feat_array_alloc(fcb, count)
        try:
            made = ctypes.c_int32(count)
            n = lib.feat_s2mfc2feat_live(fcb, ctypes.cast(rows, _V), ctypes.byref(made), 1, 1, feat)
            first = ctypes.cast(ctypes.cast(feat, ctypes.POINTER(_V))[0], ctypes.POINTER(_V))[0]  # one block
            return np.ctypeslib.as_array(ctypes.cast(first, ctypes.POINTER(ctypes.c_float)),
                                         shape=(n * width,)).reshape(n, width).copy()
        finally:
            lib.feat_array_free(feat)

    def segments(self) -> list[tuple[str, int, int]]:
        """(label, first frame, last frame) per segment of the last hypothesis."""
        lib = self._lib
        out = []
        first, last = ctypes.c_int(), ctypes.c_int()
        seg = lib.ps_seg_iter(self._ps)
        while seg:
            lib.ps_seg_frames(seg, ctypes.byref(first), ctypes.byref(last))
            out.append((lib.ps_seg_word(seg).decode(), first.value, last.value))
            seg = lib.ps_seg_next(seg)  # frees the iterator at the end
        return out

    def __del__(self):
        if getattr(self, "_ps", None):
            self._lib.ps_free(self._ps)
            self._ps = None


class NativeAligner(NativeDecoder):
    """A forced-alignment decoder (the words' pass, then the phones' pass) through the C functions."""

    def __init__(self, lib, config_json: bytes):
        super().__init__(lib, config_json)
        self.taught: set[str] = set()  # words given to this decoder's dictionary (core.align.Aligner)

    def lookup_word(self, word: str) -> str | None:
        """The dictionary's phones for ``word`` (as the Python binding's lookup_word), or None."""
        found = self._lib.ps_lookup_word(self._ps, word.encode())
        return found.decode() if found is not None else None

    def add_word(self, word: str, phones: str, update: bool = True) -> None:
        self._lib.ps_add_word(self._ps, word.encode(), phones.encode(), int(update))

    def align_words(self, pcm: bytes, words: str) -> list[tuple[str, int, int]] | None:
        """The words' pass: their segments, or None when the search found no path."""
        if self._lib.ps_set_align_text(self._ps, words.encode()) < 0:
            return None
        return self.segments() if self.run(pcm) else None

    def align_phones(self, pcm: bytes) -> list[tuple[str, int, int, list[tuple[str, int, int, int]]]] | None:
        """After align_words on the same ``pcm``: (word, start, duration, [(phone, start, duration, score)]) per
        word, or None when the phones could not be aligned."""
        lib, ps = self._lib, self._ps
        if lib.ps_set_alignment(ps, None) < 0:
            return None
        self.feed(pcm)
        alignment = lib.ps_get_alignment(ps)  # owned by the decoder
        if not alignment:
            return None
        start, duration = ctypes.c_int(), ctypes.c_int()
        out = []
        word = lib.ps_alignment_words(alignment)
        while word:
            lib.ps_alignment_iter_seg(word, ctypes.byref(start), ctypes.byref(duration))
            entry = (lib.ps_alignment_iter_name(word).decode(), start.value, duration.value, [])
            phone = lib.ps_alignment_iter_children(word)
            while phone:
                score = lib.ps_alignment_iter_seg(phone, ctypes.byref(start), ctypes.byref(duration))
                entry[3].append((lib.ps_alignment_iter_name(phone).decode(), start.value, duration.value, score))
                phone = lib.ps_alignment_iter_next(phone)  # frees the iterator at the end
            out.append(entry)
            word = lib.ps_alignment_iter_next(word)
        return out

    def recognise(self, pcm: bytes) -> list[tuple[str, int, int, list[tuple[str, int, int, int]]]] | None:
        """Word recognition of ``pcm`` with the decoder's language model, then the phones' pass over the words it
        heard: align_phones's entries, or None when it heard no words. The decoder is back on its language model
        after."""
        self.feed(pcm)
        hyp = self._lib.ps_get_hyp(self._ps, ctypes.byref(ctypes.c_int32()))
        if hyp is None or not hyp.strip():
            return None
        try:
            return self.align_phones(pcm)
        finally:
            self._lib.ps_activate_search(self._ps, None)


def feed(decoder, pcm: bytes) -> None:
    """Decode ``pcm`` as one utterance on a Python-binding ``decoder``, from a fresh front end.

    The front end carries its noise estimate and cepstral mean from one utterance to the next, so a line would come
    out differently depending on what was decoded before; resetting it makes every result a function of its own
    audio alone (batch idempotence and resumability rely on that). An utterance left open by a failure would make
    every later call on the decoder fail; empty audio is an utterance with nothing in it (process_raw cannot take
    zero bytes). NativeDecoder.feed does the same through the C functions."""
    decoder.reinit_feat()
    decoder.start_utt()
    try:
        if pcm:
            decoder.process_raw(pcm, no_search=False, full_utt=True)
    finally:
        decoder.end_utt()


class BindingAligner:
    """NativeAligner's interface over pocketsphinx's Python binding (which holds the GIL for each call): where the C
    functions are not exported, the same decoding one call at a time."""

    def __init__(self, decoder):
        self._d = decoder
        self.taught: set[str] = set()

    def lookup_word(self, word: str) -> str | None:
        return self._d.lookup_word(word)

    def add_word(self, word: str, phones: str, update: bool = True) -> None:
        self._d.add_word(word, phones, update)

    def feed(self, pcm: bytes) -> None:
        feed(self._d, pcm)

    def run(self, pcm: bytes) -> bool:
        self.feed(pcm)
        return self._d.hyp() is not None

    def align_words(self, pcm: bytes, words: str) -> list[tuple[str, int, int]] | None:
        try:
            self._d.set_align_text(words)
        except RuntimeError:
            return None
        return [(s.word, s.start_frame, s.end_frame) for s in self._d.seg()] if self.run(pcm) else None

    def align_phones(self, pcm: bytes) -> list[tuple[str, int, int, list[tuple[str, int, int, int]]]] | None:
        try:
            self._d.set_alignment()
        except RuntimeError:
            return None
        self.feed(pcm)
        alignment = self._d.get_alignment()
        if alignment is None:
            return None
        return [(w.name, w.start, w.duration, [(p.name, p.start, p.duration, p.score) for p in w]) for w in alignment]

    def recognise(self, pcm: bytes) -> list[tuple[str, int, int, list[tuple[str, int, int, int]]]] | None:
        """NativeAligner.recognise through the binding."""
        self.feed(pcm)
        hyp = self._d.hyp()
        if hyp is None or not hyp.hypstr.strip():
            return None
        try:
            return self.align_phones(pcm)
        finally:
            self._d.activate_search()
