"""The upper face and head: blinks biased to phrase boundaries, brows from F0 pitch accents, gaze saccades, and
head rotation from energy and F0."""

from __future__ import annotations

import math

import numpy as np

from ..phones import SIL
from ..pitch import RATE as PROSODY_RATE
from ..pitch import Prosody, convolve_same, semitones
from ..smoothing import gaussian_kernel
from .channels import add_channel, set_channel
from .style import SpeakerStyle


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


def upper_curves(times, fps, names, starts, ends, pros: Prosody, style: SpeakerStyle, rng) -> dict[str, np.ndarray]:
    """The upper face's curves over the whole take (blinks, brows, head, gaze), one value per frame: they draw
    from the take's random generator in order and normalise over the take, so they are made once; upper_face
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


def upper_face(values, curves: dict[str, np.ndarray], window: slice, style: SpeakerStyle) -> None:
    """Blinks, brows, head and gaze channels of the frames in ``window`` (``values`` holds just those frames)."""
    c = {k: v[window] for k, v in curves.items()}
    blink = c["blink"]
    set_channel(values, "eyeBlinkLeft", blink)
    set_channel(values, "eyeBlinkRight", c["blink_r"])
    brow, contour = c["brow"], c["contour"]
    a = style.asymmetry
    add_channel(values, "browInnerUp", np.clip(brow, 0, None))
    add_channel(values, "browOuterUpLeft", 0.7 * np.clip(brow, 0, None) * (1 + a))
    add_channel(values, "browOuterUpRight", 0.7 * np.clip(brow, 0, None) * (1 - a))
    add_channel(values, "browDownLeft", 0.3 * style.brow_activity * np.clip(-contour / 6, 0, 0.3))
    add_channel(values, "browDownRight", 0.3 * style.brow_activity * np.clip(-contour / 6, 0, 0.3))
    set_channel(values, "headYaw", c["yaw"])
    set_channel(values, "headPitch", c["pitch"])
    set_channel(values, "headRoll", c["roll"])
    gy, gp = c["gaze_yaw"], c["gaze_pitch"]
    for eye in ("Left", "Right"):
        set_channel(values, f"eyeYaw{eye}", gy)
        set_channel(values, f"eyePitch{eye}", gp)
    # ARKit look channels agree with the rotations (yaw > 0: looking to the character's left).
    look = 1 / 0.5
    add_channel(values, "eyeLookOutLeft", np.clip(gy * look, 0, 1))
    add_channel(values, "eyeLookInRight", np.clip(gy * look, 0, 1))
    add_channel(values, "eyeLookInLeft", np.clip(-gy * look, 0, 1))
    add_channel(values, "eyeLookOutRight", np.clip(-gy * look, 0, 1))
    for eye in ("Left", "Right"):
        add_channel(values, f"eyeLookDown{eye}", np.clip(gp * look, 0, 1) + 0.3 * blink)
        add_channel(values, f"eyeLookUp{eye}", np.clip(-gp * look, 0, 1))
