"""``--jobs N``: warm worker processes, each with its own engines and bpy, fed rows over a JSON-lines pipe.

The parent side is ``ProcessExecutor``; ``serve`` is the loop each worker process runs (blender/worker.py starts it).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from ..cpu import BUDGET_VARIABLE, share
from .bake import bake_row, remove_partial_files
from .executors import Executor, load_scene_exporter
from .rows import BakeRow, BatchOptions, RowResult, SceneExporter

RESULT_PREFIX = "@@facepolicy-result "


class ProcessExecutor(Executor):
    """``jobs`` warm worker processes, each with its own engine and bpy, fed rows over a JSON-lines pipe.

    ``worker_command`` starts one worker (see ``serve``). A worker that crashes costs only the row it was on:
    it is restarted for the next row. On Ctrl-C the workers are stopped, their temporary files removed,
    and KeyboardInterrupt propagates; finished outputs are already complete files.
    """

    def __init__(self, jobs: int, worker_command: Sequence[str], log_dir: str | None = None,
                 env: dict | None = None):
        self.jobs = max(1, int(jobs))
        self.worker_command = list(worker_command)
        self.log_dir = log_dir
        self.env = env

    def worker_env(self) -> dict:
        """The workers' environment: each uses its share of the cores (core.cpu), so ``jobs`` workers do not each
        start a decoder and a model thread per core."""
        env = dict(os.environ if self.env is None else self.env)
        env[BUDGET_VARIABLE] = str(share(self.jobs))
        return env

    def _start(self, slot: int, log_dir: Path) -> tuple[subprocess.Popen, Path]:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"worker-{slot}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - the worker owns it for its lifetime
        proc = subprocess.Popen(
            self.worker_command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
            env=self.worker_env(), start_new_session=True,  # Ctrl-C reaches only us; we stop the workers cleanly
        )
        log.close()
        return proc, log_path

    def run(self, rows, opts, on_result):
        # Worker logs (Blender's and the engines' chatter) are kept only when a worker crashed.
        log_dir = Path(self.log_dir) if self.log_dir else Path(tempfile.mkdtemp(prefix="facepolicy-workers-"))
        crashed = threading.Event()
        try:
            self._run(rows, opts, on_result, log_dir, crashed)
        finally:
            if not self.log_dir and not crashed.is_set():
                shutil.rmtree(log_dir, ignore_errors=True)

    def _run(self, rows, opts, on_result, log_dir: Path, crashed: threading.Event) -> None:
        todo: queue.Queue = queue.Queue()
        for row in rows:
            todo.put(row)
        done: queue.Queue = queue.Queue()
        stop = threading.Event()
        procs: dict[int, subprocess.Popen] = {}
        in_flight: dict[int, BakeRow] = {}
        payload_opts = opts.to_dict()

        def feed(slot: int) -> None:
            proc, log_path = None, None
            try:
                while not stop.is_set():
                    try:
                        row = todo.get_nowait()
                    except queue.Empty:
                        return
                    if proc is None or proc.poll() is not None:
                        proc, log_path = self._start(slot, log_dir)
                        procs[slot] = proc
                    in_flight[slot] = row
                    line = json.dumps({"row": asdict(row), "opts": payload_opts}) + "\n"
                    result = None
                    try:
                        proc.stdin.write(line.encode())
                        proc.stdin.flush()
                        while True:
                            out = proc.stdout.readline()
                            if not out:
                                break
                            text = out.decode("utf-8", "replace")
                            at = text.find(RESULT_PREFIX)
                            if at >= 0:
                                result = RowResult.from_dict(json.loads(text[at + len(RESULT_PREFIX):]))
                                break
                    except (BrokenPipeError, OSError, ValueError):
                        result = None
                    if result is None:
                        if stop.is_set():
                            # The row stays in flight: the main thread removes its temporary files once every
                            # worker has stopped (a worker stopped half-way may not have removed them itself).
                            return
                        in_flight.pop(slot, None)
                        crashed.set()
                        try:
                            proc.wait(timeout=30)
                        except subprocess.TimeoutExpired:  # closed its output but hangs: it is of no more use
                            proc.kill()
                            proc.wait()
                        result = RowResult(row.index, row.output, "failed",
                                           f"the worker process stopped (exit code {proc.returncode}) "
                                           f"while baking this line; see {log_path}: {_tail(log_path)}")
                        remove_partial_files(row, opts)
                    else:
                        in_flight.pop(slot, None)
                    done.put(result)
            finally:
                done.put(None)

        threads = [threading.Thread(target=feed, args=(s,), daemon=True) for s in range(min(self.jobs, len(rows)))]
        for t in threads:
            t.start()
        finished = 0
        try:
            while finished < len(threads):
                item = done.get()
                if item is None:
                    finished += 1
                else:
                    on_result(item)
        except BaseException:
            stop.set()
            self._stop_workers(procs)
            for row in list(in_flight.values()):
                remove_partial_files(row, opts)
            raise
        self._stop_workers(procs, graceful=True)

    @staticmethod
    def _stop_workers(procs: dict[int, subprocess.Popen], graceful: bool = False) -> None:
        for proc in procs.values():
            if proc.poll() is None:
                try:
                    proc.stdin.close()  # a worker between rows ends at once
                    if not graceful:
                        proc.send_signal(signal.SIGTERM)  # one in the middle of a row stops, cleaning up
                except OSError:
                    pass
        deadline = time.monotonic() + 20
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _tail(path: Path | None, n: int = 3) -> str:
    try:
        lines = [line for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    except (OSError, TypeError):
        return "no log"
    return " | ".join(lines[-n:]) or "no output"


def serve(scene_exporter_factory: Callable[[], SceneExporter] | None = None) -> int:
    """The worker loop: read one JSON row per line on stdin, bake it, answer one result line.

    stdout is kept for the protocol: anything else printed (Blender's exporters are chatty) goes to stderr.
    SIGINT is ignored (the parent decides); SIGTERM stops the current row with its temporary files removed.
    """
    proto = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="utf-8")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def _terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    exporter: SceneExporter | None = None
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            msg = json.loads(line)
            row = BakeRow(**msg["row"])
            opts = BatchOptions.from_dict(msg["opts"])
            if opts.needs_blender and exporter is None and scene_exporter_factory is not None:
                exporter = load_scene_exporter(scene_exporter_factory)
            result = bake_row(row, opts, exporter)
            proto.write(RESULT_PREFIX + json.dumps(result.to_dict()) + "\n")
    except KeyboardInterrupt:
        return 130
    return 0
