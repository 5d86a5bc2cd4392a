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

# Regions, used by per-region intensity sliders and channel toggles.
REGION_PREFIXES: dict[str, tuple[str, ...]] = {
    "mouth": ("jaw", "mouth", "cheek", "tongue"),
    "brows": ("brow", "nose"),
    "eyes": ("eyeLook", "eyeSquint", "eyeWide"),
    "blinks": ("eyeBlink",),
    "head": ("head",),
    "gaze": ("eyeYaw", "eyePitch"),
}

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


def region_of(name: str) -> str | None:
    """The region a canonical channel belongs to, or None."""
    for region, prefixes in REGION_PREFIXES.items():
        if name.startswith(prefixes):
            return region
    return None
