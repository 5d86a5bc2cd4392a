"""Edge inputs through the engines, as a user meets them: clips of a few milliseconds (a click, a cut-off take,
one sample) baked with the console script in both engines and both accuracy modes, with and without a transcript.
Each must give a Live Link CSV with at least one frame whose mouth stays closed where nothing is said."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from journey import ARCTIC, facepolicy, write_wav

# Samples at 16 kHz: one sample up to 40 ms (pocketsphinx needs about 30 ms to decode anything, the pitch tracker
# smooths over 3 frames of 20 ms), then either side of the Neural model's horizon (32 frames = 17066.7 samples)
# and of its stream (64 frames).
SHORT = (1, 10, 100, 160, 320, 480, 640)
NEAR_WINDOWS = (17066, 17067, 34133, 34134)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Speech cut from a real ARCTIC line (starting inside a word), digital silence, and files at other rates;
    the speech cuts of even length carry a transcript beside them (``<name>.txt``), as a user's would."""
    folder = tmp_path_factory.mktemp("short_clips")
    speech, rate = sf.read(str(ARCTIC / "arctic_a0007.wav"), dtype="float32")
    assert rate == 16000
    start = rate // 2
    for n in SHORT + NEAR_WINDOWS:
        write_wav(folder / f"speech_{n}.wav", speech[start : start + n])
        if n % 2 == 0:
            (folder / f"speech_{n}.txt").write_text("and you always want to see it\n", encoding="utf-8")
    for n in SHORT:
        write_wav(folder / f"silence_{n}.wav", np.zeros(n, np.float32))
    write_wav(folder / "silence_1_at_44k.wav", np.zeros(1, np.float32), rate=44100)
    write_wav(folder / "speech_100_at_48k.wav", speech[start : start + 100], rate=48000)
    return folder


def _read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], np.array([[float(v) for v in r[2:]] for r in rows[1:]], np.float64)


def _bake_all(clips: Path, out: Path, *args) -> None:
    wavs = sorted(clips.glob("*.wav"))
    r = facepolicy("bake", *wavs, "-o", out, "--format", "csv", *args, timeout=300)
    text = r.stdout + r.stderr
    assert r.returncode == 0, text
    assert "internal error" not in text and "Traceback" not in text, text
    for wav in wavs:
        csv_path = out / f"{wav.stem}.csv"
        assert csv_path.is_file(), f"{csv_path.name} was not written:\n{text}"
        header, values = _read_csv(csv_path)
        info = sf.info(str(wav))
        frames = info.frames / info.samplerate * 30
        assert len(values) >= 1 and abs(len(values) - frames) <= 1, (wav.name, len(values))
        assert np.all(np.isfinite(values)), wav.name
        if wav.stem.startswith("silence"):
            jaw = values[:, header.index("JawOpen") - 2]
            assert jaw.max() <= 0.1, (wav.name, jaw)


def test_very_short_clips_bake_with_the_neural_engine(clips, tmp_path):
    for accuracy in ("accurate", "fast"):
        _bake_all(clips, tmp_path / accuracy, "--engine", "neural", "--accuracy", accuracy)


def test_very_short_clips_bake_with_the_phonetic_engine(clips, tmp_path):
    for accuracy in ("fast", "accurate"):
        _bake_all(clips, tmp_path / accuracy, "--engine", "phonetic", "--accuracy", accuracy)


def test_a_one_sample_clip_bakes_with_the_default_engine(clips, tmp_path):
    out = tmp_path / "click.csv"
    r = facepolicy("bake", clips / "speech_1.wav", "-o", out)
    assert r.returncode == 0, r.stdout + r.stderr
    header, values = _read_csv(out)
    assert len(values) == 1 and math.isfinite(values[0, header.index("JawOpen") - 2])
