"""Runs batch rows as Ray tasks, on this machine or across a Ray cluster (``facepolicy bake --executor ray``).

Ray is an optional dependency (``pip install facepolicy[ray]``): it is imported only when a RayExecutor runs,
never by the add-on. A row does exactly what ``batch.bake_row`` does; only where it runs changes. Each Ray
worker process keeps its engines (ONNX sessions) and its bpy scene exporter warm across the rows it bakes.

Two ways for data to reach the workers:
- ``shared`` (default): inputs and outputs are paths every node can reach (NFS, SMB, a cloud mount). Workers
  read and write them in place, atomically, exactly as the local batch does.
- ``object-store``: this machine reads each row's inputs and ships them through Ray's object store; the worker
  bakes into a private temporary folder and returns the files, which this machine writes atomically. For small
  files on clusters without a shared filesystem.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

from .core.batch import (
    BakeRow,
    BatchOptions,
    Executor,
    RowResult,
    bake_row,
    output_paths,
    remove_partial_files,
    row_inputs,
    sidecar_path,
    transcript_for,
)
from .core.errors import FacePolicyError

DATA_MODES = ("shared", "object-store")
OBJECT_STORE_LIMIT = 64 * 1024 * 1024  # inputs of one row shipped through the object store, in bytes
BLEND_LIMIT = 1024 * 1024 * 1024  # a --blend file, shipped once for the whole batch
REQUIRED_ON_WORKERS = ("numpy", "soundfile")  # what bake_row imports on a worker besides facepolicy
CONNECT_TIMEOUT_S = 5.0
PROBE_TIMEOUT_S = 120.0  # a cold worker on a busy node can take a while to start
CANCEL_GRACE_S = 5.0
INSTALL_HINT = "pip install 'facepolicy[ray]'"
_LOOPBACK_NAMES = ("localhost", "")


def _import_ray():
    try:
        import ray
    except ImportError:
        raise FacePolicyError(f"--executor ray needs Ray, which is not installed here; install it with "
                              f"{INSTALL_HINT} (or pip install 'ray[default]')") from None
    return ray


# --- addresses ---------------------------------------------------------------------------------------------


def parse_address(address: str) -> tuple[str, int]:
    """'HOST:PORT' → (host, port); FacePolicyError for anything else ('[::1]:6379' is accepted too)."""
    text = str(address).strip()
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)|([^\s:/\[\]]+):(\d+)", text)
    if not m:
        raise FacePolicyError(f"--address {address!r}: expected HOST:PORT of a Ray head node, e.g. 10.0.0.5:6379")
    host, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    port_n = int(port)
    if not 0 < port_n < 65536:
        raise FacePolicyError(f"--address {address!r}: the port must be between 1 and 65535")
    return host, port_n


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """FacePolicyError within ``timeout`` seconds when nothing accepts connections at HOST:PORT."""
    host, port = parse_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except socket.gaierror as exc:
        reason = f"unknown host ({exc.strerror or exc})"
    except TimeoutError:
        reason = f"no answer within {timeout:.0f} s"
    except OSError as exc:
        reason = exc.strerror or str(exc)
    raise FacePolicyError(
        f"cannot reach the Ray cluster at {address}: {reason}. Start a head node there with "
        f"'ray start --head --port {port}', check the firewall, or leave out --address to run on this machine"
    )


def _prepare_environment(address: str | None) -> None:
    """A local instance (no address, or a loopback one) listens on 127.0.0.1 only.

    Ray otherwise advertises, and binds, the machine's network address. The switch is read when ray is first
    imported, so it is set before that; an address on another machine keeps Ray's default.
    """
    if address is None or is_loopback(parse_address(address)[0]):
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if address is None:
        # Ray starts its workers at niceness 15, so on a machine that does anything else the rows crawl (3x slower
        # per row here next to one training job) while `--jobs` workers run at normal priority. The raylet of a
        # local instance reads this when it starts; a user's own setting wins.
        os.environ.setdefault("RAY_worker_niceness", "0")
    if address is None and "ray" not in sys.modules:
        # Ray's default for a new local instance, said explicitly so that it does not print a warning about it.
        # Only before Ray's first import: a process that already used Ray keeps the mode it read then.
        os.environ.setdefault("RAY_AUTH_MODE", "token")


def local_auth_token() -> str | None:
    """Where this machine's Ray token comes from (the variable or the file Ray reads), or None."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    for path in (os.environ.get("RAY_AUTH_TOKEN_PATH"), Path.home() / ".ray" / "auth_token"):
        if path and Path(path).is_file():
            return str(path)
    return None


# --- what runs on a worker ---------------------------------------------------------------------------------

_warm: dict = {}  # per worker process: the scene exporter and the engine registrations already applied


def _node_name() -> str:
    """'10.0.0.7 (render-03)': the node as a person finds it in 'ray status' and in their machine list."""
    ray = sys.modules.get("ray")
    ip = ray.util.get_node_ip_address() if ray is not None and ray.is_initialized() else "this machine"
    return f"{ip} ({socket.gethostname()})"


def _ensure_engines(engines: dict) -> None:
    """Engines registered on the driver (plugins, tests) are registered in this worker process too."""
    from .core import engine

    key = tuple(sorted((k, tuple(v)) for k, v in engines.items()))
    if _warm.get("engines") == key:
        return
    for name, (module, cls) in engines.items():
        if name not in engine.ENGINES:
            engine.register_engine(name, module, cls)
    _warm["engines"] = key


def _scene_exporter():
    if "exporter" not in _warm:
        from .blender.export import export_scene

        _warm["exporter"] = export_scene
    return _warm["exporter"]


def _missing_paths(row: BakeRow, opts: BatchOptions) -> list[str]:
    """Inputs and the output folder that this node cannot see."""
    needed = [row.audio]
    if row.transcript:
        needed.append(row.transcript)
    if row.style and Path(row.style).is_absolute():
        needed.append(row.style)
    if opts.blend and opts.needs_blender:
        needed.append(opts.blend)
    missing = [p for p in needed if not Path(p).exists()]
    if not Path(opts.out_dir).is_dir():
        missing.append(opts.out_dir)
    return missing


def _bake(row: BakeRow, opts: BatchOptions) -> RowResult:
    exporter = None
    if opts.needs_blender:
        try:
            exporter = _scene_exporter()
        except Exception as exc:  # bpy missing or broken on this node: every scene row says why
            return RowResult(row.index, row.output, "failed", f"cannot load Blender (bpy) on node {_node_name()}: "
                                                              f"{type(exc).__name__}: {exc}")
    return bake_row(row, opts, exporter)


def bake_shared(row_data: dict, ctx: dict) -> dict:
    """One row, inputs and outputs on storage this node shares with the driver. Returns a RowResult dict."""
    _ensure_engines(ctx["engines"])
    row, opts = BakeRow(**row_data), BatchOptions.from_dict(ctx["opts"])
    missing = _missing_paths(row, opts)
    if missing:
        shown = ", ".join(f'"{p}"' for p in missing)
        return RowResult(row.index, row.output, "failed",
                         f"{shown} not found on node {_node_name()}: every Ray node needs the same paths "
                         "(a shared filesystem), or use --ray-data object-store").to_dict()
    # A previous attempt of this row on a worker that crashed may have left temporary files behind.
    remove_partial_files(row, opts)
    return _bake(row, opts).to_dict()


_STAGING_PREFIX = "facepolicy-ray-"


def _remove_dead_staging() -> None:
    """Once per worker process: remove the private folders of workers on this node that were killed mid-row."""
    if _warm.get("staging_checked"):
        return
    _warm["staging_checked"] = True
    for folder in Path(tempfile.gettempdir()).glob(f"{_STAGING_PREFIX}*-*"):
        pid = folder.name[len(_STAGING_PREFIX):].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists() and os.name == "posix" and Path("/proc").is_dir():
            shutil.rmtree(folder, ignore_errors=True)


def _staged_blend(path: str, data: bytes) -> str:
    """The batch's --blend file, written once per worker process (Ray hands every task the same object)."""
    if _warm.get("blend", (None,))[0] != path:
        folder = Path(tempfile.gettempdir()) / f"{_STAGING_PREFIX}{os.getpid()}-blend"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        local = folder / Path(path).name
        local.write_bytes(data)
        atexit.register(shutil.rmtree, folder, True)
        _warm["blend"] = (path, str(local))
    return _warm["blend"][1]


def bake_shipped(row_data: dict, ctx: dict, inputs: dict[str, bytes],
                 blend: bytes | None = None) -> tuple[dict, dict[str, bytes]]:
    """One row whose inputs came through the object store; bakes in a private folder and returns the files.

    ``inputs`` maps the row's original paths to their bytes; ``blend`` is the batch's --blend file. Files are
    staged under their own names, so the outputs (which may name the audio file) are the same as when baked in
    place.
    """
    _ensure_engines(ctx["engines"])
    _remove_dead_staging()
    row, opts = BakeRow(**row_data), BatchOptions.from_dict(ctx["opts"])
    with tempfile.TemporaryDirectory(prefix=f"{_STAGING_PREFIX}{os.getpid()}-") as tmp:
        staged: dict[str, str] = {}
        for i, (original, data) in enumerate(sorted(inputs.items())):
            folder = Path(tmp) / "in" / str(i)
            folder.mkdir(parents=True)
            local = folder / Path(original).name
            local.write_bytes(data)
            staged[original] = str(local)
        # The transcript must stay beside the audio under the audio's stem when it was found that way.
        local_row = replace(row, audio=staged[row.audio],
                            transcript=staged.get(row.transcript) if row.transcript else None,
                            style=staged.get(row.style, row.style) if row.style else None)
        local_opts = replace(opts, out_dir=str(Path(tmp) / "out"),
                             blend=_staged_blend(opts.blend, blend) if opts.blend and blend is not None else None)
        Path(local_opts.out_dir).mkdir()
        result = _bake(local_row, local_opts)
        files: dict[str, bytes] = {}
        if result.status == "ok":
            out = Path(local_opts.out_dir)
            for takes in output_paths(local_row, local_opts).values():
                for path in takes.values():
                    files[path.relative_to(out).as_posix()] = path.read_bytes()
            side = sidecar_path(local_row, local_opts)
            files[side.relative_to(out).as_posix()] = side.read_bytes()
    return result.to_dict(), files


def probe_node(required: Sequence[str]) -> dict:
    """What a node can run: its name, the facepolicy version, and which required modules are missing."""
    import importlib

    from . import __version__

    missing = []
    for name in required:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return {"node": _node_name(), "version": __version__, "missing": missing}


# --- on the driver -----------------------------------------------------------------------------------------


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
    """Outputs first, the sidecar last (as bake_row does), each through a temporary file and a rename."""
    from .core.fileio import atomic_write_bytes

    out = Path(opts.out_dir)
    side = sidecar_path(row, opts)
    side_rel = side.relative_to(out).as_posix()
    expected = {p.relative_to(out).as_posix(): p for takes in output_paths(row, opts).values() for p in takes.values()}
    # Only the row's own output names are written: what a worker returns never chooses a path.
    if set(files) != {*expected, side_rel}:
        raise FacePolicyError(f"the worker returned {sorted(files)}, expected {sorted({*expected, side_rel})}")
    for rel, path in expected.items():
        atomic_write_bytes(path, files[rel])
    record = json.loads(files[side_rel])
    record["audio"] = row.audio  # the worker saw its staged copy
    atomic_write_bytes(side, json.dumps(record, indent=1).encode("utf-8"))
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
        _prepare_environment(self.address)
        ray = _import_ray()
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

        from . import __version__

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
            elif info["version"] != __version__:
                problems.append(f"node {info['node']} has facepolicy {info['version']}, this machine "
                                f"{__version__}; install the same version on every node")
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
        from .core.engine import ENGINES

        ctx = ray.put({"opts": opts.to_dict(), "engines": {k: list(v) for k, v in ENGINES.items()}})
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

        def submit() -> None:
            while todo and len(pending) < window:
                row = todo.pop()
                if shipped:
                    try:
                        inputs = self._read_inputs(row, opts)
                    except FacePolicyError as exc:
                        on_result(RowResult(row.index, row.output, "failed", str(exc)))
                        continue
                    except OSError as exc:
                        on_result(RowResult(row.index, row.output, "failed",
                                            f'"{exc.filename or row.audio}": cannot read ({exc.strerror or exc})'))
                        continue
                    result_ref, files_ref = task.remote(asdict(row), ctx, inputs, blend)
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


# --- command line --------------------------------------------------------------------------------------------


def add_arguments(parser) -> None:
    """The Ray options of `facepolicy bake`."""
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="where lines are baked: local processes (--jobs) or Ray tasks (default: local); "
                        "with ray and no --address, --jobs N gives the local Ray instance N CPUs (default: all)")
    parser.add_argument("--address", metavar="HOST:PORT",
                        help="with --executor ray: the Ray head node to join (default: start Ray on this machine, "
                        "listening on 127.0.0.1 only)")
    parser.add_argument("--ray-data", choices=DATA_MODES, default="shared",
                        help="with --executor ray: 'shared' when every node sees the same paths (default), "
                        f"'object-store' to send inputs and outputs (up to {OBJECT_STORE_LIMIT // 2**20} MiB a line) "
                        "through Ray")
    parser.add_argument("--ray-retries", type=int, default=3, metavar="N",
                        help="with --executor ray: retries of a line whose worker crashed (default: 3)")


def executor_from_args(args) -> RayExecutor | None:
    """The RayExecutor the arguments ask for, or None for the local executors."""
    if getattr(args, "executor", "local") != "ray":
        if getattr(args, "address", None):
            raise FacePolicyError("--address needs --executor ray")
        return None
    jobs = getattr(args, "jobs", 1)
    return RayExecutor(getattr(args, "address", None), data=getattr(args, "ray_data", "shared"),
                       max_retries=getattr(args, "ray_retries", 3),
                       num_cpus=jobs if jobs and jobs > 1 and not getattr(args, "address", None) else None)

