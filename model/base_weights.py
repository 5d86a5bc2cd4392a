"""The shipped model back in torch: no training checkpoint ships (assets/models/ holds only the ONNX files), so the
three networks' weights are read from the ONNX initializers by parameter name into a FacePolicyModel built from the
config that model.json records, and the round trip is checked by running both on the same inputs.

    python -m model.base_weights [--model assets/models]     # prints the largest torch-vs-onnxruntime difference

torch.onnx.export keeps every parameter under its state_dict name except GroupNorm's affine weight and bias: the
exporter folds those into the ``Mul``/``Add`` after an InstanceNormalization, with (C, 1) initializers named
``onnx::Mul_N``/``onnx::Add_N``; the node names (``/down1/norm1/Mul``) say which module they belong to.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from facepolicy.core.model_files import read_model_files

from .nets import FacePolicyModel

NETWORKS = {"audio_encoder": "audio", "style_encoder": "style", "denoiser": "denoiser"}
# Largest |torch − onnxruntime| accepted for the reloaded networks (export_onnx's own parity tolerance).
ROUND_TRIP_TOL = 1e-4


class WeightsError(RuntimeError):
    pass


def _onnx_tensors(path: Path) -> dict[str, np.ndarray]:
    """Parameter name → array of one ONNX file, GroupNorm's folded affine renamed back to ``<module>.weight/bias``."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    out = {name: a for name, a in arrays.items() if not name.startswith("onnx::")}
    for node in graph.node:
        if node.op_type not in ("Mul", "Add") or not node.name.startswith("/"):
            continue
        for inp in node.input:
            if inp.startswith("onnx::") and inp in arrays:
                module = node.name.strip("/").rsplit("/", 1)[0].replace("/", ".")
                out[f"{module}.{'weight' if node.op_type == 'Mul' else 'bias'}"] = arrays[inp]
    return out


def load_base_model(root: Path | str | None = None) -> tuple[FacePolicyModel, dict]:
    """(FacePolicyModel in eval mode, model.json) of the model folder ``root`` (default: the bundled model), its
    checksums verified. Raises WeightsError when a parameter is missing or has another shape."""
    files = read_model_files(root)
    manifest = files.manifest
    cfg = manifest.get("training", {}).get("config")
    if not cfg:
        raise WeightsError(f"{files.root / 'model.json'} records no training config, so its networks cannot be "
                           "rebuilt in torch")
    model = FacePolicyModel(cfg)
    for net, attr in NETWORKS.items():
        module = getattr(model, attr)
        tensors = _onnx_tensors(files.network(net))
        state = module.state_dict()
        missing = [k for k in state if k not in tensors]
        if missing:
            raise WeightsError(f"{files.network(net).name}: no weights for {', '.join(missing[:5])}")
        new = {}
        for k, v in state.items():
            t = torch.from_numpy(np.array(tensors[k])).reshape(v.shape) if tensors[k].size == v.numel() else None
            if t is None:
                raise WeightsError(f"{files.network(net).name}: {k} has shape {tensors[k].shape}, the network "
                                   f"expects {tuple(v.shape)}")
            new[k] = t.to(v.dtype)
        module.load_state_dict(new)
    norm = manifest["normalisation"]
    model.state_mean.copy_(torch.tensor(norm["state_mean"], dtype=torch.float32))
    model.state_std.copy_(torch.tensor(norm["state_std"], dtype=torch.float32))
    return model.eval(), manifest


def round_trip_difference(model: FacePolicyModel, root: Path | str | None = None, seed: int = 0) -> dict[str, float]:
    """Largest |torch − onnxruntime| per network on random inputs of other sizes than the traced ones."""
    import onnxruntime as ort

    from export_onnx.export import _example_inputs

    files = read_model_files(root, verify=False)
    cfg = files.manifest["training"]["config"]
    h = cfg["policy"]["horizon"]
    out = {}
    for net, attr in NETWORKS.items():
        sess = ort.InferenceSession(str(files.network(net)), providers=["CPUExecutionProvider"])
        worst = 0.0
        for batch, frames, mel_frames, k in ((1, h, 517, 1), (3, 2 * h, 124, 2)):
            inputs = _example_inputs(cfg, batch, frames, mel_frames, seed + k)[net]
            with torch.no_grad():
                ref = getattr(model, attr)(*inputs.values())
            ref = ref if isinstance(ref, tuple) else (ref,)
            got = sess.run(None, {name: v.numpy() for name, v in inputs.items()})
            for r, o in zip(ref, got, strict=True):
                worst = max(worst, float(np.abs(r.numpy() - o).max()))
        out[net] = worst
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model folder (default: the bundled model)")
    args = ap.parse_args(argv)
    model, _ = load_base_model(args.model)
    diffs = round_trip_difference(model, args.model)
    worst = max(diffs.values())
    print("onnx → torch round trip: " + ", ".join(f"{k} max |diff| {v:.1e}" for k, v in diffs.items())
          + f" ({'ok' if worst <= ROUND_TRIP_TOL else 'FAILED'}, tolerance {ROUND_TRIP_TOL:.0e})")
    return 0 if worst <= ROUND_TRIP_TOL else 1


if __name__ == "__main__":
    sys.exit(main())
