"""However many cores a bake runs on, the face is the same: one process on every core, one capped to a core with
FACEPOLICY_CORES (as a user leaving cores to other work sets it), and a batch of workers sharing the cores
(`--jobs 2`) write the same Live Link CSV bytes for the same line."""

from __future__ import annotations

import shutil

from journey import DEMO_WAV, facepolicy


def test_one_core_every_core_and_a_batch_of_workers_bake_the_same_bytes(tmp_path):
    lines = tmp_path / "lines"
    lines.mkdir()
    for name in ("a", "b"):
        shutil.copy(DEMO_WAV, lines / f"{name}.wav")
    runs = {"every core": ((), None), "one core": ((), {"FACEPOLICY_CORES": "1"}),
            "a bad cap is ignored": ((), {"FACEPOLICY_CORES": "lots"}), "two workers": (("--jobs", "2"), None)}
    baked = {}
    for label, (extra, env) in runs.items():
        out = tmp_path / label.replace(" ", "_")
        done = facepolicy("bake", lines / "a.wav", lines / "b.wav", "-o", out, "--format", "csv", *extra, env=env,
                          timeout=600)
        assert done.returncode == 0 and "2 baked" in done.stdout, (label, done.stdout + done.stderr)
        baked[label] = [(out / f"{name}.csv").read_bytes() for name in ("a", "b")]
    first = baked["every core"][0]
    assert len(first.splitlines()) > 100
    for label, csvs in baked.items():
        assert csvs == [first, first], f"{label}: another face"
