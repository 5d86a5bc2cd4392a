"""core.batch.bake: bake_row writes a line's files all together, its sidecar last, or leaves the folder as it was."""

from __future__ import annotations

import os

import envelope_engine
import numpy as np
import pytest
from batch_helpers import plan, write_line

from facepolicy.core import batch, spec
from facepolicy.core.errors import FacePolicyError
from facepolicy.core.facetrack import FaceTrack
from facepolicy.core.livelink import read_livelink_csv

envelope_engine.register()


def test_bake_row_writes_valid_files_and_a_sidecar(tmp_path):
    wav = write_line(tmp_path / "lines" / "hello.wav", seconds=1.5)
    (tmp_path / "lines" / "hello.txt").write_text("hello there\n", encoding="utf-8")
    rows, failures, opts = plan([{"audio": str(wav), "output": "act1/hello"}], tmp_path)
    assert not failures
    res = batch.bake_row(rows[0], opts)
    assert res.status == "ok", res.message
    out = tmp_path / "out" / "act1"
    assert sorted(p.name for p in out.iterdir()) == [".hello.facepolicy-bake", "hello.csv", "hello.json"]
    track = FaceTrack.load_json(out / "hello.json")
    assert track.fps == 30 and track.n_frames == 45 and track.meta["transcript"] == "hello there"
    assert track.meta["engine"] == "envelope" and track.meta["audio"] == "hello.wav"
    from_csv = read_livelink_csv(out / "hello.csv")
    assert from_csv.fps == 30 and from_csv.n_frames == 45
    np.testing.assert_allclose(from_csv.values, track.select(spec.CHANNEL_NAMES).values, atol=1e-6)
    assert res.audio_seconds == pytest.approx(1.5, abs=1e-3)


def test_fps_and_takes(tmp_path):
    wav = write_line(tmp_path / "a.wav", seconds=2.0)
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("json",), fps=24.0, takes=2)
    row = batch.BakeRow(1, str(wav), "a", engine="envelope", seed=3)
    assert batch.bake_row(row, opts).status == "ok"
    t1 = FaceTrack.load_json(tmp_path / "out" / "a_take1.json")
    t2 = FaceTrack.load_json(tmp_path / "out" / "a_take2.json")
    assert t1.fps == 24 and t1.n_frames == 48
    assert t1.meta["seed"] == 3 and t2.meta["seed"] == 4
    assert not np.allclose(t1.channel("mouthSmileLeft"), t2.channel("mouthSmileLeft"))


def test_bake_row_reports_failures_instead_of_raising(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"\0" * 100)
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"))
    res = batch.bake_row(batch.BakeRow(1, str(bad), "bad", engine="envelope"), opts)
    assert res.status == "failed" and "could not decode audio" in res.message
    wav = write_line(tmp_path / "a.wav")
    res = batch.bake_row(batch.BakeRow(2, str(wav), "a", engine="envelope"),
                         batch.BatchOptions(out_dir=opts.out_dir, formats=("csv", "fbx")))
    assert res.status == "failed" and "need Blender" in res.message
    assert not (tmp_path / "out" / "a.csv").exists()

    def no_bpy():
        raise ModuleNotFoundError("No module named 'bpy'")

    results = []
    scene_opts = batch.BatchOptions(out_dir=opts.out_dir, formats=("csv", "glb"))
    batch.InProcessExecutor(no_bpy).run([batch.BakeRow(3, str(wav), "a", engine="envelope")], scene_opts,
                                        results.append)
    assert results[0].message.startswith("fbx, glb and blend need Blender's bpy module (No module named 'bpy'); "
                                          "install it with 'pip install bpy'")
    assert not (tmp_path / "out" / "a.csv").exists()


def test_interrupted_row_leaves_none_of_its_files_and_is_not_up_to_date(tmp_path):
    wav = write_line(tmp_path / "a.wav")
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("csv", "glb", "fbx"))
    row = batch.BakeRow(1, str(wav), "a", engine="envelope")

    def exporter(tracks, row, opts, targets):
        from facepolicy.core.fileio import atomic_path

        targets["glb"][1].write_bytes(b"a whole glb")  # Blender's exporters write the final paths themselves
        with atomic_path(targets["fbx"][1]) as tmp:
            tmp.write_bytes(b"half an fbx")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        batch.InProcessExecutor(lambda: exporter).run([row], opts, lambda r: None)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []  # not the csv, not the glb
    assert not batch.is_up_to_date(row, opts)


def _scene_files(tracks, row, opts, targets):
    """A stand-in for Blender's exporter: one small file per target, recording the take's seed."""
    for fmt, takes in targets.items():
        for take, path in takes.items():
            path.write_text(f"{fmt} seed {tracks[take - 1].meta['seed']}")


def test_a_failed_or_interrupted_rebake_leaves_the_earlier_files_as_they_were(tmp_path):
    wav = write_line(tmp_path / "a.wav")
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("csv", "json", "glb", "fbx"))
    row = batch.BakeRow(1, str(wav), "a", engine="envelope")
    assert batch.bake_row(row, opts, _scene_files).status == "ok"
    out = tmp_path / "out"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == [".a.facepolicy-bake", "a.csv", "a.fbx", "a.glb", "a.json"]

    def fails_half_way(tracks, row, opts, targets):
        targets["glb"][1].write_text("new glb")
        raise FacePolicyError('"a.fbx": the FBX export failed (no space left)')

    rebake = batch.BakeRow(1, str(wav), "a", engine="envelope", seed=5)
    res = batch.bake_row(rebake, opts, fails_half_way)
    assert res.status == "failed" and "FBX export failed" in res.message
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert batch.is_up_to_date(row, opts)  # the earlier run's files still say what made them

    def interrupted(tracks, row, opts, targets):
        targets["glb"][1].write_text("new glb")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        batch.bake_row(rebake, opts, interrupted)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # A re-bake that completes replaces every file, the sidecar last.
    assert batch.bake_row(rebake, opts, _scene_files).status == "ok"
    assert (out / "a.glb").read_text() == "glb seed 5" and batch.is_up_to_date(rebake, opts)
    assert FaceTrack.load_json(out / "a.json").meta["seed"] == 5


def test_signals_are_held_while_a_group_of_files_is_renamed(tmp_path):
    import signal

    from facepolicy.core.fileio import FileGroup, signals_held

    with pytest.raises(KeyboardInterrupt):
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            reached = True  # the Ctrl-C waits for the end of the block
    assert reached
    with FileGroup() as group:
        for name in "ab":
            group.stage_text(tmp_path / f"{name}.txt", name)
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == []
        group.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]
    assert oct((tmp_path / "a.txt").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_audio_warnings_reach_the_row_result(tmp_path):
    wav = write_line(tmp_path / "cut.wav", seconds=3.0, rate=16000)
    data = wav.read_bytes()
    wav.write_bytes(data[:len(data) // 5])  # the header still says 3 s
    res = batch.bake_row(batch.BakeRow(1, str(wav), "cut", engine="envelope", transcript=None),
                         batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("json",)))
    assert res.status == "ok"
    assert res.message.startswith('"cut.wav": the file is truncated; read 0.60 s of the 3.00 s its header announces')
    assert "\n" not in res.message
