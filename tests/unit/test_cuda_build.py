"""The CUDA build of the one rasterizer source: it compiles with nvcc, loads without a GPU, and (on a machine
with a GPU) matches the CPU library on the parity scenes."""

from __future__ import annotations

import numpy as np
import pytest

from facepolicy.preview import build, raster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cuda_library(tmp_path_factory):
    if build.find_nvcc() is None:
        pytest.skip("nvcc not found: the CUDA library cannot be compiled here")
    out = tmp_path_factory.mktemp("cuda")
    # sm_75 code plus compute_75 PTX: the smallest build that still runs (JIT) on every GPU nvcc 13 supports.
    return build.build_cuda(out, archs=("75",))


def test_cuda_library_compiles_and_loads(cuda_library):
    renderer = raster.Renderer(cuda_library)
    assert renderer.backend == "cuda"
    assert renderer.device_count() >= 0  # 0 without a driver: loading must still work (static cudart)


def test_missing_cuda_device_falls_back_to_the_cpu_with_a_note(cuda_library, monkeypatch, tmp_path):
    if raster.Renderer(cuda_library).device_count() > 0:
        pytest.skip("this machine has a CUDA device")
    build.ensure_cpu_library()
    (tmp_path / build.CPU_LIBRARY).symlink_to(build.LIB_DIR / build.CPU_LIBRARY)
    (tmp_path / build.CUDA_LIBRARY).symlink_to(cuda_library)
    monkeypatch.setattr(raster.build, "LIB_DIR", tmp_path)
    monkeypatch.setattr(raster, "_renderers", {})
    chosen = raster.get_renderer()
    assert chosen.backend == "cpu" and "no CUDA device" in chosen.note
    with pytest.raises(raster.PreviewUnavailable, match="no CUDA device"):
        raster.get_renderer("cuda")


def test_cuda_matches_cpu_on_a_gpu(cuda_library):
    import test_raster as parity

    renderer = raster.Renderer(cuda_library)
    if renderer.device_count() < 1:
        pytest.skip("no CUDA device on this machine: the CUDA library was compiled and loaded, not run")
    build.ensure_cpu_library()
    cpu = raster.cpu_renderer()
    for seed, degree in [(0, 3), (1, 3), (2, 2), (3, 1), (4, 0)]:
        scene = parity.random_scene(seed, degree=degree)
        cam = parity.make_camera()
        rgb, alpha = renderer.render(*scene, cam, background=(0.1, 0.2, 0.3), with_alpha=True)
        ref, ref_alpha = parity.reference_render(*scene, cam, (0.1, 0.2, 0.3))
        assert np.abs(rgb - ref).max() <= 1e-3 and np.abs(alpha - ref_alpha).max() <= 1e-3
        assert np.abs(rgb - cpu.render(*scene, cam, background=(0.1, 0.2, 0.3))).max() <= 1e-3
    empty = renderer.render(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 4)), np.zeros(0), np.zeros((0, 1, 3)),
                            parity.make_camera(17, 9), background=(1, 0, 0))
    assert np.allclose(empty, [1, 0, 0])
