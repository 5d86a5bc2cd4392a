"""The panel's Live mode in the real bpy module: the live driver sets the target's keys by the bakes' per-channel rule,
and Record keeps the performance as a take with its sound strip (bpy 5.0 and 4.2). Timers do not run in the bpy
module, so the tests call the timer's work (``tick``) and feed the audio themselves."""

import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.blender

bpy = pytest.importorskip("bpy")

from fp_bake_helpers import can_add_sound, make_rig, random_track, sculpted_default_head  # noqa: E402

from facepolicy.blender import compat, keys, live, rig_report, sound  # noqa: E402
from facepolicy.core import spec  # noqa: E402
from facepolicy.core.audio import load_audio  # noqa: E402
from facepolicy.core.facetrack import FaceTrack  # noqa: E402
from facepolicy.core.policy import NeuralPolicy  # noqa: E402
from facepolicy.core.rigtrack import rig_track, shape_track  # noqa: E402
from facepolicy.core.stream import FaceStream  # noqa: E402

SPEECH = Path(__file__).resolve().parents[1] / "data" / "arctic" / "arctic_a0007.wav"  # 4.0 s, 16 kHz


class SpeechSource:
    """What the microphone would deliver: a real voice line at 48 kHz, 10 ms per read."""

    rate = 48000

    def __init__(self, seconds: float = 4.0):
        x = load_audio(SPEECH, sample_rate=self.rate, normalise=False).samples
        self.samples = x[: int(seconds * self.rate)]
        self.at = 0
        self.closed = False

    def read(self, timeout: float = 0.5) -> np.ndarray:
        block = self.samples[self.at : self.at + self.rate // 100]
        self.at += len(block)
        return block

    def close(self) -> None:
        self.closed = True


@pytest.fixture(scope="module")
def policy():
    return NeuralPolicy(threads=1)


def perform(session: live.LiveSession, source: SpeechSource) -> list[dict]:
    """Feed the whole source as the worker thread would, running the timer's work after each block; returns the
    key values after every tick that set keys."""
    shown = []
    while source.at < len(source.samples):
        session.feed(source.read())
        if session.tick():
            blocks = session.obj.data.shape_keys.key_blocks
            shown.append({kb.name: kb.value for kb in blocks})
    return shown


def options(start_frame: int = 1) -> keys.WriteOptions:
    return keys.WriteOptions(start_frame=start_frame, channels=frozenset({"lips", "brows", "blinks", "gaze"}),
                             audio_name=live.LIVE_NAME)


def test_live_drives_the_keys_as_the_voice_comes_and_records_a_take(clean_scene, policy):
    from facepolicy.blender.head import add_default_head

    head = add_default_head(bpy.context)
    source = SpeechSource()
    session = live.LiveSession(head, FaceStream(policy), source, options(start_frame=7), record=True)
    shown = perform(session, source)
    jaw = np.array([s["jawOpen"] for s in shown])
    assert len(shown) > 100 and jaw.max() > 0.3 and jaw[:5].max() < 0.1
    # By name on this rig: each key shows its channel of the newest frame, as a bake would write it.
    newest = session.frames[-1]
    assert shown[-1]["jawOpen"] == pytest.approx(newest[spec.CHANNEL_INDEX["jawOpen"]], abs=1e-6)
    result = session.stop(clean_scene)
    assert source.closed and result is not None
    assert result.action.name == f"{head.name} · live · take 1"
    assert keys.take_info(result.action)["engine"] == "neural live"
    n = round(4.0 * keys.scene_fps(clean_scene))
    assert abs(result.n_keys - n) <= 1 and result.frame_start == 7
    assert compat.assigned_action(head.data.shape_keys) == result.action
    curve = next(fc for fc in compat.action_fcurves(result.action) if '"jawOpen"' in fc.data_path)
    values = np.array([k.co[1] for k in curve.keyframe_points])
    performed = np.stack(session.frames)[:, spec.CHANNEL_INDEX["jawOpen"]]
    expected = FaceTrack(30, ("jawOpen",), performed[:, None]).resample(keys.scene_fps(clean_scene)).values[:, 0]
    np.testing.assert_allclose(values, expected, atol=1e-6)  # the take is what was performed
    if can_add_sound():
        (strip,) = sound.facepolicy_strips(clean_scene, head.name)
        assert strip.frame_start == 7 and strip.sound.packed_file is not None
        assert abs(strip.frame_final_duration - n) <= 1
    assert not Path(session.audio_path).exists(), "the temporary recording was left behind"


def test_a_rig_without_arkit_names_is_driven_through_the_solve(clean_scene, policy):
    head = sculpted_default_head()
    source = SpeechSource(seconds=1.5)
    session = live.LiveSession(head, FaceStream(policy, evidence=False), source, options(), record=True)
    assert session.plan.needs_solve and session.geometry is not None
    assert perform(session, source), "no frame reached the keys"
    # The keys carry the bakes' rule for the newest frame: shaped, then by name or solved (core.rigtrack).
    shaped = shape_track(FaceTrack(30, spec.CHANNEL_NAMES, session.frames[-1][None]), 30, options())
    expected = rig_track(shaped, rig_report.rig_plan(head), rig_report.rig_geometry(head))
    blocks = head.data.shape_keys.key_blocks
    names = [n for n in expected.names if n in blocks]
    got = np.array([blocks[n].value for n in names])
    want = np.array([np.clip(expected.channel(n)[0], blocks[n].slider_min, blocks[n].slider_max) for n in names])
    assert len(names) > 40 and np.abs(want).max() > 0.05
    np.testing.assert_allclose(got, want, atol=1e-6)
    result = session.stop(clean_scene)
    assert result is not None and any("solved" in w for w in result.warnings)


def test_stopping_without_record_gives_the_keys_their_take_back(clean_scene, policy):
    obj = make_rig("Face")
    earlier = keys.write_face_track_to_action(obj, random_track(seconds=1.0), keys.WriteOptions(audio_name="line"))
    source = SpeechSource(seconds=1.0)
    session = live.LiveSession(obj, FaceStream(policy, evidence=False), source, options(), record=False)
    key = obj.data.shape_keys
    assert compat.assigned_action(key) is None, "the take would hide the live values"
    perform(session, source)
    assert session.stop(clean_scene) is None
    assert compat.assigned_action(key) == earlier.action and len(bpy.data.actions) == 1


def test_the_worker_thread_feeds_the_timer(clean_scene, policy):
    obj = make_rig("Face")
    source = SpeechSource(seconds=1.0)
    session = live.LiveSession(obj, FaceStream(policy, evidence=False), source, options(), record=True).start()
    assert session.running
    set_keys = 0
    for _ in range(400):  # the timer, 10 ms apart, until the source is spent
        set_keys += session.tick()
        if source.at >= len(source.samples) and session.frames_out >= 25:
            break
        time.sleep(0.01)
    result = session.stop(clean_scene)
    assert set_keys > 0 and not session.running
    assert result is not None and abs(result.n_keys - round(1.0 * keys.scene_fps(clean_scene))) <= 1


def test_the_live_button_says_why_when_there_is_no_microphone(clean_scene):
    from facepolicy.ui import live as ui_live
    from facepolicy.ui import prefs, props

    modules = (props, prefs, ui_live)
    for module in modules:
        for cls in module.CLASSES:
            bpy.utils.register_class(cls)
        if hasattr(module, "register_extra"):
            module.register_extra()
    try:
        obj = make_rig("Face")
        earlier = keys.write_face_track_to_action(obj, random_track(seconds=1.0), keys.WriteOptions(audio_name="l"))
        clean_scene.facepolicy.target = obj
        try:
            import sounddevice  # noqa: F401
        except ImportError:
            says = "needs the sounddevice package"
        except OSError:
            says = "could not load PortAudio"
        else:
            says = "no microphone was found"
        with pytest.raises(RuntimeError, match=says):
            bpy.ops.facepolicy.live()
        assert ui_live.live_session() is None
        assert compat.assigned_action(obj.data.shape_keys) == earlier.action, "a failed start changed the rig"
    finally:
        for module in reversed(modules):
            if hasattr(module, "unregister_extra"):
                module.unregister_extra()
            for cls in reversed(module.CLASSES):
                bpy.utils.unregister_class(cls)
