"""The Neural engine (core.model_files, core.sampler, core.neural): DDIM arithmetic, frame-keyed noise, model-file
checks, CUDA fallback, cancellation, the prior, smoothing and seal. (The sampler on a real tiny model is tested in
tests/model/test_model_runtime.py.)"""

import json
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from facepolicy.core import model_files, neural, sampler, smoothing, spec
from facepolicy.core.errors import AssetError, Cancelled, FacePolicyError


def test_ddim_timesteps_cover_the_schedule_downwards():
    steps = sampler.ddim_timesteps(100, 4)
    assert [t for t, _ in steps] == [99, 66, 33, 0]
    assert [p for _, p in steps] == [66, 33, 0, -1]
    assert sampler.ddim_timesteps(100, 1) == [(99, -1)]
    assert len(sampler.ddim_timesteps(10, 50)) == 10


def test_ddim_update_lands_on_x0_at_the_end_and_keeps_noise_direction():
    rng = np.random.default_rng(0)
    x0, eps = rng.standard_normal((2, 5)), rng.standard_normal((2, 5))
    ab_t, ab_prev = 0.3, 0.7
    xt = np.sqrt(ab_t) * x0 + np.sqrt(1 - ab_t) * eps
    np.testing.assert_allclose(sampler.ddim_update(xt, x0, ab_t, 1.0), x0, atol=1e-12)
    np.testing.assert_allclose(sampler.ddim_update(xt, x0, ab_t, ab_prev),
                               np.sqrt(ab_prev) * x0 + np.sqrt(1 - ab_prev) * eps, atol=1e-12)


def test_frame_noise_depends_only_on_seed_and_absolute_frame():
    whole = sampler.frame_noise(3, 0, 700)
    np.testing.assert_array_equal(sampler.frame_noise(3, 250, 300), whole[250:550])
    np.testing.assert_array_equal(sampler.frame_noise(3, 0, 700), whole)
    assert not np.allclose(sampler.frame_noise(4, 0, 700), whole)
    assert abs(float(whole.std()) - 1.0) < 0.05


def test_emotion_vector():
    np.testing.assert_array_equal(sampler.emotion_vector("neutral", 1.0), np.zeros(len(spec.EMOTIONS)))
    v = sampler.emotion_vector("happy", 0.6)
    assert v[spec.EMOTIONS.index("happy")] == pytest.approx(0.6) and v.sum() == pytest.approx(0.6)
    assert sampler.emotion_vector("sad", 3.0).max() == 1.0
    with pytest.raises(FacePolicyError, match="neutral, happy"):
        sampler.emotion_vector("bored", 1.0)


def _identity_model(path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_cuda_failure_at_session_creation_falls_back_to_cpu(tmp_path, monkeypatch, caplog):
    import onnxruntime as ort

    path = _identity_model(tmp_path / "m.onnx")
    real = ort.InferenceSession

    def fake_session(p, opts=None, providers=None):
        if providers and "CUDAExecutionProvider" in providers:
            raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")
        return real(p, opts, providers=providers)

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", fake_session)
    with caplog.at_level(logging.WARNING, logger="facepolicy"):
        sess, provider = model_files.create_session(path, "auto")
    assert provider == "cpu"
    assert "CUDA failed" in caplog.text and "using the CPU" in caplog.text
    (y,) = sess.run(None, {"x": np.arange(3, dtype=np.float32)})
    np.testing.assert_array_equal(y, [0, 1, 2])


def test_cuda_asked_for_without_the_provider_warns(tmp_path, caplog):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    path = _identity_model(tmp_path / "m.onnx")
    with caplog.at_level(logging.WARNING, logger="facepolicy"):
        _, provider = model_files.create_session(path, "cuda")
    assert provider == "cpu" and "no CUDA provider" in caplog.text


def test_unreadable_model_file_is_an_asset_error(tmp_path):
    bad = tmp_path / "denoiser.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(AssetError, match='denoiser.onnx" could not be loaded'):
        model_files.create_session(bad, "cpu")


def test_model_files_are_checked_against_their_sums(tmp_path):
    with pytest.raises(AssetError, match="model.json.*missing"):
        model_files.read_model_files(tmp_path)
    (tmp_path / "a.onnx").write_bytes(b"abc")
    digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
    (tmp_path / "model.json").write_text(json.dumps({"files": {"a.onnx": digest}}))
    assert model_files.read_model_files(tmp_path).manifest["files"] == {"a.onnx": digest}
    (tmp_path / "a.onnx").write_bytes(b"abd")
    with pytest.raises(AssetError, match=f'a.onnx" is corrupt: its sha256 is not the expected {digest}'):
        model_files.read_model_files(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(AssetError, match="model.json.*corrupt"):
        model_files.read_model_files(tmp_path)


def test_cancel_watch_terminates_the_run_options():
    cancel = threading.Event()
    watch = sampler._CancelWatch(cancel)
    try:
        assert not watch.run_options.terminate
        cancel.set()
        deadline = time.time() + 2.0
        while not watch.run_options.terminate and time.time() < deadline:
            time.sleep(0.01)
        assert watch.run_options.terminate
        with pytest.raises(Cancelled):
            watch.check()
    finally:
        watch.close()


def test_the_bundled_model_is_reported_clearly_when_absent(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEPOLICY_ASSETS", str(tmp_path))
    with pytest.raises(AssetError, match="use --engine phonetic"):
        neural.NeuralEngine().policy()


def test_seal_bilabials_closes_the_lips_over_each_p_b_m_and_leaves_the_rest():
    from facepolicy.core import metrics
    from facepolicy.core.phones import PhoneSegment

    n = 60
    states = np.zeros((n, spec.NUM_CHANNELS), np.float32)
    ci = spec.CHANNEL_INDEX
    states[:, ci["jawOpen"]] = 0.5  # a model that forgot to close its mouth
    states[:, ci["mouthLowerDownLeft"]] = states[:, ci["mouthLowerDownRight"]] = 0.4
    phones = [PhoneSegment("aa", 0.0, 0.6), PhoneSegment("m", 0.6, 0.7), PhoneSegment("aa", 0.7, 2.0)]
    geom = metrics.default_geometry()
    before = metrics.lip_gap(neural.states_to_track(states), geom)
    sealed = neural.seal_bilabials(states, phones)
    after = metrics.lip_gap(neural.states_to_track(sealed), geom)
    closed = geom.threshold(metrics.CLOSED_FRACTION)
    assert before[19:21].min() > closed and after[19:21].max() <= closed  # frames 18-21 span 0.6-0.7 s
    assert np.array_equal(sealed[:10], states[:10]) and np.array_equal(sealed[40:], states[40:])
    assert np.array_equal(neural.seal_bilabials(states, phones[:1]), states)


def test_fade_in_starts_on_the_previous_plan_and_ends_on_the_new_one():
    rng = np.random.default_rng(1)
    previous = rng.standard_normal((2, 16, 3)).astype(np.float32)
    new = rng.standard_normal((2, 32, 3)).astype(np.float32)
    x = new.copy()
    sampler.NeuralPolicy._fade_in(x, previous, 16)
    w = np.linspace(0.0, 1.0, 18)[1:-1, None]
    np.testing.assert_allclose(x[:, :16], (1 - w) * previous + w * new[:, :16], atol=1e-6)
    np.testing.assert_array_equal(x[:, 16:], new[:, 16:])  # beyond the shared frames: the new plan alone
    x = new.copy()
    sampler.NeuralPolicy._fade_in(x, previous, 4)  # a shorter fade
    assert np.abs(x[:, :4] - new[:, :4]).max() > 0 and np.array_equal(x[:, 4:], new[:, 4:])
    x = new.copy()
    sampler.NeuralPolicy._fade_in(x, previous, 0)
    np.testing.assert_array_equal(x, new)


ARCTIC_A0009 = Path(__file__).resolve().parents[2] / "data" / "arctic" / "arctic_a0009.wav"


def test_replanning_boundaries_jump_less_with_phone_evidence():
    """The shipped model on a real clip with its reference phones as evidence. The lip gap's |Δ²| at the replanning
    boundaries (every `execute` frames), relative to its mean elsewhere, is 1.88 with plan_blend=0 and 1.24 when
    each plan fades in over the previous one (seeds 0–3). Without evidence the default does not fade."""
    from facepolicy.core import metrics
    from facepolicy.core.audio import load_audio

    audio = load_audio(ARCTIC_A0009)
    phones = metrics.read_lab(ARCTIC_A0009.with_name("arctic_a0009_phone.lab"))
    p = neural.NeuralEngine().policy()
    geom = metrics.default_geometry()

    def boundary_ratio(states) -> float:
        d2 = np.abs(np.diff(metrics.lip_gap(neural.states_to_track(states), geom), 2))
        at = (np.arange(1, len(d2) + 1) % p.execute) == 0  # Δ² centred on a plan's first frame
        return float(d2[at].mean() / d2[~at].mean())

    ratios = {}
    for blend in (0, None):
        ratios[blend] = np.mean([boundary_ratio(p.sample(
            audio.samples, sampler.SampleSettings(seed=s, plan_blend=blend), phones=phones)) for s in range(4)])
    assert ratios[0] > 1.6 and ratios[None] < ratios[0] - 0.4, ratios
    fast = p.sample(audio.samples, sampler.SampleSettings(seed=0))
    np.testing.assert_array_equal(fast, p.sample(audio.samples, sampler.SampleSettings(seed=0, plan_blend=0)))


def test_the_phonetic_prior_steers_only_the_articulation_and_only_as_much_as_asked():
    """prior_weight 0 ignores the prior; 1 makes every denoising step's articulation channels the prior's, so the
    output's are exactly the prior's; in between the mouth lies between the two. Expression channels (smile,
    brows) are not pulled toward it."""
    from facepolicy.core import metrics
    from facepolicy.core.audio import load_audio

    audio = load_audio(ARCTIC_A0009)
    phones = metrics.read_lab(ARCTIC_A0009.with_name("arctic_a0009_phone.lab"))
    p = neural.NeuralEngine().policy()
    free = p.sample(audio.samples, sampler.SampleSettings(seed=0), phones=phones)
    rng = np.random.default_rng(0)
    prior = np.clip(free + 0.3 * rng.standard_normal(free.shape).astype(np.float32), 0.0, 1.0)
    art = sampler.ARTICULATION

    def run(weight):
        return p.sample(audio.samples, sampler.SampleSettings(seed=0, prior_weight=weight), phones=phones,
                        prior=prior)

    np.testing.assert_array_equal(run(0.0), free)
    np.testing.assert_allclose(run(1.0)[:, art], prior[:, art], atol=1e-5)
    half = run(0.5)
    d_free = np.abs(half[:, art] - free[:, art]).mean()
    d_prior = np.abs(half[:, art] - prior[:, art]).mean()
    assert 0 < d_prior < np.abs(free[:, art] - prior[:, art]).mean() and d_free > 0
    smile = spec.CHANNEL_INDEX["mouthSmileLeft"]
    assert smile not in art and spec.CHANNEL_INDEX["jawOpen"] in art
    assert np.abs(run(1.0)[:, smile] - prior[:, smile]).mean() > 0.1  # not pulled onto the prior's noise


def test_vowel_mask_and_articulation_smoothing():
    from facepolicy.core.phones import PhoneSegment

    phones = [PhoneSegment("sil", 0.0, 0.2), PhoneSegment("aa", 0.2, 0.4), PhoneSegment("m", 0.4, 0.5)]
    mask = neural.vowel_mask(phones, 18)
    # frames 6-11 lie inside the vowel (0.2-0.4 s at 30 fps); the ramp reaches one frame beyond either end
    assert np.all(mask[7:11] == 1.0) and mask[0] == mask[4] == mask[13] == 0.0
    np.testing.assert_allclose(mask[[5, 6, 11, 12]], [1 / 3, 2 / 3, 2 / 3, 1 / 3])
    # a vowel the second opinion calmed (confidence 0: the audio encoder hears silence there) is left out
    assert not neural.vowel_mask(phones, 18, confidence=[1.0, 0.0, 1.0]).any()
    np.testing.assert_array_equal(neural.vowel_mask(phones, 18, confidence=[0.0, 0.3, 0.0]), mask)
    rng = np.random.default_rng(2)
    states = rng.uniform(0, 1, (60, spec.NUM_CHANNELS)).astype(np.float32)
    out = neural.smooth_articulation(states)
    art = sampler.ARTICULATION
    rest = [i for i in range(spec.NUM_CHANNELS) if i not in art]
    np.testing.assert_array_equal(out[:, rest], states[:, rest])
    assert np.abs(np.diff(out[:, art], 2, axis=0)).mean() < 0.9 * np.abs(np.diff(states[:, art], 2, axis=0)).mean()
    flat = np.full((30, spec.NUM_CHANNELS), 0.3, np.float32)
    np.testing.assert_allclose(neural.smooth_articulation(flat), flat, atol=1e-6)  # a held pose stays put
    np.testing.assert_array_equal(neural.smooth_articulation(states, sigma=0.0), states)


def test_inside_the_evidence_vowels_the_jaw_opens_at_least_as_far_as_the_prior():
    from facepolicy.core import metrics
    from facepolicy.core.audio import load_audio

    audio = load_audio(ARCTIC_A0009)
    phones = metrics.read_lab(ARCTIC_A0009.with_name("arctic_a0009_phone.lab"))
    p = neural.NeuralEngine().policy()
    free = p.sample(audio.samples, sampler.SampleSettings(seed=0), phones=phones)
    prior = free.copy()
    prior[:, sampler.JAW] = 0.6  # a prior that opens wider than the model mostly does
    inside = neural.vowel_mask(phones, len(prior)) == 1.0

    def jaw(floor: bool):
        settings = sampler.SampleSettings(seed=0, prior_weight=0.05)
        lift = neural.vowel_mask(phones, len(prior)) if floor else None
        return p.sample(audio.samples, settings, phones=phones, prior=prior, floor=lift)[:, sampler.JAW]

    assert inside.sum() >= 5 and (free[inside, sampler.JAW] < 0.6 - 0.05).mean() > 0.5
    assert jaw(True)[inside].min() >= 0.6 - 1e-5
    assert (jaw(False)[inside] < 0.6 - 0.05).mean() > 0.3


def test_where_the_prior_holds_it_pulls_and_where_it_lets_go_the_model_alone_decides():
    """hold 1 everywhere is the prior as before, bit for bit; hold 0 on some frames leaves the prior (and the jaw
    floor) out there, so with prior_weight 1 those frames are not the prior's and the others are."""
    from facepolicy.core import metrics
    from facepolicy.core.audio import load_audio

    audio = load_audio(ARCTIC_A0009)
    phones = metrics.read_lab(ARCTIC_A0009.with_name("arctic_a0009_phone.lab"))
    p = neural.NeuralEngine().policy()
    free = p.sample(audio.samples, sampler.SampleSettings(seed=0), phones=phones)
    prior = np.clip(free + 0.3, 0.0, 1.0)
    art = sampler.ARTICULATION
    settings = sampler.SampleSettings(seed=0, prior_weight=1.0)
    lift = neural.vowel_mask(phones, len(prior))
    full = p.sample(audio.samples, settings, phones=phones, prior=prior, floor=lift)
    held = p.sample(audio.samples, settings, phones=phones, prior=prior, floor=lift, hold=np.ones(len(prior)))
    np.testing.assert_array_equal(held, full)
    hold = np.ones(len(prior))
    hold[40:50] = 0.0
    out = p.sample(audio.samples, settings, phones=phones, prior=prior, floor=lift, hold=hold)
    np.testing.assert_allclose(out[:30, art], prior[:30, art], atol=1e-5)
    assert np.abs(out[42:48, art] - prior[42:48, art]).mean() > 0.05


def test_the_prior_lets_go_where_the_encoder_is_sure_of_a_closure_inside_the_vowels_too():
    from facepolicy.core.align import Alignment
    from facepolicy.core.phones import PhoneSegment
    from facepolicy.core.second_opinion import SURE_CLOSURE, sure_closures

    probs = np.full((50, 3), 0.01)
    probs[10, 0] = SURE_CLOSURE  # one 20-ms frame at 0.20 s
    probs[20:23, 2] = 0.95  # 0.40-0.46 s
    probs[30:33, 2] = 0.5  # not sure
    assert np.ravel(sure_closures(probs, 50.0)) == pytest.approx([0.2, 0.22, 0.4, 0.46])
    phones = [PhoneSegment("k", 0.0, 0.3), PhoneSegment("aa", 0.3, 0.5), PhoneSegment("sil", 0.5, 1.0)]
    heard = Alignment(phones, [1.0] * 3, [], "recognised-phones", closures=[(0.2, 0.22), (0.4, 0.46)])
    hold = neural.prior_hold(heard, neural.vowel_mask(phones, 30))
    # 0.2-0.22 s holds no frame centre (frame 6 is 0.2-0.233 s, centre 0.217): the frame holding its middle lets
    # go; 0.40-0.46 s lies within the vowel "aa" (0.3-0.5 s, frames 9-14) with more than VOWEL_AROUND of it either
    # side: its frames 12 and 13 let go too (a closure between two vowels that recognition heard as one), neither
    # the prior nor the jaw floor holding the mouth open there.
    assert hold[6] == hold[12] == hold[13] == 0.0
    assert np.all(np.delete(hold, [6, 12, 13]) == 1.0)
    np.testing.assert_array_equal(neural.prior_hold(Alignment(phones, [1.0] * 3), neural.vowel_mask(phones, 30)),
                                  np.ones(30))
    # A closure reaching past the vowel's end into the next consonant (0.46-0.56 s) leaves the vowel its opening:
    # its frames hold as the vowel mask (ramped over a frame either side) says, 2/3 and 1/3, and let go past it.
    phones = [PhoneSegment("k", 0.0, 0.3), PhoneSegment("aa", 0.3, 0.5), PhoneSegment("t", 0.5, 0.6),
              PhoneSegment("sil", 0.6, 1.0)]
    edge = Alignment(phones, [1.0] * 4, [], "recognised-phones", closures=[(0.46, 0.56)])
    hold = neural.prior_hold(edge, neural.vowel_mask(phones, 30))
    assert hold[14:17] == pytest.approx([2 / 3, 1 / 3, 0.0]) and np.all(np.delete(hold, [14, 15, 16]) == 1.0)
    # In a pause only near its end, where a p or b starting the next words hides: not in the middle of one, and not
    # in the pause that ends what has been heard (the start of a live stream, where the encoder's first frames hear
    # the step from nothing into the room).
    phones = [PhoneSegment("sil", 0.0, 0.6), PhoneSegment("aa", 0.6, 0.8), PhoneSegment("sil", 0.8, 1.0)]
    heard = Alignment(phones, [1.0] * 3, [], "recognised-phones", closures=[(0.2, 0.24), (0.52, 0.56), (0.9, 0.94)])
    hold = neural.prior_hold(heard, neural.vowel_mask(phones, 30))
    assert hold[16] == 0.0 and np.all(np.delete(hold, 16) == 1.0)


def _repeated_a0009(seconds: float):
    """ARCTIC a0009 repeated to ``seconds``, with its reference phones as a forced alignment's evidence."""
    from facepolicy.core import metrics
    from facepolicy.core.align import Alignment
    from facepolicy.core.audio import load_audio
    from facepolicy.core.phones import PhoneSegment

    clip = load_audio(ARCTIC_A0009).samples
    lab = metrics.read_lab(ARCTIC_A0009.with_name("arctic_a0009_phone.lab"))
    reps = int(np.ceil(seconds * spec.SAMPLE_RATE / len(clip)))
    offsets = [k * len(clip) / spec.SAMPLE_RATE for k in range(reps)]
    phones = [PhoneSegment(p.phone, p.start + o, p.end + o) for o in offsets for p in lab]
    return np.tile(clip, reps), Alignment(phones, [1.0] * len(phones), [], "aligned")


def test_the_prior_rendered_per_group_of_streams_equals_the_whole_prior(monkeypatch):
    # Long audio renders the phonetic prior window by window (a TeacherTake) and cross-fades its streams into a
    # running sum that keeps only the frames a later group can reach: neither may change the states.
    from facepolicy.core.phonetic import phonetic_prior_take

    samples, evidence = _repeated_a0009(9.0)
    p = neural.NeuralEngine().policy()
    take = phonetic_prior_take(evidence, samples, len(samples) / spec.SAMPLE_RATE)
    whole = take.track().values
    settings = sampler.SampleSettings(seed=1)
    floor = neural.vowel_mask(evidence.phones, len(take))
    one_group = p.sample(samples, settings, phones=evidence.phones, prior=whole, floor=floor)
    monkeypatch.setattr(p, "group_streams", 2)  # 6 streams in 3 groups
    grouped = p.sample(samples, settings, phones=evidence.phones, prior=take, floor=floor)
    np.testing.assert_array_equal(grouped, p.sample(samples, settings, phones=evidence.phones, prior=whole,
                                                    floor=floor))
    np.testing.assert_allclose(grouped, one_group, atol=1e-5)


def test_smoothing_in_blocks_and_in_place_equals_smoothing_at_once(monkeypatch):
    states = np.random.default_rng(5).uniform(0, 1, (700, spec.NUM_CHANNELS)).astype(np.float32)
    at_once = neural.smooth_articulation(states)
    monkeypatch.setattr(smoothing, "BLOCK_FRAMES", 64)
    copy = states.copy()
    assert neural.smooth_articulation(copy, in_place=True) is copy
    np.testing.assert_array_equal(copy, at_once)
    assert not np.array_equal(states, at_once)  # the default leaves its input alone


def test_sampling_memory_does_not_grow_beyond_the_states_it_returns(monkeypatch):
    """Peak numpy memory of the accurate mode's sampling (prior, floor, sampler, smoothing, seal) for 60 s and for
    150 s of speech (both past the teacher's 60 s windows): the extra 90 s may cost about what their returned
    states take (236 bytes a frame), not whole-length working copies (7 times that before, when an hour of audio
    peaked at 1.4 GB), and the peak stays far below the 100 MB that 60 s blocks of pitch tracking took, also with
    two groups of streams sampled at once (about 16 MB each; when they overlap varies, so the growth is measured
    one group at a time)."""
    import tracemalloc

    p = neural.NeuralEngine().policy()
    settings = sampler.SampleSettings(seed=0)
    peaks = {}
    for seconds, cores in ((60.0, 1), (150.0, 1), (150.0, 2)):
        monkeypatch.setattr(sampler, "cores", lambda cores=cores: cores)
        samples, evidence = _repeated_a0009(seconds)
        samples = samples[: int(seconds * spec.SAMPLE_RATE)]
        tracemalloc.start()
        states = neural.sample_with_evidence(p, samples, settings, evidence)
        peaks[seconds, cores] = tracemalloc.get_traced_memory()[1], states.nbytes
        tracemalloc.stop()
    grown = peaks[150.0, 1][0] - peaks[60.0, 1][0]
    returned = peaks[150.0, 1][1] - peaks[60.0, 1][1]
    assert grown < 2 * returned, (grown, returned)
    assert peaks[150.0, 2][0] < 40 * 2**20, peaks


def test_the_denoiser_and_the_encoder_see_at_most_a_group_of_streams_at_once():
    # All the streams of a long file in one ONNX call made the sessions' working memory grow with the audio.
    samples, _ = _repeated_a0009(60.0)
    p = neural.NeuralEngine().policy()
    batches, encoded = [], []

    class Watched:
        def __init__(self, session, seen, key):
            self.session, self.seen, self.key = session, seen, key

        def run(self, outputs, feeds, *args):
            self.seen.append(feeds[self.key].shape[:2])
            return self.session.run(outputs, feeds, *args)

    denoiser, encoder = p.denoiser_sess, p.audio_sess
    try:
        p.denoiser_sess, p.audio_sess = Watched(denoiser, batches, "x"), Watched(encoder, encoded, "mel")
        states = p.sample(samples, sampler.SampleSettings(seed=0, style_scale=2.0), style=p.style_preset(
            p.default_style))
    finally:
        p.denoiser_sess, p.audio_sess = denoiser, encoder
    streams = int(np.ceil((len(states) - p.overlap) / (p.stream_frames - p.overlap)))
    assert streams > sampler.MAX_GROUP_STREAMS and len(encoded) >= 2
    assert max(b for b, _ in batches) == 2 * sampler.MAX_GROUP_STREAMS  # two guidance passes stacked
    group_audio = (sampler.MAX_GROUP_STREAMS + 2) * p.stream_frames * 100 / spec.MODEL_FPS
    assert max(m for _, m in encoded) < group_audio


def test_groups_sampled_on_several_cores_give_the_states_of_one_after_another(monkeypatch):
    # The groups of streams are sampled at once on the process's cores (core.cpu) and cross-faded in order: the
    # states must be the same bit for bit as with one core, whichever group finishes first.
    samples, evidence = _repeated_a0009(9.0)
    p = neural.NeuralEngine().policy()
    monkeypatch.setattr(p, "group_streams", 2)  # 6 streams in 3 groups
    monkeypatch.setattr(sampler, "cores", lambda: 1)
    settings = sampler.SampleSettings(seed=3)
    alone = p.sample(samples, settings, phones=evidence.phones)
    threads = set()
    denoiser = p.denoiser_sess

    class Slow:  # the first group is the slowest, so the others finish before it
        def run(self, outputs, feeds, *args):
            threads.add(threading.current_thread().name)
            if feeds["x"].shape[0] and threading.current_thread().name.endswith("_0"):
                time.sleep(0.01)
            return denoiser.run(outputs, feeds, *args)

    monkeypatch.setattr(sampler, "cores", lambda: 3)
    monkeypatch.setattr(p, "denoiser_sess", Slow())
    together = p.sample(samples, settings, phones=evidence.phones)
    assert len(threads) == 3, threads
    np.testing.assert_array_equal(together, alone)


def test_a_failing_group_stops_the_others_and_raises(monkeypatch):
    samples, _ = _repeated_a0009(9.0)
    p = neural.NeuralEngine().policy()
    monkeypatch.setattr(p, "group_streams", 1)  # 6 groups
    monkeypatch.setattr(sampler, "cores", lambda: 2)
    calls = []

    class Failing:
        def run(self, outputs, feeds, *args):
            calls.append(threading.current_thread().name)
            raise RuntimeError("the denoiser failed")

    monkeypatch.setattr(p, "denoiser_sess", Failing())
    with pytest.raises(RuntimeError, match="the denoiser failed"):
        p.sample(samples, sampler.SampleSettings(seed=0))
    assert len(calls) <= 4  # at most the groups handed out (two a thread) ran, never all six

