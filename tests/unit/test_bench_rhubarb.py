"""bench/bench_rhubarb.py without the Rhubarb binary: its TSV parsing and the mouth-shape → ARKit conversion."""

import sys
from pathlib import Path

import numpy as np
import pytest

from facepolicy.core import metrics, spec
from facepolicy.core.phones import PhoneSegment

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import bench_rhubarb as br  # noqa: E402

# The README's example: a recording of a person saying "Hi."
HI = "0.00\tX\n0.05\tD\n0.27\tC\n0.31\tB\n0.43\tX\n0.47\tX\n"


def test_parse_tsv_reads_the_readme_example():
    cues = br.parse_tsv(HI)
    assert [(c.start, c.shape) for c in cues] == [(0.0, "X"), (0.05, "D"), (0.27, "C"), (0.31, "B"), (0.43, "X"),
                                                  (0.47, "X")]


@pytest.mark.parametrize("text, words", [
    ("0.00\tX\n0.10\tQ\n", "not one of Rhubarb's mouth shapes"),
    ("0.00\tX\nsoon\tA\n", "not a time in seconds"),
    ("0.00\tX\n0.50\tA\n0.40\tB\n", "goes back in time"),
    ("0.00 X\n", "expected 'seconds<TAB>shape'"),
    ("\n\n", "no mouth cues"),
])
def test_parse_tsv_says_what_is_wrong_in_one_sentence(text, words):
    with pytest.raises(ValueError, match=words) as err:
        br.parse_tsv(text, "clip.tsv")
    assert str(err.value).startswith("clip.tsv")


def _gap_fraction(table, shape):
    g = metrics.default_geometry()
    return (float(g.gap(br.pose_vector(table[shape])[: spec.NUM_ARKIT])) - g.gap0) / g.range


@pytest.mark.parametrize("name", list(br.POSE_TABLES))
def test_every_table_closes_a_and_x_and_opens_c_d_h(name):
    table = br.POSE_TABLES[name]
    assert set(table) == set(br.SHAPES)
    assert {"A", "X"} <= set(br.closed_shapes(table))
    for shape in "CDH":
        assert _gap_fraction(table, shape) >= metrics.OPEN_FRACTION
    # A is sealed as our bilabials are: mouthClose cancels jawOpen, no lip raiser or funnel.
    a = table["A"]
    assert a.get("mouthClose", 0.0) == a.get("jawOpen", 0.0)
    assert not any(a.get(k, 0.0) for k in ("mouthUpperUpLeft", "mouthLowerDownLeft", "mouthFunnel", "tongueOut"))
    assert table["X"] == {}


def test_main_and_narrow_tables_close_only_a_and_x():
    assert br.closed_shapes(br.POSE_TABLES["main"]) == "AX"
    assert br.closed_shapes(br.POSE_TABLES["narrow"]) == "AX"


def test_cues_become_a_step_track_at_30_fps():
    cues = br.parse_tsv(HI)
    table = br.POSE_TABLES["main"]
    track = br.cues_to_track(cues, duration=0.5, table=table)
    assert track.fps == 30 and track.n_frames == 15 and track.names == spec.CHANNEL_NAMES
    jaw = track.channel("jawOpen")
    # frame i shows the cue active at i/30 s: 0.0 X, 0.033 X, 0.067 D … 0.267 D, 0.3 C, 0.333 B … 0.4 B, 0.433 X.
    expected = ["X", "X"] + ["D"] * 7 + ["C"] + ["B"] * 3 + ["X"] * 2
    assert np.allclose(jaw, [table[s].get("jawOpen", 0.0) for s in expected])


def test_a_closes_for_an_m_and_b_does_not_in_the_main_table():
    phones = [PhoneSegment("sil", 0.0, 0.3), PhoneSegment("m", 0.3, 0.4), PhoneSegment("aa", 0.4, 0.7),
              PhoneSegment("sil", 0.7, 1.0)]
    samples = np.zeros(spec.SAMPLE_RATE, np.float32)
    for shape, hit in (("A", 1), ("B", 0)):
        cues = br.parse_tsv(f"0.00\tC\n0.30\t{shape}\n0.40\tD\n0.70\tC\n1.00\tX\n")
        s = metrics.score_clip(br.cues_to_track(cues, 1.0, br.POSE_TABLES["main"]), phones, samples)
        assert (s.m_hits, s.m_total, s.open_hits, s.open_total) == (hit, 1, 1, 1)


def test_blend_fades_into_each_shape_and_then_holds_it():
    cues = br.parse_tsv("0.00\tX\n0.20\tD\n0.60\tX\n")
    table = br.POSE_TABLES["main"]
    step = br.cues_to_track(cues, 0.6, table).channel("jawOpen")
    faded = br.cues_to_track(cues, 0.6, table, blend=0.1).channel("jawOpen")
    d = table["D"]["jawOpen"]
    assert step[6] == pytest.approx(d) and faded[6] == pytest.approx(0.0)  # 0.2 s: the fade starts from X
    assert 0 < faded[7] < d and faded[8] > faded[7]  # 0.233, 0.267 s: on the way
    assert np.allclose(faded[9:], step[9:])  # from 0.3 s on: held


def test_a_missing_binary_is_one_clear_line(tmp_path):
    with pytest.raises(SystemExit, match="give the Rhubarb Lip Sync binary"):
        br.check_binary(None)
    with pytest.raises(SystemExit, match="is not a file"):
        br.check_binary(str(tmp_path / "rhubarb"))
