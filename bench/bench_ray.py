"""Ray against local worker processes: a manifest of synthetic lines → CSV with `--executor ray` and `--jobs 2`.

The lines are spoken by espeak-ng (made by bench_batch.make_lines; a GPL tool used only to make test audio) with
a transcript beside each one. Each bake runs as the real `facepolicy bake` command in a fresh subprocess, so Ray's
start-up (a local instance on 127.0.0.1, two CPUs) and the workers' engine loading are counted; the two executors
alternate so that the machine's noise hits both alike. Per run it prints lines per minute end to end and in the
steady state (first to last result), and the overhead per row: the wall time times the workers minus the time the
rows spent baking, over the rows. With ``--cluster`` the Ray runs join a head node that `ray start` launched
beforehand on 127.0.0.1 (a studio's standing cluster), so Ray's own start-up is not in the figure; the node
check, the workers' imports and engine loading still are. The last line is the summary, e.g.
``bench_ray 200 lines (2.0 s avg) -> csv, engine phonetic: jobs 2 61.0 lines/min, ray 58.2 lines/min (4.6% slower) ...``
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULT = "@@bench-ray "


def child(argv: list[str]) -> int:
    """Run `facepolicy bake ARGV` in this process and print the executor's timings as one JSON line."""
    from facepolicy.app import bake, cli
    from facepolicy.app.ray import arguments
    from facepolicy.core import batch

    parser = cli.build_parser()
    args = parser.parse_args(["bake", *argv])
    stats: dict = {"done": [], "seconds": []}

    class Timed(batch.Executor):
        def __init__(self, inner):
            self.inner = inner

        def run(self, rows, opts, on_result):
            stats["start"] = time.perf_counter()

            def timed(result):
                stats["done"].append(time.perf_counter() - stats["start"])
                stats["seconds"].append(result.seconds)
                on_result(result)

            self.inner.run(rows, opts, timed)
            stats["end"] = time.perf_counter() - stats["start"]

    inner = arguments.executor_from_args(args) or bake.make_executor(args, 2)
    code = bake.run_bake(args, executor=Timed(inner))
    print(RESULT + json.dumps(stats), flush=True)
    return code


def run_once(manifest: Path, out: Path, executor: str, jobs: int, engine: str, address: str | None = None) -> dict:
    argv = ["--manifest", str(manifest), "-o", str(out), "--format", "csv", "--engine", engine, "--jobs", str(jobs)]
    if executor == "ray":
        argv += ["--executor", "ray"] + (["--address", address] if address else [])
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    line = next((x for x in proc.stdout.splitlines() if x.startswith(RESULT)), None)
    if proc.returncode != 0 or line is None:
        sys.exit(f"bench_ray: the {executor} bake failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                 f"{proc.stderr[-3000:]}")
    stats = json.loads(line[len(RESULT):])
    n = len(stats["done"])
    first, last = min(stats["done"]), max(stats["done"])
    busy = sum(stats["seconds"])
    return {
        "wall": wall, "n": n, "rate": n / (wall / 60), "row_s": busy / n,
        "steady_rate": (n - 1) / ((last - first) / 60),
        "startup": first - stats["seconds"][0],  # until the first worker could start its first row
        "overhead_ms": 1000 * (stats["end"] * jobs - busy) / n,
        "steady_overhead_ms": 1000 * ((last - first) * jobs - (busy - stats["seconds"][0])) / (n - 1),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.exit(child(sys.argv[2:]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=2.0, help="target length of each line")
    ap.add_argument("--jobs", type=int, default=2, help="local worker processes, and CPUs of the local Ray")
    ap.add_argument("--engine", default="phonetic")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "facepolicy-bench-ray")
    ap.add_argument("--cluster", action="store_true",
                    help="start a Ray head on 127.0.0.1 with `ray start` first and join it with --address")
    args = ap.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_batch import make_lines

    lines = make_lines(args.work / "lines", args.lines, args.seconds)
    manifest = args.work / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["audio", "output", "seed"])
        for i, (wav, _dur) in enumerate(lines):
            w.writerow([f"lines/{wav.name}", wav.stem, i])
    runs: dict[str, list[dict]] = {"jobs": [], "ray": []}
    address = start_head(args.jobs) if args.cluster else None
    try:
        repeat(args, manifest, runs, address)
    finally:
        if address:
            subprocess.run([str(Path(sys.executable).parent / "ray"), "stop"], capture_output=True)
    report(args, lines, runs, address)


def start_head(cpus: int) -> str:
    """A standing single-node cluster on loopback, started with Ray's own CLI; its address."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    t0 = time.perf_counter()
    # Workers at normal priority, like the --jobs workers and like a local instance; no token authentication, so
    # the driver (which never turns it on by itself for an --address) can join (see docs/RAY.md).
    subprocess.run([str(Path(sys.executable).parent / "ray"), "start", "--head", "--node-ip-address=127.0.0.1",
                    f"--port={port}", f"--num-cpus={cpus}", "--include-dashboard=false", "--disable-usage-stats"],
                   check=True, capture_output=True,
                   env={**os.environ, "RAY_worker_niceness": "0", "RAY_AUTH_MODE": "disabled"})
    print(f"ray start --head: {time.perf_counter() - t0:.1f}s (not counted below)", flush=True)
    return f"127.0.0.1:{port}"


def repeat(args, manifest: Path, runs: dict, address: str | None) -> None:
    for r in range(args.repeats):
        for name in ("jobs", "ray"):
            s = run_once(manifest, args.work / f"out-{name}", name, args.jobs, args.engine, address)
            runs[name].append(s)
            print(f"run {r + 1} {name:>4}: {s['n']} lines, {s['wall']:.1f}s wall, {s['rate']:.1f} lines/min "
                  f"(steady {s['steady_rate']:.1f}), start-up {s['startup']:.1f}s, "
                  f"{s['row_s']:.2f}s per row in bake_row, overhead per row {s['overhead_ms']:.0f} ms "
                  f"(steady {s['steady_overhead_ms']:.0f} ms)", flush=True)


def report(args, lines, runs: dict, address: str | None) -> None:
    a, b = (args.work / "out-jobs"), (args.work / "out-ray")
    same = all((b / p.name).read_bytes() == p.read_bytes() for p in a.glob("*.csv"))

    def med(name: str, key: str) -> float:
        return statistics.median(s[key] for s in runs[name])

    slower = 100 * (med("ray", "wall") / med("jobs", "wall") - 1)
    steady_slower = 100 * (med("jobs", "steady_rate") / med("ray", "steady_rate") - 1)
    avg = statistics.mean(d for _, d in lines)
    where = f"standing cluster {address}" if address else "local Ray started by the command"
    print(f"bench_ray {len(lines)} lines ({avg:.1f} s avg) -> csv, engine {args.engine}, {args.jobs} CPUs, {where}: "
          f"jobs {args.jobs} {med('jobs', 'rate'):.1f} lines/min, ray {med('ray', 'rate'):.1f} lines/min "
          f"({slower:+.1f}% wall); steady state jobs {med('jobs', 'steady_rate'):.1f}, ray "
          f"{med('ray', 'steady_rate'):.1f} lines/min ({steady_slower:+.1f}%); ray start-up "
          f"{med('ray', 'startup'):.1f}s; overhead per row jobs {med('jobs', 'overhead_ms'):.0f} ms, ray "
          f"{med('ray', 'overhead_ms'):.0f} ms (steady {med('jobs', 'steady_overhead_ms'):.0f} / "
          f"{med('ray', 'steady_overhead_ms'):.0f} ms); bake_row {med('jobs', 'row_s'):.2f} / "
          f"{med('ray', 'row_s'):.2f} s per row; median of {args.repeats}; same csv bytes: {same}")


if __name__ == "__main__":
    main()
