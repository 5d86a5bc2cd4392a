"""pocketsphinx alignment and recognition on real speech (CMU ARCTIC), text normalisation and letter-to-sound."""

from pathlib import Path

import numpy as np
import pytest

from facepolicy.core import align, metrics, spec
from facepolicy.core.align import chunk_bounds
from facepolicy.core.audio import load_audio
from facepolicy.core.errors import FacePolicyError
from facepolicy.core.phones import ARPABET, BILABIALS, SIL
from facepolicy.core.transcript import letter_to_sound, number_words, transcript_words

ARCTIC = Path(__file__).resolve().parents[2] / "data" / "arctic"
A9_TEXT = "He turned sharply, and faced Gregson across the table."

needs_pocketsphinx = pytest.mark.skipif(
    __import__("importlib").util.find_spec("pocketsphinx") is None,
    reason="pocketsphinx is not installed (pip install pocketsphinx)",
)


def test_transcript_words_speak_numbers_and_drop_punctuation():
    assert transcript_words("He turned sharply, and faced Gregson!") == [
        "he", "turned", "sharply", "and", "faced", "gregson"]
    assert transcript_words("In 1984 I paid $12.50 for 3 books & 2 pens.") == [
        "in", "nineteen", "eighty", "four", "i", "paid", "twelve", "dollars", "and", "fifty", "cents", "for",
        "three", "books", "and", "two", "pens"]
    assert transcript_words("don't stop — 100%") == ["don't", "stop", "one", "hundred", "percent"]
    assert number_words(2_000_017) == ["two", "million", "seventeen"]
    assert transcript_words("...") == []


def test_letter_to_sound_gives_arpabet_for_unknown_words():
    for word in ("gregsonian", "blorptastic", "zyxwv", "phlegmatic", "quaint", "make"):
        phones = letter_to_sound(word)
        assert phones and set(phones) <= set(ARPABET), (word, phones)
    assert letter_to_sound("make") == ["m", "ey", "k"]
    assert letter_to_sound("phone") == ["f", "ow", "n"]
    assert letter_to_sound("thatch")[:2] == ["th", "ae"]
    assert letter_to_sound("123") == []


def test_chunks_cover_the_audio_and_cut_in_quiet_places():
    rate = spec.SAMPLE_RATE
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(75 * rate) * 0.1).astype(np.float32)
    quiet = [(24.0, 24.3), (49.5, 49.8)]
    for a, b in quiet:
        x[int(a * rate):int(b * rate)] = 0.0
    bounds = chunk_bounds(x, rate, max_len=30.0)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(x)
    assert all(b0[1] == b1[0] for b0, b1 in zip(bounds, bounds[1:], strict=False))
    assert all(hi - lo <= 30 * rate for lo, hi in bounds)
    for (_, cut), (a, b) in zip(bounds[:-1], quiet, strict=True):
        assert a * rate <= cut <= b * rate
    assert chunk_bounds(x[: 10 * rate], rate) == [(0, 10 * rate)]


@needs_pocketsphinx
def test_forced_alignment_on_arctic_is_within_20_ms_of_the_reference_labels():
    audio = load_audio(ARCTIC / "arctic_a0009.wav")
    ref = [p for p in metrics.read_lab(ARCTIC / "arctic_a0009_phone.lab") if p.phone != SIL]
    result = align.shared_aligner().align(audio.samples, A9_TEXT)
    hyp = [p for p in result.phones if p.phone != SIL]
    assert [p.phone for p in hyp] == [p.phone for p in ref]
    onset_error = np.mean([abs(a.start - b.start) for a, b in zip(ref, hyp, strict=True)])
    assert onset_error <= 0.020
    assert [w for w, _, _ in result.words] == transcript_words(A9_TEXT)
    assert all(a.end == pytest.approx(b.start) for a, b in zip(result.phones, result.phones[1:], strict=False))


@needs_pocketsphinx
def test_words_missing_from_the_dictionary_are_aligned_by_letter_to_sound():
    audio = load_audio(ARCTIC / "arctic_a0009.wav")
    result = align.Aligner().align(audio.samples, "He turned sharply and faced Grexonby across the table")
    assert any("grexonby" in w for w in result.warnings)
    assert "grexonby" in [w for w, _, _ in result.words]
    # The made-up word sits where "Gregson" is spoken (1.57–2.04 s in the labels).
    start, end = next((s, e) for w, s, e in result.words if w == "grexonby")
    assert start == pytest.approx(1.57, abs=0.08) and end == pytest.approx(2.0, abs=0.1)


@needs_pocketsphinx
def test_a_transcript_that_cannot_be_aligned_raises_a_clear_error():
    audio = load_audio(ARCTIC / "arctic_a0009.wav")
    with pytest.raises(FacePolicyError, match="could not be aligned|no words"):
        align.shared_aligner().align(audio.samples, "the quick brown fox jumps over the lazy dog " * 3)
    with pytest.raises(FacePolicyError, match="no words"):
        align.shared_aligner().align(audio.samples, " ,. ")


@needs_pocketsphinx
def test_phone_recognition_finds_the_bilabials_of_real_speech():
    audio = load_audio(ARCTIC / "arctic_a0009.wav")
    ref = metrics.read_lab(ARCTIC / "arctic_a0009_phone.lab")
    result = align.shared_aligner().recognise_phones(audio.samples)
    assert result.mode == "recognised-phones"
    speech = [p for p in result.phones if p.phone != SIL]
    assert 25 <= len(speech) <= 50  # 38 phones in the reference
    assert len(result.confidence) == len(result.phones)
    for r in (p for p in ref if p.phone in BILABIALS):  # "sharply", "table"
        assert any(h.phone in BILABIALS and h.end > r.start - 0.05 and h.start < r.end + 0.05 for h in speech), r


@needs_pocketsphinx
def test_long_audio_is_processed_in_bounded_chunks(monkeypatch):
    a9 = load_audio(ARCTIC / "arctic_a0009.wav")
    a7 = load_audio(ARCTIC / "arctic_a0007.wav")
    gap = np.zeros(spec.SAMPLE_RATE // 2, np.float32)
    x = np.concatenate([a9.samples, gap, a7.samples, gap, a9.samples])
    text = " ".join([A9_TEXT, (ARCTIC / "arctic_a0007.txt").read_text(), A9_TEXT])
    monkeypatch.setattr(align, "MAX_CHUNK", 4.5)  # ~11 s of audio → three chunks
    calls = []
    aligner = align.Aligner()
    original = aligner._align_chunk

    def spy(samples, words, offset, d=None):
        calls.append(len(samples) / spec.SAMPLE_RATE)
        return original(samples, words, offset, d)

    monkeypatch.setattr(aligner, "_align_chunk", spy)
    result = aligner.align(x, text)
    assert len(calls) >= 3 and max(calls) <= 4.5 + 1e-6
    assert [w for w, _, _ in result.words] == transcript_words(text)
    starts = [p.start for p in result.phones]
    assert starts == sorted(starts) and result.phones[-1].end == pytest.approx(len(x) / spec.SAMPLE_RATE, abs=0.05)
    second_a9 = [s for w, s, _ in result.words if w == "gregson"][1]
    assert second_a9 == pytest.approx(len(a9.samples) / 16000 + len(a7.samples) / 16000 + 2 * 0.5 + 1.57, abs=0.05)
    recog = aligner.recognise_phones(x)
    assert recog.phones[-1].end == pytest.approx(len(x) / spec.SAMPLE_RATE, abs=0.05)


@needs_pocketsphinx
def test_the_phone_language_model_is_biased_towards_bilabials(tmp_path, monkeypatch):
    from facepolicy.core import phone_lm

    monkeypatch.setattr(phone_lm.tempfile, "gettempdir", lambda: str(tmp_path))
    plain = phone_lm.bilabial_phone_lm(0.0).read_text().splitlines()
    boosted = phone_lm.bilabial_phone_lm(0.5).read_text().splitlines()
    assert len(plain) == len(boosted) > 20000
    changed = [(a, b) for a, b in zip(plain, boosted, strict=True) if a != b]
    assert changed and all(a.split("\t")[1].split(" ")[-1] in {"M", "B", "P"} for a, _ in changed)
    assert all(float(b.split("\t")[0]) == pytest.approx(float(a.split("\t")[0]) + 0.5) for a, b in changed)
    assert phone_lm.bilabial_phone_lm(0.5).stat().st_mtime == (tmp_path / phone_lm.bilabial_phone_lm(0.5).name).stat(
    ).st_mtime  # built once, then reused


LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


@needs_pocketsphinx
@pytest.mark.skipif(not LIBRIVOX.is_dir(), reason="needs Debian's pocketsphinx-testdata (bash run.sh test installs it)")
def test_results_do_not_depend_on_what_the_decoder_heard_before():
    """pocketsphinx's front end keeps state between utterances; a line must come out the same every time."""
    clip = load_audio(LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0880.wav").samples
    other = load_audio(LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0890.wav").samples
    text = "he was not an ill disposed young man"
    other_text = "unless to be rather cold hearted and rather selfish is to be ill disposed"
    aligner = align.Aligner()

    def signature(result):
        return [(p.phone, round(p.start, 4), round(p.end, 4)) for p in result.phones]

    first = signature(aligner.align(clip, text))
    assert signature(aligner.align(clip, text)) == first
    aligner.align(other, other_text)
    assert signature(aligner.align(clip, text)) == first
    phones = signature(aligner.recognise_phones(clip))
    aligner.recognise_phones(other)
    assert signature(aligner.recognise_phones(clip)) == phones


@needs_pocketsphinx
def test_the_c_function_aligner_gives_the_bindings_alignment_on_every_core(monkeypatch):
    # Alignment decodes through pocketsphinx's C functions where they are exported (the GIL is free meanwhile and a
    # long line's chunks align on several threads): the same phones, words and scores as the Python binding, for a
    # short line and for one cut into chunks (MAX_CHUNK lowered so three chunks share the two decoders).
    from facepolicy.core import ps_native

    if ps_native.native_library("alignment") is None:
        pytest.skip("this pocketsphinx build does not export its C functions (the binding is used)")
    a9, a7 = load_audio(ARCTIC / "arctic_a0009.wav"), load_audio(ARCTIC / "arctic_a0007.wav")
    gap = np.zeros(spec.SAMPLE_RATE // 2, np.float32)
    long = np.concatenate([a9.samples, gap, a7.samples, gap, a9.samples])
    long_text = " ".join([A9_TEXT, (ARCTIC / "arctic_a0007.txt").read_text(), A9_TEXT])
    monkeypatch.setattr(align, "MAX_CHUNK", 4.5)
    native = align.Aligner()
    assert isinstance(native._decoder("align"), ps_native.NativeAligner)
    results = [native.align(a9.samples, A9_TEXT), native.align(long, long_text)]
    monkeypatch.setattr(align, "native_library", lambda functions="recognition": None)
    binding = align.Aligner()
    assert not isinstance(binding._decoder("align"), ps_native.NativeAligner)
    for got, (x, text) in zip(results, [(a9.samples, A9_TEXT), (long, long_text)], strict=True):
        want = binding.align(x, text)
        assert [(p.phone, p.start, p.end) for p in got.phones] == [(p.phone, p.start, p.end) for p in want.phones]
        assert got.words == want.words and got.scores == want.scores
