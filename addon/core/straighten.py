"""The lip gap pulled taut: the straightest path within a narrow tube around the engine's own gap.

The sampler's output, even smoothed, wobbles by fractions of a millimetre between the turns of speech (a Gaussian
removes noise but keeps every small bump it leaves, and the seal's closures add more), and jitter counts every change
of the lips' speed, the small ones as much as the big. Pulled like a string through a tube around that gap,
the mouth makes the same openings and closures with the fewest bends: the string bends only where the tube makes it,
so between bends the lips move at a steady speed. The tube leans with the sound: a frame may open further by up to
TUBE of the lip range (jawOpen 1's gap; 0.16 is 4.9 mm on the default head) times where its loudness ranks in the
line, and close further by the rest, so the loud frames that the string would flatten are let up and the quiet ones
let down (a tube of the same width either side lowered the correlation with loudness). Each frame keeps its class: a
closed frame never opens further (a sealed bilabial, nor a mouth at rest), a frame open by the metrics' measure
stays open, a pause-closed frame stays so; and an open vowel of the evidence opens at its widest frame at least that
far where its tube reaches (a short vowel between two closures that the engine left just short of open, which the
string would flatten further). The gap is raised through jawOpen and lowered by jawOpen and the lip
raisers and lowerers together, as far as they reach at that frame; every other channel is unchanged.

The path is the taut string through the tube (a funnel walk: from each bend, the straight line goes on while one slope
fits every gate; where none does, the string bends on the gate that stopped it), which has the least total change of
slope of any path in the tube: the least jitter (core.metrics: mean |Δ²gap| over its spread) for that tube. Both
offline engines end with it (straighten_take); the live stream, which sends each frame as soon as it is made, has
only the frames before it and steps its lips through a tube made the same way, LIVE_TUBE wide (LiveStraightener).
"""

from __future__ import annotations

import numpy as np

from . import spec
from .metrics import CLOSED_FRACTION, OPEN_FRACTION, PAUSE_FRACTION, LipGeometry, default_geometry
from .phones import BILABIALS, OPEN_VOWELS
from .pitch import rms_envelope
from .teacher import closure_weight

TUBE = 0.16  # the tube's width, a fraction of the lip range, shared between opening and closing by loudness
# The live stream's: a frame there goes on at the last frames' speed, and in a wider tube it drifts further from the
# engine's gap before the tube turns it (0.16 moved the streamed lag from +10 to +20 ms on the real clips).
LIVE_TUBE = 0.12
_SEALED = 0.5  # a frame at least this sealed over a bilabial (core.teacher.closure_weight) never opens further
_MARGIN = 0.01  # of the lip range: how far inside its class's threshold a moved frame stays (float32, resampling)
# What opens the lips: jawOpen (the only one raised), and with it the lip raisers and lowerers (lowered together).
_OPENERS = ("jawOpen", "mouthUpperUpLeft", "mouthUpperUpRight", "mouthLowerDownLeft", "mouthLowerDownRight")


def taut_string(lo: np.ndarray, hi: np.ndarray, start: float, end: float) -> np.ndarray:
    """The taut string from (0, ``start``) to (n − 1, ``end``) through the gates [lo[t], hi[t]] (lo ≤ hi, start and
    end inside the first and last gates): piecewise linear, bending only on a gate's end. A scalar walk (a bend every
    few frames: numpy's per-call cost would be most of the time)."""
    n = len(lo)
    if n == 0:
        return np.empty(0)
    out = [float(start)] * n
    floor = [float(x) for x in lo]
    ceiling = [float(x) for x in hi]
    floor[-1] = ceiling[-1] = float(end)  # the string ends there
    a, ya = 0, float(start)
    while a < n - 1:
        low, high = -np.inf, np.inf  # the slopes from the last bend that fit every gate since
        arg_low = arg_high = a + 1
        bend, y = -1, 0.0
        for k in range(a + 1, n):
            d = k - a
            sl = (floor[k] - ya) / d
            sh = (ceiling[k] - ya) / d
            if sl > high + 1e-12:  # this gate asks for a steeper climb: bend up on the ceiling that held it
                bend, y = arg_high, ceiling[arg_high]
                break
            if sh < low - 1e-12:  # a steeper fall: bend down on the floor that held it
                bend, y = arg_low, floor[arg_low]
                break
            if sl >= low:
                low, arg_low = sl, k
            if sh <= high:
                high, arg_high = sh, k
        if bend < 0:  # one straight line reaches the end
            bend, y = n - 1, float(end)
        step = (y - ya) / (bend - a)
        for i in range(a + 1, bend + 1):
            out[i] = ya + step * (i - a)
        a, ya = bend, y
    return np.array(out)


def loudness_rank(loudness: np.ndarray, frames: int) -> np.ndarray:
    """Per frame, where its loudness ranks in the line: 0 the quietest … 1 the loudest (frames past the end of
    ``loudness``: 0)."""
    level = np.zeros(frames)
    values = np.asarray(loudness[:frames], np.float64)
    if len(values) > 1:
        level[np.argsort(values, kind="stable")] = np.linspace(0.0, 1.0, len(values))
    return level


class _Lips:
    """Frames' lip gap as the openers move it: the inner-lip pairs' gaps are affine in the openers, so
    pairs(u) = rest + own·min(1 + u, 1) + max(u, 0)·rise, with the openers scaled by 1 + u (u < 0) or jawOpen moved
    u of the way to 1 (u > 0)."""

    def __init__(self, states: np.ndarray, geo: LipGeometry) -> None:
        self.openers = [spec.CHANNEL_INDEX[name] for name in _OPENERS]
        arkit = states[:, :spec.NUM_ARKIT].astype(np.float64)
        self.before = arkit[:, self.openers]
        slope = geo.slope[self.openers]
        self.own = self.before @ slope
        self.rest = geo.pair_gaps(arkit) - self.own
        self.rise = (1.0 - self.before[:, :1]) * slope[:1]
        n = len(states)
        self.g0 = self.gap(np.zeros(n))
        self.reach = (self.gap(np.full(n, -1.0)), self.gap(np.ones(n)))

    def gap(self, u: np.ndarray) -> np.ndarray:
        pairs = self.rest + self.own * np.minimum(1.0 + u, 1.0)[:, None] + np.maximum(u, 0.0)[:, None] * self.rise
        return np.maximum(pairs, 0.0).mean(axis=-1)

    def move(self, states: np.ndarray, target: np.ndarray) -> np.ndarray:
        """``states`` with the openers moved, in place, so the gap is ``target`` (within what they reach); the gap
        rises with u, so a bisection on every frame at once finds it."""
        a = np.full(len(target), -1.0)
        b = np.ones(len(target))
        for _ in range(30):
            mid = 0.5 * (a + b)
            low = self.gap(mid) < target
            a = np.where(low, mid, a)
            b = np.where(low, b, mid)
        u = np.where(np.abs(target - self.g0) > 1e-9, 0.5 * (a + b), 0.0)
        moved = self.before * np.minimum(1.0 + u, 1.0)[:, None]
        moved[:, 0] += np.maximum(u, 0.0) * (1.0 - self.before[:, 0])
        states[:, self.openers] = moved.astype(states.dtype)
        return states


def tube(lips: _Lips, level: np.ndarray, geo: LipGeometry, width: float = TUBE,
         sealed: np.ndarray | None = None, opens=None) -> tuple[np.ndarray, np.ndarray]:
    """The gates (lo, hi) of each frame's gap: ``width`` of the lip range leaning with the loudness ranks ``level``
    (0..1), each frame keeping its class (the module's docstring), within what the openers reach. ``opens``: frame
    ranges [a, b) of open vowels the evidence heard (open_vowels): the frame of each where the gap is widest may not
    end below the metrics' open threshold where its gate reaches that far; elsewhere the gate is left as it is."""
    g0 = lips.g0
    span = width * geo.range
    closed, opened, pause = (geo.threshold(f) for f in (CLOSED_FRACTION, OPEN_FRACTION, PAUSE_FRACTION))
    margin = _MARGIN * geo.range
    lo = g0 - span * (1.0 - level)
    hi = g0 + span * level
    hi = np.where(g0 <= closed, np.minimum(hi, g0), hi)
    hi = np.where((g0 > closed) & (g0 <= pause), np.minimum(hi, np.maximum(pause - margin, g0)), hi)
    if sealed is not None:
        hi = np.where(sealed >= _SEALED, np.minimum(hi, g0), hi)
    lo = np.where(g0 >= opened, np.maximum(lo, np.minimum(opened + margin, g0)), lo)
    lo = np.maximum(lo, np.minimum(lips.reach[0], g0))
    hi = np.minimum(hi, np.maximum(lips.reach[1], g0))
    if opens is not None:
        floor, n = opened + margin, len(g0)
        for a, b in opens:
            a, b = max(int(a), 1), min(int(b), n - 1)  # the string's ends are the engine's own
            if b > a:
                k = a + int(np.argmax(g0[a:b]))
                if hi[k] >= floor:
                    lo[k] = max(lo[k], floor)
    return lo, hi


def open_vowels(phones, frames: int, fps: float = spec.MODEL_FPS, confidence=None) -> list[tuple[int, int]]:
    """The frame ranges [a, b) of ``phones``' open vowels (the metrics' OPEN_VOWELS: frames in [start, end], at
    least the one nearest the middle), leaving out those whose ``confidence`` (one per phone, where given) is 0: the
    ones the second opinion calmed, where the audio encoder hears silence, and, in the Phonetic engine's cleaned
    phones (core.second_opinion.cleaned_phones), implausibly long ones."""
    out = []
    for k, p in enumerate(phones):
        if p.phone not in OPEN_VOWELS or (confidence is not None and confidence[k] <= 0):
            continue
        a, b = int(np.ceil(p.start * fps - 1e-9)), int(np.floor(p.end * fps + 1e-9)) + 1
        if b <= a:
            a = int(round(0.5 * (p.start + p.end) * fps))
            b = a + 1
        a, b = max(0, a), min(frames, b)
        if b > a:
            out.append((a, b))
    return out


def straighten_lips(states: np.ndarray, loudness: np.ndarray, sealed: np.ndarray | None = None, width: float = TUBE,
                    geometry: LipGeometry | None = None, opens=None) -> np.ndarray:
    """``states`` (frames × spec.CHANNEL_NAMES at the model's rate) with the lip openers moved, in place, so the lip
    gap follows the taut string through the tube around its own gap (the module's docstring). ``loudness``: per
    frame, the line's loudness (any scale; only its ranks count); ``sealed``: per frame, how sealed the lips are over
    a bilabial (0..1), where phone evidence says so; ``opens``: the evidence's open vowels (open_vowels)."""
    n = len(states)
    if n < 3 or width <= 0:
        return states
    geo = geometry or default_geometry()
    lips = _Lips(states, geo)
    lo, hi = tube(lips, loudness_rank(loudness, n), geo, width, sealed, opens)
    return lips.move(states, taut_string(lo, hi, lips.g0[0], lips.g0[-1]))


class LiveStraightener:
    """The live stream's lips pulled as taut as a stream can: a frame is sent as soon as it is made, so there is no
    string to pull through the frames after it. Each frame's gap goes on at the speed of the last two sent where its
    tube (as offline, LIVE_TUBE wide, its loudness ranked among the last HISTORY seconds) allows, and to the tube's
    nearest end where not: the jerks the tube can absorb are absorbed, with no frame held back."""

    HISTORY = 3.0

    def __init__(self, width: float = LIVE_TUBE, geometry: LipGeometry | None = None) -> None:
        self.width = width
        self.geo = geometry or default_geometry()
        self._sent: list[float] = []  # the last two frames' gaps
        self._heard: list[float] = []  # loudness of the last HISTORY seconds of frames

    def step(self, frame: np.ndarray, loudness: float) -> np.ndarray:
        """``frame`` (spec.CHANNEL_NAMES) with its openers moved (a copy) and this frame's ``loudness``."""
        self._heard.append(float(loudness))
        del self._heard[: -int(self.HISTORY * spec.MODEL_FPS)]
        level = float(np.mean(np.asarray(self._heard) < loudness)) if len(self._heard) > 1 else 0.5
        out = np.array(frame, copy=True)[None]
        lips = _Lips(out, self.geo)
        lo, hi = tube(lips, np.array([level]), self.geo, self.width)
        g = float(lips.g0[0])
        if len(self._sent) == 2:
            g = float(np.clip(2.0 * self._sent[1] - self._sent[0], lo[0], hi[0]))
            lips.move(out, np.array([g]))
        self._sent = [*self._sent[-1:], g]
        return out[0]


def bilabial_closure(phones, frames: int, fps: float = spec.MODEL_FPS) -> np.ndarray | None:
    """Per frame, how sealed the lips are over ``phones``' p/b/m (core.teacher.closure_weight); None without any."""
    segs = sorted(phones, key=lambda p: p.start)
    names = [p.phone for p in segs]
    if not BILABIALS.intersection(names):
        return None
    starts = np.array([p.start for p in segs], np.float64)
    ends = np.array([p.end for p in segs], np.float64)
    return closure_weight(names, starts, ends, np.arange(frames) / fps, fps)


def straighten_take(states: np.ndarray, samples: np.ndarray, phones=None, confidence=None,
                    sealed: np.ndarray | None = None) -> np.ndarray:
    """An offline take's lip gap pulled taut, in place (straighten_lips): both engines' one way, and the one place
    that decides what of their evidence the string keeps. ``states`` at the model's rate; ``samples``: the line at
    16 kHz (its loudness leans the tube); ``phones``: the evidence's phones (None: the model alone, nothing sealed),
    whose p/b/m stay sealed (bilabial_closure, or ``sealed``: the weights the caller sealed the lips with already)
    and whose open vowels open (open_vowels, with ``confidence``, one per phone, where given)."""
    opens = None
    if phones is not None:
        n = len(states)
        if sealed is None:
            sealed = bilabial_closure(phones, n)
        opens = open_vowels(phones, n, confidence=confidence)
    return straighten_lips(states, frame_loudness(samples), sealed, opens=opens)


def frame_loudness(samples: np.ndarray, fps: float = spec.MODEL_FPS) -> np.ndarray:
    """Per frame k at k / fps, the loudness the tube leans with (core.pitch.rms_envelope: a 40 ms Hann window)."""
    return rms_envelope(samples, spec.SAMPLE_RATE, fps)
