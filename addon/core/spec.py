"""Constants shared by training and runtime: channel names, rates and the model I/O contract.

Training code imports these and never redefines them, so the model and the add-on cannot drift apart.
"""

from __future__ import annotations

# The 52 ARKit blendshapes in the order Apple's ARFaceAnchor and Live Link Face CSV use. This order is
# part of the model contract: column i of every state vector is ARKIT_NAMES[i].
ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawRight", "jawLeft", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthRight", "mouthLeft",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)

# Head rotation in radians (yaw: +left, pitch: +down, roll: +right ear down; Live Link Face conventions).
HEAD_NAMES: tuple[str, ...] = ("headYaw", "headPitch", "headRoll")

# Eye rotation in radians per eye. Roll is not modelled; Live Link CSV writes it as 0.
EYE_NAMES: tuple[str, ...] = ("eyeYawLeft", "eyePitchLeft", "eyeYawRight", "eyePitchRight")

# Canonical channel list: 52 shape weights (0..1), then 3 head angles, then 4 eye angles.
CHANNEL_NAMES: tuple[str, ...] = ARKIT_NAMES + HEAD_NAMES + EYE_NAMES
NUM_ARKIT = len(ARKIT_NAMES)
NUM_CHANNELS = len(CHANNEL_NAMES)
CHANNEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(CHANNEL_NAMES)}

# Channels whose values are rotations (radians, signed) rather than 0..1 weights.
ROTATION_CHANNELS: frozenset[str] = frozenset(HEAD_NAMES + EYE_NAMES)

# Anatomical regions: every canonical channel belongs to exactly one (region_of). The metrics' upper face, the Graph
# Editor's F-curve groups and the intensity sliders (INTENSITY_GROUPS) are made of them.
REGION_PREFIXES: dict[str, tuple[str, ...]] = {
    "mouth": ("jaw", "mouth", "cheek", "tongue"),
    "brows": ("brow", "nose"),
    "eyes": ("eyeLook", "eyeSquint", "eyeWide"),
    "blinks": ("eyeBlink",),
    "head": ("head",),
    "gaze": ("eyeYaw", "eyePitch"),
}


def region_of(name: str) -> str | None:
    """The region a canonical channel belongs to, or None."""
    for region, prefixes in REGION_PREFIXES.items():
        if name.startswith(prefixes):
            return region
    return None


def region_channels(*regions: str) -> tuple[str, ...]:
    """The canonical channels of ``regions``, in CHANNEL_NAMES order."""
    return tuple(n for n in CHANNEL_NAMES if region_of(n) in regions)


def channels_named(*prefixes: str) -> tuple[str, ...]:
    """The canonical channels whose names start with one of ``prefixes``, in CHANNEL_NAMES order."""
    return tuple(n for n in CHANNEL_NAMES if n.startswith(prefixes))


# The panel's channel toggles: toggle → the channels it switches on and off. Lips, brows and head are regions. The
# eyes are cut by what an animator switches, not by anatomy, so these two toggles are not regions although they
# share two regions' names: "blinks" is the eyelids (the blinks region plus eyeSquint and eyeWide of the eyes
# region) and "gaze" is where the eyes look (eyeLook of the eyes region plus the gaze region's eye rotations).
# Switching gaze off leaves blinks and squints alone, and the other way round.
TOGGLE_GROUPS: dict[str, tuple[str, ...]] = {
    "lips": region_channels("mouth"),
    "brows": region_channels("brows"),
    "blinks": channels_named("eyeBlink", "eyeSquint", "eyeWide"),
    "gaze": channels_named("eyeLook", "eyeYaw", "eyePitch"),
    "head": region_channels("head"),
}
ALL_TOGGLES: frozenset[str] = frozenset(TOGGLE_GROUPS)

# The panel's intensity sliders: slider → the channels it scales, whole regions. The blinks region is never scaled,
# so a blink still closes the eye.
INTENSITY_GROUPS: dict[str, tuple[str, ...]] = {
    "mouth": region_channels("mouth"),
    "brows": region_channels("brows"),
    "eyes": region_channels("eyes", "gaze"),
    "head": region_channels("head"),
}

# The emotions a take can be asked for. Part of the model contract: the conditioning vector's emotion columns are
# in this order.
EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "surprised")

# How hard an engine works for accuracy (BakeOptions; the CLI's --accuracy, the panel's Accuracy).
ACCURACY_MODES: tuple[str, ...] = ("fast", "accurate")

MODEL_FPS = 30
SAMPLE_RATE = 16_000

# Frame rates the product is tested at (23.976 = 24000/1001, 29.97 = 30000/1001).
COMMON_FPS: tuple[float, ...] = (24000 / 1001, 24.0, 25.0, 30000 / 1001, 30.0, 50.0, 60.0)

# Live Link Face CSV columns after Timecode and BlendShapeCount: capitalised ARKit names, then head and eyes.
LIVELINK_ARKIT_COLUMNS: tuple[str, ...] = tuple(n[0].upper() + n[1:] for n in ARKIT_NAMES)
LIVELINK_EXTRA_COLUMNS: tuple[str, ...] = (
    "HeadYaw", "HeadPitch", "HeadRoll",
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)
LIVELINK_COLUMNS: tuple[str, ...] = LIVELINK_ARKIT_COLUMNS + LIVELINK_EXTRA_COLUMNS
# Which canonical channel each non-ARKit Live Link column carries (None: always written as 0).
LIVELINK_EXTRA_TO_CHANNEL: dict[str, str | None] = {
    "HeadYaw": "headYaw", "HeadPitch": "headPitch", "HeadRoll": "headRoll",
    "LeftEyeYaw": "eyeYawLeft", "LeftEyePitch": "eyePitchLeft", "LeftEyeRoll": None,
    "RightEyeYaw": "eyeYawRight", "RightEyePitch": "eyePitchRight", "RightEyeRoll": None,
}

