"""The Ray driver (app/ray) without a cluster: addresses, options, messages, and the files of a shipped row.

What a Ray worker runs is tested in tests/unit/core/batch/test_batch_ray_tasks.py; the tests that start real Ray
clusters are in tests/integration/test_ray_cluster.py.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import envelope_engine
import pytest
from batch_helpers import ray_ctx, write_tone

from facepolicy.app.ray import arguments, executor, network
from facepolicy.core import batch
from facepolicy.core.assets import asset_root
from facepolicy.core.batch import ray_tasks
from facepolicy.core.errors import FacePolicyError

envelope_engine.register()


def free_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("text, expected", [("127.0.0.1:6379", ("127.0.0.1", 6379)), ("head-node:10001",
                                            ("head-node", 10001)), ("[::1]:6379", ("::1", 6379))])
def test_parse_address(text, expected):
    assert network.parse_address(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1", "6379", "host:", "host:0", "host:70000", "http://h:1", "a b:1", ""])
def test_bad_addresses_are_refused(text):
    with pytest.raises(FacePolicyError, match="HOST:PORT|between 1 and 65535"):
        network.parse_address(text)


def test_loopback_detection():
    assert network.is_loopback("127.0.0.1") and network.is_loopback("::1")
    assert network.is_loopback("localhost") and network.is_loopback("127.1.2.3")
    assert not network.is_loopback("10.0.0.5") and not network.is_loopback("render-03")


def test_an_unreachable_address_fails_within_seconds():
    address = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(FacePolicyError, match=rf"cannot reach the Ray cluster at {address}: .*ray start --head"):
        network.check_reachable(address)
    assert time.monotonic() - t0 < 5


def test_the_local_token_is_found_for_the_join_error_message(tmp_path, monkeypatch):
    # `ray start --head` enables token authentication when ~/.ray/auth_token exists, but ray.init(address=...)
    # never does; the join error then names the token and RAY_AUTH_MODE=token.
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert network.local_auth_token() is None
    token = tmp_path / ".ray" / "auth_token"
    token.parent.mkdir()
    token.write_text("0" * 64)
    assert network.local_auth_token() == str(token)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "1" * 64)
    assert network.local_auth_token() == "RAY_AUTH_TOKEN"


def test_the_executor_checks_the_address_before_starting_ray(tmp_path, monkeypatch):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'facepolicy[ray]')")
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    rows = [batch.BakeRow(1, str(write_tone(tmp_path / "a.wav")), "a", engine="envelope")]
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("csv",))
    t0 = time.monotonic()
    with pytest.raises(FacePolicyError, match="cannot reach the Ray cluster"):
        executor.RayExecutor(f"127.0.0.1:{free_port()}").run(rows, opts, lambda r: None)
    assert time.monotonic() - t0 < 10


def test_without_ray_installed_the_message_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray looks like to import
    with pytest.raises(FacePolicyError, match=r"needs Ray.*pip install 'facepolicy\[ray\]'"):
        executor.import_ray()


def test_importing_the_add_on_does_not_import_ray():
    code = ("import sys, facepolicy, facepolicy.cli, facepolicy.app.bake, facepolicy.core.batch, "
            "facepolicy.core.batch.ray_tasks, facepolicy.app.ray.executor, facepolicy.app.ray.arguments; "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# --- command-line options ---------------------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--jobs", type=int, default=1)
    arguments.add_arguments(p)
    return p.parse_args(argv)


def test_options_make_the_executor_they_ask_for():
    assert arguments.executor_from_args(parse()) is None
    ex = arguments.executor_from_args(parse("--executor", "ray", "--address", "10.0.0.5:6379", "--ray-data",
                                               "object-store", "--ray-retries", "5", "--jobs", "4"))
    assert (ex.address, ex.data, ex.max_retries, ex.num_cpus) == ("10.0.0.5:6379", "object-store", 5, None)
    local = arguments.executor_from_args(parse("--executor", "ray", "--jobs", "2"))
    assert local.address is None and local.num_cpus == 2 and local.data == "shared"


@pytest.mark.parametrize("argv, match", [(("--address", "10.0.0.5:6379"), "--address needs --executor ray"),
                                         (("--executor", "ray", "--address", "nope"), "HOST:PORT"),
                                         (("--executor", "ray", "--ray-retries", "-1"), "0 or more")])
def test_option_mistakes_are_explained(argv, match):
    with pytest.raises(FacePolicyError, match=match):
        arguments.executor_from_args(parse(*argv))


def test_unknown_data_mode():
    with pytest.raises(FacePolicyError, match="shared or object-store"):
        executor.RayExecutor(data="s3")


# --- messages for tasks that ended without a result --------------------------------------------------------------


def test_crash_and_import_messages():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'facepolicy[ray]')")
    crashed = executor._task_error_message(ray.exceptions.WorkerCrashedError(), 3)
    assert "stopped while baking this line, 4 times" in crashed and "not retried again" in crashed
    missing = executor._task_error_message(RuntimeError(
        "The remote function failed to import on the worker.\nModuleNotFoundError: No module named "
        "'facepolicy.core' (pid=7, ip=10.0.0.7)"), 3)
    assert missing.startswith("the Ray worker on node 10.0.0.7 cannot import 'facepolicy'")


# --- what a worker runs, called in this process --------------------------------------------------------------------


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_shipped_row_gives_the_same_files_as_baking_in_place(tmp_path):
    wav = write_tone(tmp_path / "in" / "line.wav")
    (tmp_path / "in" / "line.txt").write_text("hello there")
    row = executor.RayExecutor._explicit_transcript(batch.BakeRow(1, str(wav), "act1/line", engine="envelope"))
    assert row.transcript == str(tmp_path / "in" / "line.txt")
    local = batch.BatchOptions(out_dir=str(tmp_path / "local"), formats=("csv", "json"), takes=2)
    assert batch.bake_row(row, local).status == "ok"

    opts = batch.BatchOptions(out_dir=str(tmp_path / "shipped"), formats=("csv", "json"), takes=2)
    inputs = {str(p): p.read_bytes() for p in batch.row_inputs(row, opts, include_blend=False)}
    result_data, files = ray_tasks.bake_shipped(asdict(row), ray_ctx(opts), inputs)
    result = batch.RowResult.from_dict(result_data)
    assert result.status == "ok" and len(files) == 5  # 2 takes x 2 formats + the sidecar
    executor._write_returned_files(row, opts, result, files)
    assert tree(tmp_path / "shipped") == tree(tmp_path / "local")
    assert json.loads(batch.sidecar_path(row, opts).read_text())["audio"] == str(wav)
    assert batch.is_up_to_date(row, opts)
    assert sorted(Path(f).name for f in result.files) == ["line_take1.csv", "line_take1.json", "line_take2.csv",
                                                           "line_take2.json"]


def test_object_store_refuses_inputs_that_are_too_big(tmp_path, monkeypatch):
    monkeypatch.setattr(executor, "OBJECT_STORE_LIMIT", 1000)
    row = batch.BakeRow(1, str(write_tone(tmp_path / "a.wav")), "a", engine="envelope")
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("csv",))
    with pytest.raises(FacePolicyError, match="--ray-data shared"):
        executor.RayExecutor(data="object-store")._read_inputs(row, opts)


def test_returned_files_cannot_choose_their_paths(tmp_path):
    row = batch.BakeRow(1, str(write_tone(tmp_path / "a.wav")), "a", engine="envelope")
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("csv",))
    result = batch.RowResult(1, "a", "ok")
    side = batch.sidecar_path(row, opts).name
    with pytest.raises(FacePolicyError, match="the worker returned"):
        executor._write_returned_files(row, opts, result, {"a.csv": b"x", "../evil.csv": b"y", side: b"{}"})
    assert not (tmp_path / "evil.csv").exists() and not (tmp_path / "out").exists()


def test_returned_files_appear_together_or_not_at_all(tmp_path, monkeypatch):
    # A shipped line is written as one group, like a line baked in place: a write that fails half-way (a full
    # disk) leaves the earlier files of the line as they were, and none of the new ones.
    row = batch.BakeRow(1, str(write_tone(tmp_path / "a.wav")), "a", engine="envelope")
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("csv", "json"))
    side = batch.sidecar_path(row, opts).name
    executor._write_returned_files(row, opts, batch.RowResult(1, "a", "ok"),
                                   {"a.csv": b"old csv", "a.json": b"old json", side: b'{"fingerprint": "old"}'})
    out = tmp_path / "out"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_replace, failed = os.replace, []

    def disk_full_once(src, dst):
        if Path(dst).name == "a.json" and not failed:
            failed.append(dst)
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", disk_full_once)
    with pytest.raises(OSError, match="No space left"):
        executor._write_returned_files(row, opts, batch.RowResult(1, "a", "ok"),
                                       {"a.csv": b"new csv", "a.json": b"new json", side: b'{"fingerprint": "new"}'})
    assert failed
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_local_instance_runs_its_workers_at_normal_priority(monkeypatch):
    # Ray's default worker niceness is 15: next to any other job the rows crawled (3x slower per row than --jobs).
    monkeypatch.delenv("RAY_worker_niceness", raising=False)
    network.prepare_environment(None)
    assert os.environ["RAY_worker_niceness"] == "0"
    monkeypatch.setenv("RAY_worker_niceness", "10")  # the user's choice wins
    network.prepare_environment(None)
    assert os.environ["RAY_worker_niceness"] == "10"


class ObjectStore:
    """Stands for Ray's object store on the driver and in a worker process: put, get, and nothing else."""

    def __init__(self):
        self.objects: dict[str, object] = {}

    def put(self, value) -> str:
        ref = f"ref-{len(self.objects)}"
        self.objects[ref] = value
        return ref

    def get(self, ref):
        return self.objects[ref]

    @staticmethod
    def is_initialized() -> bool:
        return False


def test_a_model_folder_goes_once_per_batch_and_its_rows_match_the_local_bake(tmp_path, monkeypatch):
    monkeypatch.setattr(ray_tasks, "_warm", {})
    anna = tmp_path / "models" / "anna"
    shutil.copytree(asset_root() / "models", anna)
    manifest = json.loads((anna / "model.json").read_text(encoding="utf-8"))
    manifest["default_style"] = next(n for n in sorted(manifest["styles"]) if n != manifest["default_style"])
    (anna / "model.json").write_text(json.dumps(manifest), encoding="utf-8")
    wav = write_tone(tmp_path / "in" / "line.wav", seconds=0.6)
    # The batch's --model, and a row naming the same folder in the manifest's model column.
    rows = [batch.BakeRow(i, str(wav), f"line{i}", engine="neural", seed=i, model=str(anna) if i == 3 else None)
            for i in (1, 2, 3)]
    settings = dict(formats=("csv", "json"), accuracy="fast", steps=4, model_dir=str(anna))
    local = batch.BatchOptions(out_dir=str(tmp_path / "local"), **settings)
    assert all(batch.bake_row(row, local).status == "ok" for row in rows)

    store = ObjectStore()
    monkeypatch.setitem(sys.modules, "ray", store)
    opts = batch.BatchOptions(out_dir=str(tmp_path / "shipped"), **settings)
    models: dict = {}
    sent = [executor.RayExecutor._ship_model(store, batch.row_model_dir(row, opts), models) for row in rows]
    assert len(store.objects) == 1 and all(s == sent[0] for s in sent)  # one object for the three rows
    assert sent[0]["path"] == str(anna) and isinstance(sent[0]["files"], str)  # a reference, not the bytes
    assert executor.RayExecutor._ship_model(store, None, models) is None  # the bundled model stays home
    anna.rename(tmp_path / "models" / "anna-elsewhere")  # the workers' machine has no such folder
    for row, model in zip(rows, sent, strict=True):
        inputs = {str(p): p.read_bytes() for p in batch.row_inputs(row, opts, include_blend=False)}
        data, files = ray_tasks.bake_shipped(asdict(row), ray_ctx(opts), inputs, None, model)
        result = batch.RowResult.from_dict(data)
        assert result.status == "ok", result.message
        executor._write_returned_files(row, opts, result, files)
    assert tree(tmp_path / "shipped") == tree(tmp_path / "local")
    (tmp_path / "models" / "anna-elsewhere").rename(anna)
    assert all(batch.is_up_to_date(row, opts) for row in rows)


def test_a_model_folder_over_the_limit_is_refused_for_its_rows_in_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setattr(executor, "MODEL_LIMIT", 2**20)
    anna = tmp_path / "anna"
    shutil.copytree(asset_root() / "models", anna)
    store, models = ObjectStore(), {}
    for _ in range(2):  # every row naming the folder, with the folder read once
        with pytest.raises(FacePolicyError) as info:
            executor.RayExecutor._ship_model(store, str(anna), models)
        assert re.fullmatch(rf'model folder "{re.escape(str(anna))}" is \d+ MiB, more than the 1 MiB sent through '
                            "Ray's object store; put it on a shared filesystem and use --ray-data shared",
                            str(info.value)), info.value
        shutil.rmtree(anna, ignore_errors=True)
    assert not store.objects
