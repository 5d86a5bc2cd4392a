"""core.batch.ray_tasks: what a Ray worker runs, called in this process (the driver's tests are in
tests/unit/app/test_ray_executor.py, real clusters in tests/integration/test_ray_cluster.py)."""

from __future__ import annotations

import socket
from dataclasses import asdict
from pathlib import Path

import envelope_engine
from batch_helpers import ray_ctx, write_tone

from facepolicy.core import batch
from facepolicy.core.batch import ray_tasks

envelope_engine.register()


def test_bake_shared_names_paths_this_node_cannot_see(tmp_path):
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("csv",))
    (tmp_path / "out").mkdir()
    row = batch.BakeRow(1, str(tmp_path / "on-another-machine.wav"), "a", engine="envelope")
    result = batch.RowResult.from_dict(ray_tasks.bake_shared(asdict(row), ray_ctx(opts)))
    assert result.status == "failed"
    assert f'"{row.audio}" not found on node this machine ({socket.gethostname()})' in result.message
    assert "--ray-data object-store" in result.message
    # The output folder must exist on the node too: otherwise the files would land on the worker's own disk.
    row = batch.BakeRow(1, str(write_tone(tmp_path / "a.wav")), "a", engine="envelope")
    opts = batch.BatchOptions(out_dir=str(tmp_path / "missing-out"), formats=("csv",))
    result = batch.RowResult.from_dict(ray_tasks.bake_shared(asdict(row), ray_ctx(opts)))
    assert result.status == "failed" and f'"{opts.out_dir}" not found on node' in result.message
    assert not Path(opts.out_dir).exists()


def test_a_style_reference_the_node_cannot_see_is_named_not_taken_for_a_preset(tmp_path):
    # The node's missing inputs are the row's inputs (batch.row_inputs): a reference file is one even where the
    # node cannot see it.
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("csv",))
    (tmp_path / "out").mkdir()
    style = tmp_path / "styles" / "hero.json"
    row = batch.BakeRow(1, str(write_tone(tmp_path / "a.wav")), "a", engine="envelope", style=str(style))
    assert style in batch.row_inputs(row, opts)
    result = batch.RowResult.from_dict(ray_tasks.bake_shared(asdict(row), ray_ctx(opts)))
    assert result.status == "failed" and f'"{style}" not found on node' in result.message
    assert str(row.audio) not in result.message  # the audio is there


def test_bake_shared_removes_what_a_crashed_attempt_left_and_bakes(tmp_path):
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("csv", "json"))
    stale = tmp_path / "out" / ".a.json.deadbeef.part.json"
    stale.parent.mkdir()
    stale.write_text("{half")
    row = batch.BakeRow(1, str(write_tone(tmp_path / "a.wav")), "a", engine="envelope", seed=3)
    result = batch.RowResult.from_dict(ray_tasks.bake_shared(asdict(row), ray_ctx(opts)))
    assert result.status == "ok" and not stale.exists()
    assert batch.is_up_to_date(row, opts)


def test_the_blend_file_is_staged_once_per_worker_process(tmp_path, monkeypatch):
    monkeypatch.setattr(ray_tasks, "_warm", {})
    first = ray_tasks._staged_blend("/studio/chars/hero.blend", b"BLENDER-v500 first")
    assert Path(first).name == "hero.blend" and Path(first).read_bytes() == b"BLENDER-v500 first"
    Path(first).write_bytes(b"touched")
    assert ray_tasks._staged_blend("/studio/chars/hero.blend", b"BLENDER-v500 first") == first
    assert Path(first).read_bytes() == b"touched"  # not written again for the next row
    other = ray_tasks._staged_blend("/studio/chars/villain.blend", b"BLENDER-v500 other")
    assert Path(other).read_bytes() == b"BLENDER-v500 other" and not Path(first).exists()
