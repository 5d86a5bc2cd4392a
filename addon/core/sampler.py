"""The Neural engine's sampler: a diffusion policy over the exported ONNX networks (numpy + onnxruntime).

Audio → log-mel (core.features) → audio encoder → per-frame features at the model rate. The audio is cut into
overlapping *streams*; every stream runs the receding horizon (denoise an H-frame chunk with few DDIM steps,
execute the first A frames, re-plan from them), and the streams of a group (up to MAX_GROUP_STREAMS, about 14 s
of audio) advance together as ONE batch, so each ONNX call serves many windows while memory stays bounded on
long audio. Streams are cross-faded where they overlap. Noise is keyed by absolute frame and seed, so a result
does not depend on how the streams were batched.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import features, spec
from .cpu import cores
from .errors import Cancelled, FacePolicyError
from .facetrack import FaceTrack
from .later_sessions import LaterSessions
from .listener import AUDIO_OUTPUTS, BilabialListener, EncodedAudio, ear_file
from .model_files import create_session, read_model_files
from .noise import NoiseBlocks, frame_noise  # noqa: F401 - frame_noise: core.policy's name for it
from .spec import EMOTIONS

log = logging.getLogger("facepolicy")

# Positions of the presence flags in the denoiser's ``cond`` input; emotion × intensity follows them.
CFG_AXES = {"audio": 0, "style": 1, "past": 2}
NUM_FLAGS = len(CFG_AXES)
# Most streams encoded and denoised together (about 14 s of audio): the ONNX sessions' working memory grows with
# the group, and results do not depend on it (noise is keyed by absolute frame).
MAX_GROUP_STREAMS = 8
# Mel frames per call when the audio encoder listens for phones (10 s): no longer than a group's audio, so the
# session's working memory is sized by the sampler; the probabilities do not depend on it.
LISTENER_BLOCK = 1000
# Most groups sampled at once (one per core, core.cpu, up to this): each holds about 16 MB while it renders its
# window of the phonetic prior, so the peak stays bounded on a machine with many cores.
MAX_GROUPS_AT_ONCE = 4

# --- DDIM: shared with model/diffusion.py (works on numpy arrays and torch tensors alike) ------------------------

def ddim_timesteps(train_steps: int, steps: int) -> list[tuple[int, int]]:
    """(t, t_prev) pairs from the last training step down to -1 (clean), evenly spaced."""
    steps = max(1, min(steps, train_steps))
    ts = np.unique(np.round(np.linspace(train_steps - 1, 0, steps)).astype(int))[::-1]
    return [(int(t), int(ts[i + 1]) if i + 1 < len(ts) else -1) for i, t in enumerate(ts)]


def ddim_update(x, x0, ab_t: float, ab_prev: float):
    """Deterministic DDIM (η=0) step from x_t to x_{t_prev} given the predicted clean sample x0."""
    eps = (x - (ab_t ** 0.5) * x0) / ((1.0 - ab_t) ** 0.5)
    return (ab_prev ** 0.5) * x0 + ((1.0 - ab_prev) ** 0.5) * eps


def _in_order(items, work: Callable, pool: ThreadPoolExecutor | None, ahead: int):
    """``work(item)`` for each of ``items``, yielded in order; with a ``pool``, up to ``ahead`` are handed to it at
    once (queued, running or done and not yet yielded), so a thread that finishes early takes the next item while
    the one before it still runs."""
    if pool is None:
        for item in items:
            yield work(item)
        return
    todo = iter(items)
    pending = deque(pool.submit(work, item) for item in itertools.islice(todo, ahead))
    while pending:
        result = pending.popleft().result()
        item = next(todo, None)
        if item is not None:
            pending.append(pool.submit(work, item))
        yield result


def emotion_vector(emotion: str, intensity: float) -> np.ndarray:
    """(len(EMOTIONS),) one-hot × intensity; neutral or zero intensity means "no emotion asked for" (zeros)."""
    if emotion not in EMOTIONS:
        raise FacePolicyError(f"unknown emotion {emotion!r}; choose one of: {', '.join(EMOTIONS)}")
    v = np.zeros(len(EMOTIONS), np.float32)
    if emotion != "neutral" and intensity > 0:
        v[EMOTIONS.index(emotion)] = float(np.clip(intensity, 0.0, 1.0))
    return v


# The channels that articulate speech, which the phonetic prior guides; expression (smile, frown, dimple), the
# jaw's and mouth's sideways motion and the cheeks stay the model's and the style's.
ARTICULATION = [spec.CHANNEL_INDEX[n] for n in (
    "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "mouthStretchLeft", "mouthStretchRight", "tongueOut")]
JAW = spec.CHANNEL_INDEX["jawOpen"]
_JAW_IN_TARGET = ARTICULATION.index(JAW)  # its column among the prior's articulation channels


class _CancelWatch:
    """Sets RunOptions.terminate when ``cancel`` fires, so a long ONNX call stops promptly."""

    def __init__(self, cancel: threading.Event | None):
        import onnxruntime as ort

        self.run_options = ort.RunOptions()
        self.cancel = cancel
        self._abandoned = False
        self._done = threading.Event()
        self._thread = None
        if cancel is not None:
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()

    def _watch(self):
        # It sleeps on _done, so close() wakes it at once (it slept on the cancel event before: closing waited up
        # to 0.05 s, 0.025 s of every take on average); a cancel is seen within 0.05 s.
        while not self._done.wait(0.05):
            if self.cancel.is_set():
                self.run_options.terminate = True
                return

    def check(self):
        if self._abandoned or self.cancel is not None and self.cancel.is_set():
            raise Cancelled("cancelled")

    def abandon(self):
        """Stop the ONNX calls still running and every later check (the caller gave up on the result)."""
        self._abandoned = True
        self.run_options.terminate = True

    def close(self):
        self._done.set()
        if self._thread is not None:
            self._thread.join()


@dataclass
class SampleSettings:
    """How NeuralPolicy.sample samples one take."""

    seed: int = 0
    style_scale: float = 1.0  # classifier-free guidance on style: 0 neutral, 1 as trained, >1 exaggerated
    audio_scale: float = 1.0  # classifier-free guidance on audio: >1 articulates more strongly (one more pass)
    steps: int | None = None  # DDIM steps (model default when None)
    streams_per_batch: int | None = None  # None: all streams of a group in one call
    # Frames over which each plan fades in over the previous one. None: all the frames they share when there is
    # phone evidence (the lips are sealed over its p/b/m afterwards), none without (fading there would soften the
    # model's own brief closures, which nothing restores).
    plan_blend: int | None = None
    # How strongly each denoising step pulls the articulation channels toward a phonetic prior when one is given
    # (the Phonetic engine's mouth for the same evidence): 0 ignores it, 1 replaces the model's mouth with it.
    prior_weight: float = 0.25
    # With a prior (sample_with_evidence): inside the evidence's vowels (±1 frame, ramped; not those the second
    # opinion calmed because the audio encoder hears silence there) the jaw is never less open than the prior's,
    # because the model alone under-opens short unstressed vowels on voices it was not trained on.
    vowel_floor: bool = True


class NeuralPolicy:
    """The three ONNX networks and the sampler. Thread-safe for concurrent ``sample`` calls."""

    style_sess = LaterSessions.Slot(0)
    denoiser_sess = LaterSessions.Slot(1)
    provider = LaterSessions.Slot(2)  # "cuda" when every network runs there, else "cpu"

    def __init__(self, root: Path | str | None = None, device: str = "auto", threads: int = 0,
                 verify: bool = True):
        self.files = read_model_files(root, verify)
        m = self.files.manifest
        self.audio_sess, provider = create_session(self.files.network("audio_encoder"), device, threads)
        self._later = LaterSessions(self.files, device, threads, provider)  # style_sess, denoiser_sess, provider
        p = self.files.policy
        self.horizon = int(p["horizon"])
        self.execute = int(p["execute"])
        self.past_frames = int(p["past_frames"])
        self.stream_frames = int(p["stream_frames"])
        self.overlap = int(p["overlap_frames"])
        self.group_streams = min(int(p.get("group_streams", 64)), MAX_GROUP_STREAMS)
        self.default_steps = int(p["ddim_steps"])
        self.style_frames = int(p["style_frames"])
        self.mel_margin = int(p["mel_margin"])
        self.train_steps = int(m["diffusion"]["steps"])
        self.alphas_cumprod = np.asarray(m["diffusion"]["alphas_cumprod"], np.float64)
        self.state_mean = np.asarray(m["normalisation"]["state_mean"], np.float32)
        self.state_std = np.asarray(m["normalisation"]["state_std"], np.float32)
        self.rest_state = np.asarray(m["normalisation"].get("rest_state", self.state_mean), np.float32)
        self.styles = {k: np.asarray(v, np.float32) for k, v in m.get("styles", {}).items()}
        self.default_style = m.get("default_style")
        self.style_dim = int(m["model"]["style_dim"])
        self.audio_dim = int(m["model"]["audio_dim"])
        self.audio_stride = int(m["model"].get("audio_stride", 1))
        self._listener = None

    def settings(self, **fields) -> SampleSettings:
        """SampleSettings: the folder's defaults (model.json's "sampling", e.g. a fine-tuned model's), then fields."""
        return SampleSettings(**{**self.files.sampling, **fields})

    def listener(self) -> BilabialListener:
        """The audio encoder's phone classifiers as a BilabialListener (the same ONNX session, the model's ear)."""
        if self._listener is None:
            self._listener = BilabialListener(session=self.audio_sess, stride=self.audio_stride, block=LISTENER_BLOCK,
                                              ear=ear_file(self.files))
        return self._listener

    # --- conditions ---------------------------------------------------------------------------------------------

    def style_preset(self, name: str) -> np.ndarray:
        if name not in self.styles:
            known = ", ".join(sorted(self.styles)) or "none"
            raise FacePolicyError(f"unknown style preset {name!r}; valid presets: {known}")
        return self.styles[name]

    def style_from_track(self, track: FaceTrack, source: str = "reference") -> np.ndarray:
        """128-d unit style code of a reference performance (≥ 1 s), averaged over windows of style_frames."""
        t = track.select(spec.CHANNEL_NAMES)
        if t.fps != spec.MODEL_FPS:
            t = t.resample(spec.MODEL_FPS)
        v = t.values
        if len(v) < spec.MODEL_FPS:
            raise FacePolicyError(f'"{source}": a style reference needs at least 1 s of animation, '
                                  f"got {len(v) / spec.MODEL_FPS:.2f} s")
        n = self.style_frames
        if len(v) < n:
            windows = v[None]
        else:
            starts = np.unique(np.linspace(0, len(v) - n, max(1, int(np.ceil(2 * len(v) / n)) - 1)).astype(int))
            windows = np.stack([v[s : s + n] for s in starts])
        (codes,) = self.style_sess.run(None, {"states": windows.astype(np.float32)})
        code = codes.mean(axis=0)
        return (code / max(float(np.linalg.norm(code)), 1e-8)).astype(np.float32)

    def audio_features(self, samples: np.ndarray, start: int, n_frames: int, cancel: _CancelWatch,
                       encoded: EncodedAudio | None = None) -> np.ndarray:
        """(n_frames, D) encoder features for model frames start..start+n_frames (outside the audio: silence).
        ``encoded``: the listener's features of the whole line, used where they cover the frames (the same values
        as encoding them here), so the audio is not encoded twice."""
        if encoded is not None and n_frames > 0:
            # The grid rows these model frames read (model_frame_interp); a window that reaches past the rows the
            # listener kept (past the audio's end) is encoded here whole: a window of another length gives other
            # rounding, and the states are the same bit for bit this way.
            first, last = ((np.array([start, start + n_frames - 1]) * (features.MEL_RATE / spec.MODEL_FPS)
                            - (self.audio_stride - 1) / 2) / self.audio_stride - encoded.first)
            if first >= 0 and np.ceil(last) <= len(encoded.features) - 1:
                return features.to_model_rate(encoded.features, n_frames, start=start, stride=self.audio_stride,
                                              offset=encoded.first)
        return self.encode(samples, start, n_frames, cancel.run_options)[0]

    def encode(self, samples: np.ndarray, start: int, n_frames: int,
               run_options=None) -> tuple[np.ndarray, np.ndarray, int]:
        """One audio-encoder call for model frames start..start+n_frames (outside ``samples``: silence): their
        (n_frames, D) features, the encoder's (frames, NUM_PHONES) phone logits over the whole mel window it read,
        and the index on the encoder's grid of the first of those logits (the live stream hears phones in the
        same call that gives it the features)."""
        m0, m_len = features.mel_window(start, n_frames, self.mel_margin, self.audio_stride)
        mel = features.log_mel(samples, start_frame=m0, n_frames=m_len)
        feat, logits = self.audio_sess.run(AUDIO_OUTPUTS, {"mel": mel[None]}, run_options)
        lo, hi, w = features.model_frame_interp(n_frames, feat.shape[1], start=start, stride=self.audio_stride,
                                                offset=m0 // self.audio_stride)
        w = w[:, None]
        return ((1.0 - w) * feat[0, lo] + w * feat[0, hi]).astype(np.float32), logits[0], m0 // self.audio_stride

    # --- sampling -----------------------------------------------------------------------------------------------

    def sample(self, samples: np.ndarray, settings: SampleSettings | None = None, style: np.ndarray | None = None,
               emotion: np.ndarray | None = None, phones=None, prior: np.ndarray | None = None,
               floor: np.ndarray | None = None, hold: np.ndarray | None = None,
               progress: Callable[[float, str], None] | None = None,
               cancel: threading.Event | None = None, encoded: EncodedAudio | None = None) -> np.ndarray:
        """(N, NUM_CHANNELS) states at MODEL_FPS for 16 kHz ``samples``; N = features.n_model_frames.

        ``style``: a style code (None: no style, the model's average speaker); ``emotion``: emotion_vector();
        ``phones``: phone segments (from a transcript alignment or a recognizer) used as extra evidence; ``prior``:
        (frames, NUM_CHANNELS) states at MODEL_FPS that every denoising step pulls the articulation channels toward,
        by ``settings.prior_weight``: an array, or anything that slices like one (phonetic_prior_take's TeacherTake
        renders each group's window only); ``floor``: 0..1 per frame, how far the jaw is raised to at least the
        prior's; ``hold``: 0..1 per frame, how much the prior and floor act (None: fully; core.neural.prior_hold).
        Long audio runs in groups of streams (MAX_GROUP_STREAMS), so memory beyond the states returned does not grow
        with its length. ``encoded``: the listener's features of these samples (audio_features), if it has them.
        """
        settings = settings or SampleSettings()
        samples = np.asarray(samples, np.float32)
        n = features.n_model_frames(len(samples))
        step = self.stream_frames - self.overlap
        n_streams = max(1, int(np.ceil(max(n - self.overlap, 1) / step)))
        states = np.empty((n, spec.NUM_CHANNELS), np.float32)
        # Streams cross-fade into a running sum over the frames a later group can still reach; the frames before
        # the next group's first stream are final and leave it, so memory does not grow with the audio.
        done = 0
        out = np.zeros((0, spec.NUM_CHANNELS), np.float64)
        wsum = np.zeros((0, 1), np.float64)
        watch = _CancelWatch(cancel)
        if prior is None or float(settings.prior_weight) <= 0 or not len(prior):
            prior = None
        noise = NoiseBlocks(settings.seed)

        def run_group(g0: int) -> tuple[list[int], list[np.ndarray]]:
            """The plans of one group's streams (first stream ``g0``): (their first frames, their states)."""
            watch.check()
            starts = [k * step for k in range(g0, min(n_streams, g0 + self.group_streams))]
            span0 = starts[0]
            span1 = starts[-1] + self._stream_span()
            audio = self.audio_features(samples, span0, span1 - span0, watch, encoded)
            evid = self._evidence(phones, span0, span1 - span0)
            pri = None if prior is None else self._prior_window(prior, floor, hold, span0, span1)
            per_call = settings.streams_per_batch or len(starts)
            ys: list[np.ndarray] = []
            for c0 in range(0, len(starts), per_call):
                ys += self._run_streams(starts[c0 : c0 + per_call], span0, audio, evid, pri, style, emotion,
                                        settings, watch, noise)
            return starts, ys

        # The groups are independent (noise is keyed by absolute frame), so on the CPU one per core (core.cpu, at
        # most MAX_GROUPS_AT_ONCE) is sampled at once, each ONNX call releasing the GIL; they are cross-faded in
        # order, the same states bit for bit as one group after another (bench/bench_neural.py: sampling 60 s took
        # 0.21 s on one core, 0.17 s on two). At most two groups a thread wait their turn, done or not started.
        groups = range(0, n_streams, self.group_streams)
        workers = min(len(groups), cores(), MAX_GROUPS_AT_ONCE) if self.provider == "cpu" else 1
        pool = ThreadPoolExecutor(workers, thread_name_prefix="facepolicy-sample") if workers > 1 else None
        try:
            for starts, ys in _in_order(groups, run_group, pool, 2 * workers):
                reach = min(n, starts[-1] + self.stream_frames)
                out = np.concatenate([out, np.zeros((reach - done - len(out), spec.NUM_CHANNELS))])
                wsum = np.concatenate([wsum, np.zeros((reach - done - len(wsum), 1))])
                for s, y in zip(starts, ys, strict=True):
                    self._accumulate(out, wsum, y, s - done, s // step, n_streams)
                last = starts[-1] // step
                final = n if last == n_streams - 1 else min(n, (last + 1) * step)
                block = (out[: final - done] / np.maximum(wsum[: final - done], 1e-8)).astype(np.float32)
                block[:, : spec.NUM_ARKIT] = np.clip(block[:, : spec.NUM_ARKIT], 0.0, 1.0)
                states[done:final] = block
                out, wsum, done = out[final - done :], wsum[final - done :], final
                if progress is not None:
                    progress(min(1.0, (last + 1) / n_streams), "sampling")
        finally:
            if pool is not None:
                watch.abandon()  # an error or Ctrl-C here: the groups still running stop at their next plan
                pool.shutdown(wait=True, cancel_futures=True)
            watch.close()
        return states

    def _prior_window(self, prior, floor, hold, span0: int, span1: int) -> np.ndarray:
        """(span1 - span0, NUM_CHANNELS + 2) normalised prior states for model frames span0..span1 (its last frame
        repeated past its end), then the jaw floor's weight (``floor``; None: 0) and how much the prior holds
        (``hold``; None: 1). ``prior`` slices like states: an array, or a TeacherTake that renders just the frames
        asked for."""
        idx = np.clip(np.arange(span0, span1), 0, len(prior) - 1)
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        window = (np.asarray(prior[lo:hi], np.float32) - self.state_mean) / self.state_std
        lift, held = np.zeros(hi - lo, np.float32), np.ones(hi - lo, np.float32)
        for column, values in ((lift, floor), (held, hold)):
            if values is not None:
                top = min(len(values), hi)
                column[: max(0, top - lo)] = values[lo:top]
        return np.concatenate([window, lift[:, None], held[:, None]], axis=1)[idx - lo]

    def _stream_span(self) -> int:
        """Frames one stream's plans touch: whole plans of `execute` frames, plus the last plan's horizon."""
        plans = int(np.ceil(self.stream_frames / self.execute))
        return (plans - 1) * self.execute + self.horizon

    def _evidence(self, phones, start: int, n_frames: int) -> np.ndarray:
        ev = np.zeros((n_frames, features.NUM_PHONES + 1), np.float32)
        if phones is not None:
            ev[:, :-1] = features.phone_frames(phones, n_frames, spec.MODEL_FPS, start)
            ev[:, -1] = 1.0
        return ev

    def _run_streams(self, starts, span0, audio, evid, prior, style, emotion, settings, watch,
                     noise: NoiseBlocks | None = None) -> list[np.ndarray]:
        """Receding horizon for several streams at once; returns each stream's stream_frames states (plan)."""
        h, a, c = self.horizon, self.execute, spec.NUM_CHANNELS
        plans = int(np.ceil(self.stream_frames / a))
        blend = settings.plan_blend
        if blend is None:
            blend = h - a if evid[:, -1].any() else 0
        past = np.zeros((len(starts), self.past_frames, c), np.float32)
        executed = np.zeros((len(starts), plans * a + h, c), np.float32)
        for j in range(plans):
            watch.check()
            f0 = [s + j * a for s in starts]
            window = None if prior is None else np.stack([prior[f - span0 : f - span0 + h] for f in f0])
            x = self.plan(f0, np.stack([audio[f - span0 : f - span0 + h] for f in f0]),
                          np.stack([evid[f - span0 : f - span0 + h] for f in f0]), past, settings, style, emotion,
                          window, has_past=j > 0, run_options=watch.run_options, noise=noise)
            if j > 0:
                self._fade_in(x, executed[:, j * a : j * a + h - a], blend)
            executed[:, j * a : j * a + h] = x
            # The next plan starts from the last past_frames executed frames (earlier plans fill in before).
            hist = executed[:, max(0, (j + 1) * a - self.past_frames) : (j + 1) * a]
            past = np.concatenate([np.repeat(hist[:, :1], self.past_frames - hist.shape[1], axis=1), hist], axis=1)
        y = executed[:, : self.stream_frames] * self.state_std + self.state_mean
        return list(y)

    def plan(self, starts: list[int], audio: np.ndarray, evidence: np.ndarray, past: np.ndarray,
             settings: SampleSettings, style: np.ndarray | None = None, emotion: np.ndarray | None = None,
             prior: np.ndarray | None = None, has_past: bool = True, run_options=None,
             noise: NoiseBlocks | None = None) -> np.ndarray:
        """One receding-horizon plan per window, denoised together: (B, horizon, NUM_CHANNELS) normalised states
        for model frames starts[i] .. starts[i] + horizon, from the noise keyed by those absolute frames.

        ``audio``: (B, horizon, audio_dim) encoder features; ``evidence``: (B, horizon, NUM_PHONES + 1) phone
        evidence and its presence flag; ``past``: (B, past_frames, NUM_CHANNELS) normalised executed states
        (``has_past`` False: there are none yet); ``prior``: (B, horizon, NUM_CHANNELS + 2) normalised prior states,
        the jaw floor's weight and how much the prior holds (_prior_window), or None; ``noise``: the take's
        NoiseBlocks (drawn here without).
        Classifier-free guidance runs the conditioned, style-free and (for audio guidance) condition-free passes
        in the same ONNX call, stacked along the batch:
        x0 = u + g_audio·(x0(audio) − u) + g_style·(x0(audio, style) − x0(audio)), u = x0(nothing).
        With a ``prior``, every step's x0 moves its articulation channels toward it by settings.prior_weight, so
        the next step and the next plan's past build on the guided mouth.
        """
        b, h, c = len(starts), self.horizon, spec.NUM_CHANNELS
        steps = ddim_timesteps(self.train_steps, settings.steps or self.default_steps)
        g_style, g_audio = float(settings.style_scale), float(settings.audio_scale)
        has_style = style is not None and g_style != 0.0
        passes = ["full"]  # which conditions each stacked pass keeps
        if has_style and g_style != 1.0 or g_audio != 1.0:
            passes.append("audio")
        if g_audio != 1.0:
            passes.append("none")
        style_in = np.zeros((b, self.style_dim), np.float32)
        cond = np.zeros((b, NUM_FLAGS + len(EMOTIONS)), np.float32)
        cond[:, CFG_AXES["audio"]] = 1.0
        cond[:, CFG_AXES["past"]] = 1.0 if has_past else 0.0
        if has_style:
            style_in[:] = style
            cond[:, CFG_AXES["style"]] = 1.0
            if emotion is not None:
                cond[:, NUM_FLAGS:] = emotion
        full = {"audio": audio, "evidence": evidence, "past": past, "style": style_in, "cond": cond}
        inputs = {k: np.concatenate([self._drop(full, p)[k] for p in passes]) for k in full}
        noise = noise if noise is not None and noise.seed == settings.seed else NoiseBlocks(settings.seed, keep=1)
        x = np.stack([noise.frames(f, h, c) for f in starts])
        target = floor = hold = None
        if prior is not None:
            target, floor, hold = prior[..., ARTICULATION], prior[..., -2], prior[..., -1]
        for t, t_prev in steps:
            xin = np.concatenate([x] * len(passes))
            tt = np.full((len(xin),), float(t), np.float32)
            (out,) = self.denoiser_sess.run(None, {"x": xin, "t": tt, **inputs}, run_options)
            x0 = out[:b]
            if len(passes) > 1:
                x0_audio = out[b : 2 * b]
                x0 = x0_audio + g_style * (x0 - x0_audio) if has_style else x0_audio
                if len(passes) > 2:
                    u = out[2 * b :]
                    x0 = x0 + (g_audio - 1.0) * (x0_audio - u)
            if target is not None:
                x0[..., ARTICULATION] += settings.prior_weight * hold[..., None] * (target - x0[..., ARTICULATION])
                jaw = x0[..., JAW]
                x0[..., JAW] = jaw + floor * hold * (np.maximum(jaw, target[..., _JAW_IN_TARGET]) - jaw)
            ab_prev = float(self.alphas_cumprod[t_prev]) if t_prev >= 0 else 1.0
            x = ddim_update(x, x0, float(self.alphas_cumprod[t]), ab_prev).astype(np.float32)
        return x

    @staticmethod
    def _fade_in(x: np.ndarray, previous: np.ndarray, frames: int) -> None:
        """Temporal ensembling of consecutive plans, in place: the new plan ``x`` starts on the previous plan's
        prediction for the frames they share (``previous``) and fades to its own over ``frames`` of them, so a
        replanning boundary does not jump."""
        n = min(frames, previous.shape[1])
        if n <= 0:
            return
        w = np.linspace(0.0, 1.0, n + 2, dtype=np.float32)[1:-1, None]
        x[:, :n] = previous[:, :n] + w * (x[:, :n] - previous[:, :n])

    @staticmethod
    def _drop(inputs: dict, keep: str) -> dict:
        """The inputs with conditions dropped as in training: "full" keeps all, "audio" drops style and emotion,
        "none" drops audio, phone evidence, style and emotion (the past stays: it is state, not guidance)."""
        if keep == "full":
            return inputs
        out = dict(inputs)
        cond = inputs["cond"].copy()
        cond[:, CFG_AXES["style"]] = 0.0
        cond[:, NUM_FLAGS:] = 0.0
        out["style"] = np.zeros_like(inputs["style"])
        if keep == "none":
            cond[:, CFG_AXES["audio"]] = 0.0
            out["audio"] = np.zeros_like(inputs["audio"])
            out["evidence"] = np.zeros_like(inputs["evidence"])
        out["cond"] = cond
        return out

    def _accumulate(self, out, wsum, y, start, k, n_streams) -> None:
        n = out.shape[0]
        length = min(len(y), n - start)
        if length <= 0:
            return
        w = np.ones(len(y))
        ov = self.overlap
        if k > 0 and ov > 0:
            w[:ov] = np.linspace(0.0, 1.0, ov + 2)[1:-1]
        if k < n_streams - 1 and ov > 0:
            w[-ov:] = np.linspace(1.0, 0.0, ov + 2)[1:-1]
        out[start : start + length] += w[:length, None] * y[:length]
        wsum[start : start + length] += w[:length, None]
