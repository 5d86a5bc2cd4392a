"""What a Ray worker runs for ``facepolicy bake --executor ray`` (the driver is in the command layer, app/ray/).

A row does exactly what ``bake_row`` does; only where it runs changes. Each Ray worker process keeps its engines
(ONNX sessions) and its bpy scene exporter warm across the rows it bakes. This module never imports Ray: the driver
hands these functions to ``ray.remote``, and Ray stays an optional dependency.

``ctx`` is what the driver puts in the object store once per batch: ``opts`` (BatchOptions.to_dict()), ``engines``
(the driver's engine registry, name → [module, class]) and ``scene_exporter`` (a factory of the SceneExporter, called
on the first fbx/glb/blend row of a worker process). In the object-store mode a row's model folder comes with the
task too (core/batch/model_shipping.py), once per batch in the object store and once per worker process on disk.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..cpu import BUDGET_VARIABLE
from ..engine import ENGINES, register_engine
from ..errors import FacePolicyError
from ..version import VERSION
from .bake import bake_row, remove_partial_files
from .model_shipping import unpack_model_folder
from .rows import BakeRow, BatchOptions, RowResult, output_paths, row_inputs, row_model_dir, sidecar_path

_warm: dict = {}  # per worker process: the scene exporter and the engine registrations already applied


def _node_name() -> str:
    """'10.0.0.7 (render-03)': the node as a person finds it in 'ray status' and in their machine list."""
    ray = sys.modules.get("ray")
    ip = ray.util.get_node_ip_address() if ray is not None and ray.is_initialized() else "this machine"
    return f"{ip} ({socket.gethostname()})"


def _ensure_engines(engines: dict) -> None:
    """Engines registered on the driver (plugins, tests) are registered in this worker process too."""
    key = tuple(sorted((k, tuple(v)) for k, v in engines.items()))
    if _warm.get("engines") == key:
        return
    for name, (module, cls) in engines.items():
        if name not in ENGINES:
            register_engine(name, module, cls)
    _warm["engines"] = key


def _scene_exporter(factory):
    if "exporter" not in _warm:
        _warm["exporter"] = factory()
    return _warm["exporter"]


def _missing_paths(row: BakeRow, opts: BatchOptions) -> list[str]:
    """Inputs, the row's model folder and the output folder that this node cannot see."""
    missing = [str(p) for p in row_inputs(row, opts) if not p.exists()]
    model_dir = row_model_dir(row, opts)
    if model_dir and not Path(model_dir).is_dir():
        missing.append(model_dir)
    if not Path(opts.out_dir).is_dir():
        missing.append(opts.out_dir)
    return missing


def _bake(row: BakeRow, opts: BatchOptions, ctx: dict) -> RowResult:
    # A task is given one CPU (num_cpus=1), and as many run side by side as the node has: its phone decoders use
    # that one (core.cpu) unless the node's environment sets a budget of its own.
    given = os.environ.get(BUDGET_VARIABLE)
    if given is None:
        os.environ[BUDGET_VARIABLE] = "1"
    try:
        return _bake_with_exporter(row, opts, ctx)
    finally:
        if given is None:
            os.environ.pop(BUDGET_VARIABLE, None)


def _bake_with_exporter(row: BakeRow, opts: BatchOptions, ctx: dict) -> RowResult:
    exporter = None
    if opts.needs_blender:
        try:
            exporter = _scene_exporter(ctx["scene_exporter"])
        except Exception as exc:  # bpy missing or broken on this node: every scene row says why
            return RowResult(row.index, row.output, "failed", f"cannot load Blender (bpy) on node {_node_name()}: "
                                                              f"{type(exc).__name__}: {exc}")
    return bake_row(row, opts, exporter)


def bake_shared(row_data: dict, ctx: dict) -> dict:
    """One row, inputs and outputs on storage this node shares with the driver. Returns a RowResult dict."""
    _ensure_engines(ctx["engines"])
    row, opts = BakeRow(**row_data), BatchOptions.from_dict(ctx["opts"])
    missing = _missing_paths(row, opts)
    if missing:
        shown = ", ".join(f'"{p}"' for p in missing)
        return RowResult(row.index, row.output, "failed",
                         f"{shown} not found on node {_node_name()}: every Ray node needs the same paths "
                         "(a shared filesystem), or use --ray-data object-store").to_dict()
    # A previous attempt of this row on a worker that crashed may have left temporary files behind.
    remove_partial_files(row, opts)
    return _bake(row, opts, ctx).to_dict()


_STAGING_PREFIX = "facepolicy-ray-"
MODELS_KEPT = 2  # shipped model folders a worker keeps written (the least recently used goes first)


def _remove_dead_staging() -> None:
    """Once per worker process: remove the private folders of workers on this node that were killed mid-row."""
    if _warm.get("staging_checked"):
        return
    _warm["staging_checked"] = True
    for folder in Path(tempfile.gettempdir()).glob(f"{_STAGING_PREFIX}*-*"):
        pid = folder.name[len(_STAGING_PREFIX):].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists() and os.name == "posix" and Path("/proc").is_dir():
            shutil.rmtree(folder, ignore_errors=True)


def _staged_blend(path: str, data: bytes) -> str:
    """The batch's --blend file, written once per worker process (Ray hands every task the same object)."""
    if _warm.get("blend", (None,))[0] != path:
        folder = Path(tempfile.gettempdir()) / f"{_STAGING_PREFIX}{os.getpid()}-blend"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        local = folder / Path(path).name
        local.write_bytes(data)
        atexit.register(shutil.rmtree, folder, True)
        _warm["blend"] = (path, str(local))
    return _warm["blend"][1]


def _staged_model(model: dict) -> str:
    """The row's shipped model folder (``model``: "path", the folder the user named; "digest", the checksum of its
    files; "files", its files or, as the driver sends them, a reference to them in the object store), written once
    per worker process and content into a private folder: a later or retried row of the same model reuses it, and
    a worker fetches the files only when it has not written them yet. It keeps the MODELS_KEPT used last."""
    models = _warm.setdefault("models", {})
    digest = model["digest"]
    if digest in models:
        models[digest] = models.pop(digest)  # used last
    if digest not in models or not Path(models[digest]).is_dir():
        files = model["files"]
        if not isinstance(files, dict):  # an ObjectRef: the driver put the folder in the object store once
            files = sys.modules["ray"].get(files)
        target = Path(tempfile.gettempdir()) / f"{_STAGING_PREFIX}{os.getpid()}-model-{digest[:16]}"
        shutil.rmtree(target, ignore_errors=True)
        try:
            unpack_model_folder(model["path"], digest, files, target, _node_name())
        except OSError as exc:
            shutil.rmtree(target, ignore_errors=True)
            raise FacePolicyError(f'cannot write model folder "{model["path"]}" on node {_node_name()} '
                                  f"({exc.strerror or exc})") from None
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        atexit.register(shutil.rmtree, target, True)
        models[digest] = str(target)
        while len(models) > MODELS_KEPT:
            shutil.rmtree(models.pop(next(iter(models))), ignore_errors=True)
    return models[digest]


def bake_shipped(row_data: dict, ctx: dict, inputs: dict[str, bytes], blend: bytes | None = None,
                 model: dict | None = None) -> tuple[dict, dict[str, bytes]]:
    """One row whose inputs came through the object store; bakes in a private folder and returns the files.

    ``inputs`` maps the row's original paths to their bytes; ``blend`` is the batch's --blend file; ``model`` the
    row's model folder (``_staged_model``), None for the bundled model. Files are staged under their own names, so
    the outputs (which may name the audio file) are the same as when baked in place; the model's copy has the same
    model.json, so the sidecar's fingerprint is too, and messages name the folder the user gave.
    """
    _ensure_engines(ctx["engines"])
    _remove_dead_staging()
    row, opts = BakeRow(**row_data), BatchOptions.from_dict(ctx["opts"])
    model_dir = row_model_dir(row, opts)
    staged_model = None
    if model_dir and model is not None:
        try:
            staged_model = _staged_model(model)
        except FacePolicyError as exc:
            return RowResult(row.index, row.output, "failed", str(exc)).to_dict(), {}
    elif model_dir and not Path(model_dir).is_dir():
        return RowResult(row.index, row.output, "failed",
                         f'model folder "{model_dir}" not found on node {_node_name()}, and it was not sent with '
                         "the row").to_dict(), {}
    with tempfile.TemporaryDirectory(prefix=f"{_STAGING_PREFIX}{os.getpid()}-") as tmp:
        staged: dict[str, str] = {}
        for i, (original, data) in enumerate(sorted(inputs.items())):
            folder = Path(tmp) / "in" / str(i)
            folder.mkdir(parents=True)
            local = folder / Path(original).name
            local.write_bytes(data)
            staged[original] = str(local)
        # The transcript must stay beside the audio under the audio's stem when it was found that way.
        local_row = replace(row, audio=staged[row.audio],
                            transcript=staged.get(row.transcript) if row.transcript else None,
                            style=staged.get(row.style, row.style) if row.style else None,
                            model=staged_model or row.model)
        local_opts = replace(opts, out_dir=str(Path(tmp) / "out"),
                             blend=_staged_blend(opts.blend, blend) if opts.blend and blend is not None else None)
        Path(local_opts.out_dir).mkdir()
        result = _bake(local_row, local_opts, ctx)
        if staged_model:
            result.message = result.message.replace(staged_model, model_dir)
        files: dict[str, bytes] = {}
        if result.status == "ok":
            out = Path(local_opts.out_dir)
            for takes in output_paths(local_row, local_opts).values():
                for path in takes.values():
                    files[path.relative_to(out).as_posix()] = path.read_bytes()
            side = sidecar_path(local_row, local_opts)
            files[side.relative_to(out).as_posix()] = side.read_bytes()
    return result.to_dict(), files


def probe_node(required: Sequence[str]) -> dict:
    """What a node can run: its name, the facepolicy version, and which required modules are missing."""
    import importlib

    missing = []
    for name in required:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return {"node": _node_name(), "version": VERSION, "missing": missing}
