"""doctor's CUDA line: which of the provider, the driver, a GPU, the CUDA runtime, cuBLAS and cuDNN is missing.
The probe loads libraries with ctypes; here a loader stands in for the machine, as each kind of machine has them."""

from __future__ import annotations

import ctypes
import ctypes.util

import pytest

from facepolicy.core import doctor

CUDA_LIBS = {"libcudart.so.12", "libcublas.so.12", "libcudnn.so.9"}
GPU = ["CUDAExecutionProvider", "CPUExecutionProvider"]


class FakeDriver:
    """libcuda's two entry points the probe calls, with ``gpus`` devices."""

    def __init__(self, gpus: int):
        self.gpus = gpus

    def cuInit(self, flags):  # noqa: N802 - the driver's own name
        return 0

    def cuDeviceGetCount(self, count_ref):  # noqa: N802
        count_ref._obj.value = self.gpus
        return 0


def machine(*present, gpus: int = 1):
    """A loader that finds only the libraries named in ``present``."""
    def load(name):
        if name not in present:
            return None
        return FakeDriver(gpus) if name in ("libcuda.so.1", "nvcuda.dll") else object()
    return load


def test_a_cpu_machine_with_the_cpu_wheel_names_every_missing_piece(monkeypatch):
    monkeypatch.setattr(doctor, "_nvidia_wheel_dirs", lambda: [])
    usable, line = doctor.cuda_status(["CPUExecutionProvider"], loader=machine(), system="Linux")
    assert not usable
    assert line.startswith("not usable: this onnxruntime has no CUDA execution provider (pip install "
                           "'facepolicy[gpu]' adds it); no NVIDIA driver (libcuda.so.1 not found); ")
    assert "the CUDA 12 runtime (libcudart.so.12), cuBLAS 12 (libcublas.so.12), cuDNN 9 (libcudnn.so.9) not found" \
        in line


@pytest.mark.parametrize("present,gpus,expected", [
    (("libcuda.so.1", *CUDA_LIBS), 2, "usable: CUDAExecutionProvider, 2 GPU(s), CUDA 12, cuDNN 9"),
    (("libcuda.so.1", "libcudart.so.12", "libcublas.so.12"), 1, "not usable: cuDNN 9 (libcudnn.so.9) not found"),
    (("libcuda.so.1", *CUDA_LIBS), 0, "not usable: the NVIDIA driver finds no GPU"),
    (tuple(CUDA_LIBS), 1, "not usable: no NVIDIA driver (libcuda.so.1 not found)"),
])
def test_the_gpu_wheel_on_linux_machines(monkeypatch, present, gpus, expected):
    monkeypatch.setattr(doctor, "_nvidia_wheel_dirs", lambda: [])
    monkeypatch.setattr(doctor, "_cuda_versions", lambda: ("12", "9"))
    usable, line = doctor.cuda_status(GPU, loader=machine(*present, gpus=gpus), system="Linux")
    assert usable == expected.startswith("usable")
    assert line.startswith(expected)


def test_windows_names_its_dlls_and_macos_has_no_cuda(monkeypatch):
    monkeypatch.setattr(doctor, "_nvidia_wheel_dirs", lambda: [])
    monkeypatch.setattr(doctor, "_cuda_versions", lambda: ("12", "9"))
    usable, line = doctor.cuda_status(GPU, loader=machine("nvcuda.dll", "cudart64_12.dll", "cublas64_12.dll"),
                                      system="Windows")
    assert not usable and line == ("not usable: cuDNN 9 (cudnn64_9.dll) not found (pip install "
                                   "nvidia-cuda-runtime-cu12 nvidia-cublas-cu12 nvidia-cudnn-cu12, or the CUDA "
                                   "toolkit and cuDNN)")
    assert doctor.cuda_status(GPU, loader=machine(), system="Darwin")[1].startswith("not available on macOS")


def test_cudnn_from_the_nvidia_wheels_counts(monkeypatch, tmp_path):
    lib = tmp_path / "nvidia" / "cudnn" / "lib"
    lib.mkdir(parents=True)
    (lib / "libcudnn.so.9.1.0").write_bytes(b"")
    monkeypatch.setattr(doctor.sys, "path", [str(tmp_path)])
    monkeypatch.setattr(doctor, "_cuda_versions", lambda: ("12", "9"))
    present = ("libcuda.so.1", "libcudart.so.12", "libcublas.so.12", str(lib / "libcudnn.so.9.1.0"))
    usable, line = doctor.cuda_status(GPU, loader=machine(*present), system="Linux")
    assert usable, line


def test_the_real_probe_never_raises():
    usable, line = doctor.cuda_status(["CPUExecutionProvider"])
    assert not usable and line.startswith(("not usable: ", "not available on macOS"))
    assert isinstance(doctor._default_loader("libdefinitely-not-there.so.7"), type(None))
    assert doctor._default_loader(ctypes.util.find_library("c") or "libc.so.6") is not None

