"""The voice line in the Video Sequencer: one FacePolicy sound strip per animated object, played in sync."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import bpy

from ..core import audio, movie
from ..core.errors import AudioError
from . import compat

OWNER_PROP = "facepolicy_object"  # ID property on the strips FacePolicy added: the animated object's name


def facepolicy_strips(scene: bpy.types.Scene, obj_name: str) -> list:
    return [s for s in compat.all_strips(scene) if s.get(OWNER_PROP) == obj_name]


def sound_strips(scene: bpy.types.Scene) -> list:
    """The scene's sound strips, in channel then time order."""
    strips = [s for s in compat.all_strips(scene) if s.type == "SOUND" and s.sound is not None]
    return sorted(strips, key=lambda s: (s.channel, s.frame_start, s.name))


def _free_channel(scene: bpy.types.Scene, start: int, end: int, ignore=()) -> int:
    busy = {s.channel for s in compat.all_strips(scene)
            if s not in ignore and s.frame_final_start < end and s.frame_final_end > start}
    return next(c for c in range(1, 129) if c not in busy)


def add_sound_strip(scene: bpy.types.Scene, obj_name: str, filepath: str, start_frame: int):
    """Add ``filepath`` as a sound strip at ``start_frame``, replacing only FacePolicy's earlier strip for
    ``obj_name``, and make playback follow the audio. Returns (strip, None) or (None, warning) when this
    Blender cannot load sound (nothing is changed then)."""
    old = facepolicy_strips(scene, obj_name)
    name = compat.fit_id_name(f"FacePolicy · {obj_name}")
    try:
        strip = compat.new_sound_strip(scene, name, filepath, 128, int(start_frame))
    except RuntimeError as exc:
        return None, f"the sound strip was not added ({str(exc).removeprefix('Error: ').strip()})"
    strip[OWNER_PROP] = obj_name
    channel = old[0].channel if old else None
    for s in old:
        compat.remove_strip(scene, s)
    if channel is None or channel in {s.channel for s in compat.all_strips(scene) if s != strip
                                      and s.frame_final_start < strip.frame_final_end
                                      and s.frame_final_end > strip.frame_final_start}:
        channel = _free_channel(scene, strip.frame_final_start, strip.frame_final_end, ignore=(strip,))
    strip.channel = channel
    scene.sync_mode = "AUDIO_SYNC"
    return strip, None


def strip_audio_path(strip) -> tuple[str, bool]:
    """The file a sound strip plays, as (path, is_temporary). Packed sounds are written to a temporary file."""
    sound = strip.sound
    if sound is None:
        raise AudioError(f'strip "{strip.name}" has no sound')
    if sound.packed_file is not None:
        suffix = Path(sound.filepath).suffix or ".wav"
        fd, path = tempfile.mkstemp(prefix="facepolicy-", suffix=suffix)
        with os.fdopen(fd, "wb") as f:
            f.write(sound.packed_file.data)
        return path, True
    path = bpy.path.abspath(sound.filepath, library=sound.library)
    if not path:
        raise AudioError(f'strip "{strip.name}" has no sound file')
    return os.path.normpath(path), False


def load_line_audio(path):
    """core.audio.load_line_audio; a movie's sound track through Blender's own Audaspace (its ffmpeg) where the
    video extra is not installed (the extension zip does not carry it), read at the movie's own rate and resampled by
    core.audio's rule. Audaspace holds the whole sound in memory, so a movie longer than core.audio's
    LONG_AUDIO_SECONDS is refused in one sentence there (the extra reads it block by block). Safe to call from a
    worker thread."""
    if not (movie.is_movie(path) and Path(path).is_file() and not movie.available()):
        return audio.load_line_audio(path)
    try:
        import aud
    except ImportError:  # a bpy build without sound: core's sentence ("needs the video extra")
        return audio.load_line_audio(path)
    name = Path(path).name
    try:
        sound = aud.Sound(str(path))
        rate = int(sound.specs[0])
        if sound.length > audio.LONG_AUDIO_SECONDS * rate:
            raise AudioError(f'"{name}": Blender reads a movie\'s sound whole, and this one is longer than '
                             f"{audio.LONG_AUDIO_SECONDS / 60:.0f} minutes; install the video extra (pip install "
                             "'facepolicy[video]' into Blender's Python) or save its sound as a WAV file")
        samples = sound.rechannel(1).data()
    except AudioError:
        raise
    except Exception as exc:  # noqa: BLE001 - Audaspace raises plain errors for unreadable files
        raise AudioError(f'"{name}": Blender could not read its sound ({exc})') from None
    if samples.size == 0:
        raise AudioError(f'"{name}": the file has no sound track')
    return audio.from_array(samples[:, 0], rate, source=str(path))
