"""core.captures and core.capture_sync on hand-made Live Link Face files: frame rate from the timecodes, dropped and
repeated timecodes, missing columns, flat and clipped curves, a Broadcast WAV's timecode, and the lag finder."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import soundfile as sf

from facepolicy.core import spec
from facepolicy.core.capture_sync import check_sync, lag_of, speech_envelope
from facepolicy.core.captures import (
    CaptureError,
    audio_timecode,
    check_curves,
    find_takes,
    folder_rate_problems,
    place_on_audio,
    read_curves,
)
from facepolicy.core.facetrack import FaceTrack
from facepolicy.core.livelink import format_timecode, track_to_livelink_csv


def write_csv(path, values: np.ndarray, fps: float = 60.0, times=None, start: float = 3600.0):
    """A Live Link Face CSV of (n, NUM_CHANNELS) values, rows at ``times`` (default k / fps)."""
    text = track_to_livelink_csv(FaceTrack(fps, spec.CHANNEL_NAMES, values), start_seconds=start)
    if times is not None:
        rows = text.splitlines()
        rate = int(round(fps))
        rows[1:] = [format_timecode(start + t, rate) + r[r.index(","):] for t, r in zip(times, rows[1:], strict=True)]
        text = "\n".join(rows) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def moving(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = np.zeros((n, spec.NUM_CHANNELS), np.float32)
    v[:, : spec.NUM_ARKIT] = 0.3 + 0.2 * np.sin(np.arange(n)[:, None] / 7.0 + rng.uniform(0, 6, spec.NUM_ARKIT))
    return v


def test_frame_rate_comes_from_the_timecodes_and_the_curves_land_on_the_model_grid(tmp_path):
    values = moving(120)
    curves = read_curves(write_csv(tmp_path / "a.csv", values, fps=60.0))
    assert curves.fps == 60.0 and curves.dropped == 0 and curves.repeated == 0
    assert curves.start_timecode == pytest.approx(3600.0)
    states = place_on_audio(curves, 60, 0.0)  # 2 s at 30 fps
    assert np.allclose(states[:, :52], values[::2, :52], atol=1e-6)
    assert check_curves(tmp_path / "a.csv", curves) == ([], [])


def test_dropped_and_repeated_timecodes_are_counted_and_too_many_refuse_the_take(tmp_path):
    n = 200
    t = np.arange(n) / 60.0
    few = np.delete(t, [50, 51, 120])  # three frames dropped
    curves = read_curves(write_csv(tmp_path / "few.csv", moving(len(few)), times=few))
    assert curves.dropped == 3
    problems, warnings = check_curves(tmp_path / "few.csv", curves)
    assert not problems and "3 dropped frame(s)" in warnings[0]
    stall = np.concatenate([t[:80], t[110:]])  # half a second missing
    problems, _ = check_curves(tmp_path / "stall.csv", read_curves(write_csv(tmp_path / "stall.csv",
                                                                             moving(len(stall)), times=stall)))
    assert len(problems) == 1 and '"stall.csv": 30 of 200 frames are missing' in problems[0].sentence
    twice = np.sort(np.concatenate([t, t[::5]]))  # a fifth of the rows written twice
    curves = read_curves(write_csv(tmp_path / "twice.csv", moving(len(twice)), times=twice))
    assert curves.repeated == 40 and curves.fps == 60.0
    problems, _ = check_curves(tmp_path / "twice.csv", curves)
    assert "repeat the timecode before them" in problems[0].sentence


def test_missing_columns_flat_and_clipped_curves_are_sentences_naming_the_file(tmp_path):
    path = write_csv(tmp_path / "cols.csv", moving(60))
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    drop = {header.index("JawOpen"), header.index("HeadYaw")}
    path.write_text("\n".join(",".join(c for i, c in enumerate(r.split(",")) if i not in drop) for r in lines))
    with pytest.raises(CaptureError) as err:
        read_curves(path)
    assert str(err.value) == '"cols.csv": not a complete Live Link Face CSV: missing columns JawOpen, HeadYaw'

    flat = np.zeros((120, spec.NUM_CHANNELS), np.float32)
    problems, _ = check_curves(tmp_path / "flat.csv", read_curves(write_csv(tmp_path / "flat.csv", flat)))
    assert problems[0].sentence == '"flat.csv": the curves do not move (flat); the face tracking was probably lost'

    clipped = moving(120)
    clipped[:60, spec.CHANNEL_INDEX["jawOpen"]] = 1.0
    problems, _ = check_curves(tmp_path / "clip.csv", read_curves(write_csv(tmp_path / "clip.csv", clipped)))
    assert "jawOpen sits at its ceiling 1.0 on 50% of the frames" in problems[0].sentence


def test_pairs_and_frame_rates_of_a_folder(tmp_path):
    write_csv(tmp_path / "a.csv", moving(120), fps=60.0)
    sf.write(str(tmp_path / "a.wav"), np.zeros(32000, np.float32), 16000)
    write_csv(tmp_path / "b.csv", moving(60), fps=30.0)
    sf.write(str(tmp_path / "b.flac"), np.zeros(32000, np.float32), 16000)
    write_csv(tmp_path / "c.csv", moving(120), fps=60.0)  # no audio
    takes, problems = find_takes(tmp_path)
    assert [(t.name, t.audio.name) for t in takes] == [("a", "a.wav"), ("b", "b.flac")]
    assert [p.sentence.split(":")[0] for p in problems] == ['"c.csv"']
    read = [(t, read_curves(t.csv)) for t in takes]
    found = folder_rate_problems(read + [(takes[0], read[0][1])])
    assert [p.sentence for p in found] == ['"b.csv": recorded at 30 fps while the other takes are at 60 fps; record '
                                           'every take of a performer with the same capture settings']


def _bwf(path, rate: int, reference: int, n: int = 1600) -> None:
    """A Broadcast WAV whose bext chunk says its first sample was recorded ``reference`` samples after midnight."""
    data = np.zeros(n, np.int16).tobytes()
    bext = bytearray(602)
    bext[338:346] = struct.pack("<Q", reference)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"bext" + struct.pack("<I", len(bext)) + bext
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def test_a_broadcast_wav_carries_its_timecode(tmp_path):
    _bwf(tmp_path / "t.wav", 48000, 48000 * 3600 + 24000)
    assert audio_timecode(tmp_path / "t.wav") == pytest.approx(3600.5)
    sf.write(str(tmp_path / "plain.wav"), np.zeros(160, np.float32), 16000)
    assert audio_timecode(tmp_path / "plain.wav") is None


def test_the_lag_finder_and_the_sync_check_find_a_known_shift():
    rng = np.random.default_rng(1)
    env = np.convolve(rng.standard_normal(2000), np.ones(15) / 15, mode="same")
    lag, corr, inside = lag_of(np.roll(env, 12), env, 40)
    assert inside and corr > 0.9 and lag == pytest.approx(12, abs=0.3)
    # Bursts of "speech" with a mouth that opens with them: late by 0.3 s, the check says so.
    samples = np.zeros(16000 * 12, np.float32)
    jaw = np.zeros(12 * spec.MODEL_FPS)
    for start in rng.uniform(0.2, 11.0, 14):
        a, d = int(start * 16000), int(rng.uniform(0.15, 0.5) * 16000)
        samples[a : a + d] = 0.3 * rng.standard_normal(len(samples[a : a + d]))
        f = int(start * spec.MODEL_FPS)
        jaw[f : f + int(d / 16000 * spec.MODEL_FPS)] = 0.6
    late = np.interp(np.arange(len(jaw)) - 0.3 * spec.MODEL_FPS, np.arange(len(jaw)), jaw)
    assert speech_envelope(samples, 100).shape == (100,)
    check = check_sync(samples, late, jaw)
    assert check.corrected and check.offset == pytest.approx(0.3, abs=0.02)
    assert check_sync(samples, jaw, jaw).offset == pytest.approx(0.0, abs=0.01)
    far = np.interp(np.arange(len(jaw)) - 0.9 * spec.MODEL_FPS, np.arange(len(jaw)), jaw)
    assert check_sync(samples, far, jaw).refused
