"""Live: latency, CPU, lip sync and long-session drift of `facepolicy live`, measured through the console script.

- latency (--latency MIN): real speech (bench_long's clips with short pauses) written to `facepolicy live -` at its
  real pace, 10 ms per write; a loopback receiver timestamps each Live Link packet. A sample's latency is the time
  from its write to the arrival of the packet for its frame (round(t × fps)); p50 and p95 over every sample. CPU is
  the process's user + system time from the moment it listens to its exit, per second of audio.
- quality (--quality): the real clips of model.evaluate (ARCTIC + LibriVox; --testdata: the second real set of
  model.evaluate_phonetic, pocketsphinx-testdata's cards and goforward; --tts N: N held-out festival/flite sentences
  scored against the synthesisers' own phone timings, --tts-seed another draw of them to tune on) piped as 16-bit PCM
  into `facepolicy live - --csv` (accurate: phones heard live; fast: the model alone), and `facepolicy bake --accuracy
  fast` on the same files (no transcript beside them), every CSV scored with core.metrics against the clips' reference
  phones. The stream's frames do not depend on how fast the audio comes (tests/unit/core/test_stream.py), so the clips
  are piped as fast as the process reads them; --check-pace streams one clip at real pace too and compares the CSVs
  byte for byte.
- long (--long MIN): MIN minutes of speech piped as fast as the process reads it, --csv to a temporary file; the
  process's RSS every 5 s; frames counted in the CSV against round(duration × fps).

    .venv/bin/python bench/bench_live.py --latency 5 [--quality [--testdata | --tts 40 [--tts-seed 90417]]]
        [--check-pace] [--long 30] [--fps 30]

Prints one parseable line per measurement, e.g.
    live latency 300.0 s at real pace, 30 fps: p50 112 ms, p95 131 ms; CPU 0.27 s per s of audio; 9000 frames ...
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from bench_long import PAUSE, RATE, speech_clips  # noqa: E402

CHUNK = RATE // 100  # samples per write: 10 ms


def console() -> str:
    exe = Path(sys.executable).parent / "facepolicy"
    return str(exe) if exe.exists() else "facepolicy"


def long_speech(seconds: float) -> np.ndarray:
    """``seconds`` of real speech as 16-bit samples: the clips in turn, each followed by a short pause."""
    clips, pause = speech_clips(), np.zeros(int(PAUSE * RATE), np.float32)
    parts, n, k = [], 0, 0
    while n < seconds * RATE:
        for part in (clips[k % len(clips)], pause):
            parts.append(part)
            n += len(part)
        k += 1
    x = np.concatenate(parts)[: int(seconds * RATE)]
    return (np.clip(x, -1, 1) * 32767).astype("<i2")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_live(args: list[str], **popen) -> tuple[subprocess.Popen, list[str]]:
    """`facepolicy live ARGS` with its stderr collected; returns once it says it is listening."""
    proc = subprocess.Popen([console(), "live", *args], stdin=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
    lines: list[str] = []
    ready = threading.Event()

    def read_err():
        for raw in proc.stderr:
            line = raw.decode(errors="replace")
            lines.append(line)
            if "listening" in line:
                ready.set()
        ready.set()

    threading.Thread(target=read_err, daemon=True).start()
    ready.wait(120)
    if proc.poll() is not None:
        raise SystemExit(f"facepolicy live failed: {''.join(lines)[-2000:]}")
    return proc, lines


def latency(minutes: float, fps: int) -> str:
    pcm = long_speech(minutes * 60)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    rx.settimeout(0.5)
    arrivals: dict[int, float] = {}
    stop = threading.Event()

    def receive():
        while not stop.is_set():
            try:
                data = rx.recv(4096)
            except TimeoutError:
                continue
            at = time.perf_counter()
            n = int.from_bytes(data[1:5], "big")
            m = int.from_bytes(data[5 + n : 9 + n], "big")
            arrivals[int.from_bytes(data[9 + n + m : 13 + n + m], "big", signed=True)] = at

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    proc, err = start_live(["-", "--livelink", f"127.0.0.1:{rx.getsockname()[1]}", "--fps", str(fps)])
    cpu0 = cpu_seconds(proc.pid)
    n_chunks = int(np.ceil(len(pcm) / CHUNK))
    written = np.empty(n_chunks)
    t0 = time.perf_counter()
    for i in range(n_chunks):
        # Chunk i is written once its last sample has been "spoken": at t0 + its end time.
        delay = t0 + (i + 1) * CHUNK / RATE - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        proc.stdin.write(pcm[i * CHUNK : (i + 1) * CHUNK].tobytes())
        proc.stdin.flush()
        written[i] = time.perf_counter()
    cpu1 = cpu_seconds(proc.pid)
    proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    stop.set()
    receiver.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"facepolicy live failed: {''.join(err)[-2000:]}")
    seconds = len(pcm) / RATE
    # Every sample's frame, and the latency from its write to that frame's packet (frames sent while audio was
    # still coming; the held frames sent at the end of the input are the look-ahead's tail, not live latency).
    s = np.arange(len(pcm))
    frame = np.floor(s * fps / RATE + 0.5).astype(np.int64)
    recv = np.full(frame.max() + 1, np.nan)
    for k, at in arrivals.items():
        if 0 <= k < len(recv):
            recv[k] = at
    lat = recv[frame] - written[s // CHUNK]
    live_part = lat[np.isfinite(lat) & (recv[frame] <= written[-1])]
    expected = round(seconds * fps)
    cpu = (cpu1 - cpu0) / seconds
    cpu_all = (usage.ru_utime + usage.ru_stime) / seconds
    lost = expected - len(arrivals)
    load = os.getloadavg()[0]
    return (f"live latency {seconds:.1f} s of real speech at real pace, {fps} fps: p50 "
            f"{np.percentile(live_part, 50) * 1000:.0f} ms, p95 {np.percentile(live_part, 95) * 1000:.0f} ms, max "
            f"{live_part.max() * 1000:.0f} ms; CPU {cpu:.3f} s per s of audio while streaming ({cpu_all:.3f} with "
            f"start-up); {len(arrivals)} packets (expected {expected} ± 1, {lost} missing); load average {load:.1f}")


def _clips(testdata: bool = False, tts: int = 0, tts_seed: int | None = None):
    from model import evaluate_phonetic as ep

    if tts:
        return ep.tts_clips(tts, ep.TTS_SEED if tts_seed is None else tts_seed)
    return ep.testdata_clips() if testdata else ep.arctic_clips() + ep.librivox_clips()


def _score(csvs: list[Path], clips) -> dict:
    from facepolicy.core import metrics
    from facepolicy.core.livelink import read_livelink_csv

    return metrics.aggregate([metrics.score_clip(read_livelink_csv(p, fps=30), c.reference, c.audio.samples)
                              for p, c in zip(csvs, clips, strict=True)])


def _row(name: str, s: dict) -> str:
    c = s["counts"]
    return (f"{name}: bilabial {s['bilabial']:.3f} ({c['bilabial_hits']}/{c['bilabial_total']}), /m/ {s['m']:.3f} "
            f"({c['m_hits']}/{c['m_total']}), open {s['open']:.3f} ({c['open_hits']}/{c['open_total']}), pause "
            f"{s['pause']:.2f}, SLCC {s['slcc']:.3f}, lag {s['lag_ms']:+.0f} ms, jitter {s['jitter']:.3f}")


def quality(check_pace: bool, testdata: bool = False, tts: int = 0, tts_seed: int | None = None) -> list[str]:
    clips = _clips(testdata, tts, tts_seed)
    if not clips:
        raise SystemExit("no clips found (install pocketsphinx-testdata, flite and festival)")
    label = "second real set" if testdata else "real clips"
    if tts:
        label = "held-out TTS voices" if tts_seed is None else f"TTS voices of draw {tts_seed}"
    out = []
    with tempfile.TemporaryDirectory(prefix="bench_live_") as tmp:
        tmp = Path(tmp)
        wavs = []
        for c in clips:  # copies without the .txt beside them: no transcript for the bake either
            wav = tmp / f"{c.name}.wav"
            if c.audio.source:
                shutil.copy(c.audio.source, wav)
            else:  # goforward.raw: headerless 16-bit PCM
                sf.write(str(wav), c.audio.samples, c.audio.sample_rate, subtype="PCM_16")
            wavs.append(wav)
        rows = {}
        for mode in ("accurate", "fast"):
            csvs = []
            for wav in wavs:
                x, rate = sf.read(str(wav), dtype="int16")
                csv = tmp / f"{wav.stem}.live-{mode}.csv"
                r = subprocess.run([console(), "live", "-", "--input-rate", str(rate), "--csv", str(csv),
                                    "--accuracy", mode], input=x.astype("<i2").tobytes(), capture_output=True)
                if r.returncode:
                    raise SystemExit(r.stderr.decode()[-2000:])
                csvs.append(csv)
            rows[f"streamed {mode}"] = _score(csvs, clips)
        csvs = []
        for wav in wavs:
            csv = tmp / f"{wav.stem}.bake.csv"
            r = subprocess.run([console(), "bake", str(wav), "--accuracy", "fast", "-o", str(csv)],
                               capture_output=True)
            if r.returncode:
                raise SystemExit(r.stderr.decode()[-2000:])
            csvs.append(csv)
        rows["offline fast"] = _score(csvs, clips)
        seconds = sum(c.audio.duration for c in clips)
        for name, s in rows.items():
            out.append(f"live lip sync, {label} ({len(clips)}, {seconds:.1f} s), " + _row(name, s))
        off, on = rows["offline fast"], rows["streamed accurate"]
        out.append("live lip sync, streamed accurate minus offline fast: " + ", ".join(
            f"{k} {on[k] - off[k]:+.3f}" for k in ("bilabial", "m", "open", "slcc", "jitter")))
        if check_pace:
            x, rate = sf.read(str(wavs[0]), dtype="int16")
            paced = tmp / "paced.csv"
            proc, err = start_live(["-", "--input-rate", str(rate), "--csv", str(paced)])
            t0 = time.perf_counter()
            for i in range(0, len(x), CHUNK):
                time.sleep(max(0.0, t0 + (i + CHUNK) / rate - time.perf_counter()))
                proc.stdin.write(x[i : i + CHUNK].astype("<i2").tobytes())
                proc.stdin.flush()
            proc.stdin.close()
            proc.wait()
            same = paced.read_bytes() == (tmp / f"{wavs[0].stem}.live-accurate.csv").read_bytes()
            out.append(f"live pace check, {wavs[0].name} at real pace vs piped at once: CSVs "
                       f"{'identical' if same else 'DIFFER'}")
    return out


def long_run(minutes: float, fps: int) -> str:
    pcm = long_speech(minutes * 60)
    with tempfile.TemporaryDirectory(prefix="bench_live_") as tmp:
        csv = Path(tmp) / "long.csv"
        proc, err = start_live(["-", "--csv", str(csv), "--fps", str(fps)])
        rss: list[tuple[float, float]] = []
        t0 = time.perf_counter()
        stop = threading.Event()

        def sample():
            while not stop.wait(5.0):
                try:
                    kb = next(int(line.split()[1]) for line in Path(f"/proc/{proc.pid}/status").read_text()
                              .splitlines() if line.startswith("VmRSS"))
                except (OSError, StopIteration):
                    return
                rss.append((time.perf_counter() - t0, kb / 1024))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        step = 10 * RATE  # 10 s per write: the pipe blocks while the stream catches up
        for i in range(0, len(pcm), step):
            proc.stdin.write(pcm[i : i + step].tobytes())
        proc.stdin.close()
        code = proc.wait()
        wall = time.perf_counter() - t0
        stop.set()
        sampler.join()
        if code:
            raise SystemExit(f"facepolicy live failed: {''.join(err)[-2000:]}")
        with open(csv, encoding="utf-8") as f:
            frames = sum(1 for _ in f) - 1
    seconds = len(pcm) / RATE
    expected = round(seconds * fps)
    series = np.array(rss)
    early = series[(series[:, 0] >= 60) & (series[:, 0] < 120), 1] if len(series) else np.zeros(0)
    late = series[-12:, 1] if len(series) else np.zeros(0)
    return (f"live long {minutes:.1f} min of speech at {seconds / wall:.1f}x real time, {fps} fps: {frames} frames "
            f"(expected {expected} ± 1); RSS {np.median(early):.0f} MB in its second minute, {np.median(late):.0f} MB "
            f"in its last minute, {series[:, 1].max():.0f} MB at most ({len(series)} samples)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency", type=float, metavar="MIN", help="minutes of speech at real pace (≥ 5)")
    ap.add_argument("--quality", action="store_true", help="lip-sync figures of the streamed CSVs on the real clips")
    ap.add_argument("--check-pace", action="store_true", help="with --quality: one clip at real pace, compared")
    ap.add_argument("--testdata", action="store_true",
                    help="with --quality: the second real set (pocketsphinx-testdata's cards and goforward clips) "
                         "instead of the real clips")
    ap.add_argument("--tts", type=int, default=0, metavar="N",
                    help="with --quality: N held-out festival/flite sentences (model.evaluate's --tts draw) instead of "
                         "the real clips")
    ap.add_argument("--tts-seed", type=int, default=None, metavar="SEED",
                    help="with --tts: another sentence draw than the held-out one (tune on it, e.g. 90417)")
    ap.add_argument("--long", type=float, metavar="MIN", help="minutes of speech for the drift and memory run")
    ap.add_argument("--fps", type=int, default=30, choices=(30, 60))
    args = ap.parse_args(argv)
    if args.latency:
        print(latency(args.latency, args.fps), flush=True)
    if args.quality:
        for line in quality(args.check_pace, args.testdata, args.tts, args.tts_seed):
            print(line, flush=True)
    if args.long:
        print(long_run(args.long, args.fps), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
