"""core.prosody_stream and core.performer_brows: the brow layer's features are the same whether a line arrives whole
or in chunks of any size (so a live performer's brows are the bake's), a long stream keeps flat memory, and a
model.json brow section this version cannot apply is refused with the reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from facepolicy.core.features import n_model_frames
from facepolicy.core.performer_brows import TAPS, BrowLayer, brow_features, frame_features, performer_f0
from facepolicy.core.prosody_stream import FEATURES, ProsodyStream

ARCTIC_DIR = Path(__file__).resolve().parents[2] / "data" / "arctic"


def _speech() -> np.ndarray:
    x, rate = sf.read(str(ARCTIC_DIR / "arctic_a0009.wav"), dtype="float32")
    assert rate == 16000
    return x


def test_features_do_not_depend_on_how_the_audio_is_cut():
    x = _speech()
    n = n_model_frames(len(x))
    whole = brow_features(x, n, 120.0)
    live = ProsodyStream(keep=40, reference_f0=120.0)
    rows, at, rng = [], 0, np.random.default_rng(5)
    while at < len(x):
        step = int(rng.integers(1, 2500))
        live.push(x[at : at + step])
        at += step
        # A frame is given out once the stream has the frame after it (the layer's last tap).
        while live.ready > len(rows) + max(TAPS):
            rows.append(frame_features(live, len(rows))[0])
    live.finish()
    while len(rows) < n:
        rows.append(frame_features(live, len(rows))[0])
    assert live.ready == n
    np.testing.assert_allclose(np.stack(rows), whole, atol=1e-9)
    voiced = whole[:, FEATURES.index("voiced") * len(TAPS) + TAPS.index(0)]
    assert 0.3 < voiced.mean() < 0.9  # speech: voiced and unvoiced frames both


def test_pitch_is_measured_from_the_performers_reference():
    x = _speech()
    f0 = performer_f0([x])
    assert 70 < f0 < 300
    n = n_model_frames(len(x))
    now = TAPS.index(0)
    at_own, an_octave_lower = brow_features(x, n, f0), brow_features(x, n, f0 / 2)
    pitch = lambda f: f[:, FEATURES.index("semitones") * len(TAPS) + now]  # noqa: E731
    voiced = at_own[:, FEATURES.index("voiced") * len(TAPS) + now] == 1.0
    assert voiced.sum() > 20 and abs(np.median(pitch(at_own)[voiced])) < 1.0  # the line's own median
    # Measured from a reference an octave lower, voiced frames are 12 semitones higher (but where a frame or the
    # analysis frame beside it is clipped to -6..12).
    inside = voiced & (pitch(at_own) > -6) & (pitch(at_own) < 0)
    shift = pitch(an_octave_lower)[inside] - pitch(at_own)[inside]
    assert inside.sum() > 10 and np.mean(np.abs(shift - 12.0) < 1e-9) > 0.8, shift


def test_a_long_stream_keeps_flat_memory():
    stream = ProsodyStream(keep=30, reference_f0=120.0)
    x = _speech()
    sizes = []
    for _ in range(40):  # 160 s
        stream.push(x)
        sizes.append((len(stream._audio), len(stream._rows), len(stream._analysis)))
    assert max(s[0] for s in sizes[10:]) <= max(s[0] for s in sizes[:10]) + 16000
    assert max(s[1] for s in sizes) <= 2 * 30 + 100
    assert max(s[2] for s in sizes) <= 1100
    with pytest.raises(ValueError, match="forgotten"):
        stream.row(0)


def _layer() -> dict:
    return BrowLayer(TAPS, ("browInnerUp",), np.zeros((len(FEATURES) * len(TAPS) + 1, 1)), 120.0).to_dict()


@pytest.mark.parametrize("change, reason", [
    (lambda d: d.update(weights=d["weights"][:-1]), "brows.weights"),
    (lambda d: d.update(channels=["browUp"]), "brows.channels"),
    (lambda d: d.update(taps=[0.5]), "brows.taps"),
    (lambda d: d.update(reference_f0=0), "brows.reference_f0"),
    (lambda d: d.update(features=["pitch"]), "brows.features"),
])
def test_a_section_this_version_cannot_apply_is_refused_with_the_reason(change, reason):
    section = _layer()
    BrowLayer.from_dict(section)
    change(section)
    with pytest.raises(ValueError, match=reason):
        BrowLayer.from_dict(section)


def test_the_layer_is_kept_only_where_it_lowers_the_held_out_brows():
    from facepolicy.core import spec
    from facepolicy.core.performer_brows import CHANNELS, fit_brow_layer

    x = _speech()
    n = n_model_frames(len(x))
    feats = brow_features(x, n, 150.0)
    cols = [spec.CHANNEL_INDEX[c] for c in CHANNELS]
    rng = np.random.default_rng(1)
    model = np.full((n, spec.NUM_CHANNELS), 0.2, np.float32)
    # A performer whose brows rise with the pitch (the features' own columns) over what the model does.
    truth = model.copy()
    truth[:, cols] += (0.03 * feats[:, 3 * len(TAPS) + TAPS.index(0)] + 0.02 * feats[:, TAPS.index(0)])[:, None]
    half = n // 2
    fit = fit_brow_layer([(feats[:half], model[:half], truth[:half])], [(feats[half:], model[half:], truth[half:])],
                         150.0)
    assert fit.layer is not None and fit.error_after < 0.2 * fit.error_before
    # Brows that have nothing to do with the voice: no layer.
    noise = model.copy()
    noise[:, cols] += rng.normal(0, 0.05, (n, len(cols)))
    fit = fit_brow_layer([(feats[:half], model[:half], noise[:half])], [(feats[half:], model[half:], noise[half:])],
                         150.0)
    assert fit.layer is None and fit.error_after == fit.error_before
