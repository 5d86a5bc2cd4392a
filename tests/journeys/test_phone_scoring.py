"""The compiled phone recognition and alignment scoring (core.ptm_scores) as a user meets it: `facepolicy doctor` says
whether recognition and transcript alignment use it, and a default bake, with a transcript beside the audio or
without one, writes the same animation with it as on a platform where it was not built."""

from __future__ import annotations

import shutil

import pytest
from journey import DEMO_WAV, ROOT, facepolicy

pytest.importorskip("pocketsphinx", reason="recognition needs pocketsphinx (pip install pocketsphinx)")


@pytest.fixture(scope="module")
def without_scorer(tmp_path_factory) -> dict:
    """The add-on as installed on a platform without the scorer library: a copy of the package with core/lib/
    empty, found first on PYTHONPATH (the console script imports it from there), with the repository's assets."""
    from facepolicy.preview import build

    build.ensure_scorer_library()
    top = tmp_path_factory.mktemp("platform")
    shutil.copytree(ROOT / "addon", top / "facepolicy",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.dll", "*.dylib"))
    return {"PYTHONPATH": str(top), "FACEPOLICY_ASSETS": str(ROOT / "assets")}


def _scoring_line(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith("phone scoring"))


def test_doctor_says_how_phones_are_scored_and_a_bake_is_the_same_either_way(tmp_path, without_scorer):
    done = facepolicy("doctor", "--no-blender")
    line = _scoring_line(done.stdout)
    assert "compiled scoring and search" in line and "transcript alignment: compiled scoring" in line, done.stdout
    plain = facepolicy("doctor", "--no-blender", env=without_scorer)
    line = _scoring_line(plain.stdout)
    assert line.startswith("phone scoring") and "pocketsphinx's own" in line.split(";")[0], plain.stdout
    assert "the same phones, slower" in line and "transcript alignment: pocketsphinx's own" in line, plain.stdout

    wav = tmp_path / "line.wav"  # recognised
    wav.write_bytes(DEMO_WAV.read_bytes())
    told = tmp_path / "told.wav"  # its transcript beside it: aligned
    told.write_bytes(DEMO_WAV.read_bytes())
    told.with_suffix(".txt").write_bytes(DEMO_WAV.with_suffix(".txt").read_bytes())
    for line in (wav, told):
        outputs = {}
        for name, env in (("scored", None), ("plain", without_scorer)):
            out = tmp_path / name / line.with_suffix(".csv").name
            done = facepolicy("bake", line, "-o", out, env=env)
            assert done.returncode == 0, done.stdout + done.stderr
            outputs[name] = out.read_bytes()
        assert outputs["scored"] == outputs["plain"], line.name  # the same phones: the same animation, byte for byte
