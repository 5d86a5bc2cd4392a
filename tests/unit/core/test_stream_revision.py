"""core.stream_evidence: an m the live recogniser hears as a nasal in one plan and as a voiced labial in the next."""

from __future__ import annotations

import numpy as np
import pytest

from facepolicy.core.phones import PHONE_INDEX, PHONES, PhoneSegment
from facepolicy.core.stream_evidence import PhoneProbs, window_evidence

RATE = 50.0  # encoder frames per second


def heard(*phones):
    return [(PhoneSegment(p, a, b), 1.0) for p, a, b in phones]


def probs(older: float, newer: float, at: float = 1.84) -> PhoneProbs:
    """Two plans' hearings of 0..2 s: a vowel everywhere but the frame at ``at``, where P(m) is ``older`` in the
    first plan and ``newer`` in the second."""
    out = PhoneProbs(RATE)
    for p_m in (older, newer):
        logits = np.full((100, len(PHONES)), -20.0)
        logits[:, PHONE_INDEX["iy"]] = 0.0
        j = int(round(at * RATE))
        logits[j, PHONE_INDEX["m"]] = np.log(p_m / (1 - p_m)) if 0 < p_m < 1 else (-20.0 if p_m <= 0 else 20.0)
        out.update(0, logits, 100)
    return out


BEFORE = heard(("ey", 1.70, 1.84), ("n", 1.84, 1.88))
NOW = heard(("ey", 1.70, 1.85), ("w", 1.85, 1.91))


def closures(result):
    return [(p.phone, round(p.start, 3), round(p.end, 3)) for p in result.phones if p.phone in ("p", "b", "m")]


def test_a_nasal_revised_into_a_labial_where_the_encoder_heard_a_bilabial_is_an_m():
    result = window_evidence(NOW, probs(0.52, 0.01), 0.0, 1.96, before=BEFORE)
    assert closures(result) == [("m", 1.85, 1.88)]  # where both plans heard the sound
    assert [p.phone for p in result.phones][-3:] == ["ey", "m", "w"]  # the w heard now gives way to it


def test_and_back_from_a_labial_to_a_nasal():
    result = window_evidence(BEFORE, probs(0.01, 0.6), 0.0, 1.96, before=NOW)
    # The n heard last gives way to the m from 1.85 s, which goes on into the audio not decoded yet as any p/b/m
    # heard last does (CLOSURE_MAX).
    assert [(p.phone, round(p.start, 3)) for p in result.phones][-2:] == [("n", 1.84), ("m", 1.85)]


@pytest.mark.parametrize("older, newer", [(0.3, 0.01), (0.01, 0.4)])
def test_without_the_encoder_hearing_a_bilabial_the_recogniser_is_believed(older, newer):
    assert closures(window_evidence(NOW, probs(older, newer), 0.0, 1.96, before=BEFORE)) == []


def test_a_nasal_heard_twice_or_no_earlier_plan_adds_nothing():
    p = probs(0.9, 0.6)
    assert closures(window_evidence(BEFORE, p, 0.0, 1.96, before=BEFORE)) == []
    assert closures(window_evidence(NOW, p, 0.0, 1.96)) == []
