"""festival voices, run in batches: ``utt.save.segs`` writes every phone's exact end time.

festival is GPL-compatible free software used for training data only; the add-on never runs or ships it.
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

# Debian's festvox-kallpc16k, festvox-kdlpc16k and festvox-us-slt-hts.
VOICES: tuple[str, ...] = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")


@dataclass(frozen=True)
class FestivalVoice:
    name: str = "kal_diphone"
    duration_stretch: float = 1.0

    @property
    def voice_id(self) -> str:
        return f"festival:{self.name}"


def available() -> bool:
    return shutil.which("festival") is not None


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_segs(text: str) -> tuple[list[str], list[float]]:
    """An ``utt.save.segs`` file (header, ``#``, then ``END 100 NAME`` lines) → ARPAbet labels and end times."""
    labels: list[str] = []
    ends: list[float] = []
    body = text.split("#", 1)[1] if "#" in text else text
    prev = 0.0
    for line in body.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        end_t = float(parts[0])
        append_radio_phone(labels, ends, parts[2], prev, end_t)
        prev = end_t
    return labels, ends


def synthesize_batch(texts: list[str], voice: FestivalVoice) -> list[Utterance]:
    """Speak each text as its own utterance in one festival process (voice loading dominates start-up)."""
    if not available():
        raise SynthesisError("festival not found; apt-get install festival festvox-kallpc16k")
    if not texts:
        return []
    with tempfile.TemporaryDirectory(prefix="fp_festival_") as tmp:
        tmpdir = Path(tmp)
        lines = [f"(voice_{voice.name})", f"(Parameter.set 'Duration_Stretch {voice.duration_stretch:.3f})"]
        for i, text in enumerate(texts):
            lines.append(f"(set! utt (SynthText {_scheme_string(text)}))")
            lines.append(f'(utt.save.segs utt "{tmpdir / f"{i}.segs"}")')
            lines.append(f"(utt.save.wave utt \"{tmpdir / f'{i}.wav'}\" 'riff)")
        script = tmpdir / "batch.scm"
        script.write_text("\n".join(lines) + "\n", encoding="utf-8")
        proc = subprocess.run(["festival", "-b", str(script)], capture_output=True, text=True, timeout=600)
        out: list[Utterance] = []
        for i, text in enumerate(texts):
            wav, segs = tmpdir / f"{i}.wav", tmpdir / f"{i}.segs"
            if not wav.exists() or not segs.exists():
                raise SynthesisError(f"festival ({voice.name}) failed on {text[:40]!r}: {proc.stderr.strip()[:200]}")
            audio, rate = sf.read(str(wav), dtype="float32")
            labels, ends = parse_segs(segs.read_text(encoding="utf-8"))
            samples = to_16k(audio, rate)
            duration = len(samples) / 16000
            out.append(Utterance(samples, segments_from_ends(labels, ends, duration), text, text.split()))
    return out


def synthesize(text: str, voice: FestivalVoice) -> Utterance:
    return synthesize_batch([text], voice)[0]
