"""ray_executor without a cluster: addresses, options, messages and the row functions a Ray worker runs.

The tests that start real Ray clusters are in tests/integration/test_ray_cluster.py.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import envelope_engine
import numpy as np
import pytest
import soundfile as sf

from facepolicy import ray_executor
from facepolicy.core import batch
from facepolicy.core.errors import FacePolicyError

envelope_engine.register()
ENGINES = {"envelope": ["envelope_engine", "EnvelopeEngine"]}


def write_line(path: Path, seconds: float = 0.5, freq: float = 180.0) -> Path:
    t = np.arange(int(seconds * 16000)) / 16000
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)
    return path


def free_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("text, expected", [("127.0.0.1:6379", ("127.0.0.1", 6379)), ("head-node:10001",
                                            ("head-node", 10001)), ("[::1]:6379", ("::1", 6379))])
def test_parse_address(text, expected):
    assert ray_executor.parse_address(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1", "6379", "host:", "host:0", "host:70000", "http://h:1", "a b:1", ""])
def test_bad_addresses_are_refused(text):
    with pytest.raises(FacePolicyError, match="HOST:PORT|between 1 and 65535"):
        ray_executor.parse_address(text)


def test_loopback_detection():
    assert ray_executor.is_loopback("127.0.0.1") and ray_executor.is_loopback("::1")
    assert ray_executor.is_loopback("localhost") and ray_executor.is_loopback("127.1.2.3")
    assert not ray_executor.is_loopback("10.0.0.5") and not ray_executor.is_loopback("render-03")


def test_an_unreachable_address_fails_within_seconds():
    address = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(FacePolicyError, match=rf"cannot reach the Ray cluster at {address}: .*ray start --head"):
        ray_executor.check_reachable(address)
    assert time.monotonic() - t0 < 5


def test_the_local_token_is_found_for_the_join_error_message(tmp_path, monkeypatch):
    # `ray start --head` enables token authentication when ~/.ray/auth_token exists, but ray.init(address=...)
    # never does; the join error then names the token and RAY_AUTH_MODE=token.
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ray_executor.local_auth_token() is None
    token = tmp_path / ".ray" / "auth_token"
    token.parent.mkdir()
    token.write_text("0" * 64)
    assert ray_executor.local_auth_token() == str(token)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "1" * 64)
    assert ray_executor.local_auth_token() == "RAY_AUTH_TOKEN"


def test_the_executor_checks_the_address_before_starting_ray(tmp_path, monkeypatch):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'facepolicy[ray]')")
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    rows = [batch.BakeRow(1, str(write_line(tmp_path / "a.wav")), "a", engine="envelope")]
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("csv",))
    t0 = time.monotonic()
    with pytest.raises(FacePolicyError, match="cannot reach the Ray cluster"):
        ray_executor.RayExecutor(f"127.0.0.1:{free_port()}").run(rows, opts, lambda r: None)
    assert time.monotonic() - t0 < 10


def test_without_ray_installed_the_message_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray looks like to import
    with pytest.raises(FacePolicyError, match=r"needs Ray.*pip install 'facepolicy\[ray\]'"):
        ray_executor._import_ray()


def test_importing_the_add_on_does_not_import_ray():
    code = ("import sys, facepolicy, facepolicy.bake, facepolicy.core.batch, facepolicy.ray_executor; "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# --- command-line options ---------------------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--jobs", type=int, default=1)
    ray_executor.add_arguments(p)
    return p.parse_args(argv)


def test_options_make_the_executor_they_ask_for():
    assert ray_executor.executor_from_args(parse()) is None
    ex = ray_executor.executor_from_args(parse("--executor", "ray", "--address", "10.0.0.5:6379", "--ray-data",
                                               "object-store", "--ray-retries", "5", "--jobs", "4"))
    assert (ex.address, ex.data, ex.max_retries, ex.num_cpus) == ("10.0.0.5:6379", "object-store", 5, None)
    local = ray_executor.executor_from_args(parse("--executor", "ray", "--jobs", "2"))
    assert local.address is None and local.num_cpus == 2 and local.data == "shared"


@pytest.mark.parametrize("argv, match", [(("--address", "10.0.0.5:6379"), "--address needs --executor ray"),
                                         (("--executor", "ray", "--address", "nope"), "HOST:PORT"),
                                         (("--executor", "ray", "--ray-retries", "-1"), "0 or more")])
def test_option_mistakes_are_explained(argv, match):
    with pytest.raises(FacePolicyError, match=match):
        ray_executor.executor_from_args(parse(*argv))


def test_unknown_data_mode():
    with pytest.raises(FacePolicyError, match="shared or object-store"):
        ray_executor.RayExecutor(data="s3")


# --- messages for tasks that ended without a result --------------------------------------------------------------


def test_crash_and_import_messages():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'facepolicy[ray]')")
    crashed = ray_executor._task_error_message(ray.exceptions.WorkerCrashedError(), 3)
    assert "stopped while baking this line, 4 times" in crashed and "not retried again" in crashed
    missing = ray_executor._task_error_message(RuntimeError(
        "The remote function failed to import on the worker.\nModuleNotFoundError: No module named "
        "'facepolicy.core' (pid=7, ip=10.0.0.7)"), 3)
    assert missing.startswith("the Ray worker on node 10.0.0.7 cannot import 'facepolicy'")


# --- what a worker runs, called in this process --------------------------------------------------------------------


def ctx(opts: batch.BatchOptions) -> dict:
    return {"opts": opts.to_dict(), "engines": ENGINES}


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_bake_shared_names_paths_this_node_cannot_see(tmp_path):
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("csv",))
    (tmp_path / "out").mkdir()
    row = batch.BakeRow(1, str(tmp_path / "on-another-machine.wav"), "a", engine="envelope")
    result = batch.RowResult.from_dict(ray_executor.bake_shared(batch.asdict(row), ctx(opts)))
    assert result.status == "failed"
    assert f'"{row.audio}" not found on node this machine ({socket.gethostname()})' in result.message
    assert "--ray-data object-store" in result.message
    # The output folder must exist on the node too: otherwise the files would land on the worker's own disk.
    row = batch.BakeRow(1, str(write_line(tmp_path / "a.wav")), "a", engine="envelope")
    opts = batch.BatchOptions(out_dir=str(tmp_path / "missing-out"), formats=("csv",))
    result = batch.RowResult.from_dict(ray_executor.bake_shared(batch.asdict(row), ctx(opts)))
    assert result.status == "failed" and f'"{opts.out_dir}" not found on node' in result.message
    assert not Path(opts.out_dir).exists()


def test_bake_shared_removes_what_a_crashed_attempt_left_and_bakes(tmp_path):
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("csv", "json"))
    stale = tmp_path / "out" / ".a.json.deadbeef.part.json"
    stale.parent.mkdir()
    stale.write_text("{half")
    row = batch.BakeRow(1, str(write_line(tmp_path / "a.wav")), "a", engine="envelope", seed=3)
    result = batch.RowResult.from_dict(ray_executor.bake_shared(batch.asdict(row), ctx(opts)))
    assert result.status == "ok" and not stale.exists()
    assert batch.is_up_to_date(row, opts)


def test_shipped_row_gives_the_same_files_as_baking_in_place(tmp_path):
    wav = write_line(tmp_path / "in" / "line.wav")
    (tmp_path / "in" / "line.txt").write_text("hello there")
    row = ray_executor.RayExecutor._explicit_transcript(batch.BakeRow(1, str(wav), "act1/line", engine="envelope"))
    assert row.transcript == str(tmp_path / "in" / "line.txt")
    local = batch.BatchOptions(out_dir=str(tmp_path / "local"), formats=("csv", "json"), takes=2)
    assert batch.bake_row(row, local).status == "ok"

    opts = batch.BatchOptions(out_dir=str(tmp_path / "shipped"), formats=("csv", "json"), takes=2)
    inputs = {str(p): p.read_bytes() for p in batch.row_inputs(row, opts, include_blend=False)}
    result_data, files = ray_executor.bake_shipped(batch.asdict(row), ctx(opts), inputs)
    result = batch.RowResult.from_dict(result_data)
    assert result.status == "ok" and len(files) == 5  # 2 takes x 2 formats + the sidecar
    ray_executor._write_returned_files(row, opts, result, files)
    assert tree(tmp_path / "shipped") == tree(tmp_path / "local")
    assert json.loads(batch.sidecar_path(row, opts).read_text())["audio"] == str(wav)
    assert batch.is_up_to_date(row, opts)
    assert sorted(Path(f).name for f in result.files) == ["line_take1.csv", "line_take1.json", "line_take2.csv",
                                                           "line_take2.json"]


def test_object_store_refuses_inputs_that_are_too_big(tmp_path, monkeypatch):
    monkeypatch.setattr(ray_executor, "OBJECT_STORE_LIMIT", 1000)
    row = batch.BakeRow(1, str(write_line(tmp_path / "a.wav")), "a", engine="envelope")
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("csv",))
    with pytest.raises(FacePolicyError, match="--ray-data shared"):
        ray_executor.RayExecutor(data="object-store")._read_inputs(row, opts)


def test_the_blend_file_is_staged_once_per_worker_process(tmp_path, monkeypatch):
    monkeypatch.setattr(ray_executor, "_warm", {})
    first = ray_executor._staged_blend("/studio/chars/hero.blend", b"BLENDER-v500 first")
    assert Path(first).name == "hero.blend" and Path(first).read_bytes() == b"BLENDER-v500 first"
    Path(first).write_bytes(b"touched")
    assert ray_executor._staged_blend("/studio/chars/hero.blend", b"BLENDER-v500 first") == first
    assert Path(first).read_bytes() == b"touched"  # not written again for the next row
    other = ray_executor._staged_blend("/studio/chars/villain.blend", b"BLENDER-v500 other")
    assert Path(other).read_bytes() == b"BLENDER-v500 other" and not Path(first).exists()


def test_returned_files_cannot_choose_their_paths(tmp_path):
    row = batch.BakeRow(1, str(write_line(tmp_path / "a.wav")), "a", engine="envelope")
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("csv",))
    result = batch.RowResult(1, "a", "ok")
    side = batch.sidecar_path(row, opts).name
    with pytest.raises(FacePolicyError, match="the worker returned"):
        ray_executor._write_returned_files(row, opts, result, {"a.csv": b"x", "../evil.csv": b"y", side: b"{}"})
    assert not (tmp_path / "evil.csv").exists() and not (tmp_path / "out").exists()


def test_a_local_instance_runs_its_workers_at_normal_priority(monkeypatch):
    # Ray's default worker niceness is 15: next to any other job the rows crawled (3x slower per row than --jobs).
    monkeypatch.delenv("RAY_worker_niceness", raising=False)
    ray_executor._prepare_environment(None)
    assert ray_executor.os.environ["RAY_worker_niceness"] == "0"
    monkeypatch.setenv("RAY_worker_niceness", "10")  # the user's choice wins
    ray_executor._prepare_environment(None)
    assert ray_executor.os.environ["RAY_worker_niceness"] == "10"
