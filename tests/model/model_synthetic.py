"""A tiny talking-face dataset for model tests, made in memory in a few seconds without any TTS engine.

Audio: random phone strings rendered as voiced "vowels" (harmonics shaped by two formants), noise "fricatives"
and near-silent closures, so the phone timings are exact. Faces: the real articulation teacher
(facepolicy.core.teacher) on those phones, with one speaker style per identity.
"""

from __future__ import annotations

import numpy as np

from facepolicy.core import spec, teacher
from facepolicy.core.phones import PhoneSegment
from facepolicy.core.teacher import SpeakerStyle
from model.dataset import Clip

_VOWELS = {"aa": (750, 1200), "iy": (300, 2300), "uw": (320, 850), "eh": (550, 1800)}
_FRICATIVES = ("s", "f", "sh")
_STOPS = ("p", "b", "m", "t")


def _segment_audio(phone: str, n: int, f0: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / spec.SAMPLE_RATE
    if phone in _VOWELS or phone == "m":
        formants = _VOWELS.get(phone, (250, 1000))
        x = np.zeros(n)
        for k in range(1, 30):
            f = k * f0
            if f > 7000:
                break
            gain = sum(np.exp(-((f - fm) / 120.0) ** 2) for fm in formants) + 0.02
            x += gain * np.sin(2 * np.pi * f * t)
        return (0.3 * x / max(1e-6, np.abs(x).max()) * (0.3 if phone == "m" else 1.0)).astype(np.float32)
    if phone in _FRICATIVES:
        return (0.1 * rng.standard_normal(n)).astype(np.float32)
    return (0.001 * rng.standard_normal(n)).astype(np.float32)


def make_clip(seed: int, style: int, voice: int, duration: float = 4.0) -> Clip:
    rng = np.random.default_rng(seed)
    phones: list[PhoneSegment] = [PhoneSegment("sil", 0.0, 0.3)]
    t = 0.3
    while t < duration - 0.5:
        p = str(rng.choice(list(_VOWELS) + list(_FRICATIVES) + list(_STOPS)))
        d = float(rng.uniform(0.06, 0.18))
        phones.append(PhoneSegment(p, t, t + d))
        t += d
    phones.append(PhoneSegment("sil", t, duration))
    f0 = 110.0 + 40.0 * voice
    samples = np.concatenate([
        _segment_audio(s.phone, int(round(s.end * spec.SAMPLE_RATE)) - int(round(s.start * spec.SAMPLE_RATE)), f0, rng)
        for s in phones
    ])
    style_ = identity_style(style)
    states = teacher.animate_phones(phones, samples, style=style_, seed=seed, duration=len(samples) / spec.SAMPLE_RATE,
                                    fps=spec.MODEL_FPS).values
    return Clip(samples, phones, states, style_id=f"style{style}", voice=f"voice{voice}", engine="synth",
                emotion=style_.emotion, emotion_intensity=style_.emotion_intensity, clip_id=f"clip{seed}",
                meta={"style": style_.to_dict()})


def identity_style(style: int) -> SpeakerStyle:
    """A distinct, deterministic speaker style per identity (amplitude, smile, head activity, emotion)."""
    rng = np.random.default_rng(1000 + style)
    return SpeakerStyle(amplitude=float(rng.uniform(0.7, 1.35)), smile_bias=float(rng.uniform(0.0, 0.3)),
                        head_activity=float(rng.uniform(0.2, 1.6)), brow_activity=float(rng.uniform(0.2, 1.6)),
                        emotion=("neutral", "happy", "sad", "angry", "surprised")[style % 5],
                        emotion_intensity=0.0 if style % 5 == 0 else 0.7)


def make_clips(n: int = 24, styles: int = 4, voices: int = 4, seed: int = 0) -> list[Clip]:
    return [make_clip(seed * 1000 + i, i % styles, (i // styles) % voices) for i in range(n)]
