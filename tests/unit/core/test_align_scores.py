"""Forced alignment with the senones scored in core.ptm_scores's library (hook_decoder): pocketsphinx's own
searches over its own scores, so its own alignments, and a decoder whose model the library does not hold is left
as it was."""

from pathlib import Path

import numpy as np
import pytest

from facepolicy.core import ptm_scores
from facepolicy.core.align import ALIGN_SETTINGS, MAX_CHUNK, Aligner
from facepolicy.core.audio import load_audio
from facepolicy.core.ps_native import NativeAligner, load_pocketsphinx, native_library

pytest.importorskip("pocketsphinx", reason="alignment needs pocketsphinx (pip install pocketsphinx)")

ROOT = Path(__file__).resolve().parents[3]
LINES = [*sorted((ROOT / "tests" / "data" / "arctic").glob("*.wav")), ROOT / "assets" / "audio" / "demo" /
         "dashwood.wav"]


@pytest.fixture(scope="module")
def aligners():
    from facepolicy.preview import build

    build.ensure_scorer_library()  # `bash run.sh test` builds it; a fresh checkout builds it here
    if native_library("alignment") is None:
        pytest.skip("this pocketsphinx exports no C functions: alignment runs in its Python binding")
    own, plain = Aligner(), Aligner(own_scores=False)
    assert own.scored_here, "the phone library was built but alignment does not score through it"
    assert not plain.scored_here
    return own, plain


def _line(wav: Path) -> tuple[np.ndarray, str]:
    return load_audio(wav).samples, wav.with_suffix(".txt").read_text(encoding="utf-8").strip()


def test_every_score_is_the_decoders_own_bit_for_bit(aligners, tmp_path):
    """pocketsphinx writes the senone scores its searches used (senlogdir) in both passes; a decoder scoring through
    the library writes the same files, byte for byte, on every line."""
    ps = load_pocketsphinx()
    lib = native_library("alignment")
    decoders = {}
    for name in ("own", "plain"):
        (tmp_path / name).mkdir()
        config = ps.Config(**ALIGN_SETTINGS, senlogdir=str(tmp_path / name))
        decoders[name] = NativeAligner(lib, config.dumps().encode())
        if name == "own":
            assert ptm_scores.hook_decoder(decoders[name].handle, config)
    helper = Aligner(own_scores=False)
    for wav in LINES:
        samples, text = _line(wav)
        keys = [key for key, _ in helper._english_words(text)[0]]
        for d in decoders.values():
            helper._align_chunk(samples, keys, 0.0, d=d)
    own, plain = sorted((tmp_path / "own").glob("*.sen")), sorted((tmp_path / "plain").glob("*.sen"))
    assert len(own) == len(plain) == 2 * len(LINES)  # the words' pass and the phones' pass of each line
    for a, b in zip(own, plain, strict=True):
        assert a.stat().st_size > 10_000 and a.read_bytes() == b.read_bytes(), a.name


def _same(own: Aligner, plain: Aligner, samples: np.ndarray, text: str, language: str = "en") -> None:
    a = own.align(samples, text, language=language)
    b = plain.align(samples, text, language=language)
    assert a.phones and [(p.phone, p.start, p.end) for p in a.phones] == [(p.phone, p.start, p.end)
                                                                          for p in b.phones]
    assert a.words == b.words and a.confidence == b.confidence


@pytest.mark.parametrize("wav", LINES, ids=lambda p: p.stem)
def test_alignments_are_the_decoders_own(aligners, wav):
    _same(*aligners, *_line(wav))


def test_a_long_line_aligned_in_parallel_chunks_is_the_decoders_own(aligners):
    """Over MAX_CHUNK: split at pauses and aligned on several decoders at once (each scoring through the library)."""
    parts, texts = [], []
    while sum(len(p) for p in parts) < 1.5 * MAX_CHUNK * 16000:
        for wav in LINES:
            samples, text = _line(wav)
            parts += [samples, np.zeros(8000, np.float32)]
            texts.append(text)
    _same(*aligners, np.concatenate(parts), " ".join(texts))


def test_words_of_another_language_are_aligned_as_the_decoder_does(aligners):
    """A line aligned with another language's letter-to-sound rules (a dictionary of words added at run time)."""
    samples, _ = _line(LINES[-1])
    _same(*aligners, samples, "Ceci est une phrase en français, lue par une voix anglaise.", "fr")


def test_a_decoder_whose_model_differs_is_left_as_it_was(aligners):
    ps = load_pocketsphinx()
    config = ps.Config(lm=None, loglevel="FATAL", bestpath=False)
    found = ptm_scores.scorer(config["hmm"], config["topn"], config["varfloor"], config["logbase"])
    m = found.model
    other = m.mean_t.copy()
    other[3, 0, 5, 7] += np.float32(0.5)  # one mean of another model
    decoder = NativeAligner(native_library("alignment"), config.dumps().encode())
    sizes = (*m.mean_t.shape,)
    assert found._lib.fp_ptm_hook(decoder.handle, other.ctypes.data, m.prec_t.ctypes.data, m.det.ctypes.data,
                                  *sizes) == -3
    assert found._lib.fp_ptm_hook(decoder.handle, m.mean_t.ctypes.data, m.prec_t.ctypes.data, m.det.ctypes.data,
                                  sizes[0] - 1, *sizes[1:]) == -3
    config["ds"] = 2  # frame downsampling: scores the library does not make
    assert not ptm_scores.hook_decoder(decoder.handle, config)


def test_word_recognition_scored_here_hears_what_the_decoder_hears(aligners):
    """The Phonetic engine's accurate mode: word recognition, then the phones' pass over the words heard."""
    own, plain = aligners
    samples, _ = _line(LINES[-1])
    a, b = own.recognise_words(samples), plain.recognise_words(samples)
    assert a.words and a.words == b.words
    assert [(p.phone, p.start, p.end) for p in a.phones] == [(p.phone, p.start, p.end) for p in b.phones]


def test_a_pocketsphinx_whose_structures_were_not_read_aligns_itself(aligners, monkeypatch):
    ps = load_pocketsphinx()
    config = ps.Config(**ALIGN_SETTINGS)
    decoder = NativeAligner(native_library("alignment"), config.dumps().encode())
    monkeypatch.setattr(ptm_scores, "_pocketsphinx_version", lambda: "5.2.0")
    assert not ptm_scores.hook_decoder(decoder.handle, config)
    monkeypatch.setattr(ptm_scores, "_pocketsphinx_version", lambda: "5.0.4")
    assert ptm_scores.hook_decoder(decoder.handle, config)
