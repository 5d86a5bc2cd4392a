"""A voice line recorded as a movie (a phone's .mp4, an editor's .mov): `facepolicy bake`, `facepolicy live` and
Animate from Audio read its sound track through the optional `video` extra (imageio-ffmpeg), as they read a WAV.
What the user looks at: the bake's row, the files written (frames for the whole line, the same face as from the
WAV), the transcript beside the movie being used, one sentence for a movie without sound."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from journey import default_head_with_audio, espeak, facepolicy

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")

LINE = "Bob bought a big map from Pam."


def to_movie(wav: Path, movie: Path, sound: bool = True) -> Path:
    """A small black H.264 picture with the line's sound as 48 kHz AAC (a phone's recording)."""
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "color=black:s=64x64:r=30"]
    cmd += ["-i", str(wav), "-shortest", "-c:a", "aac", "-ar", "48000"] if sound else ["-t", "2"]
    subprocess.run(cmd + ["-c:v", "libx264", "-pix_fmt", "yuv420p", str(movie)], check=True)
    return movie


def curves(csv: Path) -> dict[str, np.ndarray]:
    from facepolicy.core.livelink import read_livelink_csv

    track = read_livelink_csv(csv)
    return {name: track.values[:, k] for k, name in enumerate(track.names)}


def test_a_line_recorded_as_a_movie_bakes_like_its_wav(tmp_path):
    for folder in ("wav", "mov"):
        (tmp_path / folder).mkdir()
    wav = espeak(tmp_path / "wav" / "line.wav", LINE)
    movie = to_movie(wav, tmp_path / "mov" / "line.mp4")
    (tmp_path / "mov" / "line.txt").write_text(LINE + "\n", encoding="utf-8")  # its transcript, beside the movie
    for source, out in ((wav, "from_wav"), (movie, "from_movie")):
        done = facepolicy("bake", source, "-o", tmp_path / out, "--format", "csv,json", timeout=600)
        assert done.returncode == 0 and "1 baked" in done.stdout, done.stdout + done.stderr
    a, b = curves(tmp_path / "from_wav" / "line.csv"), curves(tmp_path / "from_movie" / "line.csv")
    assert abs(len(b["jawOpen"]) - len(a["jawOpen"])) <= 1, "frames for the whole line"
    n = min(len(a["jawOpen"]), len(b["jawOpen"]))
    assert np.corrcoef(a["jawOpen"][:n], b["jawOpen"][:n])[0, 1] > 0.9, "the same face as from the WAV"
    meta = json.loads((tmp_path / "from_movie" / "line.json").read_text(encoding="utf-8"))["meta"]
    assert meta["neural"]["evidence"] == "transcript alignment", "the transcript beside the movie is used"


def test_doctor_says_movies_are_read():
    done = facepolicy("doctor", timeout=120)
    assert "movie sound                  ffmpeg (the video extra) reads .mov, .mp4" in done.stdout


def test_a_movie_without_sound_is_one_sentence_and_the_other_lines_still_bake(tmp_path):
    wav = espeak(tmp_path / "line.wav", LINE)
    to_movie(wav, tmp_path / "mute.mp4", sound=False)
    done = facepolicy("bake", wav, tmp_path / "mute.mp4", "-o", tmp_path / "out", timeout=600)
    assert done.returncode == 1
    (row,) = [line for line in done.stdout.splitlines() if "mute.mp4" in line]
    message = row.split("failed", 1)[1].strip()
    assert message == '"mute.mp4": the file has no sound track', "one sentence, the file named once"
    assert "1 baked, 0 up to date, 1 failed" in done.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == \
        ["line.csv", "line.json"]


def test_live_plays_a_movies_sound_track(tmp_path):
    movie = to_movie(espeak(tmp_path / "line.wav", LINE), tmp_path / "line.mov")
    done = facepolicy("live", movie, "--csv", tmp_path / "take.csv", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    seconds = sf.info(str(tmp_path / "line.wav")).duration
    frames = len(curves(tmp_path / "take.csv")["jawOpen"])
    assert abs(frames - seconds * 30) <= 2, (frames, seconds)


@pytest.mark.blender
@pytest.mark.parametrize("extra", [True, False], ids=["video extra", "Blender's own sound reader"])
def test_animate_from_audio_takes_a_movie(tmp_path, monkeypatch, extra):
    """Animate from Audio with a .mov: through the video extra, or, where it is not installed (the extension zip does
    not carry it), through Blender's own Audaspace; a bpy build without Audaspace says what is missing in one
    sentence and changes nothing."""
    bpy = pytest.importorskip("bpy")
    from facepolicy.blender import compat

    movie = to_movie(espeak(tmp_path / "line.wav", LINE), tmp_path / "line.mov")
    if not extra:
        monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # imports fail as where it is not installed
    try:
        import aud  # noqa: F401
        readable = True
    except ImportError:
        readable = extra
    with default_head_with_audio(movie) as (obj, _settings):
        if not readable:
            with pytest.raises(RuntimeError, match=r"reading the sound of a \.mov file needs the video extra"):
                bpy.ops.facepolicy.animate_from_audio()
            assert obj.data.shape_keys.animation_data is None or obj.data.shape_keys.animation_data.action is None
            return
        assert bpy.ops.facepolicy.animate_from_audio() == {"FINISHED"}
        take = obj.data.shape_keys.animation_data.action
        jaw = next(fc for fc in compat.action_fcurves(take) if '"jawOpen"' in fc.data_path)
        values = [k.co[1] for k in jaw.keyframe_points]
        assert max(values) - min(values) > 0.1, "the jaw moves with the movie's speech"
        fps = bpy.context.scene.render.fps / bpy.context.scene.render.fps_base
        span = (take.frame_range[1] - take.frame_range[0]) / fps
        assert abs(span - sf.info(str(tmp_path / "line.wav")).duration) < 0.1, "the take lasts as long as the line"
