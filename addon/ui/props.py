"""Property groups: the panel's settings (per scene) and the running job's state (per window manager)."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from ..blender import sound
from ..core import engine as core_engine
from ..core.letters import is_aligned, settable_languages
from ..core.letters.words import LANGUAGE_NAMES
from ..core.spec import EMOTIONS

# The panel's Language: detection, or one of the languages a user may set (core.letters.settable_languages); a
# transcript in one whose transcripts are not aligned is not used, as when it is detected.
TRANSCRIPT_LANGUAGES = (("AUTO", "Detect", "Tell the transcript's language from its words and letters"),
                        *((code, LANGUAGE_NAMES[code], f"The transcript is in {LANGUAGE_NAMES[code]}"
                           + ("" if is_aligned(code) else
                              f" ({LANGUAGE_NAMES[code]} transcripts are not aligned: the line is animated as "
                              "without one, and the report says so)"))
                          for code in settable_languages()))
ENGINE_LABELS = {"neural": ("Neural", "The diffusion-policy model: no transcript needed, styles, variations"),
                 "phonetic": ("Phonetic", "Phone recognition or alignment (pocketsphinx) plus the articulation "
                              "model; a transcript makes it more accurate")}
DEFAULT_STYLE = "DEFAULT"  # the style preset item that means "the preferences' default style"

# Blender keeps only pointers to the strings of dynamic enum items, so they must outlive the callback.
_enum_cache: dict[str, list] = {}


def _engine_items(self, context):
    names = sorted(core_engine.ENGINES, key=lambda n: (n != "neural", n))
    items = [(n, *ENGINE_LABELS.get(n, (n.title(), f"The {n} engine"))) for n in names]
    _enum_cache["engines"] = items
    return items


def _strip_items(self, context):
    scene = context.scene if context else None
    strips = sound.sound_strips(scene) if scene else []
    items = [(s.name, s.name, f"Channel {s.channel}, from frame {s.frame_start:g}") for s in strips]
    _enum_cache["strips"] = items or [("NONE", "(no sound strips)", "The scene has no sound strips")]
    return _enum_cache["strips"]


def _preset_items(self, context):
    from ..core.batch import style_presets

    items = [(DEFAULT_STYLE, "Default", "The default style (see the add-on preferences)")]
    items += [(name, name.replace("_", " ").title(), f"The {name} style preset") for name in style_presets()]
    _enum_cache["presets"] = items
    return items


def _poll_face(self, obj):
    return obj.type == "MESH" and obj.data.shape_keys is not None


def _poll_armature(self, obj):
    return obj.type == "ARMATURE"


class FacePolicySettings(bpy.types.PropertyGroup):
    target: PointerProperty(name="Target", type=bpy.types.Object, poll=_poll_face,
                            description="The mesh whose shape keys get the animation (the active object when empty)")
    audio_source: EnumProperty(name="Audio", items=(
        ("FILE", "File", "An audio file"),
        ("STRIP", "Sound Strip", "A sound strip already in the scene's sequencer; keys start where it starts"),
    ), default="FILE")
    audio_path: StringProperty(name="Audio File", subtype="FILE_PATH",
                               description="The voice line (WAV, FLAC, OGG, MP3)")
    sound_strip: EnumProperty(name="Sound Strip", items=_strip_items, description="The sound strip to animate")
    engine: EnumProperty(name="Engine", items=_engine_items)
    transcript_source: EnumProperty(name="Transcript", items=(
        ("NONE", "None", "Recognise the speech (or use a .txt beside the audio file)"),
        ("FILE", "File", "A text file with what is said"),
        ("TEXT", "Text Block", "A text block in this file"),
    ), default="NONE")
    transcript_path: StringProperty(name="Transcript File", subtype="FILE_PATH")
    transcript_language: EnumProperty(
        name="Language", items=TRANSCRIPT_LANGUAGES, default="AUTO",
        description="The language the transcript is written in (set it for short lines, whose few words may not "
                    "tell their language)")
    transcript_text: PointerProperty(name="Text Block", type=bpy.types.Text)
    style_source: EnumProperty(name="Style", items=(
        ("PRESET", "Preset", "A bundled style preset"),
        ("ACTION", "Action", "An existing take or facial action in this file"),
        ("CSV", "Live Link CSV", "A Live Link Face recording"),
    ), default="PRESET")
    style_preset: EnumProperty(name="Preset", items=_preset_items, description="Style preset")
    style_action: PointerProperty(name="Reference Action", type=bpy.types.Action)
    style_csv: StringProperty(name="Reference CSV", subtype="FILE_PATH")
    style_strength: FloatProperty(name="Strength", default=1.0, min=0.0, soft_max=3.0)
    emotion: EnumProperty(name="Emotion", items=[(e, e.title(), "") for e in EMOTIONS], default="neutral")
    emotion_intensity: FloatProperty(name="Intensity", default=0.5, min=0.0, max=1.0, subtype="FACTOR")
    accuracy: EnumProperty(name="Accuracy", items=(
        ("DEFAULT", "Default", "The engine's own choice: Accurate for Neural, Fast for Phonetic"),
        ("FAST", "Fast", "Neural: the model alone, about a second per minute of speech. Phonetic: phone recognition"),
        ("ACCURATE", "Accurate", "Neural: plus phone recognition and exact lip closures, about 1.6 times the time. "
         "Phonetic: word recognition, then alignment, about 12 times slower"),
    ), default="DEFAULT")
    seed: IntProperty(name="Seed", default=0, min=0, description="Variation; New Take bakes with the next seed")
    use_lips: BoolProperty(name="Lips", default=True, description="Jaw, mouth, cheeks and tongue")
    use_brows: BoolProperty(name="Brows", default=True)
    use_blinks: BoolProperty(name="Blinks", default=True, description="Blinks, squint and wide eyes")
    use_gaze: BoolProperty(name="Gaze", default=True)
    use_head: BoolProperty(name="Head", default=False, description="Head rotation onto the object or a bone")
    head_target: EnumProperty(name="Head Rotation", items=(
        ("OBJECT", "Object", "Rotate the target object (through its delta rotation)"),
        ("BONE", "Bone", "Rotate a bone of an armature"),
    ), default="OBJECT")
    head_armature: PointerProperty(name="Armature", type=bpy.types.Object, poll=_poll_armature)
    head_bone: StringProperty(name="Bone")
    intensity_mouth: FloatProperty(name="Mouth", default=1.0, min=0.0, soft_max=2.0, max=4.0)
    intensity_brows: FloatProperty(name="Brows", default=1.0, min=0.0, soft_max=2.0, max=4.0)
    intensity_eyes: FloatProperty(name="Eyes", default=1.0, min=0.0, soft_max=2.0, max=4.0)
    smoothing: FloatProperty(name="Smoothing", default=0.0, min=0.0, max=1.0, subtype="FACTOR",
                             description="Temporal smoothing (up to a 60 ms Gaussian); high values soften closures")
    start_frame: IntProperty(name="Start Frame", default=1, description="Frame where the audio starts")
    add_sound_strip: BoolProperty(name="Add Sound Strip", default=True,
                                  description="Put the audio in the sequencer at the start frame")
    live_record: BoolProperty(name="Record", default=True,
                              description="When Live stops, keep the performance as a new take (an action, with "
                              "the recorded audio as a sound strip) starting at the current frame")


class FacePolicyJobState(bpy.types.PropertyGroup):
    """The running bake, for the progress bar. Lives on the window manager: not saved, not in undo."""

    running: BoolProperty()
    progress: FloatProperty(min=0.0, max=1.0, subtype="FACTOR")
    status: StringProperty()


CLASSES = (FacePolicySettings, FacePolicyJobState)


def register_extra() -> None:
    bpy.types.Scene.facepolicy = PointerProperty(type=FacePolicySettings)
    bpy.types.WindowManager.facepolicy_job = PointerProperty(type=FacePolicyJobState)


def unregister_extra() -> None:
    del bpy.types.WindowManager.facepolicy_job
    del bpy.types.Scene.facepolicy
