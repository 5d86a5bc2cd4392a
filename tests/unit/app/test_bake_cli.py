"""`facepolicy bake` and `facepolicy styles` from the command line: outputs, manifests, resume, errors, Ctrl-C."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import envelope_engine
import pytest
from batch_helpers import UNIT, WORKER, write_line

from facepolicy.app import bake
from facepolicy.core import batch
from facepolicy.core.assets import asset_root
from facepolicy.core.errors import FacePolicyError
from facepolicy.core.facetrack import FaceTrack
from facepolicy.core.livelink import read_livelink_csv

envelope_engine.register()


def parse(argv):
    parser = argparse.ArgumentParser(prog="facepolicy")
    sub = parser.add_subparsers(dest="command")
    bake.add_parser(sub)
    return parser.parse_args(argv)


def run(argv, executor=None):
    args = parse(argv)
    return bake.run_bake(args, executor) if args.command == "bake" else bake.run(args)


def test_the_issue_argument_set_parses():
    args = parse(["bake", "a.wav", "b.wav", "--blend", "c.blend", "--object", "Face", "-o", "out",
                  "--format", "csv,json,fbx,glb,blend", "--fps", "24", "--seed", "3", "--takes", "2",
                  "--style", "calm", "--strength", "0.5", "--transcript", "t.txt", "--engine", "phonetic",
                  "--device", "cpu", "--jobs", "2", "--manifest", "m.csv"])
    assert args.audio == ["a.wav", "b.wav"] and args.fps == 24.0 and args.jobs == 2 and args.takes == 2
    from facepolicy.core.engine import BakeOptions

    assert parse(["bake", "a.wav"]).engine == BakeOptions().engine


def test_one_line_to_a_file_whose_suffix_picks_the_format(tmp_path, capsys):
    wav = write_line(tmp_path / "hello.wav")
    assert run(["bake", str(wav), "-o", str(tmp_path / "out" / "take.csv"), "--engine", "envelope"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".take.facepolicy-bake", "take.csv"]
    assert read_livelink_csv(tmp_path / "out" / "take.csv").n_frames == 30
    out = capsys.readouterr().out
    assert "1 baked, 0 up to date, 0 failed" in out and "lines/min" in out


@pytest.mark.parametrize("argv, match", [
    (["a.wav", "b.wav", "-o", "x.fbx"], "works for exactly one AUDIO"),
    (["a.wav", "-o", "x.fbx", "--format", "csv"], "asks for fbx but --format asks for csv"),
    (["a.wav", "b.wav", "--transcript", "t.txt"], "--transcript works with exactly one AUDIO"),
    (["a.wav", "--format", "csv,mp4"], "unknown output format 'mp4'"),
    (["a.wav", "--takes", "0"], "--takes must be at least 1"),
    (["a.wav", "--fps", "0"], "--fps must be a positive number"),
    (["a.wav", "--jobs", "0"], "--jobs must be at least 1"),
    (["a.wav", "--strength", "-1"], "--strength must be 0 or more"),
    (["a.wav", "--blend", "missing.blend"], "missing.blend\": file not found"),
    (["a.wav", "--object", "Face"], "needs --blend FILE"),
    (["a.wav", "--style", "grumpy"], "unknown style preset 'grumpy'; valid presets: average, calm, expressive"),
    (["a.wav", "--intensity", "1.5"], "--intensity must be between 0 and 1"),
    (["a.wav", "--audio-guidance", "nan"], "--audio-guidance must be 0 or more"),
    (["a.wav", "--steps", "0"], "--steps must be between 1 and 100"),
    (["a.wav", "--phonetic-prior", "1.5"], "--phonetic-prior must be between 0 and 1"),
    ([], "nothing to bake"),
])
def test_bad_command_lines_say_what_is_wrong(tmp_path, monkeypatch, argv, match):
    monkeypatch.chdir(tmp_path)
    write_line(tmp_path / "a.wav")
    with pytest.raises(FacePolicyError, match=match):
        run(["bake", *argv])


@pytest.mark.parametrize("output", ["line.gltf", "line.MP4", "renders.v2", "sub/take.fbx.bak"])
def test_an_output_suffix_the_bake_does_not_write_is_refused_before_anything_is_made(tmp_path, monkeypatch, output):
    monkeypatch.chdir(tmp_path)
    write_line(tmp_path / "a.wav")
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(FacePolicyError) as info:
        run(["bake", "a.wav", "-o", output, "--engine", "envelope"])
    suffix = output.rsplit(".", 1)[1]
    assert str(info.value) == (f'-o "{output}": bake writes .csv, .json, .fbx, .glb, .blend files, not .{suffix}; '
                               'end a folder name with "/" to use it as a folder')
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("audio, said", [(".", "is a folder, not an audio file"), ("", "no audio file given")])
def test_an_audio_argument_without_a_file_name_is_a_failed_line_that_says_why(tmp_path, monkeypatch, capsys, audio,
                                                                               said):
    # The Neural engine starts loading before the batch is planned (bake._prepare_engine): an AUDIO it cannot
    # make a transcript's name of must still reach the plan, which says what is wrong with it.
    monkeypatch.chdir(tmp_path)
    assert run(["bake", audio, "-o", "x.csv"]) == 1
    out = capsys.readouterr().out
    assert said in out and "0 baked, 0 up to date, 1 failed" in out, out
    assert sorted(tmp_path.iterdir()) == []


def test_a_folder_name_with_a_dot_is_a_folder_with_a_slash_or_when_it_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_line(tmp_path / "a.wav")
    assert run(["bake", "a.wav", "-o", "renders.v2/", "--engine", "envelope", "--format", "json"]) == 0
    (tmp_path / "takes.2024").mkdir()
    assert run(["bake", "a.wav", "-o", "takes.2024", "--engine", "envelope", "--format", "json"]) == 0
    for folder in ("renders.v2", "takes.2024"):
        assert FaceTrack.load_json(tmp_path / folder / "a.json").n_frames == 30


def test_manifest_batch_with_bad_rows_resumes_and_reports(tmp_path, capsys):
    lines = tmp_path / "lines"
    for n in ("a", "b", "c"):
        write_line(lines / f"{n}.wav", seconds=0.6)
    (lines / "b.txt").write_text("bee", encoding="utf-8")
    (lines / "broken.wav").write_bytes(b"RIFF????WAVEjunk")
    manifest = tmp_path / "m.csv"
    manifest.write_text("audio,output,seed\nlines/a.wav,act1/a,1\nlines/b.wav,act1/b,\nlines/missing.wav,m,\n"
                        "lines/broken.wav,broken,\nlines/c.wav,../../evil,\nlines/c.wav,act1/a,\nlines/c.wav,c,x\n"
                        "lines/c.wav\n", encoding="utf-8")
    out = tmp_path / "out"
    argv = ["bake", "--manifest", str(manifest), "-o", str(out), "--engine", "envelope"]
    assert run(argv) == 1
    text = capsys.readouterr().out
    assert "2 baked, 0 up to date, 6 failed" in text
    ok_rows = [line for line in text.splitlines() if " ok " in line]
    assert "no transcript: the envelope engine guessed" in ok_rows[0] and "guessed" not in ok_rows[1]  # a.wav, b.wav
    for needle in ("missing.wav\": audio file not found", "broken.wav\": could not decode audio",
                   "leaves the output folder", "already written by m.csv line 2", "seed must be a whole number",
                   "1 cells but the header has 3"):
        assert needle in text, needle
    assert FaceTrack.load_json(out / "act1" / "b.json").meta["transcript"] == "bee"
    assert FaceTrack.load_json(out / "act1" / "a.json").meta["seed"] == 1
    assert not (tmp_path / "evil.csv").exists() and not (tmp_path / "evil.json").exists()
    # Run again: the two good lines are up to date; the bad ones still fail.
    assert run(argv) == 1
    assert "0 baked, 2 up to date, 6 failed" in capsys.readouterr().out
    manifest.write_text("audio,output,seed\nlines/a.wav,act1/a,1\nlines/b.wav,act1/b,\nlines/c.wav,c,2\n",
                        encoding="utf-8")
    assert run(argv) == 0
    assert "1 baked, 2 up to date, 0 failed" in capsys.readouterr().out


def test_json_manifest_and_arguments_together_with_workers(tmp_path, capsys):
    for n in ("a", "b", "c", "d"):
        write_line(tmp_path / f"{n}.wav", seconds=0.5)
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps([{"audio": "c.wav", "seed": 2}, {"audio": "d.wav", "output": "dee"}]))
    argv = ["bake", str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), "--manifest", str(manifest),
            "-o", str(tmp_path / "out"), "--engine", "envelope", "--format", "json", "--jobs", "2"]
    assert run(argv, executor=batch.ProcessExecutor(2, WORKER)) == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("[!.]*.json")) == ["a.json", "b.json", "c.json", "dee.json"]
    assert FaceTrack.load_json(tmp_path / "out" / "c.json").meta["seed"] == 2
    assert "4 baked" in capsys.readouterr().out


def test_unknown_engine_fails_each_row(tmp_path, capsys, monkeypatch):
    from facepolicy.core import engine

    wav = write_line(tmp_path / "a.wav")
    monkeypatch.setitem(engine.NOT_SHIPPED, "lidar", "the Lidar engine is not offered in this version")
    assert run(["bake", str(wav), "-o", str(tmp_path / "out"), "--engine", "lidar"]) == 1
    assert "the Lidar engine is not offered in this version" in capsys.readouterr().out
    assert run(["bake", str(wav), "-o", str(tmp_path / "out2"), "--engine", "bogus"]) == 1
    assert "unknown engine 'bogus'; available:" in capsys.readouterr().out


def test_scene_formats_without_blender_fail_clearly(tmp_path, capsys, monkeypatch):
    wav = write_line(tmp_path / "a.wav")

    def no_bpy():
        raise FacePolicyError("fbx, glb and blend need Blender (bpy)")

    monkeypatch.setattr(bake, "scene_exporter", no_bpy)
    assert run(["bake", str(wav), "-o", str(tmp_path / "out"), "--engine", "envelope", "--format", "csv,fbx"]) == 1
    assert "need Blender" in capsys.readouterr().out


def test_styles_lists_presets_honestly(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEPOLICY_ASSETS", str(tmp_path))
    assert run(["styles"]) == 0
    assert "No style presets are installed" in capsys.readouterr().out
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.json").write_text(json.dumps({"styles": {"calm": [0.0] * 4}}), encoding="utf-8")
    assert run(["styles"]) == 0
    assert "  calm" in capsys.readouterr().out
    with pytest.raises(FacePolicyError, match="valid presets: calm"):
        run(["bake", "a.wav", "--style", "angry"])


CLI = ("import sys; sys.path.insert(0, {here!r}); import envelope_engine; envelope_engine.register(); "
       "import batch_helpers; from facepolicy.app import bake; import argparse; "
       "bake.worker_command = lambda: batch_helpers.WORKER; "
       "p = argparse.ArgumentParser(); s = p.add_subparsers(dest='command'); bake.add_parser(s); "
       "sys.exit(bake.run(p.parse_args(sys.argv[1:])))")


@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_leaves_finished_files_valid_and_no_partial_files(tmp_path, jobs):
    for i in range(8):
        write_line(tmp_path / f"l{i}.wav", seconds=0.4)
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", CLI.format(here=str(UNIT)), "bake", *[str(tmp_path / f"l{i}.wav") for i in range(8)],
           "-o", str(out), "--engine", "envelope", "--jobs", str(jobs)]
    env = dict(os.environ, FACEPOLICY_TEST_ENGINE_DELAY="0.4")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(out.glob(".*.facepolicy-bake"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "cancelled" in stdout
    assert not [p.name for p in out.iterdir() if ".part" in p.name]
    finished = {p.name.split(".")[1] for p in out.glob(".*.facepolicy-bake")}
    assert 2 <= len(finished) < 8
    for p in out.glob("*.json"):
        FaceTrack.load_json(p)  # every file present is complete
    for p in out.glob("*.csv"):
        read_livelink_csv(p)
    # Running again bakes only what is missing.
    rerun = subprocess.run(cmd, env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{8 - len(finished)} baked, {len(finished)} up to date, 0 failed" in rerun.stdout


def test_ntsc_frame_rate_is_exact(tmp_path):
    wav = write_line(tmp_path / "a.wav", seconds=2.0)
    assert run(["bake", str(wav), "-o", str(tmp_path / "a.json"), "--engine", "envelope", "--fps", "29.97"]) == 0
    track = FaceTrack.load_json(tmp_path / "a.json")
    assert track.fps == 30000 / 1001 and track.n_frames == 60


def test_worker_command_is_this_python_or_blender_itself(monkeypatch):
    import types

    monkeypatch.delitem(sys.modules, "bpy", raising=False)
    assert bake.worker_command() == [sys.executable, "-m", "facepolicy.blender.worker"]
    fake = types.SimpleNamespace(app=types.SimpleNamespace(binary_path="/opt/blender/blender"))
    monkeypatch.setitem(sys.modules, "bpy", fake)
    cmd = bake.worker_command()
    assert cmd[:5] == ["/opt/blender/blender", "-b", "--python-exit-code", "1", "--python-expr"]
    assert "import_module('facepolicy.blender.worker').main()" in cmd[5]


def test_default_engine_in_real_worker_processes(tmp_path, capsys):
    for n in ("a", "b"):
        write_line(tmp_path / f"{n}.wav", seconds=1.0)
    argv = ["bake", str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), "-o", str(tmp_path / "out"),
            "--format", "csv", "--jobs", "2"]
    assert run(argv) == 0, capsys.readouterr().out
    for n in ("a", "b"):
        assert read_livelink_csv(tmp_path / "out" / f"{n}.csv").n_frames == 30


def test_accuracy_reaches_the_engine_options_and_the_resume_fingerprint(tmp_path):
    line = write_line(tmp_path / "line.wav")
    plans = {}
    for accuracy in ("fast", "accurate"):
        rows, failures, opts = bake.build_plan(parse(["bake", str(line), "-o", str(tmp_path / "out"),
                                                      "--accuracy", accuracy]))
        assert not failures and opts.accuracy == accuracy
        plans[accuracy] = batch.row_fingerprint(rows[0], opts)
    assert plans["fast"] != plans["accurate"], "changing the mode must re-bake, not skip"
    assert parse(["bake", str(line)]).accuracy is None  # each engine's own default
    with pytest.raises(SystemExit):
        parse(["bake", str(line), "--accuracy", "sloppy"])


def test_emotion_and_neural_settings_reach_the_engine_options_and_the_resume_fingerprint(tmp_path, monkeypatch):
    line = write_line(tmp_path / "line.wav")
    seen = []
    from facepolicy.core import engine

    monkeypatch.setattr(engine, "animate", lambda audio, options, progress=None, cancel=None: seen.append(options) or
                        FaceTrack.zeros(30))
    argv = ["bake", str(line), "-o", str(tmp_path / "out"), "--engine", "envelope", "--format", "csv"]
    assert run(argv + ["--emotion", "happy", "--intensity", "0.8", "--audio-guidance", "1.5", "--steps", "6",
                       "--phonetic-prior", "0.5"]) == 0
    assert (seen[0].emotion, seen[0].emotion_intensity) == ("happy", 0.8)
    assert seen[0].audio_guidance == 1.5 and seen[0].steps == 6
    assert seen[0].prior_weight == 0.5 and seen[0].model_dir is None
    model = tmp_path / "model"
    shutil.copytree(asset_root() / "models", model)
    assert run(argv + ["--model", str(model)]) == 0
    assert seen[-1].model_dir == str(model.absolute())
    prints = set()
    for extra in ([], ["--emotion", "sad"], ["--emotion", "sad", "--intensity", "1"], ["--steps", "8"],
                  ["--audio-guidance", "2"], ["--phonetic-prior", "0"], ["--model", str(model)]):
        rows, failures, opts = bake.build_plan(parse(argv + extra))
        prints.add(batch.row_fingerprint(rows[0], opts))
    assert len(prints) == 7, "every setting that changes the output must re-bake, not skip"
    # Another model in the same folder (its model.json changed) re-bakes too.
    manifest = model / "model.json"
    manifest.write_text(manifest.read_text(encoding="utf-8").replace('"name"', '"name" ', 1), encoding="utf-8")
    rows, failures, opts = bake.build_plan(parse(argv + ["--model", str(model)]))
    assert batch.row_fingerprint(rows[0], opts) not in prints
    with pytest.raises(SystemExit):
        parse(argv + ["--emotion", "grumpy"])
