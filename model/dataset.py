"""Training windows from corpus clips: log-mel + phone labels for the audio encoder, action chunks with their
past states and style references for the denoiser, and same-identity window pairs for the style encoder.

Features come from facepolicy.core.features (the runtime's own code). Held-out splits are by whole voice and
whole TTS engine, never only by sentence, because the real speakers the model meets are unseen voices.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from facepolicy.core import features, spec
from facepolicy.core.phones import BILABIALS, LABIODENTALS, PHONES, ROUNDED, VOWELS, PhoneSegment


@dataclass(eq=False)
class Clip:
    """One corpus clip: audio, its exact phones, and the teacher's face at MODEL_FPS."""

    samples: np.ndarray  # (N,) float32, 16 kHz
    phones: list[PhoneSegment]
    states: np.ndarray  # (T, NUM_CHANNELS) float32 at spec.MODEL_FPS
    style_id: str
    voice: str
    engine: str
    emotion: str = "neutral"
    emotion_intensity: float = 0.0
    clip_id: str = ""
    split: str = "train"  # "eval": a voice the corpus keeps for evaluation only
    meta: dict = field(default_factory=dict)


@dataclass
class Split:
    train: list[Clip]
    valid: list[Clip]  # held-out voices and engines
    held_out_voices: list[str]
    held_out_engines: list[str]


def _hash_fraction(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def load_corpus(root) -> list[Clip]:
    """Every clip of a corpus written by model.data.build_corpus (teacher states included)."""
    from model.data import corpus

    clips = [Clip(c.samples, c.phones, c.states, c.style_id, c.voice, c.engine, c.emotion, c.emotion_intensity,
                  c.clip_id, c.split, c.meta) for c in corpus.iter_clips(root)]
    if not clips:
        raise ValueError(f"{root}: the corpus holds no clips")
    return clips


def split_clips(clips: list[Clip], held_out_engines=(), voice_fraction: float = 0.1, seed: int = 0) -> Split:
    """Hold out the corpus's own evaluation voices, every clip of the listed engines, and a seeded fraction of
    the remaining voices."""
    corpus_held = {c.voice for c in clips if c.split == "eval"}
    voices = sorted({c.voice for c in clips if c.engine not in held_out_engines and c.voice not in corpus_held})
    held_voices = [v for v in voices if _hash_fraction(f"{seed}:{v}") < voice_fraction]
    if not held_voices and len(voices) > 1 and voice_fraction > 0:
        held_voices = [min(voices, key=lambda v: _hash_fraction(f"{seed}:{v}"))]
    held_voices = sorted(corpus_held) + held_voices
    held = set(held_voices)
    engines = set(held_out_engines)
    train = [c for c in clips if c.voice not in held and c.engine not in engines]
    valid = [c for c in clips if c.voice in held or c.engine in engines]
    return Split(train, valid, held_voices, sorted(engines))


# --- phone evidence as a recognizer would give it ----------------------------------------------------------------

_GROUPS = [BILABIALS, LABIODENTALS, ROUNDED, VOWELS - ROUNDED,
           frozenset({"t", "d", "n", "l", "s", "z", "th", "dh"}), frozenset({"k", "g", "ng", "hh", "y", "r"}),
           frozenset({"sh", "zh", "ch", "jh"})]


def _confusable(phone: str) -> list[str]:
    for g in _GROUPS:
        if phone in g:
            return sorted(g - {phone}) or [phone]
    return [p for p in PHONES[1:] if p != phone]


def simulate_recognizer(segs: list[PhoneSegment], rng: np.random.Generator, jitter: float = 0.025,
                        p_sub_near: float = 0.2, p_sub_far: float = 0.08, p_delete: float = 0.08) -> list[PhoneSegment]:
    """Exact phones corrupted the way a phone recognizer on real speech errs (≈ 35 % phone error, mostly
    within viseme groups, with boundary jitter and dropped short phones), so the policy learns to use
    evidence without trusting it blindly."""
    out: list[PhoneSegment] = []
    for s in segs:
        phone = s.phone
        if phone != "sil":
            r = rng.random()
            if r < p_delete and s.duration < 0.08 and out:
                out[-1] = PhoneSegment(out[-1].phone, out[-1].start, s.end)
                continue
            if r < p_delete + p_sub_near:
                phone = str(rng.choice(_confusable(phone)))
            elif r < p_delete + p_sub_near + p_sub_far:
                phone = str(rng.choice(PHONES))
        out.append(PhoneSegment(phone, s.start, s.end))
    if len(out) > 1:
        bounds = np.array([s.end for s in out[:-1]]) + rng.normal(0.0, jitter, len(out) - 1)
        bounds = np.maximum.accumulate(np.clip(bounds, out[0].start, out[-1].end))
        starts = np.concatenate([[out[0].start], bounds])
        ends = np.concatenate([bounds, [out[-1].end]])
        out = [PhoneSegment(s.phone, float(a), float(b)) for s, a, b in zip(out, starts, ends, strict=True) if b > a]
    return out


# --- per-clip cached arrays ----------------------------------------------------------------------------------------

@dataclass
class Prepared:
    mel: np.ndarray  # (T_mel, N_MELS) float32
    labels: np.ndarray  # (T_mel,) int64 phone index per mel frame
    states: np.ndarray  # (T, C) float32
    phones: list[PhoneSegment]
    style_index: int
    emotion: np.ndarray  # (len(spec.EMOTIONS),)
    recognised: list[PhoneSegment] | None = None  # the runtime recogniser's phones for this clip, when cached


SILENCE_MEL = float(np.log(features.LOG_FLOOR))


def prepare(clip: Clip, style_index: int, recognised: list[PhoneSegment] | None = None) -> Prepared:
    mel = features.log_mel(clip.samples)
    labels = features.phone_labels(clip.phones, len(mel), features.MEL_RATE)
    n = features.n_model_frames(len(clip.samples))
    states = np.asarray(clip.states, np.float32)
    if len(states) < n:  # the teacher may round the last frame differently: hold the last pose
        states = np.concatenate([states, np.repeat(states[-1:], n - len(states), axis=0)])
    emo = np.zeros(len(spec.EMOTIONS), np.float32)
    if clip.emotion in spec.EMOTIONS and clip.emotion != "neutral":
        emo[spec.EMOTIONS.index(clip.emotion)] = float(clip.emotion_intensity)
    return Prepared(mel, labels, states[:n], list(clip.phones), style_index, emo, recognised)


def normalisation(prepared: list[Prepared], std_floor: float = 0.02) -> dict[str, np.ndarray]:
    mel = np.concatenate([p.mel for p in prepared])
    states = np.concatenate([p.states for p in prepared])
    return {
        "mel_mean": mel.mean(0), "mel_std": np.maximum(mel.std(0), 1e-3),
        "state_mean": states.mean(0), "state_std": np.maximum(states.std(0), std_floor),
        # The face before anything is said: the mean of the clips' first frames (the teacher starts at rest).
        "rest_state": np.mean([p.states[0] for p in prepared], axis=0),
    }


class WindowSampler:
    """Random training batches drawn from prepared clips (seeded, so a run is reproducible)."""

    def __init__(self, prepared: list[Prepared], cfg: dict, seed: int):
        self.items = [p for p in prepared if len(p.states) >= cfg["policy"]["horizon"]]
        if not self.items:
            raise ValueError("no clip is long enough for one action chunk")
        self.pol = cfg["policy"]
        self.cfg = cfg
        self.rng = np.random.default_rng(seed)
        lengths = np.array([len(p.states) for p in self.items], np.float64)
        self.weights = lengths / lengths.sum()
        self.by_style: dict[int, list[int]] = {}
        for i, p in enumerate(self.items):
            self.by_style.setdefault(p.style_index, []).append(i)
        self.style_codes: list[np.ndarray] | None = None  # per item, (K, D), set after style training

    # -- style encoder pairs --

    def style_batch(self, batch: int) -> dict[str, torch.Tensor]:
        """Two windows of style_frames from different clips of the same identity (the same clip if it has one)."""
        n = self.pol["style_frames"]
        styles = [s for s, idx in self.by_style.items() if any(len(self.items[i].states) >= n for i in idx)]
        if len(styles) < 2:
            raise ValueError("style training needs at least two identities with clips ≥ style_frames long")
        chosen = self.rng.choice(styles, size=min(batch, len(styles)), replace=False)
        a, b, ids = [], [], []
        for s in chosen:
            idx = [i for i in self.by_style[s] if len(self.items[i].states) >= n]
            i, j = (self.rng.choice(idx, 2, replace=False) if len(idx) > 1 else (idx[0], idx[0]))
            a.append(self._window(self.items[i].states, n))
            b.append(self._window(self.items[j].states, n))
            ids.append(s)
        return {"a": torch.from_numpy(np.stack(a)), "b": torch.from_numpy(np.stack(b)),
                "ids": torch.tensor(ids)}

    def _window(self, states, n):
        s = int(self.rng.integers(0, len(states) - n + 1))
        return states[s : s + n]

    def style_windows(self, item: int, k: int) -> np.ndarray:
        """(k, style_frames, C) windows of one clip (edge-padded when shorter) for precomputing style codes."""
        st = self.items[item].states
        n = self.pol["style_frames"]
        if len(st) < n:
            st = np.concatenate([st, np.repeat(st[-1:], n - len(st), axis=0)])
        starts = np.linspace(0, len(st) - n, k).astype(int)
        return np.stack([st[s : s + n] for s in starts])

    # -- denoiser batches --

    def policy_batch(self, batch: int, evidence_prob: float, recognised_prob: float = 0.0) -> dict[str, torch.Tensor]:
        """Denoiser training windows. Evidence (with probability ``evidence_prob``) is the clip's exact phones
        corrupted by simulate_recognizer, or, with probability ``recognised_prob`` when the clip has them, the
        phones the runtime's recogniser actually heard (model.recognised)."""
        h, t_o, margin = self.pol["horizon"], self.pol["past_frames"], self.pol["mel_margin"]
        stride = self.cfg["model"]["audio_stride"]
        mel, labels, valid, x0, past, style, emo, evid, lo, hi, w = ([] for _ in range(11))
        m_len = max(features.mel_window(t, h, margin, stride)[1] for t in range(6))  # the pattern repeats every 6
        for i in self.rng.choice(len(self.items), size=batch, p=self.weights):
            p = self.items[i]
            t = int(self.rng.integers(0, len(p.states) - h + 1))
            x0.append(p.states[t : t + h])
            hist = p.states[max(0, t - t_o) : t]
            if len(hist) < t_o:
                pad = p.states[:1] if len(hist) == 0 else hist[:1]
                hist = np.concatenate([np.repeat(pad, t_o - len(hist), axis=0), hist])
            past.append(hist)
            m0, _ = features.mel_window(t, h, margin, stride)
            mel.append(_crop(p.mel, m0, m_len, SILENCE_MEL))
            # Phone targets on the encoder grid: the label at each encoder frame's centre mel frame.
            lab = _crop(p.labels[:, None], m0, m_len, 0)[:, 0]
            labels.append(lab[stride // 2 :: stride])
            v = np.zeros(m_len, bool)
            a, b = max(0, -m0), min(m_len, len(p.mel) - m0)
            v[a + margin // 2 : b - margin // 2] = True  # phone loss away from the window edges only
            valid.append(v[stride // 2 :: stride])
            lo_i, hi_i, w_i = features.model_frame_interp(h, m_len // stride, start=t, stride=stride,
                                                          offset=m0 // stride)
            lo.append(lo_i)
            hi.append(hi_i)
            w.append(w_i)
            codes = self.style_codes[self._style_source(i)] if self.style_codes is not None else None
            style.append(codes[self.rng.integers(len(codes))] if codes is not None
                         else np.zeros(self.cfg["model"]["style_dim"], np.float32))
            emo.append(p.emotion)
            ev = np.zeros((h, features.NUM_PHONES + 1), np.float32)
            if self.rng.random() < evidence_prob:
                if recognised_prob > 0 and p.recognised is not None and self.rng.random() < recognised_prob:
                    segs = p.recognised
                else:
                    segs = simulate_recognizer(p.phones, self.rng)
                ev[:, :-1] = features.phone_frames(segs, h, spec.MODEL_FPS, t)
                ev[:, -1] = 1.0
            evid.append(ev)
        return {
            "mel": torch.from_numpy(np.stack(mel)), "labels": torch.from_numpy(np.stack(labels)),
            "valid": torch.from_numpy(np.stack(valid)), "x0": torch.from_numpy(np.stack(x0)),
            "past": torch.from_numpy(np.stack(past)), "style": torch.from_numpy(np.stack(style)),
            "emotion": torch.from_numpy(np.stack(emo)), "evidence": torch.from_numpy(np.stack(evid)),
            "lo": torch.from_numpy(np.stack(lo)), "hi": torch.from_numpy(np.stack(hi)),
            "w": torch.from_numpy(np.stack(w)),
        }

    def _style_source(self, i: int) -> int:
        """Another clip of the same identity (so the code cannot leak this clip's exact motion), else this one."""
        same = self.by_style[self.items[i].style_index]
        others = [j for j in same if j != i]
        return int(self.rng.choice(others)) if others else i


def _crop(x: np.ndarray, start: int, length: int, fill) -> np.ndarray:
    out = np.full((length,) + x.shape[1:], fill, dtype=x.dtype)
    a, b = max(0, start), min(len(x), start + length)
    if b > a:
        out[a - start : b - start] = x[a:b]
    return out


# --- non-speech: music and noise must give a calm face, not chatter ------------------------------------------------

def _music(n: int, rng: np.random.Generator) -> np.ndarray:
    """Chords of harmonic notes with vibrato and occasional percussive noise bursts."""
    rate = spec.SAMPLE_RATE
    out = np.zeros(n, np.float64)
    t0 = 0
    while t0 < n:
        dur = int(rng.uniform(0.15, 1.0) * rate)
        t = np.arange(min(dur, n - t0)) / rate
        env = np.minimum(1.0, t / 0.01) * np.exp(-t * rng.uniform(0.5, 4.0))
        for _ in range(int(rng.integers(1, 4))):
            f0 = 110.0 * 2 ** (rng.integers(0, 30) / 12)
            vib = 1 + 0.005 * np.sin(2 * np.pi * rng.uniform(4, 7) * t)
            for k in range(1, 8):
                if k * f0 < 7000:
                    out[t0 : t0 + len(t)] += env * np.sin(2 * np.pi * k * f0 * vib * t) / k ** rng.uniform(1, 2)
        if rng.random() < 0.4:
            out[t0 : t0 + min(len(t), 1600)] += rng.standard_normal(min(len(t), 1600)) * np.exp(
                -np.arange(min(len(t), 1600)) / 300.0)
        t0 += dur
    return out


def nonspeech_clips(styles: dict[str, dict], n: int, seconds: float, seed: int) -> list[Clip]:
    """``n`` clips of music or noise with no speech, each performed by the teacher over silence in the style of
    one identity (``styles``: style_id → SpeakerStyle dict), so the mouth stays closed and relaxed."""
    from facepolicy.core import teacher
    from facepolicy.core.audio import normalise_loudness
    from facepolicy.core.teacher import SpeakerStyle

    rng = np.random.default_rng(seed)
    ids = sorted(styles)
    out = []
    size = int(seconds * spec.SAMPLE_RATE)
    for k in range(n):
        kind = ("music", "white", "brown", "hum")[k % 4]
        if kind == "music":
            x = _music(size, rng)
        elif kind == "white":
            x = rng.standard_normal(size)
        elif kind == "brown":
            x = np.cumsum(rng.standard_normal(size))
            x -= np.convolve(x, np.ones(400) / 400, mode="same")
        else:
            t = np.arange(size) / spec.SAMPLE_RATE
            x = sum(np.sin(2 * np.pi * 50 * h * t) / h for h in range(1, 6)) + 0.1 * rng.standard_normal(size)
        x = normalise_loudness((x / (np.abs(x).max() + 1e-9) * rng.uniform(0.05, 0.9)).astype(np.float32),
                               spec.SAMPLE_RATE)
        style_id = ids[k % len(ids)]
        style = SpeakerStyle.from_dict(styles[style_id])
        phones = [PhoneSegment("sil", 0.0, seconds)]
        states = teacher.animate_phones(phones, x, style=style, seed=seed + k, duration=seconds).values
        out.append(Clip(x, phones, states, style_id, f"nonspeech:{kind}", "nonspeech", style.emotion,
                        style.emotion_intensity, f"nonspeech-{k:04d}", "train", {"style": styles[style_id]}))
    return out
