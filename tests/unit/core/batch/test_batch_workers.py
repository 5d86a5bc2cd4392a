"""core.batch.workers: warm worker processes bake every row and survive a worker's crash."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import envelope_engine
import pytest
from batch_helpers import WORKER, write_line

from facepolicy.core import batch
from facepolicy.core.facetrack import FaceTrack

envelope_engine.register()


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


# A worker that starts writing its row's JSON and is stopped before it can clean up (as one is when the signal lands
# between making a temporary file and noting it, or when it is killed after the grace period).
STUCK_WORKER = [sys.executable, "-c", """
import json, sys, time, pathlib
msg = json.loads(sys.stdin.readline())
out = pathlib.Path(msg["opts"]["out_dir"])
out.mkdir(parents=True, exist_ok=True)
(out / (".%s.json.stuck.part.json" % msg["row"]["output"])).write_text("[")
time.sleep(600)
"""]

DRIVER = f"""
import sys
from facepolicy.core import batch
rows = [batch.BakeRow(1, sys.argv[1], "line", engine="envelope")]
opts = batch.BatchOptions(out_dir=sys.argv[2], formats=("json",))
try:
    batch.ProcessExecutor(1, {STUCK_WORKER!r}).run(rows, opts, print)
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_ctrl_c_removes_the_temporary_files_of_a_row_its_worker_left(tmp_path):
    out = tmp_path / "out"
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(write_line(tmp_path / "line.wav")), str(out)])
    try:
        deadline = time.monotonic() + 60
        while not list(out.glob(".line.json.*")) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert list(out.glob(".line.json.*")), "the worker never started the row"
        driver.send_signal(signal.SIGINT)
        assert driver.wait(timeout=60) == 130
    finally:
        driver.kill()
    assert list(out.iterdir()) == []


# A worker that, re-baking a line, has moved the line's earlier output and sidecar aside (FileGroup.claim) and is
# stopped before it can put them back or write new ones.
CLAIMING_WORKER = [sys.executable, "-c", """
import json, sys, time, pathlib
from facepolicy.core.fileio import FileGroup
msg = json.loads(sys.stdin.readline())
out = pathlib.Path(msg["opts"]["out_dir"])
group = FileGroup()
for name in (msg["row"]["output"] + ".json", "." + msg["row"]["output"] + ".facepolicy-bake"):
    group.claim(out / name)
print("claimed", file=sys.stderr, flush=True)
time.sleep(600)
"""]


def test_ctrl_c_puts_back_the_earlier_output_a_stopped_worker_had_moved_aside(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "line.json").write_text('{"earlier": true}')
    (out / ".line.facepolicy-bake").write_text("{}")
    driver = subprocess.Popen([sys.executable, "-c", DRIVER.replace(repr(STUCK_WORKER), repr(CLAIMING_WORKER)),
                               str(write_line(tmp_path / "line.wav")), str(out)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while (out / "line.json").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not (out / "line.json").exists(), "the worker never moved the earlier output aside"
        driver.send_signal(signal.SIGINT)
        assert driver.wait(timeout=60) == 130
    finally:
        driver.kill()
    # The user's earlier output is back as it was; the sidecar's copy is dropped, so the next run bakes the line
    # again instead of taking a half-written line as up to date; nothing temporary is left.
    assert sorted(p.name for p in out.iterdir()) == ["line.json"]
    assert (out / "line.json").read_text() == '{"earlier": true}'
