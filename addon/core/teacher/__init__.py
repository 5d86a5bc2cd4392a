"""The articulation teacher: phone timings (+ audio) → a FaceTrack of ARKit weights, head and gaze.

The mouth is a coarticulated viseme model with the JALI jaw/lip split and hard lip constraints (mouth.py); the upper
face and head follow phrase boundaries, pitch accents and loudness (upper.py); a speaker style and an emotion shape
both (style.py). A take is rendered window by window with the same bits as all at once (take.py). Everything is
deterministic for a given seed and style, and the style is recorded in the track's meta.
"""

from .mouth import TARGETS, closure_weight, phone_emphasis
from .style import STYLE_RANGES, SpeakerStyle, sample_style
from .take import TEACHER_VERSION, TeacherTake, animate_phones

__all__ = ["STYLE_RANGES", "TARGETS", "TEACHER_VERSION", "SpeakerStyle", "TeacherTake", "animate_phones",
           "closure_weight", "phone_emphasis", "sample_style"]
