"""A speaker's motion style and the emotions: what makes one take of the teacher differ from another."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..spec import EMOTIONS
from .channels import add_channel


@dataclass
class SpeakerStyle:
    """Per-speaker motion style. Every field is continuous except ``emotion``."""

    amplitude: float = 1.0        # scale of mouth movement (0.6–1.4)
    jaw_lip_ratio: float = 0.5    # JALI split: 0 lips do the work, 1 the jaw does (0.25–0.75)
    smile_bias: float = 0.0       # resting smile (0–0.35)
    asymmetry: float = 0.0        # left/right imbalance of mouth and brows (−0.25–0.25)
    brow_activity: float = 1.0    # scale of brow motion (0–1.6)
    head_activity: float = 1.0    # scale of head motion (0–1.6)
    blink_rate: float = 17.0      # blinks per minute (8–30)
    motion_tempo: float = 1.0     # >1: quicker, crisper transitions; <1: lazier (0.75–1.3)
    gaze_activity: float = 1.0    # size and frequency of gaze saccades (0.3–1.5)
    precision: float = 1.0        # articulation precision: <1 undershoots targets (hypo-speech) (0.7–1.2)
    emotion: str = "neutral"
    emotion_intensity: float = 0.0  # 0–1

    def __post_init__(self) -> None:
        if self.emotion not in EMOTIONS:
            raise ValueError(f"unknown emotion {self.emotion!r}; choose one of {', '.join(EMOTIONS)}")
        self.emotion_intensity = float(min(1.0, max(0.0, self.emotion_intensity)))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SpeakerStyle:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


STYLE_RANGES: dict[str, tuple[float, float]] = {
    "amplitude": (0.7, 1.35),
    "jaw_lip_ratio": (0.3, 0.7),
    "smile_bias": (0.0, 0.3),
    "asymmetry": (-0.2, 0.2),
    "brow_activity": (0.2, 1.6),
    "head_activity": (0.2, 1.6),
    "blink_rate": (8.0, 28.0),
    "motion_tempo": (0.8, 1.25),
    "gaze_activity": (0.3, 1.5),
    "precision": (0.75, 1.15),
}


def sample_style(rng: np.random.Generator) -> SpeakerStyle:
    """A random speaker style: continuous parameters uniform in STYLE_RANGES, emotion neutral half the time."""
    values = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in STYLE_RANGES.items()}
    if rng.random() < 0.5:
        emotion, intensity = "neutral", 0.0
    else:
        emotion = str(rng.choice(EMOTIONS[1:]))
        intensity = float(rng.uniform(0.2, 1.0))
    return SpeakerStyle(**values, emotion=emotion, emotion_intensity=intensity)


_EMOTION_POSE: dict[str, dict[str, float]] = {
    "happy": {"mouthSmileLeft": 0.55, "mouthSmileRight": 0.55, "cheekSquintLeft": 0.35, "cheekSquintRight": 0.35,
              "eyeSquintLeft": 0.3, "eyeSquintRight": 0.3, "mouthDimpleLeft": 0.15, "mouthDimpleRight": 0.15},
    "sad": {"mouthFrownLeft": 0.45, "mouthFrownRight": 0.45, "browInnerUp": 0.5, "mouthShrugLower": 0.2,
            "eyeSquintLeft": 0.1, "eyeSquintRight": 0.1, "browDownLeft": 0.1, "browDownRight": 0.1},
    "angry": {"browDownLeft": 0.6, "browDownRight": 0.6, "noseSneerLeft": 0.3, "noseSneerRight": 0.3,
              "eyeSquintLeft": 0.25, "eyeSquintRight": 0.25, "mouthPressLeft": 0.2, "mouthPressRight": 0.2,
              "mouthFrownLeft": 0.15, "mouthFrownRight": 0.15},
    "surprised": {"browInnerUp": 0.6, "browOuterUpLeft": 0.6, "browOuterUpRight": 0.6, "eyeWideLeft": 0.55,
                  "eyeWideRight": 0.55},
}
# How an emotion scales the speaking motion: (mouth amplitude, brow activity, head activity).
_EMOTION_GAIN = {"neutral": (1.0, 1.0, 1.0), "happy": (1.05, 1.2, 1.15), "sad": (0.8, 0.8, 0.6),
                 "angry": (1.15, 1.1, 1.2), "surprised": (1.15, 1.4, 1.1)}


def emotional_style(style: SpeakerStyle) -> SpeakerStyle:
    m, b, h = _EMOTION_GAIN[style.emotion]
    k = style.emotion_intensity
    return dataclasses.replace(style, amplitude=style.amplitude * (1 + (m - 1) * k),
                               brow_activity=style.brow_activity * (1 + (b - 1) * k),
                               head_activity=style.head_activity * (1 + (h - 1) * k))


def apply_pose(values: np.ndarray, style: SpeakerStyle, talking: np.ndarray) -> None:
    a = style.asymmetry
    smile = style.smile_bias
    for side, k in (("Left", 1 + a), ("Right", 1 - a)):
        add_channel(values, f"mouthSmile{side}", smile * k * (1 - 0.3 * talking))
        add_channel(values, f"cheekSquint{side}", 0.3 * smile * k)
    for name, w in _EMOTION_POSE.get(style.emotion, {}).items():
        add_channel(values, name, w * style.emotion_intensity)
