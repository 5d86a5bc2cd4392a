"""The articulation teacher's hard guarantees, style parameters and upper-face behaviour."""

import dataclasses

import numpy as np
import pytest

from facepolicy.core import metrics, spec
from facepolicy.core.phones import PhoneSegment
from facepolicy.core.teacher import (
    STYLE_RANGES,
    SpeakerStyle,
    animate_phones,
    sample_style,
)


def phones_from(spec_list, start=0.3, lead_sil=True):
    """[(phone, duration), ...] → contiguous PhoneSegments, with silence around them."""
    out = [PhoneSegment("sil", 0.0, start)] if lead_sil else []
    t = start
    for ph, d in spec_list:
        out.append(PhoneSegment(ph, t, t + d))
        t += d
    out.append(PhoneSegment("sil", t, t + 0.4))
    return out


# "a map of mum" and friends: bilabials between open vowels, the hardest case for closure.
BILABIAL_LINE = [("ah", 0.06), ("m", 0.07), ("ae", 0.09), ("p", 0.06), ("ah", 0.05), ("v", 0.06), ("m", 0.05),
                 ("ah", 0.08), ("m", 0.08), ("b", 0.04), ("aa", 0.12), ("b", 0.05), ("iy", 0.1), ("p", 0.08)]


def col(track, name):
    return track.values[:, track.names.index(name)]


def frames_within(track, seg, pad=0.0):
    t = np.arange(track.n_frames) / track.fps
    idx = np.nonzero((t >= seg.start - pad) & (t <= seg.end + pad))[0]
    near = int(np.clip(round(0.5 * (seg.start + seg.end) * track.fps), 0, track.n_frames - 1))
    return np.union1d(idx, [near])


@pytest.mark.parametrize("fps", [24000 / 1001, 25.0, 30.0, 60.0])
def test_lips_seal_on_every_bilabial_at_any_frame_rate_and_style(fps):
    geom = metrics.default_geometry()
    closed = geom.threshold(metrics.CLOSED_FRACTION)
    phones = phones_from(BILABIAL_LINE)
    rng = np.random.default_rng(3)
    for k in range(6):
        style = sample_style(rng)
        track = animate_phones(phones, fps=fps, style=style, seed=k)
        assert track.fps == fps and track.names == spec.CHANNEL_NAMES
        gap = metrics.lip_gap(track, geom)
        w = max(1 / fps, 1 / 30)
        for p in phones:
            if p.phone in {"p", "b", "m"}:
                assert gap[frames_within(track, p, w)].min() <= closed, (p, style)


def test_open_vowels_open_and_silence_is_a_relaxed_closed_mouth():
    geom = metrics.default_geometry()
    phones = phones_from(BILABIAL_LINE)
    track = animate_phones(phones, seed=1)
    gap = metrics.lip_gap(track, geom)
    for p in phones:
        if p.phone in {"aa", "ae", "ah"} and p.duration >= 0.06:
            assert gap[frames_within(track, p)].max() >= geom.threshold(metrics.OPEN_FRACTION), p
    # Long trailing silence: closed at the pause threshold, jaw relaxed (no clenching: mouthClose back to 0).
    tail = np.arange(track.n_frames) / track.fps > phones[-1].start + 0.15
    assert np.all(gap[tail] <= geom.threshold(metrics.PAUSE_FRACTION))
    assert np.all(col(track, "mouthClose")[tail] < 0.02)
    assert np.all(col(track, "mouthPressLeft")[tail] < 0.05)


def test_labiodentals_tuck_the_lower_lip_and_tongue_shows_on_th_l_t_d():
    phones = phones_from([("ah", 0.1), ("f", 0.1), ("ay", 0.15), ("v", 0.09), ("ah", 0.1), ("th", 0.1),
                          ("ih", 0.1), ("l", 0.08), ("eh", 0.1), ("t", 0.07), ("aa", 0.1), ("d", 0.07),
                          ("ow", 0.12)])
    track = animate_phones(phones, seed=0)
    roll = col(track, "mouthRollLower")
    tongue = col(track, "tongueOut")
    for p in phones:
        idx = frames_within(track, p)
        if p.phone in {"f", "v"}:
            assert roll[idx].max() >= 0.4, p
        if p.phone in {"th", "l", "t", "d"}:
            assert tongue[idx].max() >= 0.05, p
        if p.phone in {"aa", "ay"}:
            assert roll[idx].min() < 0.2, p
    assert tongue[frames_within(track, phones[6])].max() > tongue[frames_within(track, phones[10])].max()


def test_rounding_is_held_and_anticipated_across_consonants():
    rounded = phones_from([("ih", 0.12), ("s", 0.09), ("t", 0.07), ("uw", 0.18), ("ih", 0.12)])
    spread = phones_from([("ih", 0.12), ("s", 0.09), ("t", 0.07), ("iy", 0.18), ("ih", 0.12)])
    a = animate_phones(rounded, seed=0)
    b = animate_phones(spread, seed=0)
    uw = rounded[4]
    s_mid = rounded[2].start + 0.5 * rounded[2].duration
    k = int(round(s_mid * a.fps))
    # Already rounding during /s/, 160 ms before the vowel, and only because /uw/ follows.
    assert col(a, "mouthPucker")[k] > 0.15
    assert col(b, "mouthPucker")[k] < 0.05
    assert col(a, "mouthPucker")[frames_within(a, uw)].min() >= 0.55
    for ph in ("w", "ow", "oy"):
        t = animate_phones(phones_from([("ah", 0.1), (ph, 0.12), ("ah", 0.1)]), seed=0)
        assert col(t, "mouthPucker")[frames_within(t, PhoneSegment(ph, 0.4, 0.52))].max() >= 0.3, ph


def test_jaw_and_lips_split_with_the_jali_ratio():
    phones = phones_from([("hh", 0.05), ("aa", 0.2), ("t", 0.06), ("ae", 0.2)])
    jaw_heavy = animate_phones(phones, style=SpeakerStyle(jaw_lip_ratio=0.75))
    lip_heavy = animate_phones(phones, style=SpeakerStyle(jaw_lip_ratio=0.25))
    assert col(jaw_heavy, "jawOpen").max() > col(lip_heavy, "jawOpen").max()
    assert col(lip_heavy, "mouthLowerDownLeft").max() > col(jaw_heavy, "mouthLowerDownLeft").max()


def test_silence_only_gives_a_closed_mouth_with_blinks():
    geom = metrics.default_geometry()
    track = animate_phones([PhoneSegment("sil", 0.0, 12.0)], np.zeros(12 * spec.SAMPLE_RATE, np.float32), seed=2)
    assert track.n_frames == 360
    assert np.all(metrics.lip_gap(track, geom) <= geom.threshold(metrics.PAUSE_FRACTION))
    blink = col(track, "eyeBlinkLeft")
    onsets = np.sum((blink[1:] > 0.5) & (blink[:-1] <= 0.5))
    assert 1 <= onsets <= 8  # 17/min nominal over 12 s
    assert np.all(np.isfinite(track.values))


def test_blinks_prefer_phrase_boundaries():
    # Phrases of 1.4 s separated by 0.5 s pauses, 40 s long.
    phones, t = [], 0.0
    line = [("ah", 0.1), ("m", 0.08), ("ae", 0.12), ("n", 0.07), ("iy", 0.1), ("s", 0.1)] * 2
    while t < 40:
        phones.append(PhoneSegment("sil", t, t + 0.5))
        t += 0.5
        for ph, d in line:
            phones.append(PhoneSegment(ph, t, t + d))
            t += d
    near_pause = 0
    total = 0
    for seed in range(4):
        track = animate_phones(phones, seed=seed)
        blink = col(track, "eyeBlinkLeft")
        onsets = np.nonzero((blink[1:] > 0.5) & (blink[:-1] <= 0.5))[0] / track.fps
        total += len(onsets)
        for o in onsets:
            near_pause += any(p.phone == "sil" and p.start - 0.1 <= o <= p.end + 0.2 for p in phones)
    pause_share = 0.5 / 1.68  # share of time that is pause (+ margins, roughly)
    assert total > 0
    assert near_pause / total > pause_share + 0.2


def test_style_is_recorded_deterministic_and_changes_motion():
    phones = phones_from(BILABIAL_LINE)
    samples = np.random.default_rng(0).standard_normal(int(2.5 * spec.SAMPLE_RATE)).astype(np.float32) * 0.05
    style = sample_style(np.random.default_rng(11))
    a = animate_phones(phones, samples, style=style, seed=5)
    b = animate_phones(phones, samples, style=style, seed=5)
    assert np.array_equal(a.values, b.values)
    assert a.meta["teacher"]["style"] == style.to_dict()
    assert a.meta["teacher"]["seed"] == 5
    assert SpeakerStyle.from_dict(a.meta["teacher"]["style"]) == style
    c = animate_phones(phones, samples, style=style, seed=6)
    assert not np.array_equal(a.values, c.values)
    big = animate_phones(phones, style=dataclasses.replace(style, amplitude=1.35, emotion="neutral"))
    small = animate_phones(phones, style=dataclasses.replace(style, amplitude=0.7, emotion="neutral"))
    assert col(big, "jawOpen").mean() > col(small, "jawOpen").mean()
    arkit = a.values[:, : spec.NUM_ARKIT]
    assert arkit.min() >= 0.0 and arkit.max() <= 1.0


def test_sample_style_covers_at_least_eight_continuous_parameters_and_emotions():
    fields = [f.name for f in dataclasses.fields(SpeakerStyle) if f.name not in ("emotion", "emotion_intensity")]
    assert len(fields) >= 8 and set(STYLE_RANGES) <= set(fields)
    rng = np.random.default_rng(0)
    styles = [sample_style(rng) for _ in range(200)]
    for name, (lo, hi) in STYLE_RANGES.items():
        v = np.array([getattr(s, name) for s in styles])
        assert lo <= v.min() and v.max() <= hi and v.std() > 0.15 * (hi - lo), name
    assert {s.emotion for s in styles} == set(spec.EMOTIONS)
    with pytest.raises(ValueError, match="unknown emotion"):
        SpeakerStyle(emotion="bored")


@pytest.mark.parametrize("emotion,channel", [("happy", "mouthSmileLeft"), ("sad", "mouthFrownLeft"),
                                             ("angry", "browDownLeft"), ("surprised", "eyeWideLeft")])
def test_emotions_show_and_keep_the_closures(emotion, channel):
    geom = metrics.default_geometry()
    phones = phones_from(BILABIAL_LINE)
    neutral = animate_phones(phones, style=SpeakerStyle(), seed=0)
    moved = animate_phones(phones, style=SpeakerStyle(emotion=emotion, emotion_intensity=1.0), seed=0)
    assert col(moved, channel).mean() > col(neutral, channel).mean() + 0.2
    gap = metrics.lip_gap(moved, geom)
    for p in phones:
        if p.phone in {"p", "b", "m"}:
            assert gap[frames_within(moved, p, 1 / 30)].min() <= geom.threshold(metrics.CLOSED_FRACTION)


def test_brows_rise_on_pitch_accents():
    rate = spec.SAMPLE_RATE
    t = np.arange(int(3.0 * rate)) / rate
    # A voice at 120 Hz with a pitch accent (up to 190 Hz) centred at 1.5 s.
    f0 = 120 + 70 * np.exp(-0.5 * ((t - 1.5) / 0.12) ** 2)
    voice = 0.3 * np.sign(np.sin(2 * np.pi * np.cumsum(f0) / rate)).astype(np.float32)
    phones = [PhoneSegment("sil", 0, 0.2), PhoneSegment("aa", 0.2, 2.8), PhoneSegment("sil", 2.8, 3.0)]
    track = animate_phones(phones, voice, style=SpeakerStyle(brow_activity=1.0), seed=0)
    brow = col(track, "browInnerUp")
    assert brow[int(1.5 * 30)] > brow[int(0.7 * 30)] + 0.1
    assert np.argmax(brow) / 30 == pytest.approx(1.5, abs=0.2)
    flat = animate_phones(phones, voice, style=SpeakerStyle(brow_activity=0.0), seed=0)
    assert col(flat, "browInnerUp").max() < 0.01


def test_head_moves_with_style_and_gaze_saccades():
    phones = phones_from(BILABIAL_LINE * 4)
    rng = np.random.default_rng(1)
    samples = (rng.standard_normal(int(8 * spec.SAMPLE_RATE)) * 0.1).astype(np.float32)
    calm = animate_phones(phones, samples, style=SpeakerStyle(head_activity=0.2), seed=0)
    lively = animate_phones(phones, samples, style=SpeakerStyle(head_activity=1.6), seed=0)
    assert col(lively, "headYaw").std() > 3 * col(calm, "headYaw").std()
    gaze = col(lively, "eyeYawLeft")
    jumps = np.abs(np.diff(gaze)) > 0.02
    assert jumps.sum() >= 2  # saccades: fast jumps between fixations
    assert np.all(np.abs(gaze) < 0.5)


def test_low_confidence_phones_give_a_calm_mouth():
    phones = phones_from(BILABIAL_LINE)
    sure = animate_phones(phones, seed=0)
    unsure = animate_phones(phones, seed=0, confidence=[0.0] * len(phones))
    assert col(unsure, "jawOpen").std() < 0.6 * col(sure, "jawOpen").std()


def known_and_heard_gaps(phones):
    """(track, lip gap, lip gap when the phones were recognised, the lip geometry) on the default head."""
    geom = metrics.default_geometry()
    known_track = animate_phones(phones, seed=0)
    known = metrics.lip_gap(known_track, geom)
    heard = metrics.lip_gap(animate_phones(phones, seed=0, recognised=True), geom)
    return known_track, known, heard, geom


def test_recognised_mid_vowels_open_but_close_vowels_keep_their_shape():
    phones = phones_from([("t", 0.08), ("ih", 0.1), ("k", 0.08), ("ih", 0.1), ("s", 0.1), ("iy", 0.1)])
    known_track, known, heard, geom = known_and_heard_gaps(phones)
    for p in phones:
        idx = frames_within(known_track, p)
        if p.phone == "ih":
            assert heard[idx].max() >= geom.threshold(metrics.OPEN_FRACTION) > known[idx].max()
        if p.phone == "iy":
            assert heard[idx].max() < geom.threshold(metrics.OPEN_FRACTION)


def test_a_short_recognised_close_vowel_is_taken_for_a_reduced_one():
    # pocketsphinx hears a 60 ms schwa between consonants as /iy/ or /uw/ (LibriVox 0870 "...ture a...",
    # 0930 "...me a b..."); a long /iy/ keeps its near-closed shape (the test above).
    phones = phones_from([("t", 0.08), ("iy", 0.06), ("k", 0.08), ("uw", 0.06), ("b", 0.08), ("sil", 0.3)])
    known_track, known, heard, geom = known_and_heard_gaps(phones)
    for p in phones:
        if p.phone in ("iy", "uw"):
            idx = frames_within(known_track, p)
            assert heard[idx].max() >= geom.threshold(metrics.OPEN_FRACTION) > known[idx].max()


@pytest.mark.parametrize("style", [SpeakerStyle(),
                                   SpeakerStyle(motion_tempo=0.5, emotion="sad", emotion_intensity=0.7)])
def test_a_long_take_rendered_in_windows_equals_the_take_at_once(monkeypatch, style):
    # An hour blended at once needed several hundred MB; windows must not change a bit of any frame, so each
    # window's context has to reach past every phone's influence (dominance, low-pass, ramps).
    from facepolicy.core import teacher
    from facepolicy.core.teacher import take as teacher_take

    line = phones_from(BILABIAL_LINE * 6 + [("sil", 0.9), ("uw", 0.2), ("f", 0.07), ("ow", 0.15)] + BILABIAL_LINE)
    rate = spec.SAMPLE_RATE
    t = np.arange(int(line[-1].end * rate)) / rate
    voice = (0.3 * np.sin(2 * np.pi * 140 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    kwargs = dict(style=style, seed=4, confidence=np.linspace(0.2, 1, len(line)), recognised=True)
    whole = animate_phones(line, voice, **kwargs).values
    monkeypatch.setattr(teacher_take, "RENDER_WINDOW", 0.37)  # windows of 12 frames, edges inside phones
    windows = []
    windowed = animate_phones(line, voice, progress=windows.append, **kwargs).values
    assert len(windows) >= len(whole) // 12  # a progress call after each window
    assert whole.shape == windowed.shape and whole.tobytes() == windowed.tobytes()
    take = teacher.TeacherTake(line, voice, **kwargs)
    assert len(take) == len(whole) and take[40:57].tobytes() == whole[40:57].tobytes()


def test_a_take_without_the_upper_face_has_the_same_mouth_and_a_face_at_rest_above_it():
    # The Neural engine's prior steers the mouth only; it skips the upper face's curves and the F0 search.
    from facepolicy.core.teacher import TeacherTake

    line = phones_from(BILABIAL_LINE)
    rate = spec.SAMPLE_RATE
    t = np.arange(int(line[-1].end * rate)) / rate
    voice = (0.3 * np.sin(2 * np.pi * (120 + 40 * t) * t)).astype(np.float32)
    full = TeacherTake(line, voice, seed=2, recognised=True)[0:60]
    mouth = TeacherTake(line, voice, seed=2, recognised=True, upper=False)[0:60]
    lower = [i for i, n in enumerate(spec.CHANNEL_NAMES) if n.startswith(("jaw", "mouth", "tongue", "cheek"))]
    above = [i for i, n in enumerate(spec.CHANNEL_NAMES) if n.startswith(("eye", "brow", "head"))]
    assert len(lower) + len(above) >= 50
    np.testing.assert_array_equal(mouth[:, lower], full[:, lower])
    assert np.abs(full[:, above]).max() > 0.05 and not mouth[:, above].any()


def test_a_long_take_reports_progress_through_the_pitch_tracking_and_the_windows():
    # The command line's progress bar follows an hour-long line through this: several seconds of F0 search, then
    # a window of frames every RENDER_WINDOW seconds.
    rate = spec.SAMPLE_RATE
    t = np.arange(150 * rate) / rate
    voice = (0.3 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)).astype(np.float32)
    seen: list[float] = []
    track = animate_phones(phones_from(BILABIAL_LINE), voice, duration=150.0, progress=seen.append)
    assert track.n_frames == 4500
    assert len(seen) >= 10 and seen[-1] == 1.0 and all(b > a for a, b in zip(seen, seen[1:], strict=False))
    assert sum(f > 0.7 for f in seen) == 3  # one per 60 s window
