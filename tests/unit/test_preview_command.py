"""`facepolicy preview`: frame selection, the PNG writer and the contact sheet end to end."""

from __future__ import annotations

import argparse
import json
import struct
import zlib

import numpy as np
import pytest

from facepolicy.core import spec
from facepolicy.core.errors import FacePolicyError
from facepolicy.core.facetrack import FaceTrack
from facepolicy.preview import build, command
from facepolicy.preview.png import encode_png


def decode_png(data: bytes) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA PNG with filter 0 (what encode_png writes), checking every chunk's CRC and the row
    filters; the preview journey reads its sheets with it too."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body)
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    w, h, depth, color = header[:4]
    assert depth == 8 and color in (2, 6)
    channels = {2: 3, 6: 4}[color]
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * channels)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(h, w, channels)


def test_png_round_trip():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_png(encode_png(img)), img)
    rgba = rng.random((3, 4, 4))
    np.testing.assert_array_equal(decode_png(encode_png(rgba)), (rgba * 255 + 0.5).astype(np.uint8))
    with pytest.raises(ValueError, match="must be"):
        encode_png(np.zeros((4, 4)))


@pytest.mark.parametrize("text,n,expected", [
    (None, 5, [0, 1, 2, 3, 4]),
    (None, 1000, [int(round(x)) for x in np.linspace(0, 999, 12)]),
    ("0:10:3", 100, [0, 3, 6, 9]),
    ("::40", 100, [0, 40, 80]),
    ("5", 10, [5]),
    ("-1", 10, [9]),
    ("90:", 95, [90, 91, 92, 93, 94]),
])
def test_parse_frames(text, n, expected):
    assert command.parse_frames(text, n) == expected


@pytest.mark.parametrize("text,n,message", [
    ("1:2:0", 10, "STEP must not be 0"),
    ("50:60", 10, "selects no frame"),
    ("a:b", 10, "must be integers"),
    ("0:1000", 1000, "at most 100"),
    ("12", 10, "frames 0..9"),
    ("1:2:3:4", 10, "A:B:STEP"),
])
def test_parse_frames_errors(text, n, message):
    with pytest.raises(FacePolicyError, match=message):
        command.parse_frames(text, n)


def _args(tmp_path, track_path, **extra):
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers())
    argv = ["preview", str(track_path), "-o", str(tmp_path / "sheet.png"), "--size", "48", "--columns", "2",
            "--backend", "cpu"]
    for key, value in extra.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def library():
    if build.find_cxx() is None:
        pytest.skip("no C++ compiler to build the splat library")
    build.ensure_cpu_library()


def test_contact_sheet_of_a_track(tmp_path, library, capsys):
    track = FaceTrack.zeros(3)
    track.values[1, spec.CHANNEL_NAMES.index("jawOpen")] = 1.0
    track.values[2, spec.CHANNEL_NAMES.index("headYaw")] = 0.5
    track.save_json(tmp_path / "t.json")
    assert command.run(_args(tmp_path, tmp_path / "t.json", frames="0:3")) == 0
    assert "3 frames (0..2)" in capsys.readouterr().out
    sheet = decode_png((tmp_path / "sheet.png").read_bytes()).astype(float)
    assert sheet.shape == (48 * 2 + 2, 48 * 2 + 2, 3)
    tiles = [sheet[:48, :48], sheet[:48, 50:98], sheet[50:98, :48]]
    # A head is drawn (bright pixels in the middle), and every frame differs from the neutral one.
    assert tiles[0][16:32, 16:32].mean() > 80
    assert np.abs(tiles[1] - tiles[0]).mean() > 0.5 and np.abs(tiles[2] - tiles[0]).mean() > 2


def test_bad_inputs_get_clear_errors(tmp_path, library):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(FacePolicyError, match="bad.json"):
        command.run(_args(tmp_path, tmp_path / "bad.json"))
    FaceTrack.zeros(2).save_json(tmp_path / "t.json")
    with pytest.raises(FacePolicyError, match="need --ply"):
        command.run(_args(tmp_path, tmp_path / "t.json", ply_transform=tmp_path / "m.json"))
    with pytest.raises(FacePolicyError, match="--size"):
        command.run(_args(tmp_path, tmp_path / "t.json", size=4))
    (tmp_path / "lm.json").write_text(json.dumps({"nose_tip": [0, 0, 0], "elbow": [1, 2, 3]}))
    from facepolicy.preview.cloud import GaussianCloud
    from facepolicy.preview.ply import write_ply

    write_ply(tmp_path / "s.ply", GaussianCloud(np.zeros((2, 3)), np.zeros((2, 3)), [[1, 0, 0, 0]] * 2,
                                                np.zeros(2), np.zeros((2, 1, 3))))
    with pytest.raises(FacePolicyError, match="unknown landmarks elbow"):
        command.run(_args(tmp_path, tmp_path / "t.json", ply=tmp_path / "s.ply", ply_landmarks=tmp_path / "lm.json"))
    assert not (tmp_path / "sheet.png").exists()


def test_contact_sheet_of_a_live_link_csv_take(tmp_path, library, capsys):
    from facepolicy.core.livelink import write_livelink_csv

    track = FaceTrack.zeros(3)
    track.values[1, spec.CHANNEL_NAMES.index("jawOpen")] = 1.0
    track.save_json(tmp_path / "t.json")
    write_livelink_csv(track, tmp_path / "take.csv")
    assert command.run(_args(tmp_path, tmp_path / "take.csv", frames="0:3")) == 0
    assert "3 frames (0..2) of take.csv" in capsys.readouterr().out
    from_csv = decode_png((tmp_path / "sheet.png").read_bytes())
    assert command.run(_args(tmp_path, tmp_path / "t.json", frames="0:3")) == 0
    np.testing.assert_array_equal(from_csv, decode_png((tmp_path / "sheet.png").read_bytes()))


@pytest.mark.parametrize("name", ["sheet.jpg", "sheet.JPEG", "sheet"])
def test_an_image_name_that_is_not_png_is_refused_before_rendering(tmp_path, name):
    FaceTrack.zeros(2).save_json(tmp_path / "t.json")
    args = _args(tmp_path, tmp_path / "t.json")
    args.output = tmp_path / name
    with pytest.raises(FacePolicyError) as info:
        command.run(args)
    assert str(info.value) == (f'-o "{tmp_path / name}": the contact sheet is written as PNG only; give a name '
                               "ending in .png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json"]


def test_contact_sheet_of_an_aligned_ply(tmp_path, library):
    """A .ply made from the head, moved away by a known transform, comes back onto the head with --ply-transform."""
    from facepolicy.core.head import load_default_head
    from facepolicy.preview.ply import write_ply
    from facepolicy.preview.scene import SplatScene

    head = load_default_head()
    cloud = SplatScene.from_head(head, 1).cloud(head.vertices)
    M = np.eye(4)
    M[:3, :3] *= 2.0
    M[:3, 3] = [1.0, 2.0, 3.0]
    write_ply(tmp_path / "s.ply", cloud.transformed(2.0, np.eye(3), [1.0, 2.0, 3.0]))
    inverse = np.linalg.inv(M)
    (tmp_path / "m.json").write_text(json.dumps({"matrix": inverse.tolist()}))
    FaceTrack.zeros(1).save_json(tmp_path / "t.json")
    assert command.run(_args(tmp_path, tmp_path / "t.json", ply=tmp_path / "s.ply",
                             ply_transform=tmp_path / "m.json", export_ply=tmp_path / "bound.ply")) == 0
    sheet = decode_png((tmp_path / "sheet.png").read_bytes())
    assert sheet[16:32, 16:32].mean() > 80
    # The exported splat is back on the head: the original cloud, up to float rounding.
    from facepolicy.preview.ply import read_ply

    exported = read_ply(tmp_path / "bound.ply")
    assert exported.n == cloud.n
    np.testing.assert_allclose(exported.means, cloud.means, atol=1e-5)
    with pytest.raises(FacePolicyError, match="above the limit of 1.0 KB"):
        command.run(_args(tmp_path, tmp_path / "t.json", ply=tmp_path / "s.ply", ply_memory_limit=0.001))
