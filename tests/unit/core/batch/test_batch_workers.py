"""core.batch.workers: warm worker processes bake every row and survive a worker's crash."""

from __future__ import annotations

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
