"""RayExecutor on a real Ray cluster on loopback: a head node and an extra worker node, both on 127.0.0.1.

The cluster is started with Ray's own API (ray.cluster_utils.Cluster: one gcs_server and one raylet process per
node, exactly what 'ray start' runs) and shared by the tests of this module. Rows use the 'marked' test engine
(the envelope engine plus a note of which process baked each line), so the tests are fast and deterministic; the
test of model folders uses the Neural engine (fast accuracy, 4 steps), whose lines depend on the model.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

# Before ray is imported: Ray then advertises and binds 127.0.0.1 instead of this machine's network address.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'facepolicy[ray]')")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

HERE = Path(__file__).resolve().parent
UNIT = HERE.parent / "unit"
sys.path[:0] = [str(HERE), str(UNIT)]

import ray_marked_engine  # noqa: E402

from facepolicy.app import bake, cli  # noqa: E402
from facepolicy.app.ray import arguments  # noqa: E402
from facepolicy.app.ray import executor as ray_executor  # noqa: E402
from facepolicy.blender.worker import scene_exporter  # noqa: E402
from facepolicy.core import batch  # noqa: E402
from facepolicy.core.assets import asset_root  # noqa: E402
from facepolicy.core.batch import ray_tasks  # noqa: E402
from facepolicy.core.batch.model_shipping import pack_model_folder  # noqa: E402
from facepolicy.core.errors import FacePolicyError  # noqa: E402
from facepolicy.core.facetrack import FaceTrack  # noqa: E402

pytestmark = pytest.mark.slow
ray_marked_engine.register()
MB = 1024 * 1024


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args=dict(
        node_ip_address="127.0.0.1", num_cpus=1, include_dashboard=False, object_store_memory=80 * MB))
    c.add_node(node_ip_address="127.0.0.1", num_cpus=1, object_store_memory=80 * MB)
    yield c
    if ray.is_initialized():
        ray.shutdown()
    workers = descendants(os.getpid())
    c.shutdown()
    # The private folders of the workers that the cluster's end killed (staged --blend files and model folders),
    # which the next worker on a node would otherwise remove: once those workers are gone.
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    ray_tasks._warm.pop("staging_checked", None)
    ray_tasks._remove_dead_staging()


def runtime_env(marks: Path, **env) -> dict:
    """Workers import the test engines from the tests folders and note their lines in ``marks``."""
    return {"env_vars": {"PYTHONPATH": os.pathsep.join([str(HERE), str(UNIT)]),
                         "FACEPOLICY_TEST_MARKS": str(marks), **env}}


def write_line(path: Path, seconds: float, freq: float) -> Path:
    t = np.arange(int(seconds * 16000)) / 16000
    x = 0.3 * np.sin(2 * np.pi * freq * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) ** 2
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.astype(np.float32), 16000)
    return path


def make_rows(folder: Path, n: int, engine: str = "marked") -> list[batch.BakeRow]:
    rows = []
    for i in range(n):
        wav = write_line(folder / f"line{i:02d}.wav", 0.3 + 0.02 * (i % 10), 140 + 7 * i)
        rows.append(batch.BakeRow(i + 1, str(wav), f"line{i:02d}", engine=engine, seed=i))
    return rows


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden sidecars included) by relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def partial_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".part" in p.name]


def marks(folder: Path) -> list[tuple[str, str, str, str]]:
    """(line stem, node id, pid, engine instance id) for every line a worker finished animating."""
    out = []
    for p in sorted(folder.glob("*.mark")):
        node, pid, inst = p.read_text().split()
        out.append((p.name.split(".")[0], node, pid, inst))
    return out


def descendants(root: int) -> list[int]:
    """The pids below ``root``: the node processes of the cluster and the Ray workers they started."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def listening_addresses(pids: set[int]) -> list[str]:
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        owners = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if owners & pids:
            found.append(line.split()[3])
    return found


def assert_loopback_only(addresses: list[str]) -> None:
    assert addresses, "no listening socket found for the Ray processes"
    for addr in addresses:
        host = addr.rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:")
        assert host in ("127.0.0.1", "::1"), f"a Ray process listens on {addr}, not on loopback"


# --- the cluster -------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc").is_dir() or subprocess.run(["which", "ss"], capture_output=True).returncode,
                    reason="needs /proc and ss (iproute2) to list listening sockets")
def test_the_test_cluster_listens_on_loopback_only(cluster):
    assert len([n for n in ray_cluster_nodes(cluster) if n["Alive"]]) == 2
    assert_loopback_only(listening_addresses(set(descendants(os.getpid()))))


def ray_cluster_nodes(cluster) -> list[dict]:
    ray.init(address=cluster.address)
    try:
        return ray.nodes()
    finally:
        ray.shutdown()


# --- the same files as the local batch ---------------------------------------------------------------------------


def bake_args(manifest: Path, out: Path, *extra: str) -> argparse.Namespace:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["bake"]
    if "--executor" not in sub._option_string_actions:  # until the lead wires the Ray options into `bake`
        arguments.add_arguments(sub)
    return parser.parse_args(["bake", "--manifest", str(manifest), "-o", str(out), "--engine", "marked",
                              "--format", "csv,json", *extra])


def test_forty_rows_on_two_nodes_match_the_local_run_byte_for_byte(cluster, tmp_path, capsys):
    rows = make_rows(tmp_path / "audio", 40)
    (tmp_path / "audio" / "line03.txt").write_text("the transcript beside the audio")
    lines = ["audio,output,seed"] + [f"audio/{Path(r.audio).name},{r.output},{r.seed}" for r in rows]
    lines.append(f"audio/{Path(rows[0].audio).name},../escape,1")  # path traversal: refused before any task
    manifest = tmp_path / "lines.csv"
    manifest.write_text("\n".join(lines) + "\n")

    assert bake.run_bake(bake_args(manifest, tmp_path / "local", "--jobs", "1")) == 1
    local_table = capsys.readouterr().out

    args = bake_args(manifest, tmp_path / "ray", "--executor", "ray", "--address", cluster.address)
    executor = arguments.executor_from_args(args)
    executor.runtime_env = runtime_env(tmp_path / "marks")
    assert bake.run_bake(args, executor=executor) == 1
    ray_table = capsys.readouterr().out

    def status_rows(table: str) -> list[tuple[str, ...]]:
        # '#, output, status, message' of each row: the seconds column differs between runs
        return [tuple(re.split(r"\s{2,}", line.strip())[i] for i in (0, 1, 2)) for line in table.splitlines()[1:42]]

    assert status_rows(ray_table) == status_rows(local_table)
    assert "leaves the output folder" in ray_table and "40 baked, 0 up to date, 1 failed" in ray_table
    local, remote = tree(tmp_path / "local"), tree(tmp_path / "ray")
    assert len(local) == 40 * 3  # csv, json and the hidden sidecar of each line
    assert remote.keys() == local.keys()
    assert all(remote[k] == local[k] for k in local)
    assert FaceTrack.load_json(tmp_path / "ray" / "line03.json").meta["transcript"] == "the transcript beside the audio"
    assert not partial_files(tmp_path / "ray") and not (tmp_path / "escape.csv").exists()

    done = marks(tmp_path / "marks")
    assert sorted(m[0] for m in done) == sorted(r.output for r in rows)  # each line animated exactly once
    assert len({m[1] for m in done}) == 2, "both nodes bake lines"
    processes = {m[2] for m in done}
    assert len(processes) <= 4, "a few warm worker processes bake all 40 lines"
    for pid in processes:  # one engine instance per worker process, reused for every line it bakes
        assert len({m[3] for m in done if m[2] == pid}) == 1


def test_object_store_mode_gives_the_same_files(cluster, tmp_path):
    rows = make_rows(tmp_path / "audio", 6)
    (tmp_path / "audio" / "line02.txt").write_text("a transcript travels with its audio")
    local_opts = batch.BatchOptions(out_dir=str(tmp_path / "local"), formats=("csv", "json"))
    batch.InProcessExecutor().run(rows, local_opts, lambda r: None)
    opts = batch.BatchOptions(out_dir=str(tmp_path / "ray"), formats=("csv", "json"))
    results = []
    ray_executor.RayExecutor(cluster.address, data="object-store",
                             runtime_env=runtime_env(tmp_path / "marks")).run(rows, opts, results.append)
    assert sorted(r.index for r in results) == list(range(1, 7)) and all(r.status == "ok" for r in results)
    assert all(Path(f).is_file() for r in results for f in r.files)
    local, remote = tree(tmp_path / "local"), tree(tmp_path / "ray")
    assert remote.keys() == local.keys() and all(remote[k] == local[k] for k in local)
    assert all(batch.is_up_to_date(r, opts) for r in rows)


def model_copy(folder: Path, style_offset: int) -> Path:
    """A model folder of one's own: the bundled model with another default style, so its lines differ."""
    shutil.copytree(Path(asset_root()) / "models", folder)
    manifest = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    names = sorted(manifest["styles"])
    manifest["default_style"] = names[(names.index(manifest["default_style"]) + style_offset) % len(names)]
    (folder / "model.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def test_the_manifests_model_folders_travel_through_the_object_store(cluster, tmp_path, capsys, monkeypatch):
    # Two performers' model folders next to the manifest, and a line with the bundled model. Each folder goes once
    # through the object store, and the files are those of the local run.
    models = {name: model_copy(tmp_path / "models" / name, k) for k, name in enumerate(("anna", "ben"), start=1)}
    rows = make_rows(tmp_path / "audio", 4)
    lines = ["audio,output,model,engine"] + [f"audio/{Path(r.audio).name},{r.output},{m},neural" for r, m in
                                            zip(rows, ["models/anna", "models/ben", "models/anna", ""], strict=True)]
    manifest = tmp_path / "lines.csv"
    manifest.write_text("\n".join(lines) + "\n")
    fast = ("--accuracy", "fast", "--steps", "4")
    assert bake.run_bake(bake_args(manifest, tmp_path / "local", "--jobs", "1", *fast)) == 0
    capsys.readouterr()

    # Once this machine has read a folder it moves away, so no worker can read it in place: the cluster has no
    # shared filesystem for it.
    packed: list[str] = []

    def pack_then_hide(folder, limit):
        found = pack_model_folder(folder, limit)
        packed.append(Path(folder).name)
        Path(folder).rename(f"{folder}-away")
        return found

    monkeypatch.setattr(ray_executor, "pack_model_folder", pack_then_hide)
    args = bake_args(manifest, tmp_path / "ray", "--executor", "ray", "--address", cluster.address,
                     "--ray-data", "object-store", *fast)
    executor = arguments.executor_from_args(args)
    executor.runtime_env = runtime_env(tmp_path / "marks")
    assert bake.run_bake(args, executor=executor) == 0, capsys.readouterr().out
    assert "4 baked" in capsys.readouterr().out
    assert sorted(packed) == ["anna", "ben"], "each folder is read and sent once for the batch"
    local, remote = tree(tmp_path / "local"), tree(tmp_path / "ray")
    assert len(local) == 4 * 3 and remote.keys() == local.keys() and all(remote[k] == local[k] for k in local)
    assert len({remote[f"line0{i}.csv"] for i in range(4)}) == 4  # each line baked with its own model

    for folder in models.values():
        Path(f"{folder}-away").rename(folder)
    assert bake.run_bake(args, executor=executor) == 0
    assert "0 baked, 4 up to date" in capsys.readouterr().out


def small_character_blend(path: Path) -> Path:
    """A .blend holding a small face: a sphere with a few ARKit shape keys, made active."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True, load_ui=False)
    bpy.ops.mesh.primitive_uv_sphere_add(segments=12, ring_count=8, radius=0.1)
    face = bpy.context.active_object
    face.name = "Face"
    face.shape_key_add(name="Basis")
    for i, name in enumerate(("jawOpen", "mouthSmileLeft", "browInnerUp")):
        key = face.shape_key_add(name=name)
        for v in key.data:
            v.co[i] += 0.01
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


def test_blender_formats_with_a_blend_file_through_the_object_store(cluster, tmp_path):
    pytest.importorskip("bpy", reason="the bpy module is not installed (fbx/glb/blend need it)")
    blend = small_character_blend(tmp_path / "character.blend")
    rows = make_rows(tmp_path / "audio", 4)
    local_opts = batch.BatchOptions(out_dir=str(tmp_path / "local"), formats=("csv", "glb"), blend=str(blend))
    batch.InProcessExecutor(scene_exporter).run(rows, local_opts, lambda r: None)
    opts = batch.BatchOptions(out_dir=str(tmp_path / "ray"), formats=("csv", "glb"), blend=str(blend))
    results: list[batch.RowResult] = []
    ray_executor.RayExecutor(cluster.address, data="object-store", runtime_env=runtime_env(tmp_path / "marks")).run(
        rows, opts, results.append)
    assert [r.status for r in results] == ["ok"] * 4, [r.message for r in results]
    local, remote = tree(tmp_path / "local"), tree(tmp_path / "ray")
    assert len(local) == 12 and remote.keys() == local.keys() and all(remote[k] == local[k] for k in local)
    assert all(remote[f"line{i:02d}.glb"][:4] == b"glTF" for i in range(4))
    assert len(remote["line00.glb"]) < 200_000  # the small character of the .blend, not the bundled head
    assert all(batch.is_up_to_date(r, opts) for r in rows)


# --- faults ------------------------------------------------------------------------------------------------------


def test_a_killed_worker_costs_a_retry_and_every_row_completes_exactly_once(cluster, tmp_path):
    rows = make_rows(tmp_path / "audio", 12)
    opts = batch.BatchOptions(out_dir=str(tmp_path / "ray"), formats=("csv", "json"))
    # What a worker killed mid-write on an earlier run leaves behind: it must not survive the batch.
    stale = tmp_path / "ray" / ".line05.csv.1234abcd.part.csv"
    stale.parent.mkdir(parents=True)
    stale.write_text("half a csv")
    results: list[batch.RowResult] = []
    executor = ray_executor.RayExecutor(cluster.address, max_retries=2, runtime_env=runtime_env(
        tmp_path / "marks", FACEPOLICY_TEST_ENGINE_DELAY="0.3"))
    runner = threading.Thread(target=executor.run, args=(rows, opts, results.append))
    runner.start()
    killed = None
    deadline = time.monotonic() + 90
    while killed is None and time.monotonic() < deadline and runner.is_alive():
        busy = [p for p in descendants(os.getpid()) if cmdline(p).startswith("ray::bake_shared")]
        if len(results) >= 3 and busy:
            killed = busy[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    runner.join(timeout=120)
    assert killed is not None, "no worker was busy baking to be killed"
    assert not runner.is_alive()
    assert sorted(r.index for r in results) == list(range(1, 13))  # every row reported exactly once
    assert all(r.status == "ok" for r in results), [r.message for r in results if r.status != "ok"]
    assert not partial_files(tmp_path / "ray")
    local_opts = batch.BatchOptions(out_dir=str(tmp_path / "local"), formats=("csv", "json"))
    batch.InProcessExecutor().run(rows, local_opts, lambda r: None)
    local, remote = tree(tmp_path / "local"), tree(tmp_path / "ray")
    assert remote.keys() == local.keys() and all(remote[k] == local[k] for k in local)


def test_bad_rows_fail_once_with_their_reason_and_crashes_are_retried_a_bounded_number_of_times(cluster, tmp_path):
    rows = make_rows(tmp_path / "audio", 3)
    corrupt = tmp_path / "audio" / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")
    crash = write_line(tmp_path / "audio" / "crash.wav", 0.3, 200)  # the envelope engine kills its process
    unseen = tmp_path / "elsewhere" / "only-on-the-laptop.wav"
    rows += [batch.BakeRow(4, str(corrupt), "corrupt", engine="marked"),
             batch.BakeRow(5, str(crash), "crash", engine="marked"),
             batch.BakeRow(6, str(unseen), "unseen", engine="marked")]
    opts = batch.BatchOptions(out_dir=str(tmp_path / "ray"), formats=("csv",))
    results: list[batch.RowResult] = []
    ray_executor.RayExecutor(cluster.address, max_retries=1, runtime_env=runtime_env(tmp_path / "marks")).run(
        rows, opts, results.append)
    by = {r.output: r for r in results}
    assert len(results) == 6 and sorted(by) == ["corrupt", "crash", "line00", "line01", "line02", "unseen"]
    assert all(by[f"line0{i}"].status == "ok" for i in range(3))
    assert by["corrupt"].status == "failed" and "could not decode audio" in by["corrupt"].message
    assert by["crash"].status == "failed" and "stopped while baking this line, 2 times" in by["crash"].message
    assert by["unseen"].status == "failed"
    assert str(unseen) in by["unseen"].message and "not found on node 127.0.0.1" in by["unseen"].message
    assert not partial_files(tmp_path / "ray") and not (tmp_path / "ray" / "crash.csv").exists()


def test_ctrl_c_cancels_outstanding_rows_and_leaves_finished_files_valid(cluster, tmp_path):
    rows = make_rows(tmp_path / "audio", 20)
    opts = batch.BatchOptions(out_dir=str(tmp_path / "ray"), formats=("csv", "json"))
    results: list[batch.RowResult] = []

    def on_result(result):
        results.append(result)
        if len(results) == 3:
            raise KeyboardInterrupt  # what Ctrl-C raises in the driver while it waits for results

    executor = ray_executor.RayExecutor(cluster.address, runtime_env=runtime_env(
        tmp_path / "marks", FACEPOLICY_TEST_ENGINE_DELAY="0.3"))
    with pytest.raises(KeyboardInterrupt):
        executor.run(rows, opts, on_result)
    time.sleep(2.0)  # tasks that were not cancelled would go on writing files now
    out = tmp_path / "ray"
    finished = sorted(p.name for p in out.glob("*.json"))
    assert 3 <= len(finished) < 12, finished
    assert not partial_files(out)
    for name in finished:
        row = next(r for r in rows if r.output == Path(name).stem)
        track = FaceTrack.load_json(out / name)
        assert track.n_frames > 0 and (out / f"{row.output}.csv").is_file()
    assert ray.is_initialized() is False


# --- setup problems ------------------------------------------------------------------------------------------------


def test_a_node_without_a_required_package_is_named(cluster, tmp_path, monkeypatch):
    monkeypatch.setattr(ray_executor, "REQUIRED_ON_WORKERS", ("numpy", "facepolicy_missing_dependency"))
    rows = make_rows(tmp_path / "audio", 1)
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("csv",))
    with pytest.raises(FacePolicyError, match=r"node 127\.0\.0\.1 .*lacks the Python package\(s\) "
                                              r"facepolicy_missing_dependency"):
        ray_executor.RayExecutor(cluster.address).run(rows, opts, lambda r: None)
    assert not (tmp_path / "out").exists()  # nothing is created before the cluster is known to work


def test_a_worker_that_cannot_import_the_project_gets_a_clear_message(cluster, tmp_path, monkeypatch):
    # A module only this process can import stands for facepolicy missing on a node: Ray fails the same way.
    (tmp_path / "driver_only_project.py").write_text("def bake(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import driver_only_project

    ray.init(address=cluster.address)
    try:
        with pytest.raises(Exception) as info:
            ray.get(ray.remote(driver_only_project.bake).remote(1), timeout=60)
    finally:
        ray.shutdown()
    message = ray_executor._task_error_message(info.value, 3)
    assert "cannot import 'driver_only_project'" in message and "node 127.0.0.1" in message
    assert "pip install 'facepolicy[ray]'" in message


# --- no address: a local Ray instance ------------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc").is_dir() or subprocess.run(["which", "ss"], capture_output=True).returncode,
                    reason="needs /proc and ss (iproute2) to list listening sockets")
def test_without_an_address_a_local_instance_on_loopback_bakes_the_rows(tmp_path):
    rows = make_rows(tmp_path / "audio", 6)
    opts = batch.BatchOptions(out_dir=str(tmp_path / "ray"), formats=("csv",))
    before = set(descendants(os.getpid()))
    seen: list[str] = []
    results: list[batch.RowResult] = []

    def on_result(result):
        if not seen:  # while the local instance runs
            seen.extend(listening_addresses(set(descendants(os.getpid())) - before))
        results.append(result)

    ray_executor.RayExecutor(num_cpus=1, runtime_env=runtime_env(tmp_path / "marks")).run(rows, opts, on_result)
    assert sorted(r.index for r in results) == list(range(1, 7)) and all(r.ok for r in results)
    assert_loopback_only(seen)
    assert not ray.is_initialized()
