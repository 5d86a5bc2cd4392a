"""The live stream: push audio chunks of any size, pull face frames at a fixed, stated latency.

The Neural engine's receding horizon runs causally: model frame k is planned as soon as the audio reaches
(k + LOOKAHEAD) / MODEL_FPS seconds. Each plan denoises a horizon that starts at k (NeuralPolicy.plan, the offline
sampler's own plan), hearing the audio so far, and executes its first frame; the next plan starts from the frames
executed before it. With phone evidence (the default), each plan is conditioned on the phones pocketsphinx has heard
so far (core.stream_evidence), steered toward the Phonetic engine's mouth for them with the jaw floor in their vowels,
and the lips seal over their p/b/m, as the offline accurate mode does (policy.sample_with_evidence).

Consecutive plans hear the newest phones differently (the recogniser revises its last phones as audio comes), and a
frame from one plan alone trembles with them. So, as the offline sampler fades each plan in over the one before when
there is phone evidence, a frame's articulation is then its plan's first frame blended with the previous plan's
prediction of it (core.smoothing.blend_plans). In both modes it is then lightly smoothed (ARTICULATION_SMOOTHING,
centred, so a frame leaves SMOOTH frames after it is planned); then, as offline, the lips seal over every p/b/m that
a plan covering the frame heard (plans k - 1, k and k + 1) in the audio the recogniser had decoded for it, so a
closure one plan heard is not blended away: those
of plan k and of the newest plan k + 1 as heard, those of plan k - 1 (the least audio) only where the encoder's
newest probabilities still hear a bilabial (BILABIAL_EVIDENCE in one of its frames) — a p/b/m the recogniser has
revised away since with no closure in the audio (a dh heard as b for a plan) is not sealed.

Latency: a frame is given out once the audio reaches LATENCY = (LOOKAHEAD + SMOOTH) / MODEL_FPS = 100 ms past it
(at other frame rates, a frame between two model frames also waits for the later one). Memory does not grow with
the session: audio, phones, probabilities and states are kept for a few seconds only.
"""

from __future__ import annotations

import math

import numpy as np

from . import features, spec
from .audio import loudness_gain
from .errors import FacePolicyError
from .performer_brows import frame_features
from .phones import BILABIALS, PhoneSegment
from .phonetic import phonetic_prior_take
from .policy import (
    NeuralPolicy,
    SampleSettings,
    prior_hold,
    seal_bilabials,
    smooth_articulation,
    vowel_mask,
)
from .prosody_stream import ProsodyStream
from .ps_native import AlignerMissing
from .sampler import ARTICULATION
from .second_opinion import BILABIAL_EVIDENCE
from .smoothing import blend_plans
from .straighten import LiveStraightener, frame_loudness
from .stream_evidence import PhoneProbs, PhoneStream, window_evidence

LOOKAHEAD = 2  # model frames of audio each plan hears past the frame it executes
SMOOTH = 1  # model frames each side of the centred articulation smoothing
LATENCY = (LOOKAHEAD + SMOOTH) / spec.MODEL_FPS
HISTORY = 4.0  # seconds of phones and audio before a plan that its evidence and prior see
_HALF_WINDOW = spec.SAMPLE_RATE // 50  # 20 ms: a frame's loudness window each side (core.pitch.rms_envelope's 40 ms)
_GRID = spec.SAMPLE_RATE // 10  # 0.1 s = 3 model frames = 10 mel frames: audio cut here keeps every grid whole
_GRID_FRAMES = spec.MODEL_FPS // 10
_CONTEXT = 0.6  # seconds of audio before a plan that the audio encoder reads (its mel margin is 0.4 s)
_ENCODER_HOP = features.HOP  # samples per mel frame


def _decoded_closures(phones: list[PhoneSegment], decoded: float) -> list[PhoneSegment]:
    """``phones`` with a p/b/m that runs past ``decoded`` (the end of the audio the recogniser has decoded, the
    phones' time) cut there: its continuation into the undecoded tail tells the plans that speech goes on, but the
    lips are sealed only over what was heard (sealing the tail closed the vowel after it)."""
    return [PhoneSegment(q.phone, q.start, decoded) if q.phone in BILABIALS and q.start < decoded < q.end else q
            for q in phones]


def _on_grid(frame: int) -> int:
    """The latest model frame on the 0.1 s grid at or before ``frame`` (never below 0)."""
    return max(0, _GRID_FRAMES * (frame // _GRID_FRAMES))


class Loudness:
    """core.audio.normalise_loudness as the audio comes: the gain that puts the active part of the last WINDOW
    seconds at TARGET_RMS_DB (at most MAX_GAIN_DB, none over silence), lowered so no sample there passes 0.99."""

    WINDOW = 30.0
    BLOCK = spec.SAMPLE_RATE // 100  # 10 ms, as offline

    def __init__(self) -> None:
        self.power = np.zeros(0)  # mean square of each finished block, newest last
        self.peak = np.zeros(0)  # largest |sample| of each finished block
        self._rest = np.zeros(0, np.float32)

    def push(self, x: np.ndarray) -> None:
        x = np.concatenate([self._rest, x])
        n = len(x) // self.BLOCK
        blocks = x[: n * self.BLOCK].reshape(n, self.BLOCK).astype(np.float64)
        self._rest = x[n * self.BLOCK :]
        keep = int(self.WINDOW * 100)
        self.power = np.concatenate([self.power, np.mean(blocks * blocks, axis=1)])[-keep:]
        self.peak = np.concatenate([self.peak, np.abs(blocks).max(axis=1, initial=0.0)])[-keep:]

    @property
    def gain(self) -> float:
        gain = loudness_gain(self.power, float(self.peak.max(initial=0.0)))
        return 1.0 if gain is None else gain


class _FrameRate:
    """Model frames (MODEL_FPS) → frames at ``fps`` as FaceTrack.resample makes them, given out as soon as the model
    frames each needs exist."""

    def __init__(self, fps: float):
        self.fps = float(fps)
        self.ratio = spec.MODEL_FPS / self.fps
        self.frames: dict[int, np.ndarray] = {}  # the last two model frames by index
        self.n_in = 0
        self.n_out = 0

    def push(self, frame: np.ndarray) -> list[np.ndarray]:
        self.frames[self.n_in] = frame
        self.frames.pop(self.n_in - 2, None)
        self.n_in += 1
        out = []
        while True:
            pos = self.n_out * self.ratio
            lo = int(math.floor(pos))
            if lo + (pos > lo) >= self.n_in:
                return out
            out.append(self._frame(pos, lo, lo + (pos > lo)))

    def finish(self, total: int) -> list[np.ndarray]:
        """The frames up to ``total`` in all, the last model frame held past the end."""
        out = []
        while self.n_out < total:
            pos = min(self.n_out * self.ratio, self.n_in - 1)
            lo = int(math.floor(pos))
            out.append(self._frame(pos, lo, min(lo + 1, self.n_in - 1)))
        return out

    def _frame(self, pos: float, lo: int, hi: int) -> np.ndarray:
        self.n_out += 1
        a, b = self.frames[lo], self.frames[hi]
        w = np.float32(pos - lo)
        return a + w * (b - a)  # a exactly where a == b, as FaceTrack.resample


class FaceStream:
    """Audio in, face frames out, as the audio comes (see the module docstring).

    ``push(samples)``: 16 kHz mono float samples of any level (the stream sets the loudness as load_audio does, from
    the last seconds); ``pull()``: the (frames, NUM_CHANNELS) frames at ``fps`` ready since the last pull;
    ``finish()``: the frames still held by the look-ahead, as if the audio ended in silence. ``evidence``: hear
    phones with pocketsphinx (without it, or without pocketsphinx, the model listens alone; ``warnings`` says why).
    """

    def __init__(self, policy: NeuralPolicy, settings: SampleSettings | None = None, style: np.ndarray | None = None,
                 emotion: np.ndarray | None = None, fps: float = spec.MODEL_FPS, evidence: bool = True):
        if not (math.isfinite(fps) and fps > 0):
            raise FacePolicyError(f"the frame rate must be positive, got {fps}")
        self.policy, self.settings = policy, settings or SampleSettings()
        self.style, self.emotion = style, emotion
        self.fps = float(fps)
        self.warnings: list[str] = []
        self.phones = self.probs = None
        if evidence:
            try:
                self.phones = PhoneStream()
                self.probs = PhoneProbs(features.MEL_RATE / policy.audio_stride)
            except AlignerMissing as exc:
                self.warnings.append(f"{exc}, so the live face listens to the audio alone")
        self.loudness = Loudness()
        # A fine-tuned performer's brows from the voice's pitch and loudness (core.performer_brows), as offline.
        self.brows = policy.files.brows
        self.prosody = None
        if self.brows is not None:
            if max(self.brows.taps) > LOOKAHEAD + SMOOTH - 2:
                raise FacePolicyError("this model's brow layer needs more look-ahead than the live stream has")
            self.prosody = ProsodyStream(keep=-min(self.brows.taps) + 64, reference_f0=self.brows.reference_f0)
        self._audio = np.zeros(0, np.float32)  # raw samples from absolute sample _base
        self._base = 0
        self.samples_in = 0
        self._heard = 0  # samples the loudness and the plans have heard
        self._fed = 0  # samples the phone recogniser has heard
        self._k = 0  # next model frame to plan
        self._past = np.zeros((policy.past_frames, spec.NUM_CHANNELS), np.float32)  # normalised, last executed
        # Per plan k not yet forgotten: its (2, NUM_CHANNELS) predictions of frames k and k + 1, and its evidence
        # with the time its phones are relative to (None without phones).
        self._planned: dict[int, np.ndarray] = {}
        self._heard_by: dict[int, tuple | None] = {}
        self._blended: dict[int, np.ndarray] = {}  # frames blended from their two plans, not yet smoothed
        self._emitted = 0  # model frames given out
        # The newest plan's evidence, the time its phones are relative to, and the end of the decoded audio.
        self._alignment = None
        self._heard_before: list = []  # the phones the previous plan heard
        self._rate = _FrameRate(fps)
        self._taut = LiveStraightener()  # the lips pulled as taut as a stream can (core.straighten)
        self._ready: list[np.ndarray] = []
        self._finished = False

    @property
    def evidence(self) -> bool:
        return self.phones is not None

    @property
    def frames_out(self) -> int:
        """Frames at ``fps`` given out so far (pulled or waiting to be)."""
        return self._rate.n_out

    def latency(self) -> float:
        """Seconds of audio past a frame's time that the stream waits for before giving it out (the longest, at a
        frame rate that puts frames between model frames)."""
        between = not float(spec.MODEL_FPS / self.fps).is_integer()
        return LATENCY + between / spec.MODEL_FPS

    def push(self, samples: np.ndarray) -> None:
        """Take the next audio; plans every frame the look-ahead now allows. Non-finite samples count as silence.
        Each plan hears exactly the audio up to its look-ahead, so the frames do not depend on how the audio was
        cut into chunks."""
        if self._finished:
            raise FacePolicyError("the live stream has finished; start a new one")
        x = np.nan_to_num(np.asarray(samples, np.float32).reshape(-1), nan=0.0, posinf=0.0, neginf=0.0)
        if not len(x):
            return
        self._audio = np.concatenate([self._audio, x])
        self.samples_in += len(x)
        while self._needed(self._k) <= self.samples_in:
            self._hear(self._needed(self._k))
            self._plan(self._k)
            self._give_out(self._k - 1 - SMOOTH)
        self._forget()

    def pull(self) -> np.ndarray:
        ready, self._ready = self._ready, []
        return np.stack(ready) if ready else np.zeros((0, spec.NUM_CHANNELS), np.float32)

    def finish(self) -> np.ndarray:
        """Plan and give out every frame the audio covers (round(duration × fps)); returns what pull would have, plus
        those frames. The stream takes no more audio afterwards."""
        if not self._finished:
            self._finished = True
            n = features.n_model_frames(self.samples_in) if self.samples_in else 0
            self._hear(self.samples_in, whole_blocks=False)
            if self.prosody is not None:
                self.prosody.finish()
            while self._k < n:
                self._plan(self._k)
            self._give_out(n - 1, last=n - 1)
            # As many frames as the audio lasts at this rate (at 60 fps that may be one more than twice the model's).
            self._ready += self._rate.finish(features.n_model_frames(self.samples_in, self.fps) if n else 0)
            if self.phones is not None:
                self.phones.close()
        return self.pull()

    # --- planning ----------------------------------------------------------------------------------------------

    @staticmethod
    def _needed(k: int) -> int:
        """Samples the plan of model frame k waits for."""
        return int(math.ceil((k + LOOKAHEAD) * spec.SAMPLE_RATE / spec.MODEL_FPS))

    def _hear(self, upto: int, whole_blocks: bool = True) -> None:
        """Let the loudness and the phone recogniser hear the audio up to sample ``upto`` (the recogniser in whole
        10 ms blocks on the take's grid unless ``whole_blocks`` is False, so what it hears never depends on the
        chunks the audio came in)."""
        self.loudness.push(self._audio[self._heard - self._base : upto - self._base])
        if self.prosody is not None:
            self.prosody.push(self._audio[self._heard - self._base : upto - self._base])
        self._heard = upto
        if self.phones is not None:
            end = upto - upto % Loudness.BLOCK if whole_blocks else upto
            if end > self._fed:
                self.phones.push(self._condition(self._audio[self._fed - self._base : end - self._base]))
                self._fed = end

    def _condition(self, x: np.ndarray) -> np.ndarray:
        """Samples at the loudness heard so far (core.audio.normalise_loudness's rule, from the last seconds)."""
        return np.clip(x * np.float32(self.loudness.gain), -1.0, 1.0)

    def _samples(self, first_frame: int) -> np.ndarray:
        """The audio heard from model frame ``first_frame`` (on the 0.1 s grid) on, at the current loudness."""
        a = first_frame * _GRID // _GRID_FRAMES - self._base
        return self._condition(self._audio[max(0, a) : self._heard - self._base])

    def _plan(self, k: int) -> None:
        p = self.policy
        h = p.horizon
        first = _on_grid(k - int(_CONTEXT * spec.MODEL_FPS))
        samples = self._samples(first)
        audio, logits, e0 = p.encode(samples, k - first, h)
        evidence = np.zeros((h, features.NUM_PHONES + 1), np.float32)
        prior = None
        if self.phones is not None:
            hop = _ENCODER_HOP * p.audio_stride
            offset = first * _GRID // _GRID_FRAMES // hop  # encoder frames before ``first``
            self.probs.update(offset + e0, logits, offset + int(math.ceil(len(samples) / hop)))
            evidence, prior = self._evidence(k)
        x = p.plan([k], audio[None], evidence[None], self._past[None], self.settings, self.style, self.emotion,
                   None if prior is None else prior[None], has_past=k > 0)[0]
        self._past = np.concatenate([self._past[1:], x[:1]])
        y = x[:2] * p.state_std + p.state_mean
        y[:, : spec.NUM_ARKIT] = np.clip(y[:, : spec.NUM_ARKIT], 0.0, 1.0)
        self._planned[k] = y
        self._heard_by[k] = self._alignment
        self._k = k + 1

    def _evidence(self, k: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The plan's phone evidence (horizon, NUM_PHONES + 1) and normalised prior with the jaw floor's weight and
        how much the prior holds (horizon, NUM_CHANNELS + 2), or None without phones or prior weight, from the last
        HISTORY seconds."""
        p, h = self.policy, self.policy.horizon
        first = _on_grid(k - int(HISTORY * spec.MODEL_FPS))
        t0, edge = first / spec.MODEL_FPS, self._heard / spec.SAMPLE_RATE
        heard = self.phones.phones()
        result = window_evidence(heard, self.probs, t0, edge, self._heard_before)
        self._heard_before = heard
        self._alignment = (result, t0, heard[-1][0].end if heard else t0)
        at = k - first  # the plan's first frame in the window
        evidence = np.zeros((h, features.NUM_PHONES + 1), np.float32)
        evidence[:, :-1] = features.phone_frames(result.phones, h, spec.MODEL_FPS, at)
        evidence[:, -1] = 1.0
        if self.settings.prior_weight <= 0 or not result.phones:
            return evidence, None
        take = phonetic_prior_take(result, self._samples(first), (at + h) / spec.MODEL_FPS)
        vowels = vowel_mask(result.phones, at + h, confidence=result.confidence)
        floor = vowels[at:].astype(np.float32) if self.settings.vowel_floor else np.zeros(h, np.float32)
        hold = prior_hold(result, vowels)[at:].astype(np.float32)
        prior = (np.asarray(take[at : at + h], np.float32) - p.state_mean) / p.state_std
        return evidence, np.concatenate([prior, floor[:, None], hold[:, None]], axis=1)

    # --- giving frames out ---------------------------------------------------------------------------------------

    def _give_out(self, upto: int, last: int | None = None) -> None:
        """Blend, smooth, seal and hand on model frames up to ``upto``; ``last``: the final frame (held past the
        end)."""
        while self._emitted <= upto:
            j = self._emitted
            top = self._k - 1 if last is None else last
            rows = np.stack([self._blend(min(max(i, 0), top)) for i in range(j - SMOOTH, j + SMOOTH + 1)])
            frame = smooth_articulation(rows)[SMOOTH]
            for k in range(j - 1, j + 2):
                if self._heard_by.get(k) is not None:
                    frame = self._seal(frame, j, self._heard_by[k], confirm=k < j)
            frame = self._taut.step(frame, self._frame_loudness(j))
            if self.brows is not None:
                frame = self.brows.apply(frame[None].copy(), frame_features(self.prosody, j, self.brows.taps))[0]
            self._ready += self._rate.push(frame)
            for old in (self._planned, self._heard_by, self._blended):
                old.pop(j - SMOOTH - 1, None)
            self._emitted += 1

    def _frame_loudness(self, j: int) -> float:
        """Model frame ``j``'s loudness by the offline function (core.straighten.frame_loudness) on the raw audio
        around it (the stream has heard at least its look-ahead beyond it; before the stream's start, silence)."""
        centre = j * spec.SAMPLE_RATE // spec.MODEL_FPS - self._base
        a = centre - _HALF_WINDOW
        x = self._audio[max(0, a) : max(0, centre + _HALF_WINDOW)]
        if a < 0:
            x = np.concatenate([np.zeros(-a, np.float32), x])
        if len(x) <= _HALF_WINDOW:
            return 0.0
        return float(frame_loudness(x, spec.SAMPLE_RATE / _HALF_WINDOW)[1])  # the slice's middle: its frame 1

    def _blend(self, i: int) -> np.ndarray:
        """Model frame ``i``: plan i's first frame with plan i - 1's prediction of it blended into the articulation
        (core.smoothing.blend_plans; the rest of the face is plan i's). Only with phone evidence, as the offline
        sampler fades plans (SampleSettings.plan_blend): without it, nothing restores the brief closures of the
        model's own that a blend would soften."""
        if i not in self._blended:
            previous = self._planned[i - 1][1] if i - 1 in self._planned and self.evidence else None
            self._blended[i] = blend_plans(self._planned[i][0], previous, columns=ARTICULATION)
        return self._blended[i]

    def _seal(self, frame: np.ndarray, j: int, heard: tuple, confirm: bool = False) -> np.ndarray:
        """Model frame ``j`` with the lips sealed over the bilabials of one plan's evidence ``heard`` (its Alignment,
        the time its phones are relative to and the end of the decoded audio; seal_bilabials at the frame's time).
        ``confirm``: only over those in which the encoder, as the newest plan heard it, still hears a bilabial (see
        the module docstring)."""
        result, t0, decoded = heard
        t = j / spec.MODEL_FPS - t0
        near = [PhoneSegment(q.phone, q.start - t, q.end - t) for q in _decoded_closures(result.phones, decoded - t0)
                if q.end > t - 1.0 and q.start < t + 1.0
                and not (confirm and q.phone in BILABIALS and not self._confirmed(q, t0))]
        return seal_bilabials(frame[None].copy(), near, in_place=True)[0]

    def _confirmed(self, q: PhoneSegment, t0: float) -> bool:
        """Whether the encoder's newest probabilities reach BILABIAL_EVIDENCE in a frame of ``q`` (times relative to
        ``t0``)."""
        rate = self.probs.frame_rate
        a = int(math.floor((q.start + t0) * rate))
        window = self.probs.window(a, max(1, int(math.ceil((q.end + t0) * rate)) - a))
        return bool(window[:, :3].sum(axis=1).max() >= BILABIAL_EVIDENCE)

    def _forget(self) -> None:
        """Drop the audio no later plan reads (kept from the older of the encoder's context and HISTORY)."""
        keep = _on_grid(self._k - int(max(HISTORY, _CONTEXT) * spec.MODEL_FPS) - _GRID_FRAMES)
        a = keep * _GRID // _GRID_FRAMES - self._base
        if a > spec.SAMPLE_RATE:  # in steps of at least a second, so the buffer is not copied at every frame
            self._audio = self._audio[a:]
            self._base += a
