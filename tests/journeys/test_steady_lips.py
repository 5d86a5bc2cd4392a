"""A line baked by the console script with either engine, read back from its Live Link CSV: the lips move with fewer
jerks (jitter, the mean |Δ²| of the lip gap over its spread, core.metrics) while every closure and open vowel stays
(core.straighten)."""

from __future__ import annotations

import pytest
from journey import write_wav
from test_transcripts import bake

# (engine, language, pair of sentences, voicing, open vowels the engine leaves shut at most) of the development
# set: the jitter of these bakes was 0.506, 0.576 and 0.526 before the lip gap was pulled taut (issue 17 asks for ≤ 0.48
# in every language).
LINES = [("neural", "en", 1, 0, 1), ("neural", "it", 0, 0, 0), ("phonetic", "en", 1, 0, 1)]


@pytest.mark.parametrize(("engine", "code", "pair", "voicing", "shut"), LINES, ids=[f"{c[0]}-{c[1]}" for c in LINES])
def test_a_line_s_lips_move_steadily_and_keep_every_closure_and_opening(tmp_path, engine, code, pair, voicing, shut):
    from facepolicy.core import metrics
    from facepolicy.core.livelink import read_livelink_csv
    from model.data import espeak as espeak_lib
    from model.data import languages

    if not espeak_lib.available():
        pytest.skip("the espeak-ng library is not installed (bash run.sh test installs it)")
    utt = languages.dev_clip(languages.BY_CODE[code], pair, voicing)
    write_wav(tmp_path / "line.wav", utt.samples)
    done, out = bake(tmp_path, "--engine", engine)
    assert "1 baked" in done.stdout, done.stderr
    s = metrics.score_clip(read_livelink_csv(out / "line.csv"), utt.phones, utt.samples)
    assert s.bilabial_hits == s.bilabial_total and s.open_hits >= s.open_total - shut, s.missed
    assert s.jitter <= 0.48, f"jitter {s.jitter:.3f}: {utt.text}"


# Short open vowels between two closures in the development set that the engine left just short of open and the taut
# string flattened further (core.straighten.open_vowels): (language, pair of sentences, voicing, the vowel's time,
# its word).
SHORT_OPEN = [("es", 2, 1, 4.56, "sopa"), ("nl", 1, 1, 0.79, "map"), ("fr", 0, 1, 2.82, "maman")]


@pytest.mark.parametrize(("code", "pair", "voicing", "at", "word"), SHORT_OPEN, ids=[c[4] for c in SHORT_OPEN])
def test_a_short_open_vowel_between_two_closures_opens_the_mouth(tmp_path, code, pair, voicing, at, word):
    from test_transcripts import baked_dev_clip

    from facepolicy.core.phones import OPEN_VOWELS

    _, vowel, missed = baked_dev_clip(tmp_path, code, pair, voicing, OPEN_VOWELS, at)
    assert not missed, f"the mouth stays shut over the {vowel.phone} of {word!r}"
