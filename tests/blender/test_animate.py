"""The Animate from Audio operator and the bake steps behind it: one undo step, cancel, bad input, engines."""

import json
import shutil
import threading
from types import SimpleNamespace

import numpy as np
import pytest

pytestmark = pytest.mark.blender

bpy = pytest.importorskip("bpy")

import fp_bake_helpers as helpers  # noqa: E402
from fp_bake_helpers import make_rig, scene_fingerprint, write_tone  # noqa: E402

from facepolicy.blender import bake, compat, keys  # noqa: E402
from facepolicy.core.errors import AudioError, Cancelled, FacePolicyError  # noqa: E402
from facepolicy.ui import animate, panel, prefs, props  # noqa: E402

MODULES = (props, prefs, animate, panel)


@pytest.fixture
def registered(clean_scene):
    """Register this issue's classes directly (the lead wires them into facepolicy.ui too)."""
    helpers.register_test_engine()
    for module in MODULES:
        for cls in module.CLASSES:
            bpy.utils.register_class(cls)
        if hasattr(module, "register_extra"):
            module.register_extra()
    yield clean_scene
    for module in reversed(MODULES):
        if hasattr(module, "unregister_extra"):
            module.unregister_extra()
        for cls in reversed(module.CLASSES):
            bpy.utils.unregister_class(cls)


@pytest.fixture
def setup(registered, tmp_path):
    obj = make_rig("Face")
    settings = registered.facepolicy
    settings.engine = helpers.TEST_ENGINE
    settings.audio_path = write_tone(tmp_path / "line.wav", seconds=1.5)
    settings.target = obj
    return registered, settings, obj


def test_operator_bakes_in_background_mode(setup):
    scene, settings, obj = setup
    settings.start_frame = 5
    assert bpy.app.background
    assert bpy.ops.facepolicy.animate_from_audio() == {"FINISHED"}
    take = obj.data.shape_keys.animation_data.action
    assert take.name == "Face · line · take 1"
    n = round(1.5 * keys.scene_fps(scene))
    jaw = next(fc for fc in compat.action_fcurves(take) if "jawOpen" in fc.data_path)
    assert len(jaw.keyframe_points) == n and jaw.keyframe_points[0].co[0] == 5
    assert (scene.frame_start, scene.frame_end) == (5, 5 + n - 1)
    assert keys.take_info(take)["engine"] == helpers.TEST_ENGINE
    if helpers.can_add_sound():
        (strip,) = compat.all_strips(scene)
        assert int(strip.frame_start) == 5 and scene.sync_mode == "AUDIO_SYNC"


def test_new_take_uses_the_next_seed_and_keeps_take_one(setup):
    scene, settings, obj = setup
    assert bpy.ops.facepolicy.animate_from_audio() == {"FINISHED"}
    assert bpy.ops.facepolicy.animate_from_audio(new_take=True) == {"FINISHED"}
    takes = keys.list_takes(obj)
    assert [a.name for a in takes] == ["Face · line · take 1", "Face · line · take 2"]
    assert [keys.take_info(a)["seed"] for a in takes] == [0, 1] and settings.seed == 1
    assert obj.data.shape_keys.animation_data.action == takes[1]
    assert bpy.ops.facepolicy.use_take(action=takes[0].name) == {"FINISHED"}
    assert obj.data.shape_keys.animation_data.action == takes[0]
    assert bpy.ops.facepolicy.animate_from_audio(new_take=True) == {"FINISHED"}  # take 3, active
    take2 = takes[1].name
    assert bpy.ops.facepolicy.remove_take(action="Face · line · take 3") == {"FINISHED"}
    assert obj.data.shape_keys.animation_data.action.name == take2, "the newest remaining take plays"
    assert [a.name for a in keys.list_takes(obj)] == ["Face · line · take 1", take2]
    with pytest.raises(RuntimeError, match="not a FacePolicy take"):
        bpy.ops.facepolicy.remove_take(action="nothing")


@pytest.mark.parametrize("with_head", [False, True])
def test_one_undo_step_restores_the_scene_exactly(setup, with_head):
    scene, settings, obj = setup
    settings.use_head = with_head
    bpy.ops.ed.undo_push(message="before")
    obj.location.x = 0.7  # a user edit with its own undo step, which must survive undoing the bake
    bpy.ops.ed.undo_push(message="user edit")
    before = scene_fingerprint()
    # The third positional argument asks bpy.ops for the undo push that a click in the UI gets; 'INVOKE_DEFAULT'
    # runs invoke(), which in background mode bakes synchronously.
    assert bpy.ops.facepolicy.animate_from_audio("INVOKE_DEFAULT", True) == {"FINISHED"}
    assert scene_fingerprint() != before
    bpy.ops.ed.undo()
    assert scene_fingerprint() == before
    assert bpy.data.objects["Face"].location.x == pytest.approx(0.7), "the bake took more than one undo step"
    bpy.ops.ed.redo()
    assert bpy.data.objects["Face"].data.shape_keys.animation_data.action.name == "Face · line · take 1"


@pytest.fixture
def gated_engine():
    """Holds the test engine inside animate() until the test releases it (or the job is cancelled)."""
    gate = threading.Event()
    helpers.WriterTestEngine.gate = gate
    helpers.WriterTestEngine.started.clear()
    yield gate
    gate.set()
    helpers.WriterTestEngine.gate = None


def test_cancelled_job_leaves_no_action_strip_or_keys(setup, gated_engine):
    """The modal operator's path: the engine runs on a worker thread, Esc cancels, finish() writes nothing."""
    scene, settings, obj = setup
    before = scene_fingerprint()
    job = bake.BakeJob(bake.request_from_settings(bpy.context, settings)).start()
    assert helpers.WriterTestEngine.started.wait(10) and job.running
    job.cancel()  # what Esc does
    assert job.wait(10)
    with pytest.raises(Cancelled, match="nothing was changed"):
        job.finish(scene)
    assert scene_fingerprint() == before
    assert obj.data.shape_keys.animation_data is None
    assert not job.request.temp_files


class ModalDriver:
    """Runs the operator's own invoke/modal/finish code with timer and Esc events, as Blender's event loop would.

    The bpy module has no event loop and operator instances cannot be made from Python, so the methods are called
    on a stand-in ``self``; everything else (the worker thread, the timer, the window manager state) is real.
    """

    Op = animate.FACEPOLICY_OT_animate_from_audio

    def __init__(self, new_take=False):
        self.new_take = new_take
        self.reports = []

    def report(self, level, message):
        self.reports.append((next(iter(level)), message))

    def __getattr__(self, name):  # _start, _finish, _request, _keep_seed, modal: the operator's own code
        attr = self.Op.__dict__[name]
        return attr.__func__ if isinstance(attr, staticmethod) else attr.__get__(self)

    def event(self, kind, value="NOTHING"):
        return self.Op.modal(self, bpy.context, type("Event", (), {"type": kind, "value": value})())

    def run_until_done(self, timeout=20.0):
        import time

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            result = self.event("TIMER")
            if result != {"RUNNING_MODAL"}:
                return result
            time.sleep(0.01)
        raise AssertionError("the modal bake did not finish")


def test_modal_bake_shows_progress_and_writes_once_finished(setup, gated_engine):
    scene, settings, obj = setup
    driver = ModalDriver()
    driver._start(bpy.context)
    state = bpy.context.window_manager.facepolicy_job
    assert helpers.WriterTestEngine.started.wait(10)
    assert driver.event("TIMER") == {"RUNNING_MODAL"} and state.running
    assert not bpy.ops.facepolicy.animate_from_audio.poll(), "one bake at a time"
    assert driver.event("MOUSEMOVE") == {"PASS_THROUGH"}, "Blender stays usable during the bake"
    assert obj.data.shape_keys.animation_data is None
    gated_engine.set()
    assert driver.run_until_done() == {"FINISHED"}
    assert not state.running and "real time" in state.status
    assert bpy.ops.facepolicy.animate_from_audio.poll()
    assert obj.data.shape_keys.animation_data.action.name == "Face · line · take 1"
    assert driver.reports[-1][0] == "INFO"


def test_modal_bake_cancelled_with_esc_changes_nothing(setup, gated_engine):
    scene, settings, obj = setup
    before = scene_fingerprint()
    driver = ModalDriver(new_take=True)
    driver._start(bpy.context)
    assert helpers.WriterTestEngine.started.wait(10)
    assert driver.event("ESC", "PRESS") == {"RUNNING_MODAL"}
    assert driver.run_until_done() == {"CANCELLED"}
    assert driver.reports == [("WARNING", "Cancelled: nothing was changed")]
    assert scene_fingerprint() == before and settings.seed == 0
    assert not bpy.context.window_manager.facepolicy_job.running


def test_job_reports_progress_and_applies_on_the_main_thread(setup, gated_engine):
    scene, settings, obj = setup
    job = bake.BakeJob(bake.request_from_settings(bpy.context, settings)).start()
    assert helpers.WriterTestEngine.started.wait(10)
    assert obj.data.shape_keys.animation_data is None, "nothing is written while the engine runs"
    gated_engine.set()
    assert job.wait(10)
    assert job.progress.fraction > 0 and job.progress.message == "animating"
    result, reports = job.finish(scene)
    assert obj.data.shape_keys.animation_data.action == result.action
    assert reports[-1][0] == "INFO" and "real time" in reports[-1][1]


def test_job_engine_error_writes_nothing(setup, tmp_path):
    scene, settings, obj = setup
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    settings.audio_path = str(tmp_path / "broken.wav")
    before = scene_fingerprint()
    job = bake.BakeJob(bake.request_from_settings(bpy.context, settings)).start()
    assert job.wait(10)
    with pytest.raises(AudioError, match="broken.wav"):
        job.finish(scene)
    assert scene_fingerprint() == before


@pytest.mark.parametrize("case", ["no audio", "missing file", "unreadable file", "edit mode", "shared keys",
                                  "linked", "no channels", "bad transcript", "no strip", "bone missing"])
def test_bad_input_is_reported_and_changes_nothing(setup, tmp_path, case, capfd):
    scene, settings, obj = setup
    if case == "no audio":
        settings.audio_path = ""
    elif case == "missing file":
        settings.audio_path = str(tmp_path / "nope.wav")
    elif case == "unreadable file":
        (tmp_path / "text.wav").write_text("this is not audio")
        settings.audio_path = str(tmp_path / "text.wav")
    elif case == "edit mode":
        bpy.context.view_layer.objects.active = obj
        bpy.ops.object.mode_set(mode="EDIT")
    elif case == "shared keys":
        bpy.context.scene.collection.objects.link(bpy.data.objects.new("Twin", obj.data))
    elif case == "linked":
        lib = tmp_path / "lib.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(lib), copy=True)
        with bpy.data.libraries.load(str(lib), link=True) as (_, dst):
            dst.objects = ["Face"]
        scene.collection.objects.link(dst.objects[0])
        settings.target = dst.objects[0]
    elif case == "no channels":
        for attr, _ in bake.CHANNEL_TOGGLES:
            setattr(settings, attr, False)
    elif case == "no strip":
        settings.audio_source = "STRIP"
    elif case == "bone missing":
        settings.use_head, settings.head_target = True, "BONE"
    elif case == "bad transcript":
        settings.transcript_source = "FILE"
        settings.transcript_path = str(tmp_path / "missing.txt")
    before = scene_fingerprint()
    with pytest.raises(RuntimeError) as info:  # bpy.ops turns an ERROR report into RuntimeError
        bpy.ops.facepolicy.animate_from_audio()
    message = str(info.value)
    expected = {"no audio": "no audio file", "missing file": "file not found", "unreadable file": "could not decode",
                "edit mode": "Edit Mode", "shared keys": "shares its mesh", "linked": "linked",
                "no channels": "every channel is switched off", "bad transcript": "transcript",
                "no strip": "no sound strip", "bone missing": "pick the armature and the bone"}[case]
    assert expected in message
    assert scene_fingerprint() == before


def test_a_rig_with_unknown_key_names_is_solved_on_the_worker(setup):
    scene, settings, _ = setup
    head = helpers.sculpted_default_head()
    settings.target = head
    request = bake.request_from_settings(bpy.context, settings)
    assert request.geometry is not None and len(request.geometry.key_names) == 52
    outcome = bake.run_engine(request)
    assert outcome.rig_track is not None and outcome.rig_track.fps == keys.scene_fps(scene)
    result, reports = bake.apply_outcome(scene, request, outcome)
    jaw = f"Sculpt{keys.spec.ARKIT_NAMES.index('jawOpen'):02d}"
    curve = next(fc for fc in compat.action_fcurves(result.action) if jaw in fc.data_path)
    assert max(k.co[1] for k in curve.keyframe_points) > 0.5  # the test engine opens the jaw with the loudness
    assert any("solved from their shapes" in message for _, message in reports)


def test_silent_audio_bakes_a_calm_face_with_an_info_message(setup, tmp_path):
    scene, settings, obj = setup
    import soundfile

    soundfile.write(str(tmp_path / "quiet.wav"), np.zeros(16000, np.float32), 16000)
    settings.audio_path = str(tmp_path / "quiet.wav")
    request = bake.request_from_settings(bpy.context, settings)
    result, reports = bake.bake(bpy.context, request)
    assert ("INFO", "the audio is silent: baked a calm face with blinks") in reports
    jaw = next(fc for fc in compat.action_fcurves(result.action) if "jawOpen" in fc.data_path)
    assert max(k.co[1] for k in jaw.keyframe_points) < 0.05


def test_scene_sound_strip_as_the_audio_source(setup, tmp_path):
    scene, settings, obj = setup
    if not helpers.can_add_sound():
        pytest.skip("this bpy build has no audio (Audaspace), so it cannot hold sound strips")
    strip = compat.new_sound_strip(scene, "dialogue", settings.audio_path, 3, 40)
    settings.audio_source = "STRIP"
    settings.sound_strip = strip.name
    assert bpy.ops.facepolicy.animate_from_audio() == {"FINISHED"}
    take = obj.data.shape_keys.animation_data.action
    assert scene.frame_start == 40 and take.frame_range[0] == 40
    assert [s.name for s in compat.all_strips(scene)] == ["dialogue"], "the user's strip is reused, not copied"


def test_select_audio_sets_the_file(setup, tmp_path):
    scene, settings, obj = setup
    settings.audio_source = "STRIP"
    assert bpy.ops.facepolicy.select_audio(filepath=str(tmp_path / "other.wav")) == {"FINISHED"}
    assert settings.audio_source == "FILE" and settings.audio_path.endswith("other.wav")


def test_preferences_name_the_extension_package_and_explain_the_device():
    assert prefs.FacePolicyPreferences.bl_idname == "facepolicy"  # the top package, whatever it is imported as
    assert prefs.get_preferences(bpy.context) is None  # not enabled as an add-on here: callers use defaults
    has_cuda = "CUDAExecutionProvider" in prefs.onnx_providers()
    assert (prefs.device_note("AUTO") is None) == has_cuda
    assert prefs.device_note("CPU") is None
    if not has_cuda:
        assert "CPU" in prefs.device_note("AUTO") and "fall back" in prefs.device_note("CUDA")


def test_settings_an_engine_does_not_support_are_neither_read_nor_checked(setup, tmp_path, monkeypatch):
    scene, settings, obj = setup
    monkeypatch.setattr(helpers.WriterTestEngine, "features", frozenset({"seed"}))
    bake.engine_features.cache_clear()
    try:
        settings.transcript_source, settings.transcript_path = "FILE", str(tmp_path / "missing.txt")
        settings.style_source = "ACTION"  # and no action chosen
        settings.emotion, settings.seed = "happy", 4
        options = bake.request_from_settings(bpy.context, settings).options
    finally:
        monkeypatch.undo()
        bake.engine_features.cache_clear()
    assert options.transcript is None and options.style is None and options.emotion == "neutral"
    assert options.seed == 4


def test_an_unknown_engine_is_reported(setup):
    scene, settings, obj = setup
    monkeypatch_engines = dict(bake.core_engine.ENGINES)
    bake.core_engine.ENGINES["ghost"] = (".no_such_module", "Ghost")
    bake.engine_features.cache_clear()
    try:
        settings.engine = "ghost"
        with pytest.raises(FacePolicyError, match="ghost engine unavailable"):
            bake.request_from_settings(bpy.context, settings)
    finally:
        bake.core_engine.ENGINES.clear()
        bake.core_engine.ENGINES.update(monkeypatch_engines)
        bake.engine_features.cache_clear()


def test_transcript_from_a_text_block_reaches_the_engine(setup):
    scene, settings, obj = setup
    text = bpy.data.texts.new("line.txt")
    text.write("Hello there.")
    settings.transcript_source = "TEXT"
    settings.transcript_text = text
    settings.accuracy = "ACCURATE"
    request = bake.request_from_settings(bpy.context, settings)
    assert request.options.transcript == "Hello there." and request.options.accuracy == "accurate"
    result, reports = bake.bake(bpy.context, request)
    assert ("WARNING", "transcript seen: Hello there.") in reports, "the engine's warnings reach the report area"



def test_the_model_folder_preference_reaches_the_neural_engine(setup, tmp_path):
    from facepolicy.core import engine
    from facepolicy.core.assets import asset_root

    scene, settings, obj = setup
    folder = tmp_path / "my model"
    shutil.copytree(asset_root() / "models", folder)
    manifest = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    default = manifest["default_style"]
    manifest["styles"][default] = manifest["styles"][next(n for n in sorted(manifest["styles"]) if n != default)]
    (folder / "model.json").write_text(json.dumps(manifest), encoding="utf-8")
    settings.engine = "neural"
    settings.accuracy = "FAST"
    preferences = SimpleNamespace(device="CPU", threads=0, model_dir=str(folder), default_style="")
    request = bake.request_from_settings(bpy.context, settings, preferences)
    assert request.options.model_dir == str(folder)
    mine = engine.animate(settings.audio_path, request.options)
    preferences.model_dir = ""
    request = bake.request_from_settings(bpy.context, settings, preferences)
    assert request.options.model_dir is None
    bundled = engine.animate(settings.audio_path, request.options)
    assert np.abs(mine.values - bundled.values).max() > 0.05, "the folder's own style must change the face"


def test_a_performers_brow_layer_reaches_animate_and_live_through_the_model_folder_preference(setup, tmp_path):
    from facepolicy.blender import live
    from facepolicy.core import engine, spec
    from facepolicy.core.assets import asset_root
    from facepolicy.core.audio import load_audio
    from facepolicy.core.performer_brows import TAPS, BrowLayer
    from facepolicy.core.prosody_stream import FEATURES

    scene, settings, obj = setup
    folder = tmp_path / "performer"
    shutil.copytree(asset_root() / "models", folder)
    manifest = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    weights = np.zeros((len(FEATURES) * len(TAPS) + 1, 1))
    weights[-1, 0] = 0.3  # this performer's inner brows sit 0.3 higher, whatever the voice does
    manifest["brows"] = BrowLayer(TAPS, ("browInnerUp",), weights, 120.0).to_dict()
    (folder / "model.json").write_text(json.dumps(manifest), encoding="utf-8")
    settings.engine = "neural"
    settings.accuracy = "FAST"
    brow = spec.CHANNEL_INDEX["browInnerUp"]
    out = {}
    for label, model_dir in (("layer", str(folder)), ("bundled", "")):
        preferences = SimpleNamespace(device="CPU", threads=0, model_dir=model_dir, default_style="")
        request = bake.request_from_settings(bpy.context, settings, preferences)
        baked = engine.animate(settings.audio_path, request.options)
        stream = live.stream_from_settings(settings, preferences)
        stream.push(load_audio(settings.audio_path).samples)
        out[label] = (baked.select(["browInnerUp"]).values[:, 0], stream.finish()[:, brow])
    for made, bundled in zip(out["layer"], out["bundled"], strict=True):
        assert made.shape == bundled.shape
        np.testing.assert_allclose(made, np.clip(bundled + 0.3, 0, 1), atol=1e-5)


def test_head_rotation_onto_a_bone_through_the_operator(setup):
    scene, settings, obj = setup
    arm = bpy.data.objects.new("Rig", bpy.data.armatures.new("Rig"))
    scene.collection.objects.link(arm)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    bone = arm.data.edit_bones.new("head")
    bone.head, bone.tail = (0, 0, 1.5), (0, 0, 1.7)
    bpy.ops.object.mode_set(mode="OBJECT")
    settings.use_head, settings.head_target = True, "BONE"
    settings.head_armature, settings.head_bone = arm, "head"
    assert bpy.ops.facepolicy.animate_from_audio() == {"FINISHED"}
    scene.frame_set(3)
    assert abs(arm.pose.bones["head"].matrix.to_euler().z - 0.1) < 1e-4  # the test engine's yaw


class RecordingLayout:
    """Stands in for UILayout: checks that every property and operator the panel draws exists."""

    def __init__(self, log):
        self.log = log

    def __getattr__(self, name):  # use_property_split, enabled, scale_y, ... are plain attributes
        raise AttributeError(name)

    def _child(self, *args, **kwargs):
        return RecordingLayout(self.log)

    column = row = box = grid_flow = _child

    def operator(self, idname, **kwargs):
        module, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, module), name), idname
        self.log.append(idname)
        return type("OperatorProperties", (), {})()

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, name
        self.log.append(name)

    def prop_search(self, data, name, search_data, search_name, **kwargs):
        assert name in data.bl_rna.properties and search_name in search_data.bl_rna.properties
        self.log.append(name)

    def label(self, **kwargs):
        self.log.append(kwargs.get("text", ""))

    def progress(self, **kwargs):
        self.log.append("progress")


@pytest.mark.parametrize("state", ["file", "strip", "running", "head bone", "no target", "phonetic",
                                   "style action", "style csv"])
def test_panel_draws_every_control(setup, state, monkeypatch):
    scene, settings, obj = setup
    if state != "no target":
        assert bpy.ops.facepolicy.animate_from_audio() == {"FINISHED"}
    if state.startswith("style"):  # every control, as an engine that supports them all would show them
        every = frozenset({"transcript", "accuracy", "style", "emotion", "seed"})
        monkeypatch.setattr(panel, "engine_features", lambda name: (every, None))
        settings.style_source = "ACTION" if state == "style action" else "CSV"
        settings.transcript_source = "TEXT"
    job = bpy.context.window_manager.facepolicy_job
    if state == "strip":
        settings.audio_source = "STRIP"
    elif state == "running":
        job.running, job.progress, job.status = True, 0.4, "animating · 1.2 s"
        monkeypatch.setattr(panel, "bake_running", lambda: True)
    elif state == "head bone":
        arm = bpy.data.objects.new("Rig", bpy.data.armatures.new("Rig"))
        settings.use_head, settings.head_target, settings.head_armature = True, "BONE", arm
    elif state == "phonetic":
        if not helpers.HAVE_PHONETIC:
            pytest.skip(helpers.PHONETIC_REASON)
        settings.engine = "phonetic"
        settings.transcript_source = "FILE"
    elif state == "no target":
        settings.target = None
        bpy.context.view_layer.objects.active = None
    log = []
    fake = type("PanelSelf", (), {"layout": RecordingLayout(log)})()
    for name in ("_draw_target", "_draw_audio", "_draw_engine", "_draw_channels", "_draw_takes"):
        setattr(fake, name, getattr(panel.VIEW3D_PT_facepolicy, name).__get__(fake))
    panel.VIEW3D_PT_facepolicy.draw(fake, bpy.context)
    assert "facepolicy.animate_from_audio" in log and "target" in log
    assert ("facepolicy.select_audio" in log) == (settings.audio_source == "FILE")
    assert ("progress" in log) == (state == "running")
    if state == "head bone":
        assert "head_bone" in log
    if state == "phonetic":
        assert {"transcript_path", "accuracy", "emotion", "seed"} <= set(log) and "style_preset" not in log
    if state.startswith("style"):
        assert {"style_action" if state == "style action" else "style_csv", "style_strength", "transcript_text",
                "transcript_language", "emotion_intensity"} <= set(log)
    if state == "no target":
        assert any("no target" in str(entry) for entry in log)
        assert all(len(str(entry)) <= 44 for entry in log), "long messages are wrapped"
    else:
        assert any("take 1" in str(entry) for entry in log) or "facepolicy.use_take" in log


@pytest.mark.skipif(not helpers.HAVE_PHONETIC, reason=helpers.PHONETIC_REASON)
@pytest.mark.parametrize("engine_name", ["phonetic", "neural"])
def test_end_to_end_on_the_real_engines(setup, repo_root, engine_name):
    """Real speech through the real engines onto the default head, as the user would click it."""
    from facepolicy.blender.head import add_default_head
    from facepolicy.core import engine as core_engine

    if engine_name not in core_engine.ENGINES:
        pytest.skip(f"the {engine_name} engine is not shipped in this version")
    scene, settings, _ = setup
    obj = add_default_head(bpy.context)
    settings.target = obj
    settings.engine = engine_name
    settings.audio_path = str(helpers.sample_speech(repo_root))
    assert bpy.ops.facepolicy.animate_from_audio() == {"FINISHED"}
    take = obj.data.shape_keys.animation_data.action
    jaw = next(fc for fc in compat.action_fcurves(take) if "jawOpen" in fc.data_path)
    values = np.array([k.co[1] for k in jaw.keyframe_points])
    assert values.max() > 0.2 and values.std() > 0.02  # the mouth moves with the speech


def test_style_reference_from_an_action_or_a_csv(setup, tmp_path):
    from facepolicy.core.facetrack import FaceTrack
    from facepolicy.core.livelink import write_livelink_csv

    scene, settings, obj = setup
    assert bpy.ops.facepolicy.animate_from_audio() == {"FINISHED"}
    settings.style_source = "ACTION"
    settings.style_action = obj.data.shape_keys.animation_data.action
    request = bake.request_from_settings(bpy.context, settings)
    reference = FaceTrack.load_json(request.options.style)
    assert reference.n_frames == round(1.5 * keys.scene_fps(scene)) and reference.channel("jawOpen").max() > 0.5
    request.cleanup()
    settings.style_source = "CSV"
    settings.style_csv = str(tmp_path / "missing.csv")
    with pytest.raises(FacePolicyError, match="not found"):
        bake.request_from_settings(bpy.context, settings)
    write_livelink_csv(reference, tmp_path / "take.csv")
    settings.style_csv = str(tmp_path / "take.csv")
    assert bake.request_from_settings(bpy.context, settings).options.style == str(tmp_path / "take.csv")


@pytest.mark.skipif(not helpers.HAVE_PHONETIC, reason=helpers.PHONETIC_REASON)
def test_silence_on_the_phonetic_engine_gives_a_calm_face_with_blinks(setup, tmp_path):
    import soundfile

    scene, settings, obj = setup
    soundfile.write(str(tmp_path / "room.wav"), np.zeros(16000 * 8, np.float32), 16000)
    settings.engine, settings.audio_path = "phonetic", str(tmp_path / "room.wav")
    request = bake.request_from_settings(bpy.context, settings)
    result, reports = bake.bake(bpy.context, request)
    assert ("INFO", "the audio is silent: baked a calm face with blinks") in reports
    curves = {fc.data_path.split('"')[1]: fc for fc in compat.action_fcurves(result.action)}

    def peak(name):
        return max(k.co[1] for k in curves[name].keyframe_points)

    assert peak("jawOpen") < 0.1
    assert max(peak("eyeBlinkLeft"), peak("eyeBlinkRight")) > 0.5


def test_a_long_file_is_animated_in_segments_and_keys_cover_all_of_it(setup, tmp_path, monkeypatch):
    # The operator takes the same long-file path as the CLI (core.engine.animate on a spooled file): here "long"
    # is lowered to 5 s so that a 12 s line is cut in two or three.
    import soundfile

    from facepolicy.core import audio as core_audio

    monkeypatch.setattr(core_audio, "LONG_AUDIO_SECONDS", 5.0)
    monkeypatch.setattr(core_audio, "SEGMENT_SECONDS", 5.0)
    scene, settings, obj = setup
    t = np.arange(12 * 16000) / 16000
    line = (0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * t / 1.7) > 0)).astype(np.float32)
    soundfile.write(str(tmp_path / "long.wav"), line, 16000)
    settings.audio_path = str(tmp_path / "long.wav")
    request = bake.request_from_settings(bpy.context, settings)
    outcome = bake.run_engine(request)
    assert outcome.track.meta["segments"] >= 2 and not outcome.silent
    assert outcome.track.n_frames == 12 * 30
    result, _ = bake.bake(bpy.context, request)
    jaw = next(fc for fc in compat.action_fcurves(result.action) if "jawOpen" in fc.data_path)
    frames = [k.co[0] for k in jaw.keyframe_points]
    assert min(frames) == result.frame_start and max(frames) - min(frames) >= 12 * keys.scene_fps(scene) - 2
