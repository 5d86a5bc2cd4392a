"""The mouth: phone timings → jaw, lips, rounding, spreading and tongue channels.

Each phone is a target in a small articulatory space (jaw, lip aperture, rounding, spreading, tongue) with a
dominance function per articulator (Cohen & Massaro 1993): the output is the dominance-weighted mean of the targets,
so rounding spreads ahead across consonants while bilabials own the lips. The jaw and the lips are separate
articulators (the JALI split, Edwards et al. 2016). The blend is low-passed on a fine grid (articulator inertia).
Hard constraints are applied after blending: sealed lips on p/b/m, the lower lip tucked on f/v, rounding held on
uw/ow/w/oy, a relaxed closed mouth in long silence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import spec
from ..phones import BILABIALS, LABIODENTALS, OPEN_VOWELS, SIL, VOWELS, PhoneSegment
from ..pitch import RATE as PROSODY_RATE
from ..pitch import Prosody
from ..smoothing import gaussian_smooth
from .channels import add_channel, set_channel
from .style import SpeakerStyle

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
FINE_RATE = 200  # Hz: the grid the dominance blend is evaluated on
_INERTIA = 0.02  # seconds: std of the Gaussian low-pass that stands in for articulator mass
_INERTIA_RECOGNISED = 0.035  # more for recognised phones, whose boundaries jitter (tuning draw: BENCHMARKS.md)


def segments_arrays(phones: Sequence[PhoneSegment], confidence) -> tuple[list[str], np.ndarray, np.ndarray,
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




def _open_floor(times, opens, starts, ends, conf, fps, ramp: float) -> np.ndarray:
    """The least jaw opening over each open vowel (scaled down for uncertain phones)."""
    idx = np.asarray(opens, np.int64)
    return _plateau(times, starts[idx], ends[idx], fps, ramp, heights=_OPEN_FLOOR * (0.3 + 0.7 * conf[idx]))


def lower_face(values: np.ndarray, names, starts, ends, conf, emphasis, times, fps, style: SpeakerStyle,
                recognised: bool, fine: np.ndarray) -> None:
    # Blend on a fine grid (points of the take's grid at FINE_RATE around ``times``), low-pass it (articulator
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
    sigma = inertia * FINE_RATE / style.motion_tempo
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
    set_channel(values, "jawOpen", jaw)
    set_channel(values, "mouthClose", close * jaw)
    add_channel(values, "mouthFunnel", fun)
    add_channel(values, "mouthPucker", rnd)
    for side, k in (("Left", 1 + a), ("Right", 1 - a)):
        add_channel(values, f"mouthUpperUp{side}", 0.55 * lips * k + 0.25 * tuck)
        add_channel(values, f"mouthLowerDown{side}", 0.7 * lips * k)
        add_channel(values, f"mouthStretch{side}", 0.45 * spread * k)
        add_channel(values, f"mouthSmile{side}", 0.2 * spread * k)
        add_channel(values, f"mouthPress{side}", 0.3 * press)
        add_channel(values, f"mouthDimple{side}", 0.1 * spread * k)
    add_channel(values, "mouthRollLower", 0.55 * tuck + 0.12 * close)
    add_channel(values, "mouthRollUpper", 0.1 * close + 0.08 * tuck)
    add_channel(values, "mouthShrugUpper", 0.12 * tuck)
    add_channel(values, "tongueOut", tongue)


def talking(names, starts, ends, times) -> np.ndarray:
    speech = [(s, e) for p, s, e in zip(names, starts, ends, strict=True) if p != SIL]
    out = np.zeros(len(times))
    for s, e in speech:
        out[np.searchsorted(times, s):np.searchsorted(times, e)] = 1.0
    return out


def reseal(values: np.ndarray, names, starts, ends, times, fps) -> None:
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


def mouth_reach(recognised: bool, tempo: float, fps: float) -> float:
    """Seconds past a phone's ends that it still moves a frame: dominance reach, the low-pass (3 sigma), the
    closure and tuck ramps, the nearest-frame widening, with room to spare."""
    sigma = (_INERTIA_RECOGNISED if recognised else _INERTIA) / tempo
    return _REACH + 3 * sigma + 0.1 / tempo + 2.0 / fps + 0.1
