"""FacePolicy used from a Python script, as a technical director's pipeline (or `blender -b --python`) uses it: the
script runs in a process of its own and its exit code is what the pipeline sees."""

from __future__ import annotations

import subprocess
import sys


def test_a_script_that_loads_the_engine_and_ends_at_once_exits_cleanly():
    """A script (or `blender -b --python`) that loads the Neural engine and ends before its sessions have loaded:
    the interpreter used to stop the loading thread inside onnxruntime, which aborted the process (exit code 134,
    "terminate called without an active exception")."""
    script = "from facepolicy.core.policy import NeuralEngine; NeuralEngine().policy()"
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0 and "terminate called" not in done.stderr, (done.returncode, done.stderr)
