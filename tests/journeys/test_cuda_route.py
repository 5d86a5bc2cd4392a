"""`facepolicy doctor` on this machine says in one line whether onnxruntime's CUDA provider can run, and if not,
what is missing, as a user deciding whether `pip install 'facepolicy[gpu]'` will help reads it."""

from __future__ import annotations

import ctypes

import onnxruntime
from journey import facepolicy


def _loads(name: str) -> bool:
    try:
        ctypes.CDLL(name)
        return True
    except OSError:
        return False


def test_doctor_reports_the_cuda_provider_in_one_line():
    run = facepolicy("doctor")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [line for line in run.stdout.splitlines() if line.split(" ", 1)[0] == "cuda"]
    assert len(lines) == 1, run.stdout
    line = lines[0].split(None, 1)[1]
    has_provider = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    has_driver = _loads("libcuda.so.1")
    if has_provider and has_driver and line.startswith("usable: "):
        assert "GPU(s), CUDA " in line
        return
    assert line.startswith("not usable: ")
    assert ("no CUDA execution provider (pip install 'facepolicy[gpu]' adds it)" in line) == (not has_provider)
    assert ("no NVIDIA driver (libcuda.so.1 not found)" in line) == (not has_driver)
    device = [row for row in run.stdout.splitlines() if row.split(" ", 1)[0] == "device"]
    assert len(device) == 1 and device[0].split(None, 1)[1] == "CPU only"
