"""The per-language development set (model.data.languages): espeak-ng's IPA phoneme events become lip classes, and
the timings land on the audio (a bilabial is quieter than the open vowels around it, a pause is silent)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from model.data import espeak, languages  # noqa: E402

needs_espeak = pytest.mark.skipif(not espeak.available(), reason="espeak-ng is not installed")


@pytest.mark.parametrize(("ipa", "phones", "cls"), [
    ("p", ["p"], "bilabial"), ("m", ["m"], "m"), ("mː", ["m"], "m"),
    ("y", ["uw"], "rounded"), ("yː", ["uw"], "rounded"), ("ʏ", ["uh"], "rounded"), ("øː", ["ow"], "rounded"),
    ("œ", ["ao"], "open"), ("ɑ̃", ["aa"], "open"), ("ä", ["ae"], "open"), ("ɛ", ["eh"], "open"),
    ("ɯᵝ", ["uh"], "rounded"), ("ɯ", ["ih"], "other"), ("e̞", ["ey"], "other"),
    ("β", ["v"], "labiodental"), ("ɸ", ["f"], "labiodental"), ("ʁ", ["hh"], "other"), ("ə-", ["ah"], "open"),
    ("", ["sil"], "pause"), ("ph", ["p"], "bilabial"),
])
def test_ipa_names_map_to_lip_classes(ipa, phones, cls):
    assert languages.ipa_to_lip_phones(ipa) == phones
    assert languages.lip_class(phones[0]) == cls


def test_an_unknown_phoneme_is_refused_not_dropped():
    with pytest.raises(KeyError, match="no lip class"):
        languages.ipa_to_lip_phones("ʘ")  # a click: no language of the set has one


def _rms(samples, seg) -> float:
    a, b = int(seg.start * 16000), int(seg.end * 16000)
    return float(np.sqrt(np.mean(samples[a:b] ** 2))) if b > a else 0.0


@needs_espeak
@pytest.mark.parametrize(("code", "text", "rounded_ipa"), [
    ("fr", "Le petit bonhomme mange une pomme au bord du mur.", "y"),  # une, du, mur: front rounded y
    ("es", "Mi madre compró pan y mantequilla en el mercado.", None),
])
def test_phone_timings_map_to_lip_classes_on_the_audio(code, text, rounded_ipa):
    lang = languages.BY_CODE[code]
    utt = languages.synthesize(text, espeak.EspeakVoice(lang.voice))
    phones, x = utt.phones, utt.samples
    # Contiguous segments covering the whole clip.
    assert phones[0].start == 0.0 and abs(phones[-1].end - len(x) / 16000) < 1e-6
    assert all(abs(a.end - b.start) < 1e-9 for a, b in zip(phones, phones[1:], strict=False))
    counts = languages.class_counts(phones)
    assert counts["m"] >= 4 and counts["bilabial"] >= 7 and counts["open"] >= 3
    if rounded_ipa:
        assert counts["rounded"] >= 3
    # The timings sit on the audio: every bilabial (a closed or nasal stretch) is quieter than the median open vowel.
    opens = [_rms(x, p) for p in phones if languages.lip_class(p.phone) == "open" and p.duration >= 0.06]
    loud = float(np.median(opens))
    bilabials = [p for p in phones if languages.lip_class(p.phone) in ("bilabial", "m")]
    assert all(_rms(x, p) < 0.8 * loud for p in bilabials), [(p.phone, round(_rms(x, p) / loud, 2)) for p in bilabials]


@needs_espeak
def test_a_built_language_is_scored_as_written(tmp_path):
    from facepolicy.core.metrics import PAUSE_MARGIN, read_lab
    from facepolicy.core.phones import PhoneSegment

    folder = languages.build_language(languages.BY_CODE["es"], tmp_path)
    labs = sorted(folder.glob("*.lab"))
    assert len(labs) == 3 * len(languages.VOICINGS)
    phones = read_lab(labs[0])
    # The pause between the clip's two sentences is a scored pause (≥ 250 ms), silent where the metric scores it.
    import soundfile as sf

    x, rate = sf.read(labs[0].with_suffix(".wav"), dtype="float32")
    pauses = [p for p in phones if p.phone == "sil" and p.duration >= 0.25 and 0 < p.start and p.end < len(x) / rate]
    assert pauses
    assert all(_rms(x, PhoneSegment("sil", p.start + PAUSE_MARGIN, p.end - PAUSE_MARGIN)) < 1e-4 for p in pauses)
    stamp = (folder / "devset.json").stat().st_mtime_ns
    assert languages.build_language(languages.BY_CODE["es"], tmp_path) == folder
    assert (folder / "devset.json").stat().st_mtime_ns == stamp  # up to date: not rebuilt
