import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from facepolicy.core import spec
from facepolicy.core.errors import TrackFormatError
from facepolicy.core.facetrack import FaceTrack

FPS = st.sampled_from(spec.COMMON_FPS)


def random_track(n: int, fps: float = 30.0, seed: int = 0) -> FaceTrack:
    rng = np.random.default_rng(seed)
    values = rng.random((n, spec.NUM_CHANNELS), dtype=np.float32)
    return FaceTrack(fps, spec.CHANNEL_NAMES, values, {"seed": seed})


def test_channel_contract():
    assert len(spec.ARKIT_NAMES) == 52 and len(set(spec.ARKIT_NAMES)) == 52
    assert spec.CHANNEL_NAMES[:52] == spec.ARKIT_NAMES
    assert spec.NUM_CHANNELS == 52 + 3 + 4
    assert spec.MODEL_FPS == 30 and spec.SAMPLE_RATE == 16000
    assert all(spec.region_of(n) for n in spec.CHANNEL_NAMES)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError):
        FaceTrack(30, ("a", "b"), np.zeros((4, 3)))
    with pytest.raises(ValueError):
        FaceTrack(30, ("a", "a"), np.zeros((4, 2)))
    with pytest.raises(ValueError):
        FaceTrack(0, ("a",), np.zeros((4, 1)))


@settings(max_examples=60, deadline=None)
@given(
    values=hnp.arrays(np.float32, st.tuples(st.integers(0, 40), st.just(spec.NUM_CHANNELS)),
                      elements=st.floats(-3, 3, width=32)),
    fps=FPS,
)
def test_json_round_trip_is_exact(values, fps):
    track = FaceTrack(fps, spec.CHANNEL_NAMES, values, {"seed": 3, "style": "calm"})
    back = FaceTrack.from_json(track.to_json())
    assert back.fps == fps and back.names == track.names and back.meta == track.meta
    np.testing.assert_array_equal(back.values, track.values)


@settings(max_examples=60, deadline=None)
@given(const=st.floats(-2, 2, width=32), n=st.integers(1, 300), src=FPS, dst=FPS)
def test_resample_is_exact_on_constant_input(const, n, src, dst):
    track = FaceTrack(src, ("jawOpen",), np.full((n, 1), const, np.float32))
    out = track.resample(dst)
    assert out.fps == dst
    assert out.n_frames == max(1, round(n * dst / src))
    assert np.all(out.values == np.float32(const))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 200), src=FPS, dst=FPS)
def test_resample_preserves_duration_and_linear_ramps(n, src, dst):
    t = np.arange(n) / src
    track = FaceTrack(src, ("a",), (0.5 * t)[:, None])
    out = track.resample(dst)
    assert abs(out.duration - track.duration) <= 0.5 / dst + 1e-9
    t_out = np.arange(out.n_frames) / dst
    inside = t_out <= t[-1]
    np.testing.assert_allclose(out.values[inside, 0], 0.5 * t_out[inside], atol=1e-5)


def test_resample_round_trip_identity_for_integer_ratio():
    track = random_track(90, 30.0)
    np.testing.assert_array_equal(track.resample(60.0).resample(30.0).values, track.values)


def test_select_fills_missing_with_zero():
    track = FaceTrack(30, ("jawOpen",), np.ones((5, 1), np.float32))
    full = track.select(spec.CHANNEL_NAMES)
    assert full.values.shape == (5, spec.NUM_CHANNELS)
    assert np.all(full.channel("jawOpen") == 1) and float(full.values.sum()) == 5.0


@pytest.mark.parametrize(
    "payload, message",
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"fps": 30, "names": ["a"]}), "needs fps, names and weights"),
        (json.dumps({"fps": 30, "names": ["a", "b"], "weights": [[1, 2, 3]]}), "frames × 2 channels"),
        (json.dumps({"fps": -1, "names": ["a"], "weights": [[1]]}), "fps must be positive"),
    ],
)
def test_bad_json_gets_clear_error(payload, message):
    with pytest.raises(TrackFormatError, match=message):
        FaceTrack.from_json(payload, source="take.json")


def test_save_and_load_json_file(tmp_path):
    track = random_track(12)
    path = tmp_path / "sub" / "take.json"
    track.save_json(path)
    back = FaceTrack.load_json(path)
    np.testing.assert_array_equal(back.values, track.values)
    assert not list(path.parent.glob(".*part*")), "no temporary file may remain"


def test_atomic_outputs_get_normal_permissions(tmp_path):
    import os

    path = tmp_path / "take.json"
    random_track(3).save_json(path)
    mask = os.umask(0)
    os.umask(mask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~mask)


def test_json_is_written_in_blocks_with_the_bytes_of_one_json_dumps(tmp_path):
    rng = np.random.default_rng(4)
    track = FaceTrack(30.0, spec.CHANNEL_NAMES, rng.random((4001, spec.NUM_CHANNELS)).astype(np.float32),
                      {"engine": "test", "warnings": ["a \u00e9"]})
    whole = json.dumps({"fps": track.fps, "names": list(track.names), "weights": track.values.tolist(),
                        "meta": track.meta}, separators=(",", ":"))
    assert track.to_json() == whole
    assert len(list(track._json_chunks(block=2000))) == 2 + 3
    track.save_json(tmp_path / "t.json")
    assert (tmp_path / "t.json").read_text(encoding="utf-8") == whole
    assert FaceTrack.zeros(0).to_json() == json.dumps(FaceTrack.zeros(0).to_dict(), separators=(",", ":"))
