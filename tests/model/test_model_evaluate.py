"""model.evaluate on the tiny exported model: geometric errors, style retrieval, diversity, the report."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="the tiny test model is trained with torch (pip install torch==2.13.0)")

from model_synthetic import make_clips  # noqa: E402
from tiny_model import exported_tiny  # noqa: E402

from facepolicy.core import spec  # noqa: E402
from facepolicy.core.policy import NeuralPolicy  # noqa: E402
from model import evaluate  # noqa: E402


def test_lip_vertex_error_and_fdd():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 0.5, (40, spec.NUM_CHANNELS)).astype(np.float32)
    assert evaluate.lip_vertex_error(a, a) == 0.0
    assert evaluate.upper_face_dynamics_deviation(a, a) == 0.0
    b = a.copy()
    b[:, spec.CHANNEL_INDEX["jawOpen"]] += 0.3
    assert evaluate.lip_vertex_error(b, a) > 1.0  # a 0.3 jaw error moves the lips by millimetres
    assert evaluate.upper_face_dynamics_deviation(b, a) == pytest.approx(0.0, abs=1e-6)  # jaw is not upper face
    c = a.copy()
    c[:, spec.CHANNEL_INDEX["browInnerUp"]] = 0.0  # a still brow
    assert evaluate.upper_face_dynamics_deviation(c, a) > 1e-3


def test_evaluation_runs_on_the_tiny_model():
    policy = NeuralPolicy(exported_tiny())
    clips = make_clips(6, styles=3, voices=2, seed=5)  # unseen clips
    syn = evaluate.evaluate_synthetic(policy, clips[:3])
    assert syn["clips"] == 3 and np.isfinite(syn["lip_vertex_error_mm"]) and syn["bilabial"] >= 0
    ret = evaluate.style_retrieval(policy, clips)
    assert ret["identities"] == 3 and 0.0 <= ret["accuracy"] <= 1.0
    new = evaluate.style_retrieval_new_identities(policy, clips, identities=3)
    assert new["identities"] == 3 and 0.0 <= new["accuracy"] <= 1.0
    div = evaluate.diversity(policy, clips[:1], seeds=(0, 1))
    assert div["upper_face_spread_mm"] > 0 and div["upper_face_peak_spread_mm"] >= div["upper_face_spread_mm"]
    assert len(div["bilabial_per_seed_accurate"]) == len(div["bilabial_per_seed_fast"]) == 2
    calm = evaluate.nonspeech_calm(policy, n=2, seconds=3.0)
    assert 0.0 <= calm["open_frame_share_nonspeech"] <= 1.0
    text = evaluate.markdown({"synthetic": syn, "style_retrieval": ret, "diversity": div, "nonspeech": calm}, "test")
    assert "## Neural engine" in text and "lip vertex error" in text and "worst seed" in text


def test_the_seed_summary_spans_the_default_modes_takes_and_names_the_phonetic_engine():
    def row(open_rate, jitter):
        return {"bilabial": 1.0, "m": 1.0, "open": open_rate, "pause": 1.0, "slcc": 0.6, "jitter": jitter}

    rows = {"neural fast": row(0.5, 0.9), "neural accurate": row(0.95, 0.47),
            "neural accurate, seed 1": row(0.90, 0.45), "neural accurate, seed 2": row(1.0, 0.49),
            "phonetic fast": row(1.0, 0.46)}
    text = evaluate.seed_summary(rows)
    assert "over 3 take(s)" in text  # the fast mode is not a take of the default mode
    assert "open 0.9000/0.9500/1.0000" in text and "jitter 0.4500/0.4700/0.4900" in text
    assert "Phonetic fast: bilabial 1.0000" in text and "jitter 0.4600" in text
