"""Name mapping of rig shape keys to ARKit channels, on the naming styles real rigs use."""

import json
import re

import numpy as np
import pytest

from facepolicy.core import spec
from facepolicy.core.errors import RigError
from facepolicy.core.facetrack import FaceTrack
from facepolicy.core.rig import build_mapping, match_name, overrides_to_json, parse_overrides

CC4 = [
    "Brow_Raise_Inner_L", "Brow_Raise_Inner_R", "Brow_Raise_Outer_L", "Brow_Raise_Outer_R", "Brow_Drop_L",
    "Brow_Drop_R", "Brow_Compress_L", "Eye_Blink_L", "Eye_Blink_R", "Eye_Squint_L", "Eye_Squint_R", "Eye_Wide_L",
    "Eye_Wide_R", "Eye_L_Look_L", "Eye_L_Look_R", "Eye_L_Look_Up", "Eye_L_Look_Down", "Eye_R_Look_L",
    "Eye_R_Look_R", "Eye_R_Look_Up", "Eye_R_Look_Down", "Cheek_Raise_L", "Cheek_Raise_R", "Cheek_Puff_L",
    "Cheek_Puff_R", "Nose_Sneer_L", "Nose_Sneer_R", "Nose_Nostril_Flare_L", "Jaw_Open", "Jaw_Forward", "Jaw_L",
    "Jaw_R", "Mouth_L", "Mouth_R", "Mouth_Smile_L", "Mouth_Smile_R", "Mouth_Frown_L", "Mouth_Frown_R",
    "Mouth_Dimple_L", "Mouth_Dimple_R", "Mouth_Stretch_L", "Mouth_Stretch_R", "Mouth_Press_L", "Mouth_Press_R",
    "Mouth_Close", "Mouth_Funnel_Up_L", "Mouth_Funnel_Up_R", "Mouth_Funnel_Down_L", "Mouth_Funnel_Down_R",
    "Mouth_Pucker_Up_L", "Mouth_Pucker_Up_R", "Mouth_Pucker_Down_L", "Mouth_Pucker_Down_R",
    "Mouth_Roll_In_Upper_L", "Mouth_Roll_In_Upper_R", "Mouth_Roll_In_Lower_L", "Mouth_Roll_In_Lower_R",
    "Mouth_Shrug_Upper", "Mouth_Shrug_Lower", "Mouth_Up_Upper_L", "Mouth_Up_Upper_R", "Mouth_Down_Lower_L",
    "Mouth_Down_Lower_R", "Tongue_Out", "Tongue_Up", "V_Open", "V_Explosive",
]

METAHUMAN = ["CTRL_expressions_" + n for n in (
    "browDownL", "browDownR", "browRaiseInL", "browRaiseInR", "browRaiseOuterL", "browRaiseOuterR", "eyeBlinkL",
    "eyeBlinkR", "eyeWidenL", "eyeWidenR", "eyeSquintInnerL", "eyeSquintInnerR", "eyeCheekRaiseL",
    "eyeCheekRaiseR", "eyeLookUpL", "eyeLookUpR", "eyeLookDownL", "eyeLookDownR", "eyeLookLeftL", "eyeLookRightL",
    "eyeLookLeftR", "eyeLookRightR", "noseWrinkleL", "noseWrinkleR", "jawOpen", "jawFwd", "jawLeft", "jawRight",
    "mouthLeft", "mouthRight", "mouthCornerPullL", "mouthCornerPullR", "mouthCornerDepressL",
    "mouthCornerDepressR", "mouthDimpleL", "mouthDimpleR", "mouthStretchL", "mouthStretchR", "mouthLipsPurseUL",
    "mouthLipsPurseUR", "mouthLipsPurseDL", "mouthLipsPurseDR", "mouthFunnelUL", "mouthFunnelUR", "mouthFunnelDL",
    "mouthFunnelDR", "mouthLowerLipDepressL", "mouthLowerLipDepressR", "mouthUpperLipRaiseL",
    "mouthUpperLipRaiseR", "mouthLipsPressL", "mouthLipsPressR", "mouthLowerLipRollInL", "mouthLowerLipRollInR",
    "mouthUpperLipRollInL", "mouthUpperLipRollInR", "mouthCheekBlowL", "mouthCheekBlowR", "mouthLipsTogetherUL",
    "mouthLipsTogetherUR", "mouthLipsTogetherDL", "mouthLipsTogetherDR", "tongueOut",
)]

VRM_VISEMES = ["viseme_sil", "viseme_PP", "viseme_FF", "viseme_TH", "viseme_DD", "viseme_kk", "viseme_CH",
               "viseme_SS", "viseme_nn", "viseme_RR", "viseme_aa", "viseme_E", "viseme_I", "viseme_O", "viseme_U"]

VROID = ["Fcl_ALL_Neutral", "Fcl_ALL_Angry", "Fcl_BRW_Angry", "Fcl_EYE_Close", "Fcl_EYE_Close_R",
         "Fcl_EYE_Close_L", "Fcl_EYE_Joy", "Fcl_MTH_A", "Fcl_MTH_I", "Fcl_MTH_U", "Fcl_MTH_E", "Fcl_MTH_O",
         "Fcl_HA_Fung1"]


@pytest.mark.parametrize("name, expected", [
    ("eyeBlinkLeft", "eyeBlinkLeft"), ("EyeBlinkLeft", "eyeBlinkLeft"), ("eyeBlink_L", "eyeBlinkLeft"),
    ("eye_blink_l", "eyeBlinkLeft"), ("eye-blink-left", "eyeBlinkLeft"), ("eyeBlink.L", "eyeBlinkLeft"),
    ("EYEBLINKLEFT", "eyeBlinkLeft"), ("blendShape1.eyeBlinkLeft", "eyeBlinkLeft"), ("BS_eyeBlinkLeft", "eyeBlinkLeft"),
    ("bs.jaw_open", "jawOpen"), ("A25_Jaw_Open", "jawOpen"), ("A14_Eye_Blink_Right", "eyeBlinkRight"),
    ("Wolf3D_Head.mouthSmileLeft", "mouthSmileLeft"), ("mouthSmile_R", "mouthSmileRight"),
    ("mouth-smile.R", "mouthSmileRight"), ("jaw_L", "jawLeft"), ("Mouth_R", "mouthRight"),
    ("mouthShrug_upper", "mouthShrugUpper"), ("tongue-out", "tongueOut"), ("cheek_puff", "cheekPuff"),
    ("Eye_L_Look_L", "eyeLookOutLeft"), ("Eye_L_Look_R", "eyeLookInLeft"), ("Eye_R_Look_R", "eyeLookOutRight"),
    ("Eye_R_Look_L", "eyeLookInRight"), ("eyeLookLeftL", "eyeLookOutLeft"), ("eyeLookLeftR", "eyeLookInRight"),
    ("jawOpen.001", "jawOpen"),
])
def test_single_names(name, expected):
    hit = match_name(name)
    assert hit is not None, name
    assert hit[0] == (expected,), name


@pytest.mark.parametrize("name", ["Basis", "viseme_aa", "Brow_Compress_L", "Fcl_ALL_Angry", "Key 1", "headYaw",
                                  "Tongue_Up", "L", "mouth"])
def test_non_arkit_names_do_not_match(name):
    assert match_name(name) is None


def test_arkit_and_faceit_all_exact():
    m = build_mapping(("Basis",) + spec.ARKIT_NAMES)
    assert len(m.matches) == 52 and all(x.how == "exact" for x in m.matches)
    assert not m.unmatched_keys and not m.unmatched_channels and not m.collisions
    assert m.key_map() == {n: n for n in spec.ARKIT_NAMES}


def test_ready_player_me():
    keys = ["Basis"] + list(spec.ARKIT_NAMES) + VRM_VISEMES + ["mouthOpen", "mouthSmile"]
    m = build_mapping(keys)
    assert set(m.matched_keys) == set(spec.ARKIT_NAMES)
    assert set(m.unmatched_keys) == set(VRM_VISEMES)
    assert set(m.skipped) == {"mouthOpen", "mouthSmile"}  # their channels already drive ARKit-named keys
    legacy = build_mapping(["Basis", "mouthOpen", "mouthSmile"])  # an older avatar without ARKit keys
    got = {x.key: x.channels for x in legacy.matches}
    assert got == {"mouthOpen": ("jawOpen",), "mouthSmile": ("mouthSmileLeft", "mouthSmileRight")}


def test_character_creator_4():
    m = build_mapping(["Basis"] + CC4)
    got = {x.key: x.channels[0] for x in m.matches}
    assert not m.unmatched_channels, m.unmatched_channels
    assert set(m.unmatched_keys) == {"Brow_Compress_L", "Nose_Nostril_Flare_L", "Tongue_Up", "V_Open", "V_Explosive"}
    assert got["Brow_Raise_Inner_L"] == got["Brow_Raise_Inner_R"] == "browInnerUp"
    assert got["Cheek_Raise_R"] == "cheekSquintRight" and got["Brow_Drop_L"] == "browDownLeft"
    assert got["Eye_R_Look_L"] == "eyeLookInRight" and got["Mouth_Down_Lower_L"] == "mouthLowerDownLeft"
    assert got["Mouth_Pucker_Down_R"] == "mouthPucker" and got["Mouth_Roll_In_Upper_L"] == "mouthRollUpper"
    assert not m.collisions


def test_metahuman_like():
    m = build_mapping(METAHUMAN)
    got = {x.key.removeprefix("CTRL_expressions_"): x.channels[0] for x in m.matches}
    assert got["mouthCornerPullL"] == "mouthSmileLeft" and got["eyeLookRightL"] == "eyeLookInLeft"
    assert got["mouthFunnelDR"] == "mouthFunnel" and got["mouthLipsTogetherUL"] == "mouthClose"
    assert got["browRaiseInR"] == "browInnerUp" and got["jawFwd"] == "jawForward"
    assert set(m.unmatched_channels) == {"mouthShrugLower", "mouthShrugUpper"}
    assert not m.collisions and not m.unmatched_keys


def test_vroid():
    m = build_mapping(["Basis"] + VROID)
    got = {x.key: (x.channels, x.how) for x in m.matches}
    assert got["Fcl_EYE_Close_L"] == (("eyeBlinkLeft",), "alias")
    assert got["Fcl_MTH_A"] == (("jawOpen",), "alias")
    assert "Fcl_EYE_Close" in m.skipped  # both eyes: redundant next to the per-eye keys
    alone = build_mapping(["Basis", "Fcl_EYE_Close", "Fcl_MTH_A"])
    assert {x.key: x.channels for x in alone.matches}["Fcl_EYE_Close"] == ("eyeBlinkLeft", "eyeBlinkRight")


def test_polywink_prefixes():
    keys = [f"A{i + 1:02d}_" + "_".join(w.capitalize() for w in _split(n)) for i, n in enumerate(spec.ARKIT_NAMES)]
    m = build_mapping(keys)
    assert {x.key: x.channels[0] for x in m.matches} == dict(zip(keys, spec.ARKIT_NAMES, strict=True))


def _split(name):
    return re.findall(r"[A-Z]?[a-z]+", name)


def test_collisions_are_reported_and_one_key_kept():
    m = build_mapping(["Basis", "Jaw_Open", "jawOpen", "jawOpen.001", "mouthSmile_L", "MouthSmileLeft"])
    assert len(m.collisions) == 2
    jaw = next(c for c in m.collisions if c.meaning == "jawOpen")
    assert jaw.kept == "jawOpen" and set(jaw.keys) == {"Jaw_Open", "jawOpen", "jawOpen.001"}
    assert m.key_map()["jawOpen"] == "jawOpen"
    assert sum(1 for x in m.matches if x.channels == ("jawOpen",)) == 1
    assert any("all mean jawOpen" in w for w in m.warnings())


def test_user_overrides_win_and_resolve():
    overrides = {"Jaw_Down": "jawOpen", "Jaw_Open": "", "Smile": ["mouthSmileLeft", "mouthSmileRight"]}
    m = build_mapping(["Basis", "Jaw_Open", "Jaw_Down", "Smile", "Custom"], overrides=overrides)
    got = {x.key: (x.channels, x.how) for x in m.matches}
    assert got == {"Jaw_Down": (("jawOpen",), "user"), "Smile": (("mouthSmileLeft", "mouthSmileRight"), "user")}
    assert m.unmatched_keys == ("Custom",)
    text = overrides_to_json(parse_overrides(overrides))
    assert parse_overrides(text) == parse_overrides(json.dumps(overrides))


@pytest.mark.parametrize("bad", ['{"a": "notAChannel"}', '{"a": 3}', "[1, 2]", "{not json", '{"a": "headYaw"}'])
def test_bad_overrides_have_clear_errors(bad):
    with pytest.raises(RigError, match="mapping"):
        parse_overrides(bad)


def test_rig_track_and_report():
    m = build_mapping(["Basis", "Jaw_Open", "Brow_Raise_Inner_L", "Brow_Raise_Inner_R", "mouthSmile", "Extra"])
    values = np.zeros((4, spec.NUM_CHANNELS), np.float32)
    values[:, spec.CHANNEL_INDEX["jawOpen"]] = [0, 0.2, 0.4, 1.0]
    values[:, spec.CHANNEL_INDEX["browInnerUp"]] = 0.5
    values[:, spec.CHANNEL_INDEX["mouthSmileLeft"]] = 1.0
    values[:, spec.CHANNEL_INDEX["headYaw"]] = 0.1
    rig = m.to_rig_track(FaceTrack(30.0, spec.CHANNEL_NAMES, values))
    assert rig.names == ("Jaw_Open", "Brow_Raise_Inner_L", "Brow_Raise_Inner_R", "mouthSmile") + tuple(
        n for n in spec.CHANNEL_NAMES if n in spec.ROTATION_CHANNELS)
    assert np.allclose(rig.channel("Jaw_Open"), [0, 0.2, 0.4, 1.0])
    assert np.allclose(rig.channel("Brow_Raise_Inner_R"), 0.5)
    assert np.allclose(rig.channel("mouthSmile"), 0.5)   # mean of both sides
    assert np.allclose(rig.channel("headYaw"), 0.1)
    rows = m.report()
    assert ("jawOpen", "Jaw_Open", "name") in rows and ("eyeBlinkLeft", "", "unmatched") in rows
    assert len([r for r in rows if r[0] == "browInnerUp"]) == 2
    assert m.unmatched_keys == ("Extra",)
