"""Neural engine speed: 60 s of real speech → FaceTrack, whole process and an in-process breakdown
(start-up, features, style, sampling, the lip gap pulled taut, resampling).

The speech is CMU ARCTIC (tests/data/arctic) plus LibriVox clips when pocketsphinx-testdata is installed,
repeated to 60 s, with no transcript beside it. The whole-process figure runs the real command,
`python -m facepolicy.cli bake speech.wav --engine neural -o out.csv`, in a fresh process (Python start-up, imports,
model loading with its sha256 checks, audio loading, sampling, the Live Link CSV and the resume sidecar).

    .venv/bin/python bench/bench_neural.py [--model assets/models] [--runs 3] [--seconds 60] [--threads 0] [--bytecode]

``--bytecode``: the bakes run with Python's bytecode of the add-on kept (in a folder of the bench's own, after one
untimed bake), as an installed add-on has it (pip and Blender write it), where the environment sets
PYTHONDONTWRITEBYTECODE and every bake would compile each module of the add-on from source again (about 0.04 s).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_phonetic import speech  # noqa: E402


def whole_process(model: str, wav: Path, out: Path, threads: int, accuracy: str,
                  bytecode: Path | None = None) -> tuple[float, float]:
    """`facepolicy bake WAV --engine neural -o OUT.csv` in a fresh process: (wall, CPU seconds). ``bytecode``: the
    folder where Python keeps the compiled modules (None: as the environment says)."""
    env = dict(os.environ)
    if bytecode is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(bytecode)
    if Path(model).resolve() != (ROOT / "assets" / "models").resolve():
        # Another model: an assets folder that holds it instead of the bundled one.
        assets = out.parent / "assets"
        if not assets.exists():
            assets.mkdir()
            for entry in (ROOT / "assets").iterdir():
                if entry.name != "models":
                    (assets / entry.name).symlink_to(entry)
            (assets / "models").symlink_to(Path(model).resolve())
        env["FACEPOLICY_ASSETS"] = str(assets)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out.unlink(missing_ok=True)
    subprocess.run([sys.executable, "-m", "facepolicy.cli", "bake", str(wav), "--engine", "neural", "-o", str(out),
                    "--accuracy", accuracy], check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def breakdown(model: str, samples: np.ndarray, threads: int, accuracy: str) -> dict[str, float]:
    """The engine's steps one by one, as NeuralEngine.animate runs them (gather_evidence, sample_with_evidence)."""
    from facepolicy.core import spec
    from facepolicy.core.evidence import speech_frames
    from facepolicy.core.neural import prior_hold, seal_closure, smooth_articulation, states_to_track, vowel_mask
    from facepolicy.core.recognition import PAUSE_SILENCE, cores, recognise_chunks, shared_decoders, speech_chunks
    from facepolicy.core.sampler import NeuralPolicy, SampleSettings
    from facepolicy.core.second_opinion import OPINION_PHONES, apply_second_opinion
    from facepolicy.core.straighten import bilabial_closure, straighten_take

    out = {}
    t = time.perf_counter()
    policy = NeuralPolicy(model, threads=threads)
    out["start-up"] = time.perf_counter() - t
    t = time.perf_counter()
    style = policy.style_preset(policy.default_style)
    out["style"] = time.perf_counter() - t
    if accuracy == "accurate":
        shared_decoders().warm(cores())  # as gather_evidence does: they load while the encoder listens
    t = time.perf_counter()
    listener = policy.listener()
    probs, encoded = listener.listen(samples, OPINION_PHONES, keep=True)
    out["listening (log-mel, encoder: once)"] = time.perf_counter() - t
    t = time.perf_counter()
    speech = speech_frames(samples, probs[:, 3], listener.frame_rate)
    out["nonspeech (spectrum)"] = time.perf_counter() - t
    result = None
    if accuracy == "accurate":
        from facepolicy.core.phonetic import phonetic_prior

        t = time.perf_counter()
        chunks = speech_chunks(len(samples), (probs[:, 3] >= PAUSE_SILENCE) | ~speech, listener.frame_rate,
                               samples=samples)
        result = recognise_chunks(samples, chunks, shared_decoders())
        out[f"phone recognition ({len(chunks)} chunks, {cores()} cores)"] = time.perf_counter() - t
        t = time.perf_counter()
        apply_second_opinion(result, probs, listener.frame_rate)
        out["second opinion on closures"] = time.perf_counter() - t
        t = time.perf_counter()
        prior = phonetic_prior(result, samples, len(samples) / 16000).select(spec.CHANNEL_NAMES).values
        out["phonetic prior"] = time.perf_counter() - t
        floor = vowel_mask(result.phones, len(prior), confidence=result.confidence)
        hold = prior_hold(result, floor)
    t = time.perf_counter()
    if result is None:
        states = policy.sample(samples, SampleSettings(seed=0), style=style, encoded=encoded)
    else:
        states = policy.sample(samples, SampleSettings(seed=0), style=style, phones=result.phones, prior=prior,
                               floor=floor, hold=hold, encoded=encoded)
    out["sampling"] = time.perf_counter() - t
    close = None
    if result is not None:
        t = time.perf_counter()
        close = bilabial_closure(result.phones, len(states))
        states = smooth_articulation(states)
        if close is not None:
            seal_closure(states, close)
        out["smoothing and sealing"] = time.perf_counter() - t
    t = time.perf_counter()
    if result is None:
        straighten_take(states, samples)
    else:
        straighten_take(states, samples, result.phones, result.confidence, sealed=close)
    out["the lip gap pulled taut"] = time.perf_counter() - t
    t = time.perf_counter()
    states_to_track(states).resample(24.0)
    out["resampling"] = time.perf_counter() - t
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "assets" / "models"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--bytecode", action="store_true", help="keep the add-on's compiled bytecode between bakes, as an "
                    "installed add-on does (where PYTHONDONTWRITEBYTECODE is set, each bake compiles it again)")
    ap.add_argument("--accuracy", choices=("fast", "accurate"), default="accurate",
                    help="the engine mode (default: accurate, the engine's default; fast: the model alone)")
    args = ap.parse_args(argv)
    samples, _ = speech(args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        sf.write(wav, samples, 16000)
        bytecode = Path(tmp) / "bytecode" if args.bytecode else None
        if bytecode is not None:  # one untimed bake writes it
            whole_process(args.model, wav, Path(tmp) / "out.csv", args.threads, args.accuracy, bytecode)
        runs = [whole_process(args.model, wav, Path(tmp) / "out.csv", args.threads, args.accuracy, bytecode)
                for _ in range(args.runs)]
    parts = [breakdown(args.model, samples, args.threads, args.accuracy) for _ in range(args.runs)]
    for key in parts[0]:
        print(f"  {key:40s} {statistics.median(p[key] for p in parts):.3f} s")
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    seconds = len(samples) / 16000
    print(f"neural bake ({args.accuracy}) {seconds:.1f}s audio: {wall:.2f}s wall ({seconds / wall:.0f}x real time), "
          f"{cpu:.2f}s cpu, median of {args.runs}{', bytecode kept' if args.bytecode else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
