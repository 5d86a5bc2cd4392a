"""flite voices through the ``flite`` program: ``-psdur`` prints every phone with its exact end time.

flite's licence is BSD-like, but like the GPL engines it only makes training data here.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from .phonemap import append_radio_phone
from .speech import SynthesisError, Utterance, segments_from_ends, to_16k

# awb_time is a limited-domain clock voice, so it is not listed.
VOICES: tuple[str, ...] = ("kal", "kal16", "awb", "rms", "slt")


@dataclass(frozen=True)
class FliteVoice:
    name: str = "slt"
    duration_stretch: float = 1.0  # > 1: slower (diphone voices honour it)
    f0_mean: float = 0.0  # Hz; 0 keeps the voice's own

    @property
    def voice_id(self) -> str:
        return f"flite:{self.name}"


def available() -> bool:
    return shutil.which("flite") is not None


def parse_psdur(text: str) -> tuple[list[str], list[float]]:
    """``pau:0.164 hh:0.255 ...`` → ARPAbet labels (split phones repeated) and end times."""
    labels: list[str] = []
    ends: list[float] = []
    prev = 0.0
    for item in text.split():
        name, _, end = item.rpartition(":")
        end_t = float(end)
        append_radio_phone(labels, ends, name, prev, end_t)
        prev = end_t
    return labels, ends


def synthesize(text: str, voice: FliteVoice) -> Utterance:
    if not available():
        raise SynthesisError("flite not found; apt-get install flite")
    with tempfile.TemporaryDirectory(prefix="fp_flite_") as tmp:
        wav = Path(tmp) / "out.wav"
        cmd = ["flite", "-voice", voice.name, "-psdur", "--setf", f"duration_stretch={voice.duration_stretch:.3f}"]
        if voice.f0_mean > 0:
            cmd += ["--setf", f"int_f0_target_mean={voice.f0_mean:.1f}"]
        cmd += ["-t", text, "-o", str(wav)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0 or not wav.exists():
            raise SynthesisError(f"flite failed on {text[:40]!r}: {proc.stderr.strip()[:200]}")
        audio, rate = sf.read(str(wav), dtype="float32")
    labels, ends = parse_psdur(proc.stdout)
    samples = to_16k(audio, rate)
    duration = len(samples) / 16000
    return Utterance(samples, segments_from_ends(labels, ends, duration), text, text.split())
