"""All-phone recognition in core.ptm_scores's library: pocketsphinx's own acoustic scores, bit for bit, and its own
phones from the search over them; without the library, the decoders as before."""

import json
from pathlib import Path

import numpy as np
import pytest

from facepolicy.core import ptm_scores
from facepolicy.core.align import pcm16
from facepolicy.core.audio import load_audio
from facepolicy.core.recognition import PhoneDecoders, _NativeDecoder, recognise_chunks, speech_chunks

pytest.importorskip("pocketsphinx", reason="recognition needs pocketsphinx (pip install pocketsphinx)")

DATA = Path(__file__).resolve().parents[2] / "data"
ARCTIC = DATA / "arctic"


@pytest.fixture(scope="module")
def library():
    from facepolicy.preview import build

    return build.ensure_scorer_library()  # `bash run.sh test` builds it; a fresh checkout builds it here


@pytest.fixture(scope="module")
def decoders(library):
    d = PhoneDecoders()
    d._settings()
    assert d.scored_here, "the phone library was built but recognition does not use it"
    return d


def dumped_scores(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """A senone-score file as pocketsphinx writes it (senlogdir): per frame (senone ids, int16 scores)."""
    data = path.read_bytes()
    i = data.index(b"endhdr\n") + len(b"endhdr\n") + 4
    frames = []
    while i < len(data):
        n = int(np.frombuffer(data, "<i2", 1, i)[0])
        ids = np.cumsum(np.frombuffer(data, "u1", n, i + 2).astype(int))
        frames.append((ids, np.frombuffer(data, "<i2", n, i + 2 + n).astype(int)))
        i += 2 + 3 * n
    return frames


def test_the_scores_are_the_decoders_own_bit_for_bit(decoders, tmp_path):
    """pocketsphinx writes the scores its search used (senlogdir); the scorer's must equal them in every frame, for
    the senones in play in that frame (silence's only, at the start), on real speech and on TTS with silences."""
    config = json.loads(decoders._settings().dumps())
    config["senlogdir"] = str(tmp_path)
    from facepolicy.core.ps_native import native_library

    lib = native_library("scoring")
    own = _NativeDecoder(lib, json.dumps(config).encode())  # scores itself, and writes them
    reader = _NativeDecoder(lib, decoders._settings().dumps().encode())
    scorer = decoders._scorer
    clips = [load_audio(ARCTIC / "arctic_a0009.wav").samples, load_audio(ARCTIC / "arctic_a0007.wav").samples]
    tts = np.concatenate([np.zeros(8000, np.float32), clips[0][:24000], np.zeros(4000, np.float32)])
    compared = 0
    for k, x in enumerate([*clips, tts]):
        pcm = pcm16(x)
        own.decode(pcm)
        dump = dumped_scores(sorted(tmp_path.glob("*.sen"))[k])
        mine = scorer.scores(reader.features(pcm, scorer.width))
        assert len(mine) == len(dump)
        for t, (ids, scores) in enumerate(dump):
            assert ids.max() < mine.shape[1], "the search used a senone the scorer does not make"
            np.testing.assert_array_equal(mine[t, ids], scores, err_msg=f"clip {k}, frame {t}")
            compared += len(ids)
    assert compared > 100_000


def test_recognition_finds_the_decoders_own_phones_and_without_the_library_runs_as_before(decoders, monkeypatch):
    """The phones of real speech, noise, a tone, digital silence and audio too short for a frame, as pocketsphinx's
    own decoding finds them (the same segments, frame for frame); then a platform without the library."""
    own = PhoneDecoders(own_scores=False)
    rng = np.random.default_rng(7)
    t = np.arange(3 * 16000) / 16000
    sounds = [load_audio(ARCTIC / name).samples for name in ("arctic_a0009.wav", "arctic_a0007.wav")]
    sounds += [rng.normal(0, 0.1, 2 * 16000).astype(np.float32),
               (0.3 * np.sin(2 * np.pi * 440 * t) * (t % 0.5 < 0.3)).astype(np.float32),
               np.zeros(16000, np.float32), np.zeros(40, np.float32)]
    for x in sounds:
        chunks = speech_chunks(len(x), None, 50.0, samples=x)
        fast = recognise_chunks(x, chunks, decoders, workers=1)
        slow = recognise_chunks(x, chunks, own, workers=1)
        assert [(p.phone, p.start, p.end) for p in fast.phones] == [(p.phone, p.start, p.end) for p in slow.phones]
    # More segments than the room first given: the search is run again with room for all of them.
    decoder = decoders._take()
    try:
        features = decoder.features(pcm16(sounds[0]), decoder.scorer.width)
        assert decoder.scorer.recognise(features, decoder.loop, room=2) == decoder.scorer.recognise(features,
                                                                                                  decoder.loop)
        assert len(decoder.scorer.recognise(features, decoder.loop)) > 2
    finally:
        decoders._give(decoder)
    # Where the library was not built (a platform without it): the decoders run as before.
    monkeypatch.setattr(ptm_scores, "_library", lambda: None)
    ptm_scores._scorer_for.cache_clear()
    without = PhoneDecoders()
    assert not without.scored_here
    x = sounds[0]
    chunks = speech_chunks(len(x), None, 50.0, samples=x)
    assert [p.phone for p in recognise_chunks(x, chunks, without, workers=1).phones] == \
           [p.phone for p in recognise_chunks(x, chunks, own, workers=1).phones]
    ptm_scores._scorer_for.cache_clear()


def test_a_model_it_does_not_reproduce_is_left_to_the_decoder(tmp_path):
    hmm = Path(PhoneDecoders()._settings()["hmm"])
    for f in hmm.iterdir():
        (tmp_path / f.name).symlink_to(f)
    (tmp_path / "feat.params").unlink()
    (tmp_path / "feat.params").write_text((hmm / "feat.params").read_text().replace("-model ptm", "-model ms"))
    with pytest.raises(ptm_scores.ModelMismatch):
        ptm_scores.load_model(tmp_path)
    assert ptm_scores.scorer(str(tmp_path)) is None
    assert ptm_scores.scorer(str(hmm), ds=2) is None  # frame downsampling: scores it does not make


def test_another_major_version_of_pocketsphinx_runs_itself(library, monkeypatch):
    hmm = PhoneDecoders()._settings()["hmm"]
    assert ptm_scores.scorer(hmm) is not None  # 5.x here
    monkeypatch.setattr(ptm_scores, "_pocketsphinx_version", lambda: "6.0.0")
    assert ptm_scores.scorer(hmm) is None


def test_the_log_add_table_is_the_decoders():
    """pocketsphinx's 8-bit table (logmath_init(1.0001, 10, TRUE)), read through its own C functions."""
    import ctypes

    from facepolicy.core.ps_native import native_library

    lib = native_library()
    lib.logmath_init.restype, lib.logmath_init.argtypes = ctypes.c_void_p, [ctypes.c_double, ctypes.c_int, ctypes.c_int]
    lib.logmath_add.restype, lib.logmath_add.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.logmath_free.argtypes = [ctypes.c_void_p]
    lmath = lib.logmath_init(1.0001, 10, 1)
    try:
        # logmath_add works on log probabilities (larger better): add(0, -d) = table[d].
        theirs = np.array([lib.logmath_add(lmath, 0, -d) for d in range(256)])
    finally:
        lib.logmath_free(lmath)
    np.testing.assert_array_equal(ptm_scores.log_add_table(1.0001).astype(int), theirs)
