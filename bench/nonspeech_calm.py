"""Nonspeech stays calm: tones, music-like clips, clicks, noise and hum through both engines in both accuracy modes.

Every clip is made here with numpy (seeded, so the figures repeat) and goes through ``core.engine.animate`` as a
user's file would (loudness-normalised by core.audio). A frame is calm when jawOpen ≤ 0.1; the lower-lip channels
(mouthRollLower, mouthLowerDown*, mouthShrugLower) are reported by their maximum. Prints one table per
engine/mode, then one parseable summary line:

    nonspeech calm: 99.9% of 6720 frames jaw<=0.1 (worst clip 98.3%, ...), max jaw 0.12, max lower lip 0.21

    .venv/bin/python bench/nonspeech_calm.py [--seconds 4] [--engines neural,phonetic] [--modes accurate,fast]
    .venv/bin/python bench/nonspeech_calm.py --why   # where an opening comes from (phone evidence or the model)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RATE = 16000
JAW_CALM = 0.1
LOWER_LIP = ("mouthRollLower", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthShrugLower")


def _notes(seconds: float, rng: np.random.Generator, harmonics: int, vibrato: float, note: float) -> np.ndarray:
    """A melody: one note every ``note`` seconds from a pentatonic scale, with harmonics, vibrato and a decay."""
    n = int(seconds * RATE)
    out = np.zeros(n)
    scale = 220.0 * 2 ** (np.array([0, 2, 4, 7, 9, 12, 14, 16]) / 12)
    step = int(note * RATE)
    for t0 in range(0, n, step):
        t = np.arange(min(step, n - t0)) / RATE
        f0 = float(rng.choice(scale))
        vib = 1 + vibrato * np.sin(2 * np.pi * 5.5 * t)
        env = np.minimum(1.0, t / 0.02) * np.exp(-1.5 * t)
        for h in range(1, harmonics + 1):
            out[t0 : t0 + len(t)] += env * np.sin(2 * np.pi * h * f0 * np.cumsum(vib) / RATE) / h
    return out


def _coloured(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Noise with power ∝ 1/f^exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[1:] /= f[1:] ** (exponent / 2)
    spectrum[0] = 0
    return np.fft.irfft(spectrum, n)


def _drums(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Kick, snare and hi-hat clicks on a 120 bpm grid."""
    n = int(seconds * RATE)
    out = np.zeros(n)
    t = np.arange(int(0.25 * RATE)) / RATE
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 18)
    snare = rng.standard_normal(len(t)) * np.exp(-t * 25) * 0.6
    hat = np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t * 80) * 0.3
    for k, t0 in enumerate(range(0, n, RATE // 4)):
        hit = (kick if k % 4 == 0 else snare if k % 4 == 2 else hat)[: n - t0]
        out[t0 : t0 + len(hit)] += hit
    return out


def clips(seconds: float = 4.0, seed: int = 10) -> list[tuple[str, np.ndarray]]:
    """(name, 16 kHz float samples) of the nonspeech set; peak levels vary so loudness handling is exercised."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE

    def level(x: np.ndarray, peak_db: float) -> np.ndarray:
        return (x / (np.abs(x).max() + 1e-12) * 10 ** (peak_db / 20)).astype(np.float32)

    chord = sum(np.sin(2 * np.pi * f * h * t) / h for f in (261.6, 329.6, 392.0) for h in range(1, 5))
    melody = _notes(seconds, rng, harmonics=8, vibrato=0.006, note=0.3)
    hum = sum(np.sin(2 * np.pi * 50 * h * t) / h for h in range(1, 6)) + 0.05 * rng.standard_normal(n)
    sweep = np.sin(2 * np.pi * (100 * t + (4000 - 100) / (2 * seconds) * t ** 2))
    return [
        ("tone 440 Hz", level(np.sin(2 * np.pi * 440 * t), -6)),
        ("tone 1 kHz, quiet", level(np.sin(2 * np.pi * 1000 * t), -40)),
        ("sweep 100 Hz-4 kHz", level(sweep, -6)),
        ("chord C major", level(chord, -3)),
        ("melody, harmonics + vibrato", level(melody, -6)),
        ("melody, quiet", level(melody, -35)),
        ("melody + drums", level(melody + _drums(seconds, rng), -1)),
        ("drum clicks", level(_drums(seconds, rng), -6)),
        ("white noise", level(rng.standard_normal(n), -12)),
        ("pink noise", level(_coloured(n, rng, 1.0), -12)),
        ("brown noise", level(_coloured(n, rng, 2.0), -6)),
        ("white noise, very quiet", level(rng.standard_normal(n), -55)),
        ("hum 50 Hz", level(hum, -10)),
        ("chirpy melody, fast notes", level(_notes(seconds, rng, harmonics=4, vibrato=0.02, note=0.12), -6)),
    ]


def measure(track) -> dict:
    jaw = track.channel("jawOpen")
    lip = np.max([track.channel(c) for c in LOWER_LIP], axis=0)
    return {"frames": len(jaw), "calm": int((jaw <= JAW_CALM).sum()), "max_jaw": float(jaw.max()),
            "max_lip": float(lip.max()), "roll": float(track.channel("mouthRollLower").max())}


def run(engines: list[str], modes: list[str], seconds: float) -> list[tuple[str, str, str, dict]]:
    from facepolicy.core.audio import from_array
    from facepolicy.core.engine import BakeOptions, animate

    rows = []
    for name, x in clips(seconds):
        audio = from_array(x, RATE, source="")
        for engine in engines:
            for mode in modes:
                track = animate(audio, BakeOptions(engine=engine, accuracy=mode))
                rows.append((engine, mode, name, measure(track) | {"evidence": _how(track)}))
    return rows


def _how(track) -> str:
    if "neural" in track.meta:
        return track.meta["neural"]["evidence"]
    return track.meta.get("phonetic", {}).get("mode", "")


def why(seconds: float) -> None:
    """Per clip, the Neural accurate mode's max jaw with its phone evidence, with the evidence but no prior, and
    from the model alone; the share of frames the evidence calls speech, and the recognised vowels it keeps."""
    from facepolicy.core import spec
    from facepolicy.core.audio import from_array
    from facepolicy.core.engine import get_engine
    from facepolicy.core.evidence import gather_evidence
    from facepolicy.core.phones import VOWELS
    from facepolicy.core.policy import SampleSettings, sample_with_evidence

    policy = get_engine("neural").policy()
    jaw = spec.CHANNEL_INDEX["jawOpen"]
    print(f"{'clip':30s} {'evidence':>9s} {'no prior':>9s} {'model':>9s} {'speech':>7s}  vowels kept")
    for name, x in clips(seconds):
        audio = from_array(x, RATE, source="")
        heard = gather_evidence(audio.samples, None, "phones", policy.listener())
        out = [float(sample_with_evidence(policy, audio.samples, settings, ev)[:, jaw].max())
               for settings, ev in ((SampleSettings(), heard.alignment),
                                    (SampleSettings(prior_weight=0.0), heard.alignment), (SampleSettings(), None))]
        kept = [f"{p.phone}{p.duration:.2f}/{c:.2f}" for p, c in zip(heard.alignment.phones,
                                                                   heard.alignment.confidence, strict=True)
                if p.phone in VOWELS and c > 0]
        print(f"{name:30s} {out[0]:9.2f} {out[1]:9.2f} {out[2]:9.2f} {100 * heard.speech.mean():6.1f}%  "
              f"{' '.join(kept)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--engines", default="neural,phonetic")
    ap.add_argument("--modes", default="accurate,fast")
    ap.add_argument("--why", action="store_true", help="where the Neural accurate mode's opening comes from")
    args = ap.parse_args(argv)
    if args.why:
        why(args.seconds)
        return 0
    rows = run(args.engines.split(","), args.modes.split(","), args.seconds)
    groups: dict[tuple[str, str], list] = {}
    for engine, mode, name, m in rows:
        groups.setdefault((engine, mode), []).append((name, m))
    for (engine, mode), items in groups.items():
        print(f"\n{engine} / {mode}")
        print(f"  {'clip':30s} {'calm':>7s} {'max jaw':>8s} {'lower lip':>9s} {'rollLower':>9s}  evidence")
        for name, m in items:
            print(f"  {name:30s} {100 * m['calm'] / m['frames']:6.1f}% {m['max_jaw']:8.3f} {m['max_lip']:9.3f} "
                  f"{m['roll']:9.3f}  {m['evidence']}")
    frames = sum(m["frames"] for *_, m in rows)
    calm = sum(m["calm"] for *_, m in rows)
    worst = min(rows, key=lambda r: r[3]["calm"] / r[3]["frames"])
    print(f"\nnonspeech calm: {100 * calm / frames:.1f}% of {frames} frames jaw<={JAW_CALM} (worst clip "
          f"{100 * worst[3]['calm'] / worst[3]['frames']:.1f}%, {worst[0]}/{worst[1]} {worst[2]}), "
          f"max jaw {max(m['max_jaw'] for *_, m in rows):.2f}, max lower lip {max(m['max_lip'] for *_, m in rows):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
