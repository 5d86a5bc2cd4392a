"""``RayExecutor``: the driver of ``facepolicy bake --executor ray``. It starts or joins Ray, checks every node, sends
rows as tasks (core/batch/ray_tasks.py holds what a worker runs) and collects their results.

Ray is imported only when a RayExecutor runs, never by the add-on. In the object-store mode this machine reads each
row's inputs (the --blend file and each model folder once per batch), and writes the files a worker returns as one
group, the sidecar last, as ``bake_row`` does.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

from ...blender.worker import scene_exporter
from ...core.batch import (
    BakeRow,
    BatchOptions,
    Executor,
    RowResult,
    output_paths,
    remove_partial_files,
    row_inputs,
    row_model_dir,
    sidecar_path,
    transcript_for,
)
from ...core.batch.model_shipping import MODEL_LIMIT, pack_model_folder
from ...core.batch.ray_tasks import bake_shared, bake_shipped, probe_node
from ...core.errors import FacePolicyError
from .limits import BLEND_LIMIT, DATA_MODES, OBJECT_STORE_LIMIT  # noqa: F401 (named here too)
from .network import check_reachable, local_auth_token, parse_address, prepare_environment

REQUIRED_ON_WORKERS = ("numpy", "soundfile")  # what bake_row imports on a worker besides facepolicy
PROBE_TIMEOUT_S = 120.0  # a cold worker on a busy node can take a while to start
CANCEL_GRACE_S = 5.0
INSTALL_HINT = "pip install 'facepolicy[ray]'"


def import_ray():
    try:
        import ray
    except ImportError:
        raise FacePolicyError(f"--executor ray needs Ray, which is not installed here; install it with "
                              f"{INSTALL_HINT} (or pip install 'ray[default]')") from None
    return ray


def _task_error_message(exc: BaseException, max_retries: int) -> str:
    """A user-facing sentence for a Ray task that ended in an exception instead of a RowResult."""
    text = str(exc)
    node = getattr(exc, "ip", None)
    if not node:
        seen = re.search(r"\bip=([0-9A-Fa-f.:]+)\)", text)  # Ray names the worker as 'ray::f() (pid=.., ip=..)'
        node = seen.group(1) if seen else None
    where = f"node {node}" if node else "a Ray node"
    missing = re.search(r"No module named '([^']+)'", text)
    if missing:
        package = missing.group(1).split(".")[0]
        return (f"the Ray worker on {where} cannot import {package!r}: install it in the Python that runs Ray "
                f"there ({INSTALL_HINT} on every node)")
    name = type(exc).__name__
    if "WorkerCrashed" in name or "NodeDied" in name or "OutOfMemory" in name or "ActorDied" in name:
        first = text.strip().splitlines()[0] if text.strip() else name
        return (f"the Ray worker stopped while baking this line, {max_retries + 1} times ({first}); "
                "it was not retried again")
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return f"Ray task failed on {where}: {lines[-1] if lines else name}"


def _write_returned_files(row: BakeRow, opts: BatchOptions, result: RowResult, files: dict[str, bytes]) -> None:
    """The line's files as one group (fileio.FileGroup), the sidecar last, as bake_row writes them: they appear
    together or, if anything fails, the folder is left as it was."""
    from ...core.fileio import FileGroup

    out = Path(opts.out_dir)
    side = sidecar_path(row, opts)
    side_rel = side.relative_to(out).as_posix()
    expected = {p.relative_to(out).as_posix(): p for takes in output_paths(row, opts).values() for p in takes.values()}
    # Only the row's own output names are written: what a worker returns never chooses a path.
    if set(files) != {*expected, side_rel}:
        raise FacePolicyError(f"the worker returned {sorted(files)}, expected {sorted({*expected, side_rel})}")
    record = json.loads(files[side_rel])
    record["audio"] = row.audio  # the worker saw its staged copy
    with FileGroup() as group:
        group.claim(side)  # the earlier sidecar goes first: while the outputs are replaced the line is not up to date
        for rel, path in expected.items():
            group.stage(path).write_bytes(files[rel])
        group.stage(side).write_bytes(json.dumps(record, indent=1).encode("utf-8"))
        group.commit()
    result.files = [str(p) for takes in output_paths(row, opts).values() for p in takes.values()]


class RayExecutor(Executor):
    """Bakes rows as Ray tasks: a local Ray instance on 127.0.0.1, or the cluster at ``address`` (HOST:PORT).

    A worker that crashes (killed, out of memory, node lost) has its row retried up to ``max_retries`` times;
    a row that fails for a reason of its own (corrupt audio, a bad style) comes back once as a failed result.
    ``runtime_env`` is passed to ``ray.init`` (environment variables, a working_dir, a setup hook).
    """

    def __init__(self, address: str | None = None, *, data: str = "shared", max_retries: int = 3,
                 num_cpus: int | None = None, runtime_env: dict | None = None,
                 max_in_flight: int | None = None):
        if data not in DATA_MODES:
            raise FacePolicyError(f"unknown Ray data mode {data!r}; choose {' or '.join(DATA_MODES)}")
        if max_retries < 0:
            raise FacePolicyError(f"--ray-retries must be 0 or more, got {max_retries}")
        if address is not None:
            parse_address(address)
        self.address = address
        self.data = data
        self.max_retries = int(max_retries)
        self.num_cpus = num_cpus
        self.runtime_env = runtime_env
        self.max_in_flight = max_in_flight
        self.nodes: list[dict] = []  # what the node probe found, for messages and tests

    # -- connecting --

    def _connect(self):
        """(ray, whether we started or joined the session and so must leave it)."""
        prepare_environment(self.address)
        ray = import_ray()
        if ray.is_initialized():
            return ray, False
        kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level="WARNING",
                      configure_logging=True, runtime_env=self.runtime_env)
        if self.address is None:
            kwargs.update(address="local", num_cpus=self.num_cpus, _node_ip_address="127.0.0.1")
        else:
            check_reachable(self.address)
            kwargs.update(address=self.address)
        try:
            ray.init(**kwargs)
        except KeyboardInterrupt:
            if ray.is_initialized():
                ray.shutdown()
            raise
        except (ConnectionError, RuntimeError, TimeoutError, ValueError) as exc:
            if self.address is None:
                raise FacePolicyError(f"cannot start Ray on this machine: {exc}") from None
            # `ray start` turns token authentication on when its machine has a token, but ray.init with an address
            # never does by itself: joining such a head fails with "Authentication token is missing". Turning it
            # on here whenever a token exists would break clusters without authentication (their workers cannot
            # reach a driver that expects a token), so the message says what to set instead.
            token = local_auth_token()
            auth = (f"if the head uses token authentication, set RAY_AUTH_MODE=token (this machine's token is "
                    f"{token} and must match the head's ~/.ray/auth_token)" if token else
                    "if the head uses token authentication, copy its ~/.ray/auth_token to this machine (or set "
                    "RAY_AUTH_TOKEN) and set RAY_AUTH_MODE=token")
            raise FacePolicyError(f"cannot join the Ray cluster at {self.address}: {exc}; run this command on a "
                                  f"machine of the cluster (one that ran 'ray start --address {self.address}'); "
                                  f"{auth}") from None
        return ray, True

    def _check_nodes(self, ray, required: Sequence[str]) -> None:
        """Every node that can run a row must import facepolicy (same version) and the ``required`` modules."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from ...core.version import VERSION

        nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
        if not nodes:
            raise FacePolicyError("the Ray cluster has no node with a CPU to bake on")
        probe = ray.remote(probe_node)
        refs = {probe.options(num_cpus=0, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
            n["NodeID"], soft=False)).remote(tuple(required)): n for n in nodes}
        problems, found = [], []
        ready, not_ready = ray.wait(list(refs), num_returns=len(refs), timeout=PROBE_TIMEOUT_S)
        for ref in ready:
            address = refs[ref].get("NodeManagerAddress", "?")
            try:
                info = ray.get(ref)
            except Exception as exc:
                problems.append(_task_error_message(exc, 0).replace("a Ray node", f"node {address}"))
                continue
            found.append(info)
            if info["missing"]:
                problems.append(f"node {info['node']} lacks the Python package(s) {', '.join(info['missing'])}; "
                                f"install them there ({INSTALL_HINT})")
            elif info["version"] != VERSION:
                problems.append(f"node {info['node']} has facepolicy {info['version']}, this machine "
                                f"{VERSION}; install the same version on every node")
        for ref in not_ready:
            ray.cancel(ref, force=True)
            problems.append(f"node {refs[ref].get('NodeManagerAddress', '?')} did not start a Python worker "
                            f"within {PROBE_TIMEOUT_S:.0f} s")
        if problems:
            raise FacePolicyError("the Ray cluster cannot bake: " + "; ".join(problems))
        self.nodes = found

    # -- running --

    def run(self, rows: Sequence[BakeRow], opts: BatchOptions, on_result: Callable[[RowResult], None]) -> None:
        if not rows:
            return
        rows = [self._explicit_transcript(r) for r in rows]
        # Checking bpy on every node up front also loads it into the workers that will bake the scene rows.
        required = (*REQUIRED_ON_WORKERS, "bpy") if opts.needs_blender else REQUIRED_ON_WORKERS
        ray, owned = self._connect()
        try:
            self._check_nodes(ray, required)
            if self.data == "shared":
                Path(opts.out_dir).mkdir(parents=True, exist_ok=True)
            self._run(ray, rows, opts, on_result)
        finally:
            if owned:
                ray.shutdown()

    @staticmethod
    def _explicit_transcript(row: BakeRow) -> BakeRow:
        # A transcript found beside the audio is named explicitly, so a worker that cannot see it says so
        # instead of silently baking without it. The outputs and the fingerprint are the same either way.
        t = transcript_for(row)
        return replace(row, transcript=str(t)) if t is not None and not row.transcript else row

    def _run(self, ray, rows, opts, on_result) -> None:
        from ...core.engine import ENGINES

        # What every task needs, once in the object store (core/batch/ray_tasks.py says what each key is).
        ctx = ray.put({"opts": opts.to_dict(), "engines": {k: list(v) for k, v in ENGINES.items()},
                       "scene_exporter": scene_exporter})
        shipped = self.data == "object-store"
        task = ray.remote(bake_shipped if shipped else bake_shared).options(
            num_cpus=1, max_retries=self.max_retries, retry_exceptions=False,
            num_returns=2 if shipped else 1)
        blend = self._ship_blend(ray, opts) if shipped else None
        cpus = int(ray.cluster_resources().get("CPU", 1))
        window = self.max_in_flight or max(4, 4 * cpus)
        todo = list(rows)
        todo.reverse()
        pending: dict = {}  # ObjectRef of the RowResult → (row, ref of the files or None)
        models: dict[str, dict | str] = {}  # model folder → what its rows send (_ship_model), or why it cannot go

        def submit() -> None:
            while todo and len(pending) < window:
                row = todo.pop()
                if shipped:
                    try:
                        inputs = self._read_inputs(row, opts)
                        model = self._ship_model(ray, row_model_dir(row, opts), models)
                    except FacePolicyError as exc:
                        on_result(RowResult(row.index, row.output, "failed", str(exc)))
                        continue
                    except OSError as exc:
                        on_result(RowResult(row.index, row.output, "failed",
                                            f'"{exc.filename or row.audio}": cannot read ({exc.strerror or exc})'))
                        continue
                    result_ref, files_ref = task.remote(asdict(row), ctx, inputs, blend, model)
                    pending[result_ref] = (row, files_ref)
                else:
                    pending[task.remote(asdict(row), ctx)] = (row, None)

        try:
            submit()
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    row, files_ref = pending.pop(ref)
                    on_result(self._collect(ray, ref, files_ref, row, opts))
                submit()
        except BaseException:
            self._cancel(ray, pending, opts)
            raise

    @staticmethod
    def _ship_blend(ray, opts: BatchOptions):
        """The --blend file in the object store, once for every row; None when the batch needs none."""
        if not (opts.blend and opts.needs_blender):
            return None
        size = Path(opts.blend).stat().st_size
        if size > BLEND_LIMIT:
            raise FacePolicyError(f'--blend "{opts.blend}" is {size / 2**20:.0f} MiB, more than the '
                                  f"{BLEND_LIMIT // 2**20} MiB sent through Ray's object store; put it on a shared "
                                  "filesystem and use --ray-data shared")
        return ray.put(Path(opts.blend).read_bytes())

    @staticmethod
    def _ship_model(ray, folder: str | None, models: dict):
        """What a row sends for its model folder (None: the bundled model, which every node has). Each folder is
        read and put in the object store once, when its first row is sent; every row naming it sends the same
        reference, and a worker fetches the files only when it has not written that folder yet (ray_tasks)."""
        if not folder:
            return None
        if folder not in models:
            try:
                packed = pack_model_folder(folder, MODEL_LIMIT)
                models[folder] = {"path": folder, "digest": packed["digest"], "files": ray.put(packed["files"])}
            except FacePolicyError as exc:
                models[folder] = str(exc)
            except OSError as exc:
                models[folder] = f'model folder "{folder}": cannot read "{exc.filename}" ({exc.strerror or exc})'
        if isinstance(models[folder], str):
            raise FacePolicyError(models[folder])
        return models[folder]

    def _read_inputs(self, row: BakeRow, opts: BatchOptions):
        # The --blend travels once per batch (_ship_blend); a transcript beside the audio was made explicit.
        paths = [str(p) for p in row_inputs(row, opts, include_blend=False)]
        size = sum(Path(p).stat().st_size for p in paths)
        if size > OBJECT_STORE_LIMIT:
            raise FacePolicyError(f"{row.label()}: its inputs are {size / 2**20:.0f} MiB, more than the "
                                  f"{OBJECT_STORE_LIMIT // 2**20} MiB sent through Ray's object store; "
                                  "put them on a shared filesystem and use --ray-data shared")
        return {p: Path(p).read_bytes() for p in paths}

    def _collect(self, ray, ref, files_ref, row: BakeRow, opts: BatchOptions) -> RowResult:
        try:
            result = RowResult.from_dict(ray.get(ref))
            if files_ref is not None:
                files = ray.get(files_ref)
                if result.status == "ok":
                    _write_returned_files(row, opts, result, files)
            return result
        except FacePolicyError as exc:
            return RowResult(row.index, row.output, "failed", str(exc))
        except OSError as exc:
            return RowResult(row.index, row.output, "failed", f"cannot write the outputs: {exc}")
        except Exception as exc:  # a RayError: the task never produced a result
            if self.data == "shared":
                remove_partial_files(row, opts)
            return RowResult(row.index, row.output, "failed", _task_error_message(exc, self.max_retries))

    def _cancel(self, ray, pending: dict, opts: BatchOptions) -> None:
        """Ctrl-C: stop what is queued or running; finished files stay, half-written ones are removed."""
        refs = list(pending)
        for ref in refs:
            ray.cancel(ref)
        deadline = time.monotonic() + CANCEL_GRACE_S
        remaining = refs
        while remaining and time.monotonic() < deadline:
            _, remaining = ray.wait(remaining, num_returns=len(remaining), timeout=0.2)
        for ref in remaining:
            ray.cancel(ref, force=True)
        if self.data == "shared":
            for row, _ in pending.values():
                remove_partial_files(row, opts)
