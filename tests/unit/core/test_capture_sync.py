"""core.capture_sync's default: a take whose curves are early or late of the sound by more than the check's
precision (20 ms) is corrected, even by as little as a performer's lip lead (40 ms); within the precision it is left
as recorded; keep=PERFORMER_TIMING_S (`finetune --keep-timing`) keeps offsets up to 0.1 s as the performer's own."""

from __future__ import annotations

import numpy as np
import pytest

from facepolicy.core import spec
from facepolicy.core.capture_sync import KEEP_S, PERFORMER_TIMING_S, check_sync


@pytest.fixture(scope="module")
def bursts():
    """Bursts of "speech" with a mouth that opens with them (the reference), 12 s."""
    rng = np.random.default_rng(1)
    samples = np.zeros(16000 * 12, np.float32)
    jaw = np.zeros(12 * spec.MODEL_FPS)
    for start in rng.uniform(0.2, 11.0, 14):
        a, d = int(start * 16000), int(rng.uniform(0.15, 0.5) * 16000)
        samples[a : a + d] = 0.3 * rng.standard_normal(len(samples[a : a + d]))
        f = int(start * spec.MODEL_FPS)
        jaw[f : f + int(d / 16000 * spec.MODEL_FPS)] = 0.6
    return samples, np.convolve(jaw, np.ones(3) / 3, mode="same")


def moved(jaw: np.ndarray, seconds: float) -> np.ndarray:
    n = np.arange(len(jaw))
    return np.interp(n - seconds * spec.MODEL_FPS, n, jaw)


@pytest.mark.parametrize("ms", [40, -40, 30, -80])
def test_an_offset_beyond_the_checks_precision_is_corrected(bursts, ms):
    samples, jaw = bursts
    check = check_sync(samples, moved(jaw, ms / 1000), jaw)
    assert check.clear and check.offset == pytest.approx(ms / 1000, abs=0.005)
    assert check.corrected and not check.refused
    said = check.sentence("take1.csv")
    assert f" ms {'late' if ms > 0 else 'early'}; corrected" in said, said
    assert abs(float(said.split("curves ")[1].split(" ms")[0]) - abs(ms)) <= 3, said


def test_an_offset_within_the_checks_precision_is_left(bursts):
    samples, jaw = bursts
    check = check_sync(samples, moved(jaw, -0.01), jaw)
    assert abs(check.offset) <= KEEP_S and not check.corrected
    assert "in sync" in check.sentence("take1.csv") and "precision" in check.sentence("take1.csv")


def test_keep_timing_keeps_a_lip_lead_and_still_corrects_a_late_capture(bursts):
    samples, jaw = bursts
    lead = check_sync(samples, moved(jaw, -0.04), jaw, keep=PERFORMER_TIMING_S)
    assert not lead.corrected and lead.offset == pytest.approx(-0.04, abs=0.005)
    assert " ms early of the teacher's timing; kept as the performer's own" in lead.sentence("t.csv")
    late = check_sync(samples, moved(jaw, 0.25), jaw, keep=PERFORMER_TIMING_S)
    assert late.corrected and " ms late; corrected" in late.sentence("t.csv")
