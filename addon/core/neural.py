"""The Neural engine (name "neural"): the line's phone evidence (core.evidence) → the Phonetic engine's mouth for it as
a prior (core.phonetic) → the sampler (core.sampler) → the lips sealed over the evidence's p/b/m and the mouth at rest
where the audio is not speech → FaceTrack."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import spec
from .align import Alignment
from .cpu import cores
from .errors import Cancelled, FacePolicyError
from .evidence import AUDIO_ONLY, Evidence, calm_nonspeech, gather_evidence, sidecar_transcript
from .facetrack import FaceTrack
from .listener import EncodedAudio
from .performer_brows import brow_features
from .phones import SIL, VOWELS
from .phonetic import phonetic_prior_take
from .prepare import folder_version, held_warm, take_prepared
from .ps_native import AlignerMissing
from .recognition import shared_decoders
from .sampler import ARTICULATION, NeuralPolicy, SampleSettings, emotion_vector
from .smoothing import gaussian_smooth
from .spec import ACCURACY_MODES
from .straighten import bilabial_closure, straighten_take

log = logging.getLogger("facepolicy")

# Seconds: the Gaussian that smooths the articulation channels of a take sampled with a phonetic prior.
ARTICULATION_SMOOTHING = 0.015
# Seconds: a closure the audio encoder is sure of inside a recognised pause lets the prior go only this near the
# pause's end (prior_hold).
PAUSE_TAIL = 0.1
# Seconds of a recognised vowel on either side of a closure the audio encoder is sure of, for prior_hold to take the
# vowel for two around a closure (one encoder frame).
VOWEL_AROUND = 0.02


def vowel_mask(phones, n_frames: int, fps: float = spec.MODEL_FPS, confidence=None) -> np.ndarray:
    """0..1 per frame: 1 on frames inside a vowel of ``phones``, ramped over one frame either side. Vowels whose
    ``confidence`` is 0 (the ones the second opinion calmed: the audio encoder hears silence there) are left out."""
    t = np.arange(n_frames) / fps
    mask = np.zeros(n_frames)
    for k, p in enumerate(phones):
        if p.phone not in VOWELS or (confidence is not None and confidence[k] <= 0):
            continue
        mask[np.searchsorted(t, p.start) : np.searchsorted(t, p.end)] = 1.0  # frames in [start, end)
    return np.convolve(np.pad(mask, 1, mode="edge"), np.ones(3) / 3, mode="valid")


def prior_hold(evidence: Alignment, vowels: np.ndarray, fps: float = spec.MODEL_FPS) -> np.ndarray:
    """0..1 per frame: how much the phonetic prior and the jaw floor hold the mouth (SampleSettings.prior_weight
    scales it). 0 on the frames where the audio encoder is sure of a lip closure (``evidence.closures``: the frames
    whose centre lies in one, or the frame holding a shorter one's middle), so the model's own closure shows there;
    1 elsewhere. Not on the evidence's vowels (``vowels``: its vowel_mask, one value per frame), unless the closure
    lies within one recognised vowel with at least VOWEL_AROUND of it on either side: recognition heard a closure
    between two vowels as one long vowel (Swedish "mormor"), while a closure that reaches past a vowel's edge leaves
    the vowel its opening. Inside a recognised pause only within PAUSE_TAIL of its end, and only where speech
    follows (a p or b starting the next words hides there; elsewhere in a pause, the audio's start included, the
    prior's mouth is at rest already). Nothing is sealed here: where it lets go, the model decides."""
    n_frames = len(vowels)
    sure = np.zeros(n_frames)
    within = np.zeros(n_frames)  # frames of a closure inside one recognised vowel
    phones = evidence.phones
    starts = np.array([p.start for p in phones])
    for s, e in evidence.closures:
        k = max(0, int(np.searchsorted(starts, s, side="right")) - 1)  # phones in time order, not overlapping
        pauses, hosts = [], []
        while k < len(phones) and phones[k].start < e:
            if phones[k].end > s:
                (pauses if phones[k].phone == SIL else hosts).append(k)
            k += 1
        if any(k + 1 == len(phones) or phones[k].end - e > PAUSE_TAIL for k in pauses):
            continue
        a, b = int(np.ceil(s * fps - 0.5)), int(np.ceil(e * fps - 0.5))  # frames whose centre is in [s, e)
        if b <= a:
            a, b = int(0.5 * (s + e) * fps), int(0.5 * (s + e) * fps) + 1
        a, b = max(0, a), max(0, min(b, n_frames))
        sure[a:b] = 1.0
        if len(hosts) == 1 and phones[hosts[0]].phone in VOWELS and not pauses and \
                phones[hosts[0]].start + VOWEL_AROUND <= s and e <= phones[hosts[0]].end - VOWEL_AROUND:
            within[a:b] = 1.0
    return 1.0 - sure * np.maximum(within, 1.0 - np.asarray(vowels, np.float64))


def smooth_articulation(states: np.ndarray, sigma: float = ARTICULATION_SMOOTHING,
                        fps: float = spec.MODEL_FPS, in_place: bool = False) -> np.ndarray:
    """The articulation channels low-passed by a Gaussian of ``sigma`` seconds (edges held): what is left of the
    sampler's frame-to-frame noise. The rest of the face is unchanged. ``in_place`` smooths ``states`` itself
    (core.smoothing works a block at a time, so an hour needs no whole-length temporaries)."""
    return gaussian_smooth(states, sigma * fps, columns=ARTICULATION, in_place=in_place)


_LIP_OPENERS = ("mouthUpperUpLeft", "mouthUpperUpRight", "mouthLowerDownLeft", "mouthLowerDownRight",
                "mouthFunnel", "tongueOut")


def seal_bilabials(states: np.ndarray, phones, fps: float = spec.MODEL_FPS, in_place: bool = False) -> np.ndarray:
    """The articulation teacher's hard guarantee, applied to the model's output where phone evidence says p/b/m:
    the lips seal over each bilabial (mouthClose cancels jawOpen's lip separation, the lip raisers and funnel
    let go), with the teacher's ramps, so closures stay exact while the model keeps everything else.
    ``in_place`` seals ``states`` itself (an hour's copy would be 25 MB)."""
    close = bilabial_closure(phones, len(states), fps)
    if close is None:
        return states
    return seal_closure(states if in_place else states.copy(), close)


def seal_closure(states: np.ndarray, close: np.ndarray) -> np.ndarray:
    """``states`` sealed in place by the per-frame closure weights ``close`` (core.straighten.bilabial_closure), as
    seal_bilabials does for phones."""
    ci = spec.CHANNEL_INDEX
    jaw = states[:, ci["jawOpen"]]
    states[:, ci["mouthClose"]] = np.maximum(states[:, ci["mouthClose"]], close * jaw)
    for name in _LIP_OPENERS:
        states[:, ci[name]] *= 1.0 - close
    return states


def recognised_evidence(policy: NeuralPolicy | None, samples: np.ndarray, warnings: list[str],
                        cancel: threading.Event | None = None,
                        progress: Callable[[float], None] | None = None) -> Alignment:
    """The accurate mode's phone evidence without a transcript (core.evidence.gather_evidence): pocketsphinx
    all-phone recognition with the audio encoder's second opinion (closures recognition missed, so every take seals
    the lips over them whatever its seed; recognised vowels it hears as silence get confidence 0), and no phones
    where the audio is not speech. ``policy``: whose audio encoder listens (None: the shipped model's)."""
    heard = gather_evidence(samples, None, "phones", policy.listener() if policy is not None else None,
                            progress=None if progress is None else lambda f, message: progress(f), cancel=cancel)
    warnings += heard.warnings
    return heard.alignment


def sample_with_evidence(policy: NeuralPolicy, samples: np.ndarray, settings: SampleSettings,
                         evidence: Alignment | None = None, style: np.ndarray | None = None,
                         emotion: np.ndarray | None = None, progress: Callable[[float, str], None] | None = None,
                         cancel: threading.Event | None = None, encoded: EncodedAudio | None = None) -> np.ndarray:
    """The engine's states for 16 kHz ``samples``. With ``evidence`` (a transcript alignment, or recognition with
    the second opinion), its phones condition the model, the Phonetic engine's mouth for them is the prior the
    sampler steers toward (settings.prior_weight; inside its vowels the jaw opens at least as far as the prior's,
    settings.vowel_floor; neither where the encoder is sure of a closure, prior_hold), the articulation is lightly
    smoothed (ARTICULATION_SMOOTHING) and the lips seal over its p/b/m. Without evidence, the model alone. Either
    way the lip gap is pulled taut (core.straighten: fewer jerks, every closure and opening kept) and a fine-tuned
    performer's brow layer, where the model folder has one, is added (performer_brows).
    ``encoded``: the listener's features of ``samples`` (Evidence.encoded), so the sampler does not encode the audio
    again."""
    if evidence is None:
        states = policy.sample(samples, settings, style=style, emotion=emotion, progress=progress, cancel=cancel,
                               encoded=encoded)
        return performer_brows(policy, samples, straighten_take(states, samples))
    prior = floor = hold = None
    if settings.prior_weight > 0 and evidence.phones:
        prior = phonetic_prior_take(evidence, samples, len(samples) / spec.SAMPLE_RATE)
        vowels = vowel_mask(evidence.phones, len(prior), confidence=evidence.confidence)
        floor = vowels if settings.vowel_floor else None
        hold = prior_hold(evidence, vowels)
    states = policy.sample(samples, settings, style=style, emotion=emotion, phones=evidence.phones, prior=prior,
                           floor=floor, hold=hold, progress=progress, cancel=cancel, encoded=encoded)
    if prior is not None:
        smooth_articulation(states, in_place=True)
    close = bilabial_closure(evidence.phones, len(states))  # the seal's weights, which the straightening keeps
    if close is not None:
        seal_closure(states, close)
    return performer_brows(policy, samples, straighten_take(states, samples, evidence.phones, evidence.confidence,
                                                            sealed=close))


def performer_brows(policy: NeuralPolicy, samples: np.ndarray, states: np.ndarray) -> np.ndarray:
    """``states`` with the model folder's brow layer added (core.performer_brows: a fine-tuned performer's brows
    from the line's pitch and loudness); unchanged for a model without one."""
    layer = policy.files.brows
    if layer is None:
        return states
    return layer.apply(states, brow_features(samples, len(states), layer.reference_f0, layer.taps))


def states_to_track(states: np.ndarray, meta: dict | None = None) -> FaceTrack:
    return FaceTrack(spec.MODEL_FPS, spec.CHANNEL_NAMES, states, dict(meta or {}))


# --- the engine -------------------------------------------------------------------------------------------------

DEFAULT_ACCURACY = "accurate"  # quality on real voices first (docs/BENCHMARKS.md, "The Neural model")


class NeuralEngine:
    """The diffusion-policy engine (name "neural"): no transcript needed, a new take per seed, style control.

    ``options.model_dir``: the model folder (default: the engine's, else the bundled one). ``options.accuracy``:
    "accurate" (default) adds pocketsphinx phone recognition (with the audio encoder's second opinion on
    closures) as evidence, steers the mouth toward the Phonetic engine's for that evidence
    (``options.prior_weight``, default SampleSettings.prior_weight; with a jaw floor inside recognised vowels)
    and seals the lips over the bilabials it hears (sample_with_evidence); "fast" listens with the learned audio
    encoder only. A transcript (the option, or a ``.txt`` beside the audio) is force-aligned and used as evidence
    in both modes. Where the evidence says the audio is not speech, the mouth rests. ``options.style``: a preset
    name, or a reference performance (.json FaceTrack or Live Link .csv); ``options.strength``: style guidance
    scale; ``options.audio_guidance``, ``options.steps``: SampleSettings.audio_scale and steps;
    ``options.emotion`` / ``emotion_intensity``: emotion preset.
    """

    name = "neural"

    def __init__(self, model_dir: Path | str | None = None):
        self.model_dir = model_dir  # the folder used when the options name none (None: the bundled model)
        self._policies: dict[tuple, tuple[tuple | None, NeuralPolicy]] = {}  # (folder, device, threads) → version
        self._lock = threading.Lock()

    def policy(self, device: str = "auto", threads: int = 0, model_dir: Path | str | None = None) -> NeuralPolicy:
        """The warm policy of ``model_dir`` (default: the engine's folder, else the bundled one) on ``device``. A
        folder whose model.json changed since (a model exported again into it), or whose networks failed to load
        (core.later_sessions), is read and checked again."""
        root, version = folder_version(model_dir or self.model_dir)
        with self._lock:
            key = (root, device, threads)
            held = self._policies.get(key)
            if held is None or held[0] != version or held[1]._later.failed():
                # The one core.engine.prepare started, else a new one.
                policy = take_prepared(root, device, threads) or NeuralPolicy(root, device, threads)
                self._policies[key] = (version, policy)
                held_warm(root, device, threads, version)
            return self._policies[key][1]

    def style_code(self, policy: NeuralPolicy, style: str | None) -> tuple[np.ndarray, str]:
        if not style:
            name = policy.default_style
            return policy.style_preset(name), name
        path = Path(style)
        if path.suffix.lower() in (".json", ".csv") or path.exists():
            if not path.is_file():
                raise FacePolicyError(f'"{style}": style reference file not found')
            if path.suffix.lower() == ".csv":
                from .livelink import read_livelink_csv

                track = read_livelink_csv(path)
            elif path.suffix.lower() == ".json":
                track = FaceTrack.load_json(path)
            else:
                raise FacePolicyError(f'"{path.name}": a style reference must be a FacePolicy .json track or a '
                                      "Live Link Face .csv")
            return policy.style_from_track(track, path.name), path.name
        return policy.style_preset(style), style

    def evidence(self, policy: NeuralPolicy, audio, options, progress, cancel) -> Evidence:
        """The line's phone evidence (core.evidence.gather_evidence): the transcript's alignment, the phone
        recognition of the accurate mode, or none; and where the audio is not speech. A transcript that is not
        English, cannot be aligned or does not match the audio is not used: the line is animated as without one."""
        accuracy = options.accuracy or DEFAULT_ACCURACY
        if accuracy not in ACCURACY_MODES:
            raise FacePolicyError(f"unknown accuracy {accuracy!r} for the neural engine; use fast or accurate")
        transcript = options.transcript or sidecar_transcript(audio.source)
        try:
            return gather_evidence(audio.samples, transcript, "phones" if accuracy == "accurate" else None,
                                   policy.listener(), lambda f, message: progress(0.05 + 0.3 * f, message), cancel,
                                   keep_features=True, language=options.transcript_language)
        except AlignerMissing as exc:
            lost = ", without its transcript" if transcript and transcript.strip() else ""
            return Evidence(None, AUDIO_ONLY, np.ones(0, bool), 1.0,
                            [f"{exc}, so this line was animated from the audio alone{lost}"])

    def animate(self, audio, options, progress, cancel) -> FaceTrack:
        if audio.sample_rate != spec.SAMPLE_RATE:
            raise FacePolicyError(f"the neural engine needs {spec.SAMPLE_RATE} Hz audio (load it with load_audio)")
        if (options.accuracy or DEFAULT_ACCURACY) == "accurate" and not (options.transcript
                                                                       or sidecar_transcript(audio.source)):
            shared_decoders().warm(cores())  # the phone decoders load while the model does (core.recognition)
        policy = self.policy(options.device, options.threads, options.model_dir)
        emotion = emotion_vector(options.emotion, options.emotion_intensity)
        style, style_name = self.style_code(policy, options.style)
        progress(0.02, "listening")
        evidence = self.evidence(policy, audio, options, progress, cancel)
        heard = evidence.alignment
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled")
        base = 0.35 if heard is not None else 0.05

        def step(f: float, message: str) -> None:
            progress(base + (0.98 - base) * f, message)

        settings = policy.settings(seed=int(options.seed), style_scale=float(options.strength),
                                   audio_scale=float(options.audio_guidance), steps=options.steps)
        if options.prior_weight is not None:
            settings.prior_weight = float(options.prior_weight)
        states = sample_with_evidence(policy, audio.samples, settings, heard, style=style, emotion=emotion,
                                      progress=step, cancel=cancel, encoded=evidence.encoded)
        # Where the audio is not speech (music, tones, noise) the mouth rests, whatever the model makes of it: the
        # model alone opens the jaw on a pure tone (bench/nonspeech_calm.py --why).
        states = calm_nonspeech(states, evidence.speech_gate(len(states)), policy.rest_state, ARTICULATION)
        for w in evidence.warnings:
            log.warning("%s", w)
        meta = {"style": style_name, "strength": settings.style_scale, "emotion": options.emotion,
                "emotion_intensity": float(options.emotion_intensity), "device": policy.provider,
                "neural": {"evidence": evidence.source, "model": policy.files.manifest.get("name"),
                           "prior_weight": settings.prior_weight if heard is not None else None},
                "warnings": evidence.warnings}
        progress(1.0, "done")
        return states_to_track(states, meta)
