"""Journey: a baked line plays in sync in every file it is exported to.

A game engine reads an FBX or glb clip from time 0 and starts the voice line at the same moment, so frame k of every
export must sit at k / fps seconds of the audio: the first sample at exactly 0. The .blend keeps the character's
own timeline, and its take starts on the frame where its sound strip starts. Every file is parsed as written: the
glb and the FBX with struct (as an engine's importer reads them), the CSV and JSON as text, the .blend with bpy.
"""

from __future__ import annotations

import csv
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from journey import ARCTIC, facepolicy

bpy = pytest.importorskip("bpy")
pytestmark = pytest.mark.blender  # fbx, glb and blend are written with bpy, on 5.0.1 and on 4.2

LINE = ARCTIC / "arctic_a0007.wav"
FBX_SECOND = 46186158000  # FBX time units (KTime) per second
NTSC = 30000 / 1001


# --- the files, parsed --------------------------------------------------------------------------------------


def glb_sampler_times(path: Path) -> dict[str, list[np.ndarray]]:
    """{animated path ("weights", "rotation", ...): the key times of each of its samplers} of a binary glTF."""
    data = path.read_bytes()
    magic, _version, _length = struct.unpack_from("<4sII", data, 0)
    assert magic == b"glTF"
    json_len, json_type = struct.unpack_from("<I4s", data, 12)
    assert json_type == b"JSON"
    doc = json.loads(data[20:20 + json_len])
    bin_len, bin_type = struct.unpack_from("<I4s", data, 20 + json_len)
    assert bin_type == b"BIN\x00"
    blob = data[28 + json_len:28 + json_len + bin_len]
    out: dict[str, list[np.ndarray]] = {}
    for animation in doc["animations"]:
        for channel in animation["channels"]:
            accessor = doc["accessors"][animation["samplers"][channel["sampler"]]["input"]]
            assert accessor["componentType"] == 5126 and accessor["type"] == "SCALAR"  # float32 seconds
            view = doc["bufferViews"][accessor["bufferView"]]
            times = np.frombuffer(blob, "<f4", accessor["count"], view.get("byteOffset", 0)
                                  + accessor.get("byteOffset", 0))
            assert np.float32(accessor["min"][0]) == times.min()  # what a loader trusts for the clip's start
            out.setdefault(channel["target"]["path"], []).append(times.astype(np.float64))
    return out


_FBX_SCALARS = {b"Y": "<h", b"C": "?", b"I": "<i", b"F": "<f", b"D": "<d", b"L": "<q"}
_FBX_ARRAYS = {b"f": "<f4", b"d": "<f8", b"l": "<i8", b"i": "<i4", b"b": "?"}


def parse_fbx(path: Path) -> list[tuple]:
    """The node tree of a binary FBX: [(name, properties, children)] (the format of the FBX SDK, 7.x)."""
    data = path.read_bytes()
    assert data[:21] == b"Kaydara FBX Binary  \x00"
    (version,) = struct.unpack_from("<I", data, 23)
    record = struct.Struct("<QQQB" if version >= 7500 else "<IIIB")

    def node(pos: int):
        end, n_props, _props_len, name_len = record.unpack_from(data, pos)
        pos += record.size
        if end == 0:  # the empty record that closes a list of children
            return None, pos
        name = data[pos:pos + name_len]
        pos += name_len
        props = []
        for _ in range(n_props):
            code = data[pos:pos + 1]
            pos += 1
            if code in _FBX_SCALARS:
                fmt = struct.Struct(_FBX_SCALARS[code])
                props.append(fmt.unpack_from(data, pos)[0])
                pos += fmt.size
            elif code in _FBX_ARRAYS:
                count, encoding, size = struct.unpack_from("<III", data, pos)
                raw = data[pos + 12:pos + 12 + size]
                pos += 12 + size
                props.append(np.frombuffer(zlib.decompress(raw) if encoding else raw, _FBX_ARRAYS[code], count))
            else:  # S (string) or R (raw bytes)
                (size,) = struct.unpack_from("<I", data, pos)
                props.append(data[pos + 4:pos + 4 + size])
                pos += 4 + size
        children = []
        while pos < end:
            child, pos = node(pos)
            if child is None:
                break
            children.append(child)
        return (name, props, children), end

    pos, top = 27, []
    while True:
        item, pos = node(pos)
        if item is None:
            return top
        top.append(item)


def _first(nodes, name: bytes):
    return next(n for n in nodes if n[0] == name)


def fbx_timing(path: Path) -> tuple[list[np.ndarray], int, int]:
    """(the KeyTime array of every AnimationCurve, the take's start in KTime, the stack's LocalStart in KTime)."""
    top = parse_fbx(path)
    objects = _first(top, b"Objects")[2]
    curves = [np.asarray(_first(c[2], b"KeyTime")[1][0], np.int64) for c in objects if c[0] == b"AnimationCurve"]
    (stack,) = [o for o in objects if o[0] == b"AnimationStack"]
    props = {p[1][0]: p[1][-1] for p in _first(stack[2], b"Properties70")[2]}
    take = _first(_first(top, b"Takes")[2], b"Take")
    return curves, int(_first(take[2], b"LocalTime")[1][0]), int(props.get(b"LocalStart", 0))  # absent means 0


def csv_seconds(path: Path, fps: float) -> np.ndarray:
    """The Live Link Face CSV's timecodes (HH:MM:SS:FF.mmm at the nominal rate) in seconds."""
    rate = round(fps)
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "Timecode"
    out = []
    for row in rows[1:]:
        hh, mm, ss, frames = row[0].split(":")
        out.append(int(hh) * 3600 + int(mm) * 60 + int(ss) + float(frames) / rate)
    return np.asarray(out)


def blend_take_and_strip(path: Path):
    """(scene frame range, the animated shape keys' action frame range, [(sound strip start, end)]) of a .blend."""
    bpy.ops.wm.open_mainfile(filepath=str(path), load_ui=False)
    scene = bpy.context.scene
    actions = [ob.data.shape_keys.animation_data.action for ob in scene.objects
               if ob.type == "MESH" and ob.data.shape_keys is not None and ob.data.shape_keys.animation_data]
    (action,) = [a for a in actions if a is not None]
    editor = scene.sequence_editor
    strips = [] if editor is None else list(getattr(editor, "strips_all", None) or editor.sequences_all)
    sounds = [(s.frame_start, s.frame_final_end) for s in strips if s.type == "SOUND"]
    return (scene.frame_start, scene.frame_end), tuple(action.frame_range), sounds


def blender_has_audio() -> bool:
    return bool(bpy.app.build_options.audaspace)  # the 4.2 bpy wheel has none: no sound strip can be added


# --- the checks -----------------------------------------------------------------------------------------------


def assert_on_the_audio_clock(times: np.ndarray, fps: float, n: int, tol: float, what: str, rtol: float = 0) -> None:
    """Sample k at k / fps seconds: the first at exactly 0, and one sample per frame of the track."""
    assert len(times) == n, f"{what}: {len(times)} samples, the track has {n} frames"
    assert times[0] == 0.0, f"{what}: the first sample is at {times[0]:.6f} s, not at audio time 0"
    np.testing.assert_allclose(times, np.arange(n) / fps, rtol=rtol, atol=tol, err_msg=what)


def assert_glb_and_fbx_start_at_zero(out: Path, stem: str, fps: float, n: int) -> None:
    samplers = glb_sampler_times(out / f"{stem}.glb")
    assert samplers.get("weights"), "the glb has no morph-weights animation"
    for path, times_list in sorted(samplers.items(), key=lambda item: item[0] != "weights"):
        for times in times_list:  # float32 seconds: 2 ulp at a minute
            assert_on_the_audio_clock(times, fps, n, 1e-5, f"glb {path} animation")
    curves, take_start, stack_start = fbx_timing(out / f"{stem}.fbx")
    assert curves and take_start == 0 and stack_start == 0, (take_start, stack_start)
    for keytimes in curves:
        assert keytimes[0] == 0, f"FBX curve starts at {keytimes[0] / FBX_SECOND:.6f} s"
        # The exporter truncates frame / fps * 46186158000 to an integer, and Blender keeps the rate's base
        # (1.001 at 29.97 fps) as a float32: 5e-8 of the time, 0.2 ms after an hour.
        assert_on_the_audio_clock(keytimes / FBX_SECOND, fps, n, 2 / FBX_SECOND, "FBX AnimationCurve KeyTime",
                                  rtol=1e-7)


@pytest.mark.parametrize("fps", [30.0, 24.0, 60.0, NTSC], ids=["30", "24", "60", "29.97"])
def test_every_export_starts_at_audio_time_zero(tmp_path, fps):
    out = tmp_path / "out"
    res = facepolicy("bake", LINE, "--format", "csv,json,fbx,glb,blend", "-o", f"{out}/", "--fps", f"{fps:g}")
    assert res.returncode == 0, res.stderr[-2000:]
    stem = LINE.stem

    track = json.loads((out / f"{stem}.json").read_text(encoding="utf-8"))
    n = len(track["weights"])
    assert track["fps"] == pytest.approx(fps, rel=1e-9)
    duration = sf.info(str(LINE)).duration
    assert abs(n / fps - duration) <= 1 / fps  # frame k at k / fps covers the audio, no frame missing or extra

    assert_on_the_audio_clock(csv_seconds(out / f"{stem}.csv", fps), fps, n, 1e-3 / round(fps), "Live Link CSV")
    assert_glb_and_fbx_start_at_zero(out, stem, fps, n)

    scene_range, take_range, sounds = blend_take_and_strip(out / f"{stem}.blend")
    assert take_range == (scene_range[0], scene_range[0] + n - 1) == scene_range
    if blender_has_audio():
        ((strip_start, strip_end),) = sounds
        assert strip_start == take_range[0]  # the first key plays with the first sample of the line
        assert abs((strip_end - strip_start) - duration * fps) <= 1
    else:  # a Blender without audio says the .blend has no sound strip instead of leaving it out silently
        assert not sounds and "the sound strip was not added" in res.stdout + res.stderr


def build_character_blend(path: Path, frame_start: int) -> Path:
    """A user's shot: a face with ARKit-named shape keys, in a scene whose timeline starts at ``frame_start``."""
    import bmesh  # provided by the bpy module

    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True, load_ui=False)
    mesh = bpy.data.meshes.new("FaceMesh")
    bm = bmesh.new()
    bmesh.ops.create_uvsphere(bm, u_segments=12, v_segments=8, radius=0.1)
    bm.to_mesh(mesh)
    bm.free()
    face = bpy.data.objects.new("Face", mesh)
    bpy.context.scene.collection.objects.link(face)
    face.shape_key_add(name="Basis")
    for i, name in enumerate(("jawOpen", "mouthClose", "eyeBlinkLeft", "mouthFunnel")):
        key = face.shape_key_add(name=name)
        co = np.empty(len(mesh.vertices) * 3, np.float32)
        key.data.foreach_get("co", co)
        co[i % 3::3] += 0.01 * (i + 1)
        key.data.foreach_set("co", co)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = frame_start, frame_start + 200
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


def test_a_shot_starting_at_frame_1001_keeps_its_timeline_and_its_exports_start_at_zero(tmp_path):
    shot = build_character_blend(tmp_path / "shot.blend", 1001)
    out = tmp_path / "out"
    res = facepolicy("bake", LINE, "--blend", shot, "--object", "Face", "--format", "json,fbx,glb,blend",
                  "-o", f"{out}/", "--engine", "phonetic")
    assert res.returncode == 0, res.stderr[-2000:]
    stem = LINE.stem
    n = len(json.loads((out / f"{stem}.json").read_text(encoding="utf-8"))["weights"])

    assert_glb_and_fbx_start_at_zero(out, stem, 30.0, n)
    scene_range, take_range, sounds = blend_take_and_strip(out / f"{stem}.blend")
    assert take_range == scene_range == (1001, 1001 + n - 1)  # the line starts where the shot starts
    if blender_has_audio():
        assert [start for start, _end in sounds] == [1001]
    else:
        assert not sounds and "the sound strip was not added" in res.stdout + res.stderr
