"""A Live Link Face take recorded as a movie (NAME.csv beside NAME.mov, the app's own output): `facepolicy finetune`
reads the take's sound from the movie through the optional `video` extra (imageio-ffmpeg) and fine-tunes on it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from journey import ROOT, facepolicy

if str(ROOT) not in sys.path:  # `model` is a top-level package of the repository, not installed
    sys.path.insert(0, str(ROOT))
pytest.importorskip("torch")
pytest.importorskip("onnx")
imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
synthetic = pytest.importorskip("model.synthetic_performer")

TINY = ("--steps", "2", "--eval-every", "2", "--batch", "4", "--threads", "1")


def to_movie(wav, mov) -> None:
    """An iPhone-like take: a small black H.264 picture with the line's sound as AAC, as a .mov."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "color=black:s=64x64:r=30", "-i", str(wav),
                    "-shortest", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ar", "48000", str(mov)],
                   check=True)


def test_a_take_recorded_as_a_movie_is_read_and_fine_tuned_on(tmp_path):
    if shutil.which("flite") is None:
        pytest.skip("flite is not installed (bash run.sh test installs it)")
    lines = [synthetic.performer_lines(synthetic.Performer(), 8.0, seed=seed)[0] for seed in (3, 4)]
    folder = tmp_path / "anna"
    for k, line in enumerate(lines, 1):
        synthetic.write_take(folder, f"take{k}", line["samples"], line["states"])
    to_movie(folder / "take2.wav", folder / "take2.mov")
    (folder / "take2.wav").unlink()
    out = tmp_path / "models" / "anna"
    done = facepolicy("finetune", folder, "-o", out, "--cache", tmp_path / "cache", *TINY, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    takes = json.loads((out / "model.json").read_text(encoding="utf-8"))["finetune"]["captures"]["takes"]
    assert [t["name"] for t in takes] == ["take1", "take2"]
