"""A machine where pocketsphinx cannot be loaded (a broken or partial install): `facepolicy doctor` says what is lost
and exits 1, a default bake still writes its line and says in one sentence what it was animated from, the Phonetic
engine fails the line naming the package, and nothing names the wrong engine."""

from __future__ import annotations

import json
import os
from pathlib import Path

from journey import DEMO_WAV, facepolicy


def _blocked(tmp_path: Path) -> dict:
    """Environment in which `import pocketsphinx` fails, as it does when the package is missing."""
    blocker = tmp_path / "blocker" / "pocketsphinx"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("No module named \'pocketsphinx\'")\n')
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(blocker.parent), os.environ.get("PYTHONPATH")]))}


def test_doctor_says_what_is_lost_without_pocketsphinx(tmp_path):
    done = facepolicy("doctor", "--no-blender", env=_blocked(tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no problems found" not in done.stdout
    assert ("pocketsphinx cannot be loaded (No module named 'pocketsphinx'): the Neural engine's default (accurate) "
            "mode animates from the audio alone, transcripts are not used, and the Phonetic engine cannot run (pip "
            "install pocketsphinx)") in done.stdout
    assert "5." in facepolicy("doctor", "--no-blender").stdout.split("pocketsphinx", 1)[1].splitlines()[0]


def test_a_bake_without_pocketsphinx_says_in_one_sentence_what_the_line_was_animated_from(tmp_path):
    wav = tmp_path / "line.wav"
    wav.write_bytes(DEMO_WAV.read_bytes())
    (tmp_path / "line.txt").write_text("The line's own words are not used here.\n", encoding="utf-8")
    env = _blocked(tmp_path)
    done = facepolicy("bake", wav, "-o", tmp_path / "out/", "--format", "csv,json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    meta = json.loads((tmp_path / "out" / "line.json").read_text(encoding="utf-8"))["meta"]
    assert meta["warnings"] == ["pocketsphinx cannot be loaded (pip install pocketsphinx; importing it said: No module "
                                "named 'pocketsphinx'), so this line was animated from the audio alone, without its "
                                "transcript"]
    assert "Phonetic" not in done.stdout + done.stderr
    failed = facepolicy("bake", wav, "-o", tmp_path / "ph/", "--engine", "phonetic", env=env)
    assert failed.returncode == 1
    assert "pocketsphinx cannot be loaded (pip install pocketsphinx" in failed.stdout + failed.stderr
