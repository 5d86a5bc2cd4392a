"""One line's phone evidence (core.evidence): transcript acceptance, where the audio is not speech, the clean-up."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from facepolicy.core import evidence, spec
from facepolicy.core.align import Alignment
from facepolicy.core.audio import load_audio
from facepolicy.core.evidence import (
    AUDIO_ONLY,
    TRANSCRIPT,
    TRANSCRIPT_MIN_FIT,
    Evidence,
    calm_nonspeech,
    gather_evidence,
    silence_nonspeech,
    speech_frames,
    transcript_fit,
)
from facepolicy.core.phones import PHONES, VOWELS, PhoneSegment
from facepolicy.core.second_opinion import OPINION_VOWELS, cleaned_phones, vowels_in_pauses

pytest.importorskip("pocketsphinx", reason="evidence needs pocketsphinx (pip install pocketsphinx)")

ARCTIC = Path(__file__).resolve().parents[2] / "data" / "arctic"
A9 = ARCTIC / "arctic_a0009.wav"
A9_TEXT = "He turned sharply, and faced Gregson across the table."
RATE = spec.SAMPLE_RATE


def seg(*items):
    return [PhoneSegment(p, s, e) for p, s, e in items]


def test_the_fit_is_the_median_over_phones_of_the_encoders_log_probability_where_they_are_aligned():
    aligned = Alignment(seg(("sil", 0.0, 0.1), ("m", 0.1, 0.2), ("aa", 0.2, 0.4), ("t", 0.4, 0.5)), [1.0] * 4)
    probs = np.full((25, len(PHONES)), 1e-3)
    probs[5:10, PHONES.index("m")] = 0.5  # frames 5..9 = 0.1..0.2 s at 50 Hz
    probs[10:20, PHONES.index("aa")] = 0.25
    # /t/ is never heard: the median over m, aa and t is aa's, a single missing phone does not sink the line.
    assert transcript_fit(aligned, probs, 50.0) == pytest.approx(np.log(0.25))


def test_the_ears_fit_is_how_far_below_the_likeliest_phone_each_aligned_phone_lies_on_average():
    aligned = Alignment(seg(("sil", 0.0, 0.1), ("m", 0.1, 0.2), ("aa", 0.2, 0.4)), [1.0] * 3)
    probs = np.full((20, len(PHONES)), 0.01)
    probs[5:10, PHONES.index("m")] = 0.5  # the ear's likeliest phone where /m/ is aligned: 0 below it
    probs[10:20, PHONES.index("eh")] = 0.4  # where /aa/ is aligned it hears /eh/ likelier, by log(0.4/0.1)
    probs[10:20, PHONES.index("aa")] = 0.1
    assert evidence.ear_fit(aligned, probs, 50.0) == pytest.approx(0.5 * (0.0 + np.log(0.1 / 0.4)))


def _earless_listener():
    """The shipped model's listener without its ear, as a model fine-tuned before the ear shipped has it."""
    from facepolicy.core.listener import BilabialListener
    from facepolicy.core.model_files import create_session, read_model_files

    files = read_model_files()
    session, _ = create_session(files.network("audio_encoder"), "cpu")
    return BilabialListener(session=session, stride=int(files.manifest["model"]["audio_stride"]))


def test_an_english_transcript_is_judged_by_the_phone_head_and_a_model_without_an_ear_judges_every_one_so():
    from facepolicy.core.listener import shared_listener

    samples = load_audio(A9).samples
    earless = _earless_listener()
    assert shared_listener().has_ear and not earless.has_ear
    assert earless.listen_checking(samples, ("sil",), check=True)[2] is None
    # English: the same fit (the phone head's median rule) with and without an ear
    with_ear, without = gather_evidence(samples, A9_TEXT, None), gather_evidence(samples, A9_TEXT, None, earless)
    assert with_ear.source == without.source == TRANSCRIPT and with_ear.fit == without.fit
    assert with_ear.fit == pytest.approx(transcript_fit(with_ear.alignment, earless.phone_probs(samples, PHONES),
                                                        earless.frame_rate))


def test_tones_and_regular_beats_are_not_speech_and_speech_is():
    t = np.arange(4 * RATE) / RATE
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    frames = int(4 * 50)
    assert not speech_frames(tone, np.zeros(frames), 50.0).any()  # even when the encoder hears a vowel
    clicks = np.zeros(4 * RATE, np.float32)
    clicks[:: RATE // 4] = 1.0
    clicks = np.convolve(clicks, np.exp(-np.arange(400) / 60.0), mode="same").astype(np.float32)
    half_silent = np.tile([0.0, 1.0], frames // 2)  # the encoder hears a "consonant" on every other frame
    assert not speech_frames(clicks, half_silent, 50.0).any()
    assert speech_frames(clicks, np.zeros(frames), 50.0).all()  # a beat under speech the encoder hears stays speech

    from facepolicy.core.align import shared_aligner
    from facepolicy.core.listener import shared_listener

    samples = load_audio(A9).samples
    speech = speech_frames(samples, shared_listener().phone_probs(samples, ("sil",))[:, 0], 50.0)
    for p in shared_aligner().align(samples, A9_TEXT).phones:
        if p.phone in VOWELS:
            assert speech[int(p.start * 50) : max(int(p.start * 50) + 1, int(p.end * 50))].all(), p


def test_phones_on_frames_that_are_not_speech_become_one_pause():
    heard = Alignment(seg(("sil", 0.0, 0.2), ("aa", 0.2, 0.6), ("m", 0.6, 0.7), ("iy", 0.7, 1.0)), [1.0, 0.9, 0.8, 0.7],
                      mode="recognised-phones")
    speech = np.ones(50, bool)
    speech[:34] = False  # 0 .. 0.68 s
    assert silence_nonspeech(heard, speech, 50.0) == 2
    assert [(p.phone, p.start, p.end) for p in heard.phones] == [("sil", 0.0, 0.7), ("iy", 0.7, 1.0)]
    assert heard.confidence == [1.0, 0.7]


def test_nonspeech_rests_the_mouth_channels_and_leaves_speech_alone():
    ev = Evidence(None, AUDIO_ONLY, np.repeat([True, False, True], 50), 50.0)
    gate = ev.speech_gate(90)  # 3 s at 30 fps
    assert gate[:25].min() == 1.0 and gate[35:55].max() == 0.0 and gate[65:].min() == 1.0
    states = np.full((90, 4), 0.8, np.float32)
    rest = np.array([0.0, 0.1, 0.2, 0.3], np.float32)
    out = calm_nonspeech(states, gate, rest, [0, 2])
    np.testing.assert_allclose(out[40], [0.0, 0.8, 0.2, 0.8])
    np.testing.assert_allclose(out[10], states[10])


def test_recognised_phones_are_cleaned_up_for_the_teacher_and_alignments_are_not():
    phones = seg(("sil", 0.0, 0.2), ("aa", 0.2, 1.4), ("t", 1.4, 1.43), ("iy", 1.43, 1.6), ("sil", 1.6, 2.0))
    heard = Alignment(phones, [1.0] * 5, mode="recognised-phones")
    clean, confidence = cleaned_phones(heard)
    assert [p.phone for p in clean] == ["sil", "aa", "iy", "sil"]  # the 30 ms /t/ joins its longer neighbour
    assert confidence[1] == 0.0  # a 1.2 s vowel is implausible
    assert heard.phones == phones  # the evidence itself is kept
    aligned = Alignment(phones, [1.0] * 5)
    assert cleaned_phones(aligned) == (phones, [1.0] * 5)


def test_an_exact_transcript_is_used_and_another_lines_is_not():
    samples = load_audio(A9).samples
    used = gather_evidence(samples, A9_TEXT, "phones")
    assert used.source == TRANSCRIPT and used.warnings == [] and used.fit >= TRANSCRIPT_MIN_FIT
    assert used.alignment.mode == "aligned"
    other = gather_evidence(samples, "And you always want to see it in the superlative degree.", None)
    assert other.source == AUDIO_ONLY and other.alignment is None
    assert len(other.warnings) == 1 and other.warnings[0].startswith("the transcript does not match the audio")
    assert other.warnings[0].endswith("so this line was animated from the audio alone")


def test_without_the_audio_encoder_a_transcript_is_used_unchecked_and_the_user_is_told(monkeypatch):
    from facepolicy.core.errors import AssetError

    def missing():
        raise AssetError('neural model "x/model.json" is missing')

    monkeypatch.setattr(evidence, "shared_listener", missing)
    heard = gather_evidence(load_audio(A9).samples, A9_TEXT, "phones")
    assert heard.source == TRANSCRIPT and heard.fit is None
    assert len(heard.warnings) == 1 and "used without checking it against the audio" in heard.warnings[0]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_a_tts_line_with_digital_silence_aligns_to_its_own_text(tmp_path):
    """espeak-ng writes exact zeros between words; before the noise floor (core.align.pcm16) and the alignment's
    wide beams, its lines failed to align to their own text."""
    wav = tmp_path / "npc.wav"
    text = "Maybe my mom made plum pie for the bumpy bus trip."
    subprocess.run(["espeak-ng", "-v", "en-029", "-s", "220", "-w", str(wav), text], check=True, capture_output=True)
    samples = load_audio(wav).samples
    assert np.mean(np.abs(samples) < 0.5 / 32767) > 0.1  # zero in 16-bit PCM
    heard = gather_evidence(samples, text, None)
    assert heard.source == TRANSCRIPT, heard.warnings


def test_clips_of_a_few_samples_give_evidence_and_leave_the_decoders_working():
    for n in (0, 1, 160, 480):
        heard = gather_evidence(np.zeros(n, np.float32), "hello there", "phones")
        assert heard.speech.dtype == bool and len(heard.speech_gate(1)) == 1
        assert heard.source == "phone recognition" and len(heard.warnings) == 1
    assert gather_evidence(load_audio(A9).samples, A9_TEXT, None).source == TRANSCRIPT


def test_calm_nonspeech_leaves_speech_frames_bit_for_bit():
    """Where the gate is 1 (speech) the states keep their exact values; only gated frames move toward rest."""
    from facepolicy.core.evidence import calm_nonspeech

    rng = np.random.default_rng(7)
    states = rng.random((50, 8)).astype(np.float32)
    rest = rng.random(8).astype(np.float32)
    gate = np.ones(50)
    gate[:5] = 0.0
    gate[5:8] = 0.5
    out = calm_nonspeech(states, gate, rest, [0, 2, 3])
    assert np.array_equal(out[8:], states[8:]) and np.array_equal(out[:, [1, 4, 5, 6, 7]], states[:, [1, 4, 5, 6, 7]])
    np.testing.assert_array_equal(out[:5, [0, 2, 3]], np.broadcast_to(rest[[0, 2, 3]], (5, 3)))
    np.testing.assert_allclose(out[5:8, [0, 2, 3]], 0.5 * (states[5:8, [0, 2, 3]] + rest[[0, 2, 3]]), rtol=1e-6)


def test_nonspeech_cues_made_ahead_for_more_frames_give_the_same_frames():
    # gather_evidence makes the spectrum's cues on another core while the encoder listens, for a frame count it can
    # only bound from above: each frame's cues must not depend on how many frames follow it (blocks of 3000).
    from facepolicy.core.nonspeech import spectral_cues

    clip = load_audio(A9).samples
    t = np.arange(8 * RATE) / RATE
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    samples = np.concatenate([np.tile(clip, 40), tone, clip])  # about 140 s: three blocks, a tone among speech
    rate = 50.0
    n = int(np.ceil(len(samples) * rate / RATE))
    silence = np.random.default_rng(0).uniform(0, 1, n) ** 4
    ahead = spectral_cues(samples, n + 2, rate)
    assert len(ahead[0]) == n + 2 and n > 6000
    fresh = speech_frames(samples, silence, rate)
    np.testing.assert_array_equal(speech_frames(samples, silence, rate, ahead), fresh)
    assert not fresh.all() and fresh.any()


def _vowel_probs(frames: int, runs: dict[tuple[int, int], tuple[str, float]]) -> np.ndarray:
    """(frames, len(OPINION_VOWELS)) encoder probabilities at 50 Hz: none, but P(vowel) = p over each run a..b."""
    out = np.zeros((frames, len(OPINION_VOWELS)))
    for (a, b), (vowel, p) in runs.items():
        out[a:b, OPINION_VOWELS.index(vowel)] = p
    return out


def test_a_vowel_the_encoder_hears_in_a_recognised_pause_splits_the_pause():
    phones = [PhoneSegment("n", 0.0, 0.2), PhoneSegment("sil", 0.2, 0.6), PhoneSegment("iy", 0.6, 0.8)]
    probs = _vowel_probs(40, {(14, 18): ("ae", 0.8), (21, 23): ("aa", 0.9), (2, 8): ("ow", 0.9)})
    out, conf, added = vowels_in_pauses(phones, [0.9, 1.0, 0.7], probs, 50.0)
    # The four frames of ae (0.28..0.36 s) become an ae with the encoder's certainty; two frames of aa are too few,
    # and the run inside the recognised n is none of this rule's business.
    assert added == 1
    assert [(p.phone, round(p.start, 2), round(p.end, 2)) for p in out] == [
        ("n", 0.0, 0.2), ("sil", 0.2, 0.28), ("ae", 0.28, 0.36), ("sil", 0.36, 0.6), ("iy", 0.6, 0.8)]
    assert conf == pytest.approx([0.9, 1.0, 0.8, 1.0, 0.7])
    # Under the threshold, or after the time decoded so far (a live stream's pause there is audio not decoded yet),
    # nothing changes.
    assert vowels_in_pauses(phones, [1.0] * 3, probs * 0.6, 50.0)[2] == 0
    assert vowels_in_pauses(phones, [1.0] * 3, probs, 50.0, decoded=0.3)[2] == 0


def test_a_vowel_the_encoder_hears_in_a_recognised_l_splits_the_l():
    # Polish "o" recognised as a dark l: the encoder hears the vowel over four frames of it. Other consonants stay.
    phones = [PhoneSegment("p", 0.0, 0.08), PhoneSegment("l", 0.08, 0.24), PhoneSegment("sh", 0.24, 0.4)]
    probs = _vowel_probs(20, {(5, 9): ("ao", 0.85), (13, 18): ("aa", 0.9)})
    out, conf, added = vowels_in_pauses(phones, [1.0, 0.9, 0.8], probs, 50.0)
    assert added == 1
    assert [(p.phone, round(p.start, 2), round(p.end, 2)) for p in out] == [
        ("p", 0.0, 0.08), ("l", 0.08, 0.1), ("ao", 0.1, 0.18), ("l", 0.18, 0.24), ("sh", 0.24, 0.4)]
    assert conf == pytest.approx([1.0, 0.9, 0.85, 0.9, 0.8])
