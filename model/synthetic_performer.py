"""Synthetic performers for fine-tuning checks: no real Live Link Face captures exist here, so a "performer" is the
articulation teacher's face for a voice the shipped model never trained on (flite: the whole engine is held out),
changed by habits the shipped model does not have, and written as Live Link Face takes (NAME.csv at the capture rate
with timecodes, NAME.wav beside it) exactly as `facepolicy finetune` reads them.

The face (Performer.face) is the teacher's ("teacher", the harder test: the teacher's own articulation is not the
shipped model's) or the shipped model's own bake of the same audio ("shipped", accurate mode: a performer whose
articulation the shipped model already has, so only the habits are new).

Habits (Habits): a resting smile, a larger jaw, brows that rise on stressed syllables (long vowels), and lips that
lead the sound. The figures these give are figures on synthetic performers; real captures are what the feature is
for.

    python -m model.synthetic_performer OUT_DIR --minutes 3 [--seed 1] [--voice awb] [--face teacher|shipped]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from facepolicy.core import spec, teacher
from facepolicy.core.facetrack import FaceTrack
from facepolicy.core.phones import VOWELS, PhoneSegment
from facepolicy.core.sampler import ARTICULATION
from facepolicy.core.teacher import SpeakerStyle

CI = spec.CHANNEL_INDEX
SMILE = (CI["mouthSmileLeft"], CI["mouthSmileRight"])
BROWS = {CI["browInnerUp"]: 1.0, CI["browOuterUpLeft"]: 0.7, CI["browOuterUpRight"]: 0.7}
JAW = CI["jawOpen"]
# The channels each habit changes: the "habit channels" whose error the bench reports.
HABIT_CHANNELS = {"smile": list(SMILE), "jaw": [JAW], "brows": list(BROWS)}


@dataclass(frozen=True)
class Habits:
    smile: float = 0.3  # added to both mouthSmile curves, always
    jaw: float = 1.4  # jawOpen multiplied by this
    brow_raise: float = 0.35  # browInnerUp raised by this over each stressed vowel (outer brows 0.7 of it)
    lip_lead: float = 0.04  # seconds the articulation channels move before the sound


@dataclass(frozen=True)
class Performer:
    name: str = "performer"
    voice: str = "awb"  # a flite voice
    stretch: float = 1.0
    habits: Habits = Habits()
    face: str = "teacher"  # "teacher" or "shipped": whose articulation the habits are added to
    style: dict = dataclasses.field(default_factory=lambda: SpeakerStyle().to_dict())


def stressed_vowels(phones: list[PhoneSegment]) -> list[PhoneSegment]:
    """The vowels that carry stress, taken as the longer half of each sentence-long run of vowels (stressed vowels
    are the long ones in English; TTS phones carry no stress marks)."""
    vowels = [p for p in phones if p.phone in VOWELS]
    if not vowels:
        return []
    cut = float(np.median([p.end - p.start for p in vowels]))
    return [p for p in vowels if p.end - p.start > cut]


def apply_habits(states: np.ndarray, phones: list[PhoneSegment], habits: Habits,
                 fps: float = spec.MODEL_FPS) -> np.ndarray:
    """The teacher's (T, C) states as this performer moves: lips earlier, a larger jaw, a resting smile, brows up
    on stressed vowels."""
    out = np.array(states, np.float32, copy=True)
    t = np.arange(len(out)) / fps
    if habits.lip_lead:
        for c in ARTICULATION:
            out[:, c] = np.interp(t + habits.lip_lead, t, states[:, c])
    out[:, JAW] = np.clip(out[:, JAW] * habits.jaw, 0.0, 1.0)
    for c in SMILE:
        out[:, c] = np.clip(out[:, c] + habits.smile, 0.0, 1.0)
    if habits.brow_raise:
        bump = np.zeros(len(out))
        for p in stressed_vowels(phones):
            mid, half = 0.5 * (p.start + p.end), 0.5 * (p.end - p.start) + 0.08
            bump = np.maximum(bump, np.where(np.abs(t - mid) < half, 0.5 + 0.5 * np.cos(np.pi * (t - mid) / half), 0))
        for c, k in BROWS.items():
            out[:, c] = np.clip(out[:, c] + habits.brow_raise * k * bump, 0.0, 1.0)
    return out


def shipped_face(samples: np.ndarray, n: int, seed: int) -> np.ndarray:
    """(n, C) states of the shipped model's own bake of ``samples`` (accurate mode, default style, ``seed``)."""
    from facepolicy.core.audio import Audio
    from facepolicy.core.engine import BakeOptions
    from facepolicy.core.policy import NeuralEngine, default_model_dir

    options = BakeOptions(engine="neural", accuracy="accurate", seed=seed)
    track = NeuralEngine(default_model_dir()).animate(Audio(samples, spec.SAMPLE_RATE, ""), options,
                                                      lambda f, m: None, None)
    values = track.resample(spec.MODEL_FPS).values if track.fps != spec.MODEL_FPS else track.values
    values = np.asarray(values, np.float32)[:n]
    return np.concatenate([values, np.repeat(values[-1:], n - len(values), 0)]) if len(values) < n else values


def performer_lines(performer: Performer, seconds: float, seed: int) -> list[dict]:
    """Takes of about 20–40 s each, ``seconds`` in all: samples, phones, the performer's states, text."""
    from model.data import flite, sentences
    from model.data.speech import Utterance, concatenate

    rng = np.random.default_rng(seed)
    voice = flite.FliteVoice(performer.voice, performer.stretch)
    style = SpeakerStyle.from_dict(performer.style)
    takes, total = [], 0.0
    while total < seconds:
        want = min(float(rng.uniform(20.0, 40.0)), max(6.0, seconds - total))
        utts, length = [], 0.0
        while length < want:
            text, _ = sentences.sentence(rng)
            utts.append(flite.synthesize(text, voice))
            length += utts[-1].duration + 0.4
        pauses = [float(rng.uniform(0.2, 0.9)) for _ in utts[:-1]]
        silence = Utterance(np.zeros(0, np.float32), [], "", [])
        utt = concatenate([silence, *utts, silence], [0.5, *pauses, 0.6])
        duration = utt.duration
        states = teacher.animate_phones(utt.phones, utt.samples, style=style, seed=int(rng.integers(2**31)),
                                        duration=duration, fps=spec.MODEL_FPS).values
        if performer.face == "shipped":
            states = shipped_face(utt.samples, len(states), int(rng.integers(2**31)))
        elif performer.face != "teacher":
            raise ValueError(f"unknown performer face {performer.face!r} (teacher or shipped)")
        states = apply_habits(states, utt.phones, performer.habits)
        takes.append({"samples": utt.samples, "phones": utt.phones, "states": states, "text": utt.text})
        total += duration
    return takes


def write_take(folder: Path, name: str, samples: np.ndarray, states: np.ndarray, capture_fps: float = 60.0,
               start_timecode: float = 10 * 3600.0, offset: float = 0.0) -> None:
    """NAME.csv (Live Link Face: timecodes at the capture rate from ``start_timecode``) and NAME.wav. ``offset``
    (s) moves the curves later than the sound, as a capture out of sync would be."""
    folder.mkdir(parents=True, exist_ok=True)
    track = FaceTrack(spec.MODEL_FPS, spec.CHANNEL_NAMES, states)
    if offset:
        t = np.arange(track.n_frames) / spec.MODEL_FPS
        shifted = np.stack([np.interp(t - offset, t, states[:, c]) for c in range(states.shape[1])], axis=1)
        track = FaceTrack(spec.MODEL_FPS, spec.CHANNEL_NAMES, shifted)
    if capture_fps != spec.MODEL_FPS:
        track = track.resample(capture_fps)
    from facepolicy.core.livelink import track_to_livelink_csv

    text = track_to_livelink_csv(track, start_seconds=start_timecode)
    (folder / f"{name}.csv").write_text(text, encoding="utf-8")
    sf.write(str(folder / f"{name}.wav"), np.asarray(samples, np.float32), spec.SAMPLE_RATE, subtype="PCM_16")


def make_capture_folder(out: Path, performer: Performer, minutes: float, seed: int, capture_fps: float = 60.0,
                        prefix: str = "take") -> list[dict]:
    """Write ``minutes`` of takes of ``performer`` into ``out``; returns the takes (with their states)."""
    takes = performer_lines(performer, minutes * 60.0, seed)
    for k, take in enumerate(takes, 1):
        write_take(out, f"{prefix}{k:02d}", take["samples"], take["states"], capture_fps,
                   start_timecode=10 * 3600.0 + 100.0 * k)
    return takes


def format_lines(takes: list[dict]) -> str:
    return "\n".join(f"{k + 1}: {len(t['samples']) / spec.SAMPLE_RATE:.1f} s  {t['text'][:60]}"
                     for k, t in enumerate(takes))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--voice", default="awb")
    ap.add_argument("--fps", type=float, default=60.0, help="capture frame rate of the CSVs")
    ap.add_argument("--face", choices=("teacher", "shipped"), default="teacher",
                    help="whose articulation the habits are added to")
    args = ap.parse_args(argv)
    performer = Performer(voice=args.voice, face=args.face)
    takes = make_capture_folder(Path(args.out), performer, args.minutes, args.seed, args.fps)
    (Path(args.out) / "performer.json").write_text(json.dumps(dataclasses.asdict(performer), indent=1))
    print(format_lines(takes))
    print(f"wrote {len(takes)} takes, {sum(len(t['samples']) for t in takes) / spec.SAMPLE_RATE / 60:.2f} min, "
          f"to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
