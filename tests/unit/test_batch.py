"""core.batch: manifests, per-row validation, output-name safety, resumability, executors and interruption."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import envelope_engine
import numpy as np
import pytest
import soundfile as sf

from facepolicy.core import batch, spec
from facepolicy.core.errors import FacePolicyError
from facepolicy.core.facetrack import FaceTrack
from facepolicy.core.livelink import read_livelink_csv

envelope_engine.register()
ENGINES = ["envelope", "neural", "phonetic"]
HERE = Path(__file__).resolve().parent


def write_line(path: Path, seconds: float = 1.0, freq: float = 180.0, rate: int = 22050) -> Path:
    """A speech-like test line: a tone with a 3 Hz syllable envelope."""
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * freq * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) ** 2
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.astype(np.float32), rate)
    return path


def plan(values_list, tmp_path, formats=("csv", "json"), base=None, **defaults):
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=tuple(formats))
    entries = [(f"line {i}", v) for i, v in enumerate(values_list, start=2)]
    d = batch.RowDefaults(engine="envelope", **defaults)
    rows, failures = batch.plan_rows(entries, d, base or tmp_path, opts, ENGINES, ["calm"])
    return rows, failures, opts


# --- output names -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../x", "a/../../x", "a/..", "/etc/passwd", "C:\\x", "c:x", "~/x", "..\\..\\x",
                                  "", "   ", ".hidden", "a/.x", "./."])
def test_output_names_that_leave_the_folder_are_refused(name):
    with pytest.raises(FacePolicyError):
        batch.check_output_name(name)


@pytest.mark.parametrize("name, expected", [("line1", "line1"), ("act1/line1.fbx", "act1/line1"),
                                            ("act1\\scene2\\l3", "act1/scene2/l3"), ("./a/./b", "a/b"),
                                            ("take.v2", "take.v2"), ("x.CSV", "x")])
def test_output_names_are_normalised(name, expected):
    assert batch.check_output_name(name) == expected


def test_symlink_out_of_the_output_folder_is_refused(tmp_path):
    wav = write_line(tmp_path / "a.wav")
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "link").symlink_to(elsewhere, target_is_directory=True)
    rows, failures, _ = plan([{"audio": str(wav), "output": "link/a"}], tmp_path)
    assert not rows and "outside the output folder" in failures[0].message


def test_parse_formats():
    assert batch.parse_formats("fbx, CSV,.json") == ("csv", "json", "fbx")
    with pytest.raises(FacePolicyError, match="unknown output format 'usd'.*csv, json, fbx, glb, blend"):
        batch.parse_formats("csv,usd")


# --- manifests ----------------------------------------------------------------------------------------------


def test_csv_manifest_rows_aliases_comments_and_malformed_rows(tmp_path):
    m = tmp_path / "lines.csv"
    m.write_text("# dialogue for act 1\nAudio,Output Name,seed\n"
                 "a.wav,act1/a,3\n\n# skipped\nb.wav,b\n\"c, d.wav\",c,1\n", encoding="utf-8")
    entries = batch.read_manifest(m)
    assert [e.source for e in entries] == ["lines.csv line 3", "lines.csv line 6", "lines.csv line 7"]
    assert entries[0].values == {"audio": "a.wav", "output": "act1/a", "seed": "3"}
    assert "2 cells but the header has 3" in entries[1].error
    assert entries[2].values["audio"] == "c, d.wav"


@pytest.mark.parametrize("text, match", [("output,seed\nx,1\n", 'needs an "audio" column'),
                                         ("audio,colour\na.wav,red\n", "unknown column"),
                                         ("# only a comment\n", "no rows")])
def test_csv_manifest_whole_file_problems(tmp_path, text, match):
    m = tmp_path / "m.csv"
    m.write_text(text, encoding="utf-8")
    with pytest.raises(FacePolicyError, match=match):
        batch.read_manifest(m)


def test_json_manifest(tmp_path):
    m = tmp_path / "m.json"
    m.write_text(json.dumps({"rows": [{"audio": "a.wav", "output_name": "x", "seed": 4}, "b.wav", 7,
                                      {"audio": "c.wav", "volume": 3}]}), encoding="utf-8")
    e = batch.read_manifest(m)
    assert e[0].values == {"audio": "a.wav", "output": "x", "seed": 4} and not e[0].error
    assert e[1].values == {"audio": "b.wav"}
    assert "expected an object" in e[2].error
    assert "unknown key(s) volume" in e[3].error
    (tmp_path / "bad.json").write_text("[{", encoding="utf-8")
    with pytest.raises(FacePolicyError, match="not valid JSON"):
        batch.read_manifest(tmp_path / "bad.json")
    with pytest.raises(FacePolicyError, match="file not found"):
        batch.read_manifest(tmp_path / "missing.json")


# --- validation -------------------------------------------------------------------------------------------


def test_every_bad_row_gets_its_own_error_and_good_rows_go_on(tmp_path):
    good = write_line(tmp_path / "good.wav")
    write_line(tmp_path / "good2.wav")
    (tmp_path / "garbage.wav").write_bytes(b"RIFF not really a wave file" * 10)
    (tmp_path / "blocker").write_text("a file where a folder is needed")
    rows, failures, _ = plan([
        {"audio": "good.wav", "output": "one"},
        {"audio": "missing.wav"},
        {"audio": "garbage.wav"},
        {"audio": "good.wav", "output": "../../escape"},
        {"audio": "good.wav", "output": "ONE"},  # same output as row 1 on a case-insensitive file system
        {"audio": "good.wav", "output": "x", "seed": "abc"},
        {"audio": "good.wav", "output": "y", "engine": "neural-v9"},
        {"audio": "good.wav", "output": "z", "style": "grumpy"},
        {"audio": "good2.wav", "output": "../out/blocker/q"},
        {"audio": ""},
        {"audio": "good2.wav", "output": "two", "__error__": "3 cells but the header has 2"},
        {"audio": str(good), "output": "sub/three", "seed": "5", "style": "calm"},
    ], tmp_path)
    (tmp_path / "out").mkdir()
    assert [r.output for r in rows] == ["one", "sub/three"]
    assert rows[1].seed == 5 and rows[1].style == "calm" and rows[1].engine == "envelope"
    messages = {f.index: f.message for f in failures}
    assert "missing.wav" in messages[2] and "not found" in messages[2]
    assert "garbage.wav" in messages[3] and "could not decode audio" in messages[3]
    assert "leaves the output folder" in messages[4]
    assert "already written by line 2" in messages[5]
    assert "seed must be a whole number" in messages[6]
    assert "unknown engine 'neural-v9'; available: envelope, neural, phonetic" in messages[7]
    assert "unknown style preset 'grumpy'; valid presets: calm" in messages[8]
    assert "leaves the output folder" in messages[9]
    assert "no audio file given" in messages[10]
    assert "3 cells" in messages[11]
    assert all(m.startswith(f"line {i + 1}:") for i, m in messages.items())


def test_output_folder_that_is_not_writable(tmp_path):
    wav = write_line(tmp_path / "a.wav")
    (tmp_path / "file").write_text("x")
    opts = batch.BatchOptions(out_dir=str(tmp_path / "file" / "out"))
    rows, failures = batch.plan_rows([("arg", {"audio": str(wav)})], batch.RowDefaults(engine="envelope"),
                                     tmp_path, opts, ENGINES, [])
    assert not rows and "is a file, not a folder" in failures[0].message


def test_style_without_presets_explains_why(tmp_path):
    with pytest.raises(FacePolicyError, match="none are installed"):
        batch.check_style("calm", [])
    ref = tmp_path / "ref.json"
    FaceTrack.zeros(4).save_json(ref)
    batch.check_style(str(ref), [])
    with pytest.raises(FacePolicyError, match="not found"):
        batch.check_style(str(tmp_path / "nope.csv"), [])
    (tmp_path / "bad.csv").write_text("not,a,take\n1,2,3\n", encoding="utf-8")
    with pytest.raises(FacePolicyError, match="not a Live Link Face CSV"):
        batch.check_style(str(tmp_path / "bad.csv"), [])
    (tmp_path / "bad.json").write_text("{}", encoding="utf-8")
    with pytest.raises(FacePolicyError, match="not a FacePolicy track"):
        batch.check_style(str(tmp_path / "bad.json"), [])


# --- baking and resuming ----------------------------------------------------------------------------------


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


def test_up_to_date_means_same_inputs_same_parameters_and_newer_outputs(tmp_path):
    wav = write_line(tmp_path / "a.wav")
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"))
    row = batch.BakeRow(1, str(wav), "a", engine="envelope")
    assert not batch.is_up_to_date(row, opts)
    assert batch.bake_row(row, opts).status == "ok"
    assert batch.is_up_to_date(row, opts)
    assert not batch.is_up_to_date(batch.BakeRow(1, str(wav), "a", engine="envelope", seed=1), opts)
    assert not batch.is_up_to_date(row, batch.BatchOptions(out_dir=opts.out_dir, fps=24.0))
    assert not batch.is_up_to_date(row, batch.BatchOptions(out_dir=opts.out_dir, formats=("csv", "json", "fbx")))
    # A transcript appearing beside the audio changes the result.
    (tmp_path / "a.txt").write_text("hi", encoding="utf-8")
    assert not batch.is_up_to_date(row, opts)
    (tmp_path / "a.txt").unlink()
    assert batch.is_up_to_date(row, opts)
    # An output older than an input (even with the same content) is re-baked.
    st = wav.stat()
    os.utime(tmp_path / "out" / "a.csv", ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
    assert not batch.is_up_to_date(row, opts)
    assert batch.bake_row(row, opts).status == "ok" and batch.is_up_to_date(row, opts)
    # New audio content.
    write_line(wav, freq=300.0)
    assert not batch.is_up_to_date(row, opts)
    assert batch.bake_row(row, opts).status == "ok" and batch.is_up_to_date(row, opts)
    (tmp_path / "out" / "a.json").unlink()
    assert not batch.is_up_to_date(row, opts)


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


# --- executors ------------------------------------------------------------------------------------------------

WORKER = [sys.executable, "-c",
          f"import sys; sys.path.insert(0, {str(HERE)!r}); import envelope_engine; envelope_engine.register(); "
          "from facepolicy.core.batch import serve; sys.exit(serve())"]


def test_process_executor_bakes_every_row_and_survives_a_worker_crash(tmp_path):
    rows = [batch.BakeRow(i, str(write_line(tmp_path / f"{n}.wav", seconds=0.5 + 0.1 * i)), n, engine="envelope")
            for i, n in enumerate(["a", "b", "crash", "c", "d"], start=1)]
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("json",))
    results = []
    batch.ProcessExecutor(2, WORKER, log_dir=str(tmp_path / "logs")).run(rows, opts, results.append)
    by_name = {r.output: r for r in results}
    assert sorted(by_name) == ["a", "b", "c", "crash", "d"]
    assert by_name["crash"].status == "failed" and "worker process stopped (exit code 3)" in by_name["crash"].message
    for n in "abcd":
        assert by_name[n].status == "ok", by_name[n].message
        track = FaceTrack.load_json(tmp_path / "out" / f"{n}.json")
        assert track.n_frames == pytest.approx(30 * (0.5 + 0.1 * ("abcrashd".index(n) + 1)), abs=20)
    assert not list((tmp_path / "out").glob("*.part*"))


class _Terminal:
    """A stream that says it is a terminal, as stderr is when a user runs the command."""

    def __init__(self, tty: bool):
        self.tty, self.text = tty, ""

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def test_progress_and_summary(tmp_path):
    piped = _Terminal(tty=False)
    p = batch.Progress(3, stream=piped)
    p.advance(0.5, "sampling")
    p.update(batch.RowResult(1, "a", "ok", seconds=1.0))
    p.update(batch.RowResult(2, "b", "failed", "boom"))
    p.close()
    assert piped.text == "" and p.done == 2 and p.failed == 1  # quiet when not a terminal

    terminal = _Terminal(tty=True)
    p = batch.Progress(1, stream=terminal)
    for fraction, message in [(0.25, "recognising"), (0.5, "sampling"), (0.4, "sampling")]:  # never backwards
        time.sleep(0.12)  # tqdm redraws at most every 0.1 s
        p.advance(fraction, message)
    p.close()
    assert " 25%|" in terminal.text and "recognising" in terminal.text
    assert " 50%|" in terminal.text and " 40%|" not in terminal.text
    assert re.search(r"\| 00:0\d<00:0\d, sampling", terminal.text)  # elapsed<remaining: tqdm's ETA

    terminal = _Terminal(tty=True)
    p = batch.Progress(4, stream=terminal)
    p.update(batch.RowResult(1, "a", "ok"))
    p.advance(0.5, "sampling")
    p.close()
    assert " 38%|" in terminal.text and "1/4 lines" in terminal.text


def test_progress_without_tqdm_bakes_quietly(monkeypatch):
    """Blender's Python has no tqdm: a bake inside Blender goes on without a bar."""
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm raises ImportError
    terminal = _Terminal(tty=True)
    p = batch.Progress(2, stream=terminal)
    p.advance(0.5, "sampling")
    p.update(batch.RowResult(1, "a", "ok"))
    p.close()
    assert terminal.text == "" and p.done == 1


def test_summary_table():
    table = batch.summary_table([batch.RowResult(2, "b", "failed", "boom"), batch.RowResult(1, "a", "ok", seconds=1),
                                 batch.RowResult(3, "c", "skipped")])
    lines = table.splitlines()
    assert lines[0].split() == ["#", "output", "status", "seconds", "message"]
    assert lines[1].split()[:3] == ["1", "a", "ok"] and lines[2].split() == ["2", "b", "failed", "boom"]
    assert "up to date" in lines[3]
    assert lines[-1] == "1 baked, 1 up to date, 1 failed"
