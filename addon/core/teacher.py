"""The articulation teacher: phone timings (+ audio) → a FaceTrack of ARKit weights, head and gaze.

Lower face: each phone is a target in a small articulatory space (jaw, lip aperture, rounding, spreading, tongue)
with a dominance function per articulator (Cohen & Massaro 1993): the output is the dominance-weighted mean of the
targets, so rounding spreads ahead across consonants while bilabials own the lips. The jaw and the lips are
separate articulators (the JALI split, Edwards et al. 2016). Hard constraints are applied after blending: sealed
lips on p/b/m, the lower lip tucked on f/v, rounding held on uw/ow/w/oy, a relaxed closed mouth in long silence.

Upper face and head: blinks biased to phrase boundaries, brows from F0 pitch accents, gaze saccades, and head
rotation from energy and F0. Everything is deterministic for a given seed and style, and the style is recorded
in the track's meta.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from . import spec
from .facetrack import FaceTrack
from .phones import BILABIALS, LABIODENTALS, OPEN_VOWELS, SIL, VOWELS, PhoneSegment
from .pitch import RATE as PROSODY_RATE
from .pitch import Prosody, convolve_same, estimate_prosody, semitones
from .smoothing import gaussian_kernel, gaussian_smooth
from .spec import EMOTIONS  # also importable from here: core.policy and core.phonetic import it from this module

TEACHER_VERSION = 3  # bump whenever the output changes: cached corpus states are recomputed

# Articulators of the lower face (columns of the target table).
JAW, LIPS, ROUND, FUNNEL, SPREAD, TONGUE = range(6)
N_ART = 6

# Phone targets: jaw opening, extra lip aperture, pucker, funnel, spreading, tongue visibility.
# Jaw 1.0 is the default head's full jawOpen (a very wide mouth); conversational vowels use 0.2–0.5.
_T = {
    "aa": (0.50, 0.35, 0.00, 0.00, 0.05, 0.00),
    "ae": (0.42, 0.35, 0.00, 0.00, 0.25, 0.00),
    "ah": (0.36, 0.30, 0.00, 0.00, 0.05, 0.00),
    "ao": (0.44, 0.25, 0.25, 0.35, 0.00, 0.00),
    "aw": (0.46, 0.30, 0.20, 0.25, 0.00, 0.00),
    "ay": (0.44, 0.32, 0.00, 0.00, 0.15, 0.00),
    "eh": (0.34, 0.30, 0.00, 0.00, 0.25, 0.00),
    "er": (0.20, 0.15, 0.30, 0.30, 0.00, 0.00),
    "ey": (0.28, 0.25, 0.00, 0.00, 0.35, 0.00),
    "ih": (0.22, 0.20, 0.00, 0.00, 0.30, 0.00),
    "iy": (0.16, 0.15, 0.00, 0.00, 0.50, 0.00),
    "ow": (0.32, 0.15, 0.55, 0.55, 0.00, 0.00),
    "oy": (0.34, 0.15, 0.45, 0.45, 0.05, 0.00),
    "uh": (0.22, 0.10, 0.40, 0.35, 0.00, 0.00),
    "uw": (0.16, 0.05, 0.85, 0.45, 0.00, 0.00),
    "w": (0.06, 0.00, 0.90, 0.30, 0.00, 0.00),  # labial approximant: a tiny rounded opening
    "y": (0.12, 0.10, 0.00, 0.00, 0.40, 0.00),
    "r": (0.10, 0.06, 0.40, 0.30, 0.00, 0.00),
    "l": (0.14, 0.10, 0.00, 0.00, 0.10, 0.18),
    "hh": (0.25, 0.20, 0.00, 0.00, 0.05, 0.00),
    "p": (0.05, 0.00, 0.00, 0.00, 0.00, 0.00),
    "b": (0.05, 0.00, 0.00, 0.00, 0.00, 0.00),
    "m": (0.05, 0.00, 0.00, 0.00, 0.00, 0.00),
    "f": (0.08, 0.00, 0.00, 0.00, 0.05, 0.00),
    "v": (0.08, 0.00, 0.00, 0.00, 0.05, 0.00),
    "th": (0.10, 0.08, 0.00, 0.00, 0.10, 0.45),
    "dh": (0.10, 0.08, 0.00, 0.00, 0.10, 0.40),
    "t": (0.07, 0.05, 0.00, 0.00, 0.15, 0.12),
    "d": (0.07, 0.05, 0.00, 0.00, 0.15, 0.12),
    "n": (0.07, 0.05, 0.00, 0.00, 0.10, 0.10),
    "s": (0.03, 0.04, 0.00, 0.00, 0.35, 0.00),
    "z": (0.03, 0.04, 0.00, 0.00, 0.35, 0.00),
    "sh": (0.05, 0.06, 0.45, 0.45, 0.00, 0.00),
    "zh": (0.05, 0.06, 0.45, 0.45, 0.00, 0.00),
    "ch": (0.05, 0.06, 0.40, 0.40, 0.00, 0.00),
    "jh": (0.05, 0.06, 0.40, 0.40, 0.00, 0.00),
    "k": (0.11, 0.07, 0.00, 0.00, 0.05, 0.00),
    "g": (0.11, 0.07, 0.00, 0.00, 0.05, 0.00),
    "ng": (0.10, 0.06, 0.00, 0.00, 0.05, 0.00),
    SIL: (0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
}
TARGETS = {p: np.asarray(v, np.float64) for p, v in _T.items()}

# Dominance magnitude per articulator. Vowels own the jaw; consonants own the lips only where they must.
# Rounding has low dominance outside rounded phones, so it spreads (anticipates) across neighbouring consonants.
_VOWEL_DOM = (1.0, 1.0, 0.5, 0.5, 0.6, 0.3)
_CONS_DOM = (0.7, 0.8, 0.15, 0.15, 0.3, 0.8)
_ROUND_DOM = (1.0, 1.0, 1.6, 1.6, 1.0, 0.3)
_SIBILANT_DOM = (1.2, 1.0, 0.6, 0.8, 0.8, 0.5)
_HH_DOM = (0.15, 0.15, 0.1, 0.1, 0.1, 0.1)
_SIL_DOM = (0.9, 0.9, 0.4, 0.4, 0.6, 0.8)


def _dominance_strength(phone: str) -> np.ndarray:
    if phone == SIL:
        return np.asarray(_SIL_DOM)
    if phone in {"uw", "ow", "w", "oy", "uh", "ao", "r", "er"}:
        return np.asarray(_ROUND_DOM)
    if phone == "hh":
        return np.asarray(_HH_DOM)  # /h/ takes the shape of the vowel it precedes
    if phone in {"s", "z", "sh", "zh", "ch", "jh"}:
        return np.asarray(_SIBILANT_DOM)
    if phone in {"aa", "ae", "ah", "aw", "ay", "eh", "ey", "ih", "iy", "y"}:
        return np.asarray(_VOWEL_DOM)
    return np.asarray(_CONS_DOM)


_DOM = {p: _dominance_strength(p) for p in TARGETS}
# Dominance decay rates (1/s): how far a phone reaches ahead of its onset (anticipation) and past its end.
_THETA_ANTICIPATE = np.array([22.0, 24.0, 11.0, 11.0, 20.0, 30.0])
_THETA_CARRY = np.array([26.0, 28.0, 16.0, 16.0, 24.0, 34.0])
_REACH = 0.35  # seconds beyond which a dominance function is treated as zero
_EMPH_BASE = 0.15  # jaw and lip gain of a silent vowel; a vowel at 0.85 of the loud ones gets gain 1
_OPEN_FLOOR = 0.27  # least jaw opening in an open vowel (of the default head's full jawOpen)
_CLOSE_VOWELS = frozenset({"iy", "uw"})  # never forced open
_SHORT_VOWEL = 0.075  # seconds: a recognised /iy/ or /uw/ shorter than this is taken for a reduced vowel
_FINE_RATE = 200  # Hz: the grid the dominance blend is evaluated on
_INERTIA = 0.02  # seconds: std of the Gaussian low-pass that stands in for articulator mass
_INERTIA_RECOGNISED = 0.035  # more for recognised phones, whose boundaries jitter (tuning draw: BENCHMARKS.md)


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


# --- lower face -------------------------------------------------------------------------------------------------


def _segments_arrays(phones: Sequence[PhoneSegment], confidence) -> tuple[list[str], np.ndarray, np.ndarray,
                                                                           np.ndarray]:
    names = [p.phone for p in phones]
    starts = np.array([p.start for p in phones], np.float64)
    ends = np.array([max(p.end, p.start + 1e-3) for p in phones], np.float64)
    conf = np.ones(len(phones)) if confidence is None else np.clip(np.asarray(confidence, np.float64), 0, 1)
    if len(conf) != len(phones):
        raise ValueError("confidence needs one value per phone")
    return names, starts, ends, conf


def phone_emphasis(names, starts, ends, prosody: Prosody | None) -> np.ndarray:
    """Per-phone loudness relative to the clip's loud vowels (about 0.2–1.25; 1 without audio).

    JALI drives jaw and lip activation with the voice's intensity: stressed, loud vowels open wider.
    """
    out = np.ones(len(names))
    if prosody is None or len(prosody.energy) == 0:
        return out
    e = prosody.energy.astype(np.float64)
    lo = np.clip((np.asarray(starts) * PROSODY_RATE).astype(np.int64), 0, len(e) - 1)
    hi = np.clip((np.asarray(ends) * PROSODY_RATE).astype(np.int64) + 1, 1, len(e))
    level = np.array([e[a:max(b, a + 1)].mean() for a, b in zip(lo, hi, strict=True)])
    vowel = np.array([n in VOWELS for n in names])
    if not vowel.any() or np.percentile(level[vowel], 90) <= 0:
        return out
    return np.clip(level / np.percentile(level[vowel], 90), 0.2, 1.25)


def _articulators(names, starts, ends, conf, emphasis, times: np.ndarray, style: SpeakerStyle) -> np.ndarray:
    """(T, N_ART) blended articulator trajectories at ``times``."""
    tempo = style.motion_tempo
    theta_a = _THETA_ANTICIPATE * tempo
    theta_c = _THETA_CARRY * tempo
    num = np.zeros((len(times), N_ART))
    den = np.full((len(times), N_ART), 1e-6)
    for i, ph in enumerate(names):
        s, e = starts[i], ends[i]
        lo = np.searchsorted(times, s - _REACH)
        hi = np.searchsorted(times, e + _REACH)
        if hi <= lo:
            continue
        t = times[lo:hi, None]
        target = TARGETS[ph].copy()
        dom = _DOM[ph].copy()
        if ph == SIL:
            # A short pause inside a phrase barely moves the mouth; a long one relaxes it fully.
            dom *= min(1.0, (e - s) / 0.25) ** 2
        else:
            # Low-confidence (recognised) phones pull towards a calm, half-articulated mouth.
            target *= 0.35 + 0.65 * conf[i]
            # Short vowels undershoot their targets (the jaw cannot travel the full distance in time);
            # loud (stressed) vowels open wider than weak ones.
            if ph in VOWELS:
                gain = _EMPH_BASE + (1 - _EMPH_BASE) / 0.85 * emphasis[i]
                target[JAW] *= (0.75 + 0.25 * min(1.0, (e - s) / 0.12)) * gain
                target[LIPS] *= gain
        core_s = s + 0.15 * (e - s)
        core_e = e - 0.15 * (e - s)
        before = np.maximum(core_s - t, 0.0)
        after = np.maximum(t - core_e, 0.0)
        d = dom * np.exp(-((theta_a * before) ** 1.5) - (theta_c * after) ** 1.5)
        num[lo:hi] += d * target
        den[lo:hi] += d
    return num / den


def _plateau(times: np.ndarray, starts, ends, fps: float, ramp: float, ramp_in=None, ramp_out=None,
             heights=None) -> np.ndarray:
    """1 over each [start, end] (widened to hold the nearest frame), raised-cosine ramps, max-combined.

    Ramps last ``ramp`` seconds, or per segment ``ramp_in``/``ramp_out`` (so a gesture does not eat a short
    neighbouring vowel).
    """
    out = np.zeros(len(times))
    n = len(starts)
    r_in = np.full(n, ramp) if ramp_in is None else np.maximum(np.asarray(ramp_in, np.float64), 1e-3)
    r_out = np.full(n, ramp) if ramp_out is None else np.maximum(np.asarray(ramp_out, np.float64), 1e-3)
    hs = np.ones(n) if heights is None else np.asarray(heights, np.float64)
    for s, e, ri, ro, h in zip(starts, ends, r_in, r_out, hs, strict=True):
        nearest = round(0.5 * (s + e) * fps) / fps
        a, b = min(s, nearest), max(e, nearest)
        lo = np.searchsorted(times, a - ri)
        hi = np.searchsorted(times, b + ro, side="right")
        t = times[lo:hi]
        v = np.ones(len(t))
        left = t < a
        right = t > b
        v[left] = 0.5 * (1 + np.cos(np.pi * np.minimum(a - t[left], ri) / ri))
        v[right] = 0.5 * (1 + np.cos(np.pi * np.minimum(t[right] - b, ro) / ro))
        out[lo:hi] = np.maximum(out[lo:hi], h * v)
    return out


def _gesture_ramps(names, starts, ends, idx, ramp: float) -> tuple[np.ndarray, np.ndarray]:
    """Ramp lengths into and out of the phones ``idx``: at most ``ramp``, and at most 40 % of a neighbouring
    vowel, so the vowel still shows its own opening."""
    r_in, r_out = [], []
    for i in idx:
        prev_d = ends[i - 1] - starts[i - 1] if i > 0 and names[i - 1] in VOWELS else np.inf
        next_d = ends[i + 1] - starts[i + 1] if i + 1 < len(names) and names[i + 1] in VOWELS else np.inf
        r_in.append(min(ramp, 0.4 * prev_d))
        r_out.append(min(ramp, 0.4 * next_d))
    return np.asarray(r_in), np.asarray(r_out)


def closure_weight(names, starts, ends, times: np.ndarray, fps: float, ramp: float = 0.05, idx=None) -> np.ndarray:
    """0..1 per frame: how sealed the lips are over the bilabials (``idx``: their positions, default all p/b/m),
    with raised-cosine ramps that leave neighbouring vowels their opening. Shared by the teacher and by the Neural
    engine, which applies the same guarantee to the model's output."""
    idx = [i for i, p in enumerate(names) if p in BILABIALS] if idx is None else idx
    return _plateau(times, starts[idx], ends[idx], fps, ramp, *_gesture_ramps(names, starts, ends, idx, ramp))


def _silence_mask(names, starts, ends, times: np.ndarray, min_pause: float = 0.2, margin: float = 0.08):
    """Relaxation weight 0..1: 1 deep inside pauses of at least ``min_pause`` seconds."""
    out = np.zeros(len(times))
    for ph, s, e in zip(names, starts, ends, strict=True):
        if ph != SIL or e - s < min_pause:
            continue
        a, b = s + margin, e - margin
        if b <= a:
            continue
        lo = np.searchsorted(times, s)
        hi = np.searchsorted(times, e, side="right")
        t = times[lo:hi]
        v = np.clip(np.minimum(t - s, e - t) / margin, 0, 1)
        out[lo:hi] = np.maximum(out[lo:hi], v)
    return out


def _set(values: np.ndarray, name: str, curve) -> None:
    values[:, spec.CHANNEL_INDEX[name]] = curve


def _add(values: np.ndarray, name: str, curve) -> None:
    values[:, spec.CHANNEL_INDEX[name]] += curve


def _open_floor(times, opens, starts, ends, conf, fps, ramp: float) -> np.ndarray:
    """The least jaw opening over each open vowel (scaled down for uncertain phones)."""
    idx = np.asarray(opens, np.int64)
    return _plateau(times, starts[idx], ends[idx], fps, ramp, heights=_OPEN_FLOOR * (0.3 + 0.7 * conf[idx]))


def _lower_face(values: np.ndarray, names, starts, ends, conf, emphasis, times, fps, style: SpeakerStyle,
                recognised: bool, fine: np.ndarray) -> None:
    # Blend on a fine grid (points of the take's grid at _FINE_RATE around ``times``), low-pass it (articulator
    # inertia), then sample at the output frames.
    amp = style.amplitude * style.precision
    jaw_share = 0.5 + (style.jaw_lip_ratio - 0.5)  # JALI: who carries the opening
    jaw_gain = amp * (0.7 + 0.6 * jaw_share)
    raw = _articulators(names, starts, ends, conf, emphasis, fine, style)
    opens = [i for i, p in enumerate(names) if p in OPEN_VOWELS]
    if recognised:
        # A recogniser often hears a reduced open vowel as /ih/, /uh/ or /er/: only its close vowels are trusted
        # to stay nearly closed.
        opens += [i for i, p in enumerate(names) if p in VOWELS and p not in OPEN_VOWELS and p not in _CLOSE_VOWELS]
        # It also hears short reduced vowels as /iy/ or /uw/ (a 60 ms schwa between consonants); tense close
        # vowels are rarely that short, so a short one is treated as the reduced vowel it most likely is.
        opens += [i for i, p in enumerate(names) if p in _CLOSE_VOWELS and ends[i] - starts[i] < _SHORT_VOWEL]
    # Open vowels always open the mouth visibly, however short, weak or crowded by consonants they are:
    # a floor under the jaw, applied before the low-pass so the opening stays smooth.
    raw[:, JAW] = np.maximum(raw[:, JAW], _open_floor(fine, opens, starts, ends, conf, fps, 0.08) * 1.15 / jaw_gain)
    inertia = _INERTIA_RECOGNISED if recognised else _INERTIA
    sigma = inertia * _FINE_RATE / style.motion_tempo
    art_fine = gaussian_smooth(raw, sigma, radius=int(3 * sigma) + 1)
    art = np.stack([np.interp(times, fine, art_fine[:, j]) for j in range(N_ART)], axis=1)
    jaw = art[:, JAW] * jaw_gain
    lips = art[:, LIPS] * amp * (1.3 - 0.6 * jaw_share)
    rnd = art[:, ROUND] * style.precision
    fun = art[:, FUNNEL] * style.precision
    spread = art[:, SPREAD] * style.precision
    tongue = art[:, TONGUE]

    ramp = 0.05 / style.motion_tempo
    bil = [i for i, p in enumerate(names) if p in BILABIALS]
    close = closure_weight(names, starts, ends, times, fps, ramp, bil)
    stops = [i for i in bil if names[i] != "m"]
    press = _plateau(times, starts[stops], ends[stops], fps, ramp, *_gesture_ramps(names, starts, ends, stops, ramp))
    lab = [i for i, p in enumerate(names) if p in LABIODENTALS]
    tuck = _plateau(times, starts[lab], ends[lab], fps, ramp, *_gesture_ramps(names, starts, ends, lab, ramp))
    rounded = [i for i, p in enumerate(names) if p in {"uw", "ow", "w", "oy"}]
    hold_round = _plateau(times, starts[rounded], ends[rounded], fps, 0.06)
    rest = _silence_mask(names, starts, ends, times)

    # Rounding is held at (most of) its target through rounded phones, whatever the neighbours do.
    if rounded:
        tgt_r = np.zeros(len(times))
        tgt_f = np.zeros(len(times))
        for i in rounded:
            m = slice(np.searchsorted(times, starts[i] - 0.06), np.searchsorted(times, ends[i] + 0.06, side="right"))
            tgt_r[m] = np.maximum(tgt_r[m], 0.8 * TARGETS[names[i]][ROUND] * conf[i])
            tgt_f[m] = np.maximum(tgt_f[m], 0.8 * TARGETS[names[i]][FUNNEL] * conf[i])
        rnd = np.maximum(rnd, hold_round * tgt_r)
        fun = np.maximum(fun, hold_round * tgt_f)

    relax = 1.0 - rest
    jaw = jaw * relax
    lips = lips * relax
    rnd, fun, spread, tongue = rnd * relax, fun * relax, spread * relax, tongue * relax

    # Labiodentals: the lower lip rolls in under the upper teeth, the jaw nearly closes.
    jaw = jaw * (1 - 0.7 * tuck)
    lips = lips * (1 - tuck)
    fun = fun * (1 - tuck)
    # The floor again at the output frames: a safety net the smoothing must not undo.
    jaw = np.maximum(jaw, _open_floor(times, opens, starts, ends, conf, fps, 0.05))
    # Bilabials: the lips seal whatever the jaw does (mouthClose cancels jawOpen's lip separation).
    open_lips = 1.0 - close
    lips = lips * open_lips
    fun = fun * open_lips
    tongue = tongue * open_lips

    a = style.asymmetry
    _set(values, "jawOpen", jaw)
    _set(values, "mouthClose", close * jaw)
    _add(values, "mouthFunnel", fun)
    _add(values, "mouthPucker", rnd)
    for side, k in (("Left", 1 + a), ("Right", 1 - a)):
        _add(values, f"mouthUpperUp{side}", 0.55 * lips * k + 0.25 * tuck)
        _add(values, f"mouthLowerDown{side}", 0.7 * lips * k)
        _add(values, f"mouthStretch{side}", 0.45 * spread * k)
        _add(values, f"mouthSmile{side}", 0.2 * spread * k)
        _add(values, f"mouthPress{side}", 0.3 * press)
        _add(values, f"mouthDimple{side}", 0.1 * spread * k)
    _add(values, "mouthRollLower", 0.55 * tuck + 0.12 * close)
    _add(values, "mouthRollUpper", 0.1 * close + 0.08 * tuck)
    _add(values, "mouthShrugUpper", 0.12 * tuck)
    _add(values, "tongueOut", tongue)


# --- upper face, head and gaze ----------------------------------------------------------------------------------


def _pauses(names, starts, ends, min_len=0.15) -> list[tuple[float, float]]:
    return [(s, e) for p, s, e in zip(names, starts, ends, strict=True) if p == SIL and e - s >= min_len]


def _blink_times(duration: float, pauses, style: SpeakerStyle, rng: np.random.Generator) -> list[float]:
    """Blink onsets: most at phrase boundaries, the rest a refractory Poisson process at the style's rate."""
    rate = style.blink_rate / 60.0
    times: list[float] = []
    for s, e in pauses:
        if s <= 0.05 or rng.random() < 0.45:
            continue
        times.append(s + rng.uniform(0.0, min(0.25, 0.5 * (e - s))))
    budget = max(0.0, rate * duration - len(times))
    t = rng.exponential(1.0 / max(rate, 1e-3)) * 0.7
    while t < duration and budget > 0:
        if all(abs(t - b) > 1.0 for b in times):
            times.append(t)
            budget -= 1
        t += max(1.0, rng.exponential(1.0 / max(rate, 1e-3)))
    return sorted(times)


def _blink_curve(times: np.ndarray, onsets, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(len(times))
    for t0 in onsets:
        close_d, hold, open_d = 0.07, rng.uniform(0.02, 0.06), rng.uniform(0.12, 0.2)
        amp = rng.uniform(0.85, 1.0)
        lo = np.searchsorted(times, t0)
        hi = np.searchsorted(times, t0 + close_d + hold + open_d, side="right")
        t = times[lo:hi] - t0
        v = np.where(t < close_d, np.sin(0.5 * np.pi * t / close_d) ** 2, 1.0)
        tail = t - close_d - hold
        v = np.where(tail > 0, np.clip(1 - tail / open_d, 0, 1) ** 2, v)
        out[lo:hi] = np.maximum(out[lo:hi], amp * v)
    return out


def _bumps(times: np.ndarray, centres, heights, width: float) -> np.ndarray:
    out = np.zeros(len(times))
    for c, h in zip(centres, heights, strict=True):
        lo = np.searchsorted(times, c - 3 * width)
        hi = np.searchsorted(times, c + 3 * width)
        out[lo:hi] += h * np.exp(-0.5 * ((times[lo:hi] - c) / width) ** 2)
    return out


def _pitch_accents(pros: Prosody) -> tuple[np.ndarray, np.ndarray]:
    """Times (s) and strengths (semitones above the phrase baseline) of F0 peaks that read as accents."""
    st = semitones(pros.f0, pros.voiced)
    if not np.any(pros.voiced):
        return np.zeros(0), np.zeros(0)
    k = int(0.25 * PROSODY_RATE)  # 250 ms neighbourhood
    padded = np.pad(np.where(pros.voiced, st, -99.0), k, constant_values=-99.0)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * k + 1)
    local_max = windows.max(axis=1)
    peak = pros.voiced & (st >= local_max - 1e-6) & (st > 1.0)
    idx = np.nonzero(peak)[0]
    return idx / PROSODY_RATE, st[idx]


def _smooth_noise(n: int, fps: float, cutoff_hz: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance low-pass noise (a Gaussian kernel in time)."""
    if n == 0:
        return np.zeros(0)
    sigma = fps / (2 * math.pi * cutoff_hz)
    half = int(3 * sigma) + 1
    noise = rng.standard_normal(n + 2 * half)
    out = np.convolve(noise, gaussian_kernel(sigma, half), mode="valid")[:n]
    sd = float(out.std())
    return out / sd if sd > 0 else out


def _interp(frame_times: np.ndarray, src: np.ndarray, rate: float) -> np.ndarray:
    if len(src) == 0:
        return np.zeros(len(frame_times))
    return np.interp(frame_times, np.arange(len(src)) / rate, src)


def _upper_curves(times, fps, names, starts, ends, pros: Prosody, style: SpeakerStyle, rng) -> dict[str, np.ndarray]:
    """The upper face's curves over the whole take (blinks, brows, head, gaze), one value per frame: they draw
    from the take's random generator in order and normalise over the take, so they are made once; _upper_face
    turns any window of them into channels."""
    duration = times[-1] + 1.0 / fps if len(times) else 0.0
    pauses = _pauses(names, starts, ends)
    blink = _blink_curve(times, _blink_times(duration, pauses, style, rng), rng)
    lag = rng.uniform(0.0, 0.012)
    blink_r = np.interp(times - lag, times, blink) if len(times) else blink

    # Brows rise on pitch accents (bigger accents, bigger raises) and follow the smoothed F0 contour a little.
    acc_t, acc_h = _pitch_accents(pros)
    raise_ = _bumps(times, acc_t, np.clip(acc_h / 6.0, 0, 0.6), 0.12)
    st = semitones(pros.f0, pros.voiced)
    box = int(0.3 * PROSODY_RATE)
    contour = _interp(times, convolve_same(st, np.ones(box) / box), PROSODY_RATE)
    brow = style.brow_activity * (raise_ + 0.02 * np.clip(contour, -3, 6))

    # Head: slow drift plus nods on accents and energy onsets; amplitude follows loudness.
    energy = _interp(times, pros.energy, PROSODY_RATE)
    loud = energy / (np.percentile(energy, 95) + 1e-6) if len(energy) else energy
    loud = np.clip(np.convolve(loud, np.ones(9) / 9, mode="same") if len(loud) >= 9 else loud, 0, 1.2)
    ha = style.head_activity
    yaw = ha * (0.035 * _smooth_noise(len(times), fps, 0.25, rng) * (0.4 + 0.6 * loud))
    pitch = ha * (0.02 * _smooth_noise(len(times), fps, 0.3, rng) + _bumps(times, acc_t, 0.025 * np.clip(acc_h / 4,
                                                                                                          0, 1), 0.15))
    pitch += ha * 0.01 * (loud - loud.mean() if len(loud) else 0)
    roll = ha * 0.02 * _smooth_noise(len(times), fps, 0.2, rng) * (0.5 + 0.5 * loud)

    # Gaze: fixations of 0.4–2.5 s joined by 40 ms saccades, slightly counter-rotating the head.
    ga = style.gaze_activity
    gy = np.zeros(len(times))
    gp = np.zeros(len(times))
    t, cur_y, cur_p = 0.0, 0.0, 0.0
    while t < duration:
        nxt_y = float(np.clip(rng.normal(0, 0.08 * ga), -0.25, 0.25))
        nxt_p = float(np.clip(rng.normal(0.02, 0.05 * ga), -0.15, 0.2))
        t_next = t + rng.gamma(2.0, 0.6 / max(ga, 0.2)) + 0.3
        lo = np.searchsorted(times, t)
        hi = np.searchsorted(times, t_next)
        ramp = np.clip((times[lo:hi] - t) / 0.04, 0, 1)  # a 40 ms saccade, then a fixation until t_next
        gy[lo:hi] = cur_y + (nxt_y - cur_y) * ramp
        gp[lo:hi] = cur_p + (nxt_p - cur_p) * ramp
        cur_y, cur_p = nxt_y, nxt_p
        t = t_next
    gy -= 0.3 * yaw
    gp -= 0.3 * pitch
    return {"blink": blink, "blink_r": blink_r, "brow": brow, "contour": contour, "yaw": yaw, "pitch": pitch,
            "roll": roll, "gaze_yaw": gy, "gaze_pitch": gp}


def _upper_face(values, curves: dict[str, np.ndarray], window: slice, style: SpeakerStyle) -> None:
    """Blinks, brows, head and gaze channels of the frames in ``window`` (``values`` holds just those frames)."""
    c = {k: v[window] for k, v in curves.items()}
    blink = c["blink"]
    _set(values, "eyeBlinkLeft", blink)
    _set(values, "eyeBlinkRight", c["blink_r"])
    brow, contour = c["brow"], c["contour"]
    a = style.asymmetry
    _add(values, "browInnerUp", np.clip(brow, 0, None))
    _add(values, "browOuterUpLeft", 0.7 * np.clip(brow, 0, None) * (1 + a))
    _add(values, "browOuterUpRight", 0.7 * np.clip(brow, 0, None) * (1 - a))
    _add(values, "browDownLeft", 0.3 * style.brow_activity * np.clip(-contour / 6, 0, 0.3))
    _add(values, "browDownRight", 0.3 * style.brow_activity * np.clip(-contour / 6, 0, 0.3))
    _set(values, "headYaw", c["yaw"])
    _set(values, "headPitch", c["pitch"])
    _set(values, "headRoll", c["roll"])
    gy, gp = c["gaze_yaw"], c["gaze_pitch"]
    for eye in ("Left", "Right"):
        _set(values, f"eyeYaw{eye}", gy)
        _set(values, f"eyePitch{eye}", gp)
    # ARKit look channels agree with the rotations (yaw > 0: looking to the character's left).
    look = 1 / 0.5
    _add(values, "eyeLookOutLeft", np.clip(gy * look, 0, 1))
    _add(values, "eyeLookInRight", np.clip(gy * look, 0, 1))
    _add(values, "eyeLookInLeft", np.clip(-gy * look, 0, 1))
    _add(values, "eyeLookOutRight", np.clip(-gy * look, 0, 1))
    for eye in ("Left", "Right"):
        _add(values, f"eyeLookDown{eye}", np.clip(gp * look, 0, 1) + 0.3 * blink)
        _add(values, f"eyeLookUp{eye}", np.clip(-gp * look, 0, 1))


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


def _emotional_style(style: SpeakerStyle) -> SpeakerStyle:
    m, b, h = _EMOTION_GAIN[style.emotion]
    k = style.emotion_intensity
    return dataclasses.replace(style, amplitude=style.amplitude * (1 + (m - 1) * k),
                               brow_activity=style.brow_activity * (1 + (b - 1) * k),
                               head_activity=style.head_activity * (1 + (h - 1) * k))


def _apply_pose(values: np.ndarray, style: SpeakerStyle, talking: np.ndarray) -> None:
    a = style.asymmetry
    smile = style.smile_bias
    for side, k in (("Left", 1 + a), ("Right", 1 - a)):
        _add(values, f"mouthSmile{side}", smile * k * (1 - 0.3 * talking))
        _add(values, f"cheekSquint{side}", 0.3 * smile * k)
    for name, w in _EMOTION_POSE.get(style.emotion, {}).items():
        _add(values, name, w * style.emotion_intensity)


def _talking(names, starts, ends, times) -> np.ndarray:
    speech = [(s, e) for p, s, e in zip(names, starts, ends, strict=True) if p != SIL]
    out = np.zeros(len(times))
    for s, e in speech:
        out[np.searchsorted(times, s):np.searchsorted(times, e)] = 1.0
    return out


def _reseal(values: np.ndarray, names, starts, ends, times, fps) -> None:
    """Re-impose the hard lip constraints after emotion poses and smiles were added."""
    bil = [i for i, p in enumerate(names) if p in BILABIALS]
    if not bil:
        return
    close = _plateau(times, starts[bil], ends[bil], fps, 1e-3)
    sealed = close >= 1.0
    for name in ("mouthFunnel", "mouthUpperUpLeft", "mouthUpperUpRight", "mouthLowerDownLeft",
                 "mouthLowerDownRight", "tongueOut"):
        values[sealed, spec.CHANNEL_INDEX[name]] = 0.0
    j = spec.CHANNEL_INDEX
    values[sealed, j["mouthClose"]] = values[sealed, j["jawOpen"]]


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
        self.names, self.starts, self.ends, self.conf = _segments_arrays(phones, confidence)
        self.eff = _emotional_style(self.style)
        if prosody is None:  # without the upper face, only the loudness is used (phone_emphasis)
            prosody = estimate_prosody(samples, rate, pitch=upper) if samples is not None and len(samples) else \
                Prosody(np.zeros(0, np.float32), np.zeros(0, bool), np.zeros(0, np.float32))
        self.emphasis = phone_emphasis(self.names, self.starts, self.ends, prosody) if phones else None
        self.upper = _upper_curves(times, fps, self.names, self.starts, self.ends, prosody, self.eff, rng) if upper \
            else None
        self.n_fine = int(math.ceil((times[-1] + 1.0 / fps) * _FINE_RATE)) + 1
        tempo = self.eff.motion_tempo
        sigma = (_INERTIA_RECOGNISED if recognised else _INERTIA) / tempo
        # Seconds past a phone's ends that it still moves a frame: dominance reach, the low-pass (3 sigma), the
        # closure and tuck ramps, the nearest-frame widening, with room to spare.
        self.reach = _REACH + 3 * sigma + 0.1 / tempo + 2.0 / fps + 0.1

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
            fine_lo = max(0, int(math.floor((times[0] - self.reach) * _FINE_RATE)))
            fine_hi = min(self.n_fine, int(math.ceil((times[-1] + self.reach) * _FINE_RATE)) + 1)
            _lower_face(values, names, starts, ends, conf, self.emphasis[near], times, self.fps, self.eff,
                        self.recognised, np.arange(fine_lo, fine_hi) / _FINE_RATE)
        if self.upper is not None:
            _upper_face(values, self.upper, slice(a, b), self.eff)
        _apply_pose(values, self.eff, _talking(names, starts, ends, times))
        arkit = values[:, : spec.NUM_ARKIT]
        np.clip(arkit, 0.0, 1.0, out=arkit)
        _reseal(values, names, starts, ends, times, self.fps)
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
