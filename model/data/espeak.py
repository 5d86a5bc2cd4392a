"""espeak-ng through ctypes: audio plus phoneme events from the synth callback (IPA names, sample positions).

espeak-ng is GPL: it generates training data only and is never linked or shipped by the add-on.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pickle
from dataclasses import dataclass

import numpy as np

from facepolicy.core.phones import SIL, PhoneSegment

from .phonemap import ipa_to_arpabet
from .speech import SynthesisError, Utterance, merge_silences, shift_onsets, to_16k

# Onset correction (seconds, added to every inner phone boundary). espeak-ng emits a phoneme event where
# the phoneme's synthesis starts, which is after the acoustic onset of the transition into it. Measured
# against pocketsphinx forced alignment with `python -m model.data.timing_check` (see docs/BENCHMARKS.md).
ESPEAK_ONSET_CORRECTION_S = -0.010

# English base voices shipped with espeak-ng 1.51 and the variants (espeak-data/voices/!v) we mix with
# them. Whisper-like and robotic variants are left out: their lips still move but there is no voicing.
BASE_VOICES: tuple[str, ...] = (
    "en-us", "en", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
)
VARIANTS: tuple[str, ...] = (
    "", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "klatt4", "croak", "Alex", "Annie", "Andy", "adam", "anika", "aunty",
    "belinda", "boris", "caleb", "david", "ed", "edward", "grandma", "grandpa", "john", "linda", "max",
    "michel", "norbert", "paul", "quincy", "rob", "robert", "steph", "travis", "victor", "zac",
)

_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_PHONEME = 7
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _PITCH, _RANGE = 1, 3, 4


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class EspeakVoice:
    base: str = "en-us"
    variant: str = ""
    rate: int = 175  # words per minute
    pitch: int = 50  # 0..100
    pitch_range: int = 50  # 0..100

    @property
    def name(self) -> str:
        return f"{self.base}+{self.variant}" if self.variant else self.base

    @property
    def voice_id(self) -> str:
        """Identity of the speaker (rate and pitch are per-clip prosody, not a different voice)."""
        return f"espeak:{self.name}"


class _Espeak:
    """The process-wide espeak-ng instance (the library keeps global state)."""

    def __init__(self) -> None:
        path = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib = ctypes.CDLL(path)
        except OSError as exc:
            raise SynthesisError(f"espeak-ng library not found ({exc}); apt-get install libespeak-ng1") from None
        self.rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA
        )
        if self.rate <= 0:
            raise SynthesisError("espeak-ng failed to initialise (espeak-ng-data missing?)")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, bytes, int]] = []
        self._cb = _CALLBACK(self._on_synth)  # keep a reference: the library calls it later
        self.lib.espeak_SetSynthCallback(self._cb)
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]

    def _on_synth(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).astype(np.float32) / 32768.0)
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_PHONEME:
                self._events.append((ev.type, ev.sample, bytes(ev.id.string), ev.text_position))
            elif ev.type == _EVENT_WORD:
                self._events.append((ev.type, ev.sample, b"", ev.text_position | (ev.length << 20)))
            i += 1
        return 0

    def synth(self, text: str, voice: EspeakVoice) -> tuple[np.ndarray, list[tuple[int, int, bytes, int]]]:
        if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise SynthesisError(f"espeak-ng has no voice {voice.name!r}")
        self.lib.espeak_SetParameter(_RATE, int(voice.rate), 0)
        self.lib.espeak_SetParameter(_PITCH, int(voice.pitch), 0)
        self.lib.espeak_SetParameter(_RANGE, int(voice.pitch_range), 0)
        self._chunks, self._events = [], []
        data = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(data)
        err = self.lib.espeak_Synth(buf, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        if err != 0:
            raise SynthesisError(f"espeak-ng failed on {text[:40]!r} (error {err})")
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
        return audio, self._events


_INSTANCE: _Espeak | None = None


def _engine() -> _Espeak:
    global _INSTANCE
    if _INSTANCE is None:
        _INSTANCE = _Espeak()
    return _INSTANCE


def available() -> bool:
    try:
        _engine()
    except SynthesisError:
        return False
    return True


def _synth_isolated(text: str, voice: EspeakVoice) -> tuple[np.ndarray, list]:
    """Synthesise in a forked child of a process whose espeak-ng has never spoken.

    espeak-ng carries wave-generator state from one utterance to the next, so the same text comes out a few
    samples different depending on what was said before. Forking from a pristine instance (and seeding the C
    library's rand(), which its noise draws on) makes every utterance depend on its own text and voice only, which
    keeps the corpus deterministic by seed.
    """
    eng = _engine()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: speak, send the result, leave without running the parent's clean-up
        status = 0
        try:
            os.close(read_fd)
            try:
                # espeak-ng draws its noise (breath, frication) from the C library's rand(), whose state the child
                # inherits: whatever called rand() in this process before would change the audio. Seed 1 is the
                # state of a process that never called it.
                ctypes.CDLL(None).srand(1)
                payload = ("ok", eng.synth(text, voice))
            except Exception as exc:  # reported to the parent, which raises it
                payload = ("error", str(exc))
            with os.fdopen(write_fd, "wb") as f:
                pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:
            status = 1
        os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or not data:
        raise SynthesisError(f"espeak-ng worker failed on {text[:40]!r} (status {status})")
    kind, result = pickle.loads(data)
    if kind != "ok":
        raise SynthesisError(result)
    return result


def synthesize(text: str, voice: EspeakVoice, correct_bias: bool = True) -> Utterance:
    """Speak ``text``; phone segments come from the phoneme events, shifted by the measured onset bias."""
    eng = _engine()
    audio, events = _synth_isolated(text, voice)
    if len(audio) == 0:
        raise SynthesisError(f"espeak-ng produced no audio for {text!r}")
    duration_native = len(audio) / eng.rate
    spans: list[tuple[float, list[str]]] = []  # (event time, phones it maps to)
    words: list[str] = []
    for kind, sample, name, pos in events:
        if kind == _EVENT_WORD:
            start, length = (pos & 0xFFFFF) - 1, pos >> 20
            words.append(text[start:start + length])
            continue
        spans.append((sample / eng.rate, ipa_to_arpabet(name.split(b"\0", 1)[0].decode("utf-8"))))
    segs = _segments_from_events(spans, duration_native)
    samples = to_16k(audio, eng.rate)
    duration = len(samples) / 16000
    segs = [PhoneSegment(s.phone, s.start * duration / duration_native, s.end * duration / duration_native)
            for s in segs]
    if correct_bias:
        segs = shift_onsets(segs, ESPEAK_ONSET_CORRECTION_S, duration)
    return Utterance(samples, segs, text, words)


def _segments_from_events(spans: list[tuple[float, list[str]]], duration: float) -> list[PhoneSegment]:
    """Contiguous segments from event start times. An event that maps to two phones (a diphthong + r, a
    syllabic l → ah l) splits its span evenly."""
    segs: list[PhoneSegment] = []
    if spans and spans[0][0] > 0:
        segs.append(PhoneSegment(SIL, 0.0, spans[0][0]))
    for i, (start, phones) in enumerate(spans):
        end = spans[i + 1][0] if i + 1 < len(spans) else duration
        if end <= start:
            continue
        step = (end - start) / len(phones)
        for j, phone in enumerate(phones):
            segs.append(PhoneSegment(phone, start + j * step, end if j == len(phones) - 1 else start + (j + 1) * step))
    return merge_silences(segs)
