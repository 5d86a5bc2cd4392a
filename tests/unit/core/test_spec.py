"""The shared constants: channel names and counts, the Live Link Face column order, regions and the panel's groups."""

import pytest

from facepolicy.core import spec

# The header of a Live Link Face capture (Epic's iPhone app), written out here rather than derived from spec.
LIVE_LINK_FACE_HEADER = (
    "Timecode,BlendShapeCount,EyeBlinkLeft,EyeLookDownLeft,EyeLookInLeft,EyeLookOutLeft,EyeLookUpLeft,EyeSquintLeft,"
    "EyeWideLeft,EyeBlinkRight,EyeLookDownRight,EyeLookInRight,EyeLookOutRight,EyeLookUpRight,EyeSquintRight,"
    "EyeWideRight,JawForward,JawRight,JawLeft,JawOpen,MouthClose,MouthFunnel,MouthPucker,MouthRight,MouthLeft,"
    "MouthSmileLeft,MouthSmileRight,MouthFrownLeft,MouthFrownRight,MouthDimpleLeft,MouthDimpleRight,"
    "MouthStretchLeft,MouthStretchRight,MouthRollLower,MouthRollUpper,MouthShrugLower,MouthShrugUpper,"
    "MouthPressLeft,MouthPressRight,MouthLowerDownLeft,MouthLowerDownRight,MouthUpperUpLeft,MouthUpperUpRight,"
    "BrowDownLeft,BrowDownRight,BrowInnerUp,BrowOuterUpLeft,BrowOuterUpRight,CheekPuff,CheekSquintLeft,"
    "CheekSquintRight,NoseSneerLeft,NoseSneerRight,TongueOut,HeadYaw,HeadPitch,HeadRoll,LeftEyeYaw,LeftEyePitch,"
    "LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll"
)


def test_channel_counts_and_unique_names():
    assert (len(spec.ARKIT_NAMES), len(spec.HEAD_NAMES), len(spec.EYE_NAMES)) == (52, 3, 4)
    assert spec.NUM_ARKIT == 52 and spec.NUM_CHANNELS == len(spec.CHANNEL_NAMES) == 59
    assert len(set(spec.CHANNEL_NAMES)) == 59
    assert spec.CHANNEL_NAMES[:52] == spec.ARKIT_NAMES  # the shape weights first: column i of a state is ARKit i
    assert all(spec.CHANNEL_NAMES[i] == n for n, i in spec.CHANNEL_INDEX.items()) and len(spec.CHANNEL_INDEX) == 59
    assert spec.ROTATION_CHANNELS == set(spec.CHANNEL_NAMES[52:])
    for names in (spec.EMOTIONS, spec.ACCURACY_MODES, spec.COMMON_FPS, spec.LIVELINK_COLUMNS):
        assert len(set(names)) == len(names)


def test_live_link_columns_are_the_apps_order():
    assert ("Timecode", "BlendShapeCount") + spec.LIVELINK_COLUMNS == tuple(LIVE_LINK_FACE_HEADER.split(","))
    assert [c.lower() for c in spec.LIVELINK_ARKIT_COLUMNS] == [n.lower() for n in spec.ARKIT_NAMES]
    carried = [c for c in spec.LIVELINK_EXTRA_TO_CHANNEL.values() if c is not None]
    assert set(spec.LIVELINK_EXTRA_TO_CHANNEL) == set(spec.LIVELINK_EXTRA_COLUMNS)
    assert sorted(carried) == sorted(spec.ROTATION_CHANNELS)  # each rotation channel in exactly one column
    assert [spec.LIVELINK_EXTRA_TO_CHANNEL[c] for c in ("LeftEyeRoll", "RightEyeRoll")] == [None, None]


def test_every_channel_has_exactly_one_region():
    for name in spec.CHANNEL_NAMES:
        matches = [r for r, prefixes in spec.REGION_PREFIXES.items() if name.startswith(prefixes)]
        assert len(matches) == 1 and spec.region_of(name) == matches[0], name
    assert spec.region_of("notAChannel") is None
    assert spec.region_channels("head") == spec.HEAD_NAMES
    assert spec.region_channels("gaze") == spec.EYE_NAMES
    assert spec.region_channels("blinks") == ("eyeBlinkLeft", "eyeBlinkRight")


def partition(groups):
    names = [n for channels in groups.values() for n in channels]
    return len(names) == len(set(names)), set(names)


def test_each_channel_is_switched_by_exactly_one_toggle():
    disjoint, covered = partition(spec.TOGGLE_GROUPS)
    assert disjoint and covered == set(spec.CHANNEL_NAMES)
    assert spec.ALL_TOGGLES == {"lips", "brows", "blinks", "gaze", "head"}


def test_the_eye_toggles_cut_the_eyes_by_lid_and_direction():
    """What the panel's Blinks and Gaze toggles switch (its tooltip: "Blinks, squint and wide eyes")."""
    assert set(spec.TOGGLE_GROUPS["blinks"]) == {"eyeBlinkLeft", "eyeBlinkRight", "eyeSquintLeft",
                                                 "eyeSquintRight", "eyeWideLeft", "eyeWideRight"}
    looks = {f"eyeLook{d}{s}" for d in ("Down", "In", "Out", "Up") for s in ("Left", "Right")}
    assert set(spec.TOGGLE_GROUPS["gaze"]) == looks | set(spec.EYE_NAMES)
    for toggle, region in (("lips", "mouth"), ("brows", "brows"), ("head", "head")):
        assert spec.TOGGLE_GROUPS[toggle] == spec.region_channels(region)
    assert "cheekSquintLeft" in spec.TOGGLE_GROUPS["lips"] and "noseSneerLeft" in spec.TOGGLE_GROUPS["brows"]


def test_intensity_sliders_scale_everything_but_the_blinks():
    disjoint, covered = partition(spec.INTENSITY_GROUPS)
    assert disjoint and covered == set(spec.CHANNEL_NAMES) - {"eyeBlinkLeft", "eyeBlinkRight"}
    assert set(spec.INTENSITY_GROUPS["eyes"]) == set(spec.TOGGLE_GROUPS["gaze"]) | {
        "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight"}


@pytest.mark.parametrize("helper, args", [(spec.region_channels, ("eyes", "gaze")),
                                          (spec.channels_named, ("eyeLook", "eyeYaw"))])
def test_group_helpers_keep_channel_order(helper, args):
    got = helper(*args)
    assert list(got) == sorted(got, key=spec.CHANNEL_INDEX.__getitem__) and got


def test_neutral_is_the_first_emotion_and_fast_the_first_mode():
    assert spec.EMOTIONS[0] == "neutral" and set(spec.EMOTIONS) >= {"happy", "sad", "angry", "surprised"}
    assert spec.ACCURACY_MODES == ("fast", "accurate")
