import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facepolicy.core import spec
from facepolicy.core.errors import TrackFormatError
from facepolicy.core.facetrack import FaceTrack
from facepolicy.core.livelink import (
    format_timecode,
    livelink_csv_to_track,
    parse_timecode,
    read_livelink_csv,
    track_to_livelink_csv,
    write_livelink_csv,
)


def make_track(n, fps, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.random((n, spec.NUM_CHANNELS)).astype(np.float32)
    values[:, 52:] = rng.uniform(-0.5, 0.5, (n, spec.NUM_CHANNELS - 52))
    return FaceTrack(fps, spec.CHANNEL_NAMES, values)


def test_header_layout():
    header = track_to_livelink_csv(make_track(2, 30)).splitlines()[0].split(",")
    assert header[:2] == ["Timecode", "BlendShapeCount"]
    assert header[2] == "EyeBlinkLeft" and header[53] == "TongueOut"
    assert header[54:] == ["HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                           "RightEyeYaw", "RightEyePitch", "RightEyeRoll"]
    first = track_to_livelink_csv(make_track(2, 30)).splitlines()[1].split(",")
    assert first[0] == "00:00:00:00.000" and first[1] == "61"


@pytest.mark.parametrize("seconds, rate, text", [(0, 30, "00:00:00:00.000"), (1.5, 30, "00:00:01:15.000"),
                                                  (3661 + 1 / 60, 60, "01:01:01:01.000"),
                                                  (1001 / 30000, 30, "00:00:00:01.001")])
def test_timecode_format(seconds, rate, text):
    assert format_timecode(seconds, rate) == text
    assert parse_timecode(text, rate) == pytest.approx(seconds, abs=1e-6)


@pytest.mark.parametrize("fps", spec.COMMON_FPS)
def test_row_k_is_at_k_over_fps_from_audio_time_0(fps):
    n = int(600 * fps) + 1  # ten minutes
    rows = track_to_livelink_csv(FaceTrack.zeros(n, fps=fps)).splitlines()[1:]
    seconds = np.array([parse_timecode(row.split(",", 1)[0], round(fps)) for row in rows])
    assert rows[0].startswith("00:00:00:00.000,")
    # the timecode keeps a thousandth of a frame: no drift against the audio
    np.testing.assert_allclose(seconds, np.arange(n) / fps, rtol=0, atol=0.5e-3 / round(fps))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(40, 150), fps=st.sampled_from(spec.COMMON_FPS), seed=st.integers(0, 1000))
def test_round_trip(n, fps, seed):
    n = max(n, int(fps * 1.05))  # the timecode rate is inferred from a full second of frames
    track = make_track(n, fps, seed)
    back = livelink_csv_to_track(track_to_livelink_csv(track))
    assert back.fps == fps
    assert back.names == spec.CHANNEL_NAMES
    np.testing.assert_array_equal(back.values, track.values)  # repr() of float32 → float is exact
    assert "import_warnings" not in back.meta


def test_short_take_uses_fps_hint():
    track = make_track(5, 30000 / 1001)
    back = livelink_csv_to_track(track_to_livelink_csv(track), fps=30000 / 1001)
    assert back.fps == track.fps
    np.testing.assert_array_equal(back.values, track.values)


def test_missing_and_unknown_columns_warn(caplog, tmp_path):
    text = "Timecode,BlendShapeCount,JawOpen,EyeBlinkLeft,MysteryShape\n"
    text += "00:00:00:00.000,3,0.5,0.25,9\n00:00:00:01.000,3,0.75,0.0,9\n"
    path = tmp_path / "take.csv"
    path.write_text(text)
    with caplog.at_level("WARNING", logger="facepolicy"):
        track = read_livelink_csv(path, fps=30)
    assert track.values.shape == (2, spec.NUM_CHANNELS)
    np.testing.assert_array_equal(track.channel("jawOpen"), [0.5, 0.75])
    np.testing.assert_array_equal(track.channel("mouthSmileLeft"), [0, 0])
    warnings = " ".join(track.meta["import_warnings"])
    assert "MysteryShape" in warnings and "MouthSmileLeft" in warnings
    assert "MysteryShape" in caplog.text


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("Frame,JawOpen\n1,0.5\n", "first column must be Timecode"),
    ("Timecode,BlendShapeCount,JawOpen\n00:00:00:00.000,1,abc\n", "not a number"),
    ("Timecode,BlendShapeCount,JawOpen\n00:00:00:00.000,1\n", "cells but the header"),
    ("Timecode,BlendShapeCount,JawOpen\n00:00:00:00.000,1,nan\n", "JawOpen is nan"),
])
def test_bad_csv_gets_clear_error(text, message):
    with pytest.raises(TrackFormatError, match=message):
        livelink_csv_to_track(text, source="take.csv")


def test_write_is_atomic(tmp_path):
    path = tmp_path / "take.csv"
    write_livelink_csv(make_track(31, 30), path)
    assert read_livelink_csv(path).n_frames == 31
    assert [p.name for p in tmp_path.iterdir()] == ["take.csv"]


def test_the_csv_is_written_in_blocks_with_the_same_bytes_as_at_once(tmp_path):
    """An hour's take is written 2000 frames at a time; the bytes equal the whole text (block edges included)."""
    from facepolicy.core.livelink import _livelink_csv_blocks, track_to_livelink_csv, write_livelink_csv

    rng = np.random.default_rng(3)
    track = FaceTrack(30.0, spec.CHANNEL_NAMES, rng.random((4501, spec.NUM_CHANNELS)).astype(np.float32))
    blocks = list(_livelink_csv_blocks(track, block=2000))
    assert len(blocks) == 1 + 3
    write_livelink_csv(track, tmp_path / "take.csv")
    assert (tmp_path / "take.csv").read_text(encoding="utf-8") == track_to_livelink_csv(track) == "".join(blocks)
    assert read_livelink_csv(tmp_path / "take.csv").n_frames == 4501
