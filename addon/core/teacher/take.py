"""A take of the teacher: TeacherTake renders any window of frames with the same bits as the whole take, and
animate_phones renders a whole take into a FaceTrack."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from .. import spec
from ..facetrack import FaceTrack
from ..phones import PhoneSegment
from ..pitch import Prosody, estimate_prosody
from .mouth import FINE_RATE, lower_face, mouth_reach, phone_emphasis, reseal, segments_arrays, talking
from .style import SpeakerStyle, apply_pose, emotional_style
from .upper import upper_curves, upper_face

TEACHER_VERSION = 3  # bump whenever the output changes: cached corpus states are recomputed

# Seconds of frames rendered at once: the fine-grid blend of an hour-long take at once needed several hundred MB.
RENDER_WINDOW = 60.0


class TeacherTake:
    """One take of the teacher, rendered window by window with the same result as all at once.

    What spans the take is made once and is small: the sorted phones, their emphasis (normalised over the take),
    the prosody at 50 Hz and the upper face's curves (which draw from the seed's generator in order). The mouth is
    blended for a window of frames only, from the phones near it and a fine grid that reaches past its edges by
    more than any phone's influence (dominance reach, low-pass, ramps), so no frame sees the window's edges.
    Slicing renders frames: ``take[a:b]`` is (b - a, NUM_CHANNELS) float32; ``len(take)`` is the frame count.
    ``upper=False`` leaves blinks, brows, head and gaze at rest (for a caller that uses the mouth only).
    """

    def __init__(self, phones: Sequence[PhoneSegment], samples: np.ndarray | None = None, *,
                 rate: int = spec.SAMPLE_RATE, fps: float = spec.MODEL_FPS, style: SpeakerStyle | None = None,
                 seed: int = 0, duration: float | None = None, confidence: Sequence[float] | None = None,
                 prosody: Prosody | None = None, recognised: bool = False, upper: bool = True):
        self.style = style or SpeakerStyle()
        self.seed, self.fps, self.recognised = int(seed), fps, recognised
        rng = np.random.default_rng(seed)
        phones = sorted(phones, key=lambda p: p.start)
        if duration is None:
            duration = max([p.end for p in phones] + [len(samples) / rate if samples is not None else 0.0])
        self.n_frames = max(1, int(math.ceil(duration * fps - 1e-9)))
        times = np.arange(self.n_frames) / fps
        self.names, self.starts, self.ends, self.conf = segments_arrays(phones, confidence)
        self.eff = emotional_style(self.style)
        if prosody is None:  # without the upper face, only the loudness is used (phone_emphasis)
            prosody = estimate_prosody(samples, rate, pitch=upper) if samples is not None and len(samples) else \
                Prosody(np.zeros(0, np.float32), np.zeros(0, bool), np.zeros(0, np.float32))
        self.emphasis = phone_emphasis(self.names, self.starts, self.ends, prosody) if phones else None
        self.upper = upper_curves(times, fps, self.names, self.starts, self.ends, prosody, self.eff, rng) if upper \
            else None
        self.n_fine = int(math.ceil((times[-1] + 1.0 / fps) * FINE_RATE)) + 1
        self.reach = mouth_reach(recognised, self.eff.motion_tempo, fps)

    def __len__(self) -> int:
        return self.n_frames

    def __getitem__(self, window: slice) -> np.ndarray:
        a, b, step = window.indices(self.n_frames)
        if step != 1:
            raise ValueError("a TeacherTake renders contiguous frames only")
        return self.frames(a, max(a, b))

    def frames(self, a: int, b: int) -> np.ndarray:
        """(b - a, NUM_CHANNELS) float32: frames a..b of the take."""
        times = np.arange(a, b) / self.fps
        values = np.zeros((b - a, spec.NUM_CHANNELS), np.float64)
        near = self._near(times)
        names, starts, ends, conf = self.names[near], self.starts[near], self.ends[near], self.conf[near]
        if self.emphasis is not None and len(times):
            fine_lo = max(0, int(math.floor((times[0] - self.reach) * FINE_RATE)))
            fine_hi = min(self.n_fine, int(math.ceil((times[-1] + self.reach) * FINE_RATE)) + 1)
            lower_face(values, names, starts, ends, conf, self.emphasis[near], times, self.fps, self.eff,
                        self.recognised, np.arange(fine_lo, fine_hi) / FINE_RATE)
        if self.upper is not None:
            upper_face(values, self.upper, slice(a, b), self.eff)
        apply_pose(values, self.eff, talking(names, starts, ends, times))
        arkit = values[:, : spec.NUM_ARKIT]
        np.clip(arkit, 0.0, 1.0, out=arkit)
        reseal(values, names, starts, ends, times, self.fps)
        return values.astype(np.float32)

    def _near(self, times: np.ndarray) -> slice:
        """The phones that can move frames at ``times``, with one neighbour more each side (ramps look at
        neighbours), as a slice of the take's phones."""
        if not len(times) or not len(self.names):
            return slice(0, 0)
        hit = np.flatnonzero((self.ends > times[0] - 2 * self.reach) & (self.starts < times[-1] + 2 * self.reach))
        if not len(hit):
            return slice(0, 0)
        return slice(max(0, int(hit[0]) - 1), min(len(self.names), int(hit[-1]) + 2))

    def track(self, progress: Callable[[float], None] | None = None) -> FaceTrack:
        """The whole take as a FaceTrack, rendered RENDER_WINDOW seconds at a time; ``progress(fraction)`` after
        each window."""
        values = np.empty((self.n_frames, spec.NUM_CHANNELS), np.float32)
        step = max(1, int(math.ceil(RENDER_WINDOW * self.fps)))
        for a in range(0, self.n_frames, step):
            values[a : a + step] = self.frames(a, min(self.n_frames, a + step))
            if progress is not None:
                progress(min(self.n_frames, a + step) / self.n_frames)
        meta = {
            "teacher": {"version": TEACHER_VERSION, "seed": self.seed, "style": self.style.to_dict(), "fps": self.fps,
                        "phones": len(self.names), "recognised": self.recognised},
        }
        return FaceTrack(self.fps, spec.CHANNEL_NAMES, values, meta)


def animate_phones(phones: Sequence[PhoneSegment], samples: np.ndarray | None = None, *,
                   rate: int = spec.SAMPLE_RATE, fps: float = spec.MODEL_FPS, style: SpeakerStyle | None = None,
                   seed: int = 0, duration: float | None = None, confidence: Sequence[float] | None = None,
                   prosody: Prosody | None = None, recognised: bool = False,
                   progress: Callable[[float], None] | None = None) -> FaceTrack:
    """A FaceTrack (spec.CHANNEL_NAMES at ``fps``) for phones with times in seconds (a TeacherTake, rendered;
    ``progress(fraction)`` through the pitch tracking and after each RENDER_WINDOW of frames).

    ``samples`` (mono at ``rate``) drives brows, blinks' timing context and head motion; without it the upper
    face still blinks and moves gaze but has no prosody. ``confidence`` (0..1 per phone) calms uncertain phones.
    ``recognised`` marks phones from a recogniser rather than known timings: every vowel but /iy/ and /uw/ then
    opens visibly, and motion is slightly smoother.
    """
    def part(lo: float, hi: float):
        return None if progress is None else lambda f: progress(lo + (hi - lo) * f)

    if prosody is None and samples is not None and len(samples):
        prosody = estimate_prosody(samples, rate, progress=part(0.0, 0.7))  # most of the time on long audio
    return TeacherTake(phones, samples, rate=rate, fps=fps, style=style, seed=seed, duration=duration,
                       confidence=confidence, prosody=prosody, recognised=recognised).track(part(0.7, 1.0))
