"""The live stream (core.stream), its phone evidence (core.stream_evidence), raw PCM and resampling (core.pcm) and
Live Link Face UDP packets (core.livelink_packet)."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import numpy as np
import pytest

from facepolicy.core import features, spec
from facepolicy.core.audio import load_audio, normalise_loudness
from facepolicy.core.errors import FacePolicyError
from facepolicy.core.livelink_packet import (
    EAR_NAMES,
    NUM_VALUES,
    PACKET_NAMES,
    Sender,
    decode_packet,
    encode_packet,
    packet_values,
    parse_address,
)
from facepolicy.core.pcm import PcmDecoder, Resampler
from facepolicy.core.phones import PHONES, SIL, PhoneSegment
from facepolicy.core.policy import NeuralPolicy, SampleSettings
from facepolicy.core.smoothing import PLAN_BLEND
from facepolicy.core.stream import LATENCY, LOOKAHEAD, SMOOTH, FaceStream, Loudness
from facepolicy.core.stream_evidence import (
    CLOSURE_MAX,
    KEEP,
    TAIL_AFTER_CLOSURE,
    UNDECODED,
    UTTERANCE_MAX,
    PhoneProbs,
    PhoneStream,
    window_evidence,
)

ROOT = Path(__file__).resolve().parents[3]
CLIP = ROOT / "tests" / "data" / "arctic" / "arctic_a0007.wav"


@pytest.fixture(scope="module")
def policy():
    return NeuralPolicy(threads=1)


@pytest.fixture(scope="module")
def speech():
    return load_audio(CLIP, normalise=False).samples


def stream_all(policy, samples, chunks, **kw) -> np.ndarray:
    s = FaceStream(policy, SampleSettings(), **kw)
    out, a = [], 0
    for n in chunks:
        s.push(samples[a : a + n])
        out.append(s.pull())
        a += n
    s.push(samples[a:])
    out.append(s.finish())
    return np.concatenate(out)


# --- Live Link Face packets -----------------------------------------------------------------------------------------

def test_the_packet_order_is_unreals_enum_not_the_csv_order():
    assert sorted(EAR_NAMES) == sorted(spec.ARKIT_NAMES) and len(EAR_NAMES) == 52
    assert EAR_NAMES[14:18] == ("jawForward", "jawLeft", "jawRight", "jawOpen")
    assert EAR_NAMES[21:23] == ("mouthLeft", "mouthRight")
    assert spec.ARKIT_NAMES[15:17] == ("jawRight", "jawLeft")  # the CSV's order differs exactly there
    assert PACKET_NAMES[52:] == ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                                 "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
    assert NUM_VALUES == 61


def test_packet_bytes_are_the_live_link_face_layout():
    state = np.zeros(spec.NUM_CHANNELS, np.float32)
    state[spec.CHANNEL_INDEX["jawLeft"]] = 0.25
    state[spec.CHANNEL_INDEX["mouthRight"]] = 0.5
    state[spec.CHANNEL_INDEX["headPitch"]] = -0.125
    state[spec.CHANNEL_INDEX["eyeYawRight"]] = 0.0625
    data = encode_packet(packet_values(state), 7, (60, 1), subject="Ada", device_id="dev")
    assert data[0] == 6
    assert struct.unpack(">i", data[1:5])[0] == 3 and data[5:8] == b"dev"
    assert struct.unpack(">i", data[8:12])[0] == 3 and data[12:15] == b"Ada"
    frame, sub, num, den, count = struct.unpack(">ifiiB", data[15:32])
    assert (frame, sub, num, den, count) == (7, 0.0, 60, 1, 61)
    values = struct.unpack(">61f", data[32:])
    assert len(data) == 32 + 61 * 4
    assert values[15] == 0.25 and values[22] == 0.5  # JawLeft, MouthRight in EARFaceBlendShape
    assert values[53] == -0.125 and values[58] == 0.0625 and values[57] == 0.0 and values[60] == 0.0


def test_a_packet_decodes_to_what_was_encoded_and_garbage_is_refused():
    rng = np.random.default_rng(1)
    values = rng.random(NUM_VALUES).astype(np.float32)
    p = decode_packet(encode_packet(values, 123, (30, 1), subject="Ünïcode"))
    assert (p.version, p.subject, p.frame, p.rate) == (6, "Ünïcode", 123, (30, 1))
    assert np.array_equal(p.values, values)
    good = encode_packet(values, 0)
    for bad, says in ((b"\x05" + good[1:], "version 5"), (good[:-4], "bytes"), (b"", "not a Live Link Face")):
        with pytest.raises(ValueError, match=says):
            decode_packet(bad)


def test_live_link_addresses():
    assert parse_address("127.0.0.1:11111") == ("127.0.0.1", 11111)
    assert parse_address("studio-pc") == ("studio-pc", 11111)
    assert parse_address("[::1]:9000") == ("::1", 9000)
    for bad in ("host:", "host:99999", ":5", "host:port"):
        with pytest.raises(FacePolicyError, match="HOST:PORT"):
            parse_address(bad)


def test_the_sender_numbers_frames_from_zero_on_a_loopback_receiver():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    sender = Sender(f"127.0.0.1:{rx.getsockname()[1]}", 60, subject="Take")
    frames = np.zeros((3, spec.NUM_CHANNELS), np.float32)
    frames[:, spec.CHANNEL_INDEX["jawOpen"]] = [0.1, 0.2, 0.3]
    sender.send(frames[:2])
    sender.send(frames[2])
    got = [decode_packet(rx.recv(2048)) for _ in range(3)]
    sender.close()
    rx.close()
    assert [p.frame for p in got] == [0, 1, 2]
    assert [round(p.value("jawOpen"), 6) for p in got] == [0.1, 0.2, 0.3]
    assert {p.rate for p in got} == {(60, 1)} and {p.subject for p in got} == {"Take"}


# --- PCM and resampling ---------------------------------------------------------------------------------------------

def test_pcm_keeps_an_odd_byte_for_the_next_chunk():
    data = np.array([1, -2, 32767, -32768], "<i2").tobytes()
    d = PcmDecoder()
    first = d.push(data[:3])
    assert len(first) == 1 and d.pending == 1
    rest = d.push(data[3:])
    assert np.array_equal(np.concatenate([first, rest]) * 32768, [1, -2, 32767, -32768]) and d.pending == 0


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_the_resampler_is_band_limited_and_does_not_depend_on_the_chunks(rate):
    t = np.arange(2 * rate) / rate
    x = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    whole = Resampler(rate)
    y = np.concatenate([whole.push(x), whole.finish()])
    r, rng, parts, a = Resampler(rate), np.random.default_rng(0), [], 0
    while a < len(x):
        n = int(rng.integers(1, 3000))
        parts.append(r.push(x[a : a + n]))
        a += n
    parts.append(r.finish())
    assert len(y) == 32000 and np.array_equal(y, np.concatenate(parts))
    to = np.arange(len(y)) / 16000
    ref = 0.5 * np.sin(2 * np.pi * 440 * to) + 0.3 * np.sin(2 * np.pi * 3000 * to)
    assert np.abs(y - ref)[200:-200].max() < 1e-4
    if rate == 48000:
        tone = np.sin(2 * np.pi * 10000 * t).astype(np.float32)  # above 8 kHz: must not alias into the output
        r = Resampler(rate)
        assert np.sqrt(np.mean(np.concatenate([r.push(tone), r.finish()])[100:-100] ** 2)) < 1e-3


# --- loudness -------------------------------------------------------------------------------------------------------

def test_the_running_loudness_reaches_the_offline_gain(speech):
    quiet = speech * 0.05
    loud = Loudness()
    loud.push(quiet)
    offline = normalise_loudness(quiet.copy(), spec.SAMPLE_RATE)
    assert loud.gain == pytest.approx(float(np.abs(offline).max() / np.abs(quiet).max()), rel=1e-3)
    silent = Loudness()
    silent.push(np.zeros(16000, np.float32))
    assert silent.gain == 1.0


# --- the stream -----------------------------------------------------------------------------------------------------

def test_a_frame_leaves_once_the_audio_reaches_the_stated_latency(policy, speech):
    s = FaceStream(policy, SampleSettings(), evidence=False)
    assert LATENCY == pytest.approx((LOOKAHEAD + SMOOTH) / spec.MODEL_FPS) and s.latency() == LATENCY
    for j in (0, 5, 17):
        need = int(np.ceil((j + LOOKAHEAD + SMOOTH) * spec.SAMPLE_RATE / spec.MODEL_FPS))
        s.push(speech[s.samples_in : need - 1])
        assert s.frames_out == j, "a frame left before its look-ahead was heard"
        s.push(speech[need - 1 : need])
        assert s.frames_out == j + 1
    assert FaceStream(policy, evidence=False, fps=60).latency() == pytest.approx(LATENCY + 1 / 30)


def test_the_frames_do_not_depend_on_how_the_audio_was_cut(policy, speech):
    x = speech[: 2 * spec.SAMPLE_RATE]
    rng = np.random.default_rng(3)
    a = stream_all(policy, x, [len(x)])
    b = stream_all(policy, x, rng.integers(1, 900, 200))
    c = stream_all(policy, x, [160] * 150)
    assert len(a) == features.n_model_frames(len(x)) == 60
    assert np.array_equal(a, b) and np.array_equal(a, c)


@pytest.mark.parametrize("fps", [30, 60])
def test_a_stream_gives_one_frame_per_frame_of_audio_and_resamples_as_a_track_does(policy, speech, fps):
    from facepolicy.core.facetrack import FaceTrack

    x = speech[: 3 * spec.SAMPLE_RATE + 1234]
    at30 = stream_all(policy, x, [512] * 40, evidence=False)
    out = stream_all(policy, x, [512] * 40, evidence=False, fps=fps)
    assert len(out) == round(len(x) / spec.SAMPLE_RATE * fps)  # 185 at 60 fps: one more than twice 92
    resampled = FaceTrack(30, spec.CHANNEL_NAMES, at30).resample(fps).values
    assert np.array_equal(out[: len(resampled)], resampled) and np.array_equal(out[len(resampled) :], at30[-1:]
                                                                                 [: len(out) - len(resampled)])


def test_the_mouth_follows_speech_and_rests_in_silence(policy, speech):
    x = np.concatenate([np.zeros(spec.SAMPLE_RATE, np.float32), speech, np.zeros(spec.SAMPLE_RATE, np.float32)])
    y = stream_all(policy, x, [320] * 600)
    jaw = y[:, spec.CHANNEL_INDEX["jawOpen"]]
    talk = slice(35, 30 + int(len(speech) / spec.SAMPLE_RATE * 30) - 5)
    assert jaw[talk].max() > 0.3 and jaw[talk].std() > 3 * jaw[:20].std()
    assert jaw[:20].max() < 0.1 and jaw[-15:].max() < 0.1
    assert np.all(np.isfinite(y)) and y[:, : spec.NUM_ARKIT].min() >= 0 and y[:, : spec.NUM_ARKIT].max() <= 1


@pytest.mark.parametrize("kind", ["silence", "clipping", "nan", "tiny chunks"])
def test_bad_audio_never_breaks_the_stream(policy, speech, kind):
    n = 2 * spec.SAMPLE_RATE
    x = {"silence": np.zeros(n, np.float32),
         "clipping": np.sign(np.sin(np.arange(n) * 0.07)).astype(np.float32) * 4.0,
         "nan": np.where(np.arange(n) % 97 == 0, np.nan, speech[:n]).astype(np.float32),
         "tiny chunks": speech[:n]}[kind]
    y = stream_all(policy, x, [1] * 3000 if kind == "tiny chunks" else [777] * 30)
    assert len(y) == 60 and np.all(np.isfinite(y))
    if kind == "silence":
        assert y[:, spec.CHANNEL_INDEX["jawOpen"]].max() < 0.1


def test_an_empty_stream_gives_no_frames(policy):
    s = FaceStream(policy, evidence=False)
    assert len(s.finish()) == 0 and s.frames_out == 0
    with pytest.raises(FacePolicyError, match="finished"):
        s.push(np.zeros(10, np.float32))


def test_the_stream_hears_phones_as_they_come_and_forgets_old_ones(speech):
    phones = PhoneStream()
    heard_at = []
    for a in range(0, 6 * len(speech), 1600):
        phones.push(np.tile(speech, 6)[a : a + 1600])
        heard = phones.phones()
        heard_at.append(max((p.end for p, _ in heard), default=0.0) - phones.seconds)
    phones.close()
    assert min(heard_at[10:]) > -0.1, "the partial hypothesis lags the audio"
    assert {p.phone for p, _ in heard} >= {"m", "iy"}
    # Utterances are cut, so neither the hypothesis nor the phones kept before it grow with the session.
    assert heard[0][0].start > phones.seconds - KEEP - UTTERANCE_MAX - 1.0, "old phones were kept"
    assert phones.kept and phones.kept[-1][0].end > phones.seconds - UTTERANCE_MAX - 1.0, "no utterance was cut"
    assert all(a[0].end <= b[0].start + 1e-6 for a, b in zip(heard, heard[1:], strict=False))


@pytest.mark.slow
def test_a_long_session_keeps_bounded_buffers(policy, speech):
    x = np.tile(np.concatenate([speech, np.zeros(8000, np.float32)]), 6)  # 27 s
    s = FaceStream(policy, SampleSettings())
    sizes = []
    for a in range(0, len(x), 1600):
        s.push(x[a : a + 1600])
        s.pull()
        sizes.append((len(s._audio), len(s.probs.values), len(s.phones.kept), len(s._planned)))
    s.finish()
    late = np.array(sizes[len(sizes) // 2 :])
    assert late[:, 0].max() <= 6.2 * spec.SAMPLE_RATE
    assert late[:, 1].max() <= KEEP * 50 + 1 and late[:, 2].max() < 200 and late[:, 3].max() <= 3
    assert s.frames_out == features.n_model_frames(len(x))



def test_audio_the_recogniser_has_not_decoded_yet_is_not_a_pause():
    # pocketsphinx's partial hypothesis ends 50 ms behind the audio it was given. That tail used to become a pause in
    # every plan's evidence, so the teacher and the model heard speech stopping 50 ms ahead of every frame.
    probs = PhoneProbs(50.0)  # no encoder opinion: all zeros
    heard = [(PhoneSegment("hh", 0.0, 0.1), 0.9), (PhoneSegment("aa", 0.1, 0.45), 0.8)]
    got = window_evidence(heard, probs, 0.0, 0.5)
    assert [(p.phone, round(p.start, 3), round(p.end, 3)) for p in got.phones] == [("hh", 0.0, 0.1), ("aa", 0.1, 0.5)]
    assert got.confidence == [0.9, 0.8]
    # A longer gap is a pause the recogniser has not heard the end of; a heard pause stays a pause.
    late = window_evidence(heard, probs, 0.0, 0.45 + UNDECODED + 0.05)
    assert late.phones[-1].phone == SIL and late.phones[-2].end == pytest.approx(0.45)
    quiet = window_evidence([*heard, (PhoneSegment(SIL, 0.45, 0.47), 1.0)], probs, 0.0, 0.5)
    assert quiet.phones[-1].phone == SIL and quiet.phones[-1].start == pytest.approx(0.45)
    # The encoder's second opinion still finds a closure in the undecoded tail (it may be where one begins).
    probs.update(0, np.where(np.arange(len(PHONES))[None] == PHONES.index("m"), 9.0, 0.0).repeat(30, 0), 30)
    closing = window_evidence(heard[:1] + [(PhoneSegment("ay", 0.1, 0.36), 0.8)], probs, 0.3, 0.4)
    assert "m" in [p.phone for p in closing.phones]


def test_a_closure_heard_last_is_not_carried_through_the_undecoded_tail():
    # A p/b/m at the edge of the decoded audio used to fill the whole undecoded tail, so the plans (and the seal) kept
    # the lips shut into the vowel after it; it now lasts CLOSURE_MAX from its start, and speech goes on as a schwa.
    probs = PhoneProbs(50.0)
    heard = [(PhoneSegment("aa", 0.0, 0.3), 1.0), (PhoneSegment("b", 0.3, 0.4), 1.0)]
    got = window_evidence(heard, probs, 0.0, 0.48)
    cut = round(0.3 + CLOSURE_MAX, 3)
    assert [(p.phone, round(p.start, 3), round(p.end, 3)) for p in got.phones] == [
        ("aa", 0.0, 0.3), ("b", 0.3, cut), (TAIL_AFTER_CLOSURE, cut, 0.48)]
    assert len(got.confidence) == len(got.phones)
    # A short one still reaches the edge when the tail is within CLOSURE_MAX of its start.
    short = window_evidence(heard, probs, 0.0, 0.41)
    assert [p.phone for p in short.phones] == ["aa", "b"] and short.phones[-1].end == pytest.approx(0.41)


def test_the_seal_covers_a_closure_only_as_far_as_the_recogniser_has_decoded():
    from facepolicy.core.stream import _decoded_closures

    phones = [PhoneSegment("aa", 0.0, 0.3), PhoneSegment("b", 0.3, 0.45), PhoneSegment("m", 0.5, 0.55)]
    got = _decoded_closures(phones, 0.38)
    assert got[1] == PhoneSegment("b", 0.3, 0.38)  # cut where the decoded audio ends
    assert got[0] == phones[0] and got[2] == phones[2]  # vowels, and a closure wholly in the tail (the encoder's)


def test_a_live_frame_blends_two_plans_and_keeps_every_closure_a_plan_heard(policy, speech):
    from facepolicy.core import stream as stream_module

    s = FaceStream(policy, SampleSettings())
    s.push(speech[: spec.SAMPLE_RATE])
    planned = {k: v.copy() for k, v in s._planned.items()}
    j = s._emitted  # the next frame to leave (with plan j + 1): plans j - 2, j - 1 and j are held
    assert set(planned) == {j - 2, j - 1, j} and all(v.shape == (2, spec.NUM_CHANNELS) for v in planned.values())
    blended = s._blend(j)
    art = stream_module.ARTICULATION
    expected = planned[j][0][art] + np.float32(PLAN_BLEND) * (planned[j - 1][1][art] - planned[j][0][art])
    np.testing.assert_allclose(blended[art], expected, rtol=0, atol=1e-6)
    rest = np.setdiff1d(np.arange(spec.NUM_CHANNELS), art)
    assert np.array_equal(blended[rest], planned[j][0][rest])
    # A /m/ that only the plan before heard still seals the frame (it is not blended away), where the encoder still
    # hears a bilabial in it (made so here; the next test checks that rule).
    result, t0, _ = s._heard_by[j - 1]
    s._heard_by[j - 1] = (result, t0, np.inf)  # all of it decoded
    t = j / spec.MODEL_FPS - t0
    result.phones = [PhoneSegment(SIL, 0.0, max(0.0, t - 0.05)), PhoneSegment("m", max(0.0, t - 0.05), t + 0.05)]
    result.confidence = [1.0, 1.0]
    s._heard_by[j] = None
    s._confirmed = lambda q, t0: True
    s.push(speech[spec.SAMPLE_RATE : spec.SAMPLE_RATE + spec.SAMPLE_RATE // spec.MODEL_FPS + 1])
    frame = s.pull()[0]
    ci = spec.CHANNEL_INDEX
    assert frame[ci["jawOpen"]] > 0 and frame[ci["mouthClose"]] >= frame[ci["jawOpen"]] - 1e-6
    assert frame[ci["mouthUpperUpLeft"]] == 0 and frame[ci["mouthFunnel"]] == 0


def test_an_older_plans_closure_seals_only_where_the_encoder_still_hears_one(policy, speech):
    # The recogniser revises its newest phones: the plan before may have heard a p/b/m (a dh taken for b) that the
    # newer plans no longer hear. Its closure seals the frame only where the encoder's newest values hear a bilabial
    # (BILABIAL_EVIDENCE in a frame of it); the newest plans' closures seal as heard.
    from facepolicy.core.stream_evidence import Alignment

    s = FaceStream(policy, SampleSettings())
    s.push(speech[: spec.SAMPLE_RATE])
    j = s._emitted
    t0 = 0.0
    t = j / spec.MODEL_FPS
    heard = (Alignment([PhoneSegment(SIL, 0.0, t - 0.05), PhoneSegment("b", t - 0.05, t + 0.05)], [1.0, 1.0], [],
                       "recognised-phones"), t0, t + 0.05)  # decoded to the closure's end
    ci = spec.CHANNEL_INDEX
    frame = np.zeros(spec.NUM_CHANNELS, np.float32)
    frame[ci["jawOpen"]], frame[ci["mouthFunnel"]] = 0.4, 0.3
    rate = s.probs.frame_rate
    a, b = int((t - 0.05) * rate) - s.probs.base, int(np.ceil((t + 0.05) * rate)) - s.probs.base
    s.probs.values[a:b] = 0.0
    s.probs.values[a:b, 3] = 1.0  # the encoder hears a pause there (columns: p, b, m, sil, the vowels)
    for confirm, sealed in ((False, True), (True, False)):
        out = s._seal(frame.copy(), j, heard, confirm=confirm)
        assert (out[ci["mouthClose"]] >= 0.4 - 1e-6) == sealed and (out[ci["mouthFunnel"]] == 0) == sealed
    s.probs.values[a + 1, :4] = [0.0, 0.6, 0.0, 0.4]  # one frame of it over BILABIAL_EVIDENCE
    out = s._seal(frame.copy(), j, heard, confirm=True)
    assert out[ci["mouthClose"]] >= 0.4 - 1e-6 and out[ci["mouthFunnel"]] == 0


def test_a_steady_encoder_closure_inside_a_heard_labial_is_a_closure():
    # The live encoder hears a closure as one frame near P(p, b, m) = 1 (the /m/ of "them" in LibriVox 0870 was
    # heard as v by the recogniser). One such frame in two plans in a row, inside a heard v or w, is a closure;
    # a frame that only the newest plan heard so (it may still change), or one inside another phone, is not.
    heard = [(PhoneSegment("ah", 0.0, 0.2), 0.8), (PhoneSegment("v", 0.2, 0.3), 0.7),
             (PhoneSegment("l", 0.3, 0.4), 0.6)]
    m = PHONES.index("m")

    def logits(frames):
        out = np.zeros((25, len(PHONES)))
        out[list(frames), m] = 12.0
        return out

    def phones(result):
        return [(p.phone, round(p.start, 3), round(p.end, 3)) for p in result.phones]

    probs = PhoneProbs(50.0)
    probs.update(0, logits([11, 16]), 25)  # 0.22-0.24 s (in the v), 0.32-0.34 s (in the l)
    assert "m" not in [p for p, *_ in phones(window_evidence(heard, probs, 0.0, 0.5))]  # heard once only
    probs.update(0, logits([11, 16]), 25)
    got = window_evidence(heard, probs, 0.0, 0.5)
    assert phones(got)[:5] == [("ah", 0.0, 0.2), ("v", 0.2, 0.22), ("m", 0.22, 0.24), ("v", 0.24, 0.3),
                               ("l", 0.3, 0.5)]  # the undecoded tail continues the l
    assert got.confidence[:5] == [0.8, 0.7, 0.7, 0.7, 0.6]
    # Inside a vowel, a one-frame spike is no closure either.
    probs.update(0, logits([5]), 25)
    probs.update(0, logits([5]), 25)
    assert "m" not in [p for p, *_ in phones(window_evidence(heard, probs, 0.0, 0.5))]
