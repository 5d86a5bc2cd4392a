"""A Neural model folder sent through Ray's object store (``--ray-data object-store``, core/batch/ray_tasks.py).

The driver packs each model folder the batch uses once (``pack_model_folder``: its model.json and every file that
model.json names, with a checksum of their contents); a worker process writes it once into a private folder
(``unpack_model_folder``) after checking that checksum, and the engine then checks the copy's files against the
sha256 that model.json records (core.model_files.read_model_files), as it does for a folder read in place. Plain
data only: this module never imports Ray.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePosixPath

from ..errors import FacePolicyError
from ..model_files import MANIFEST

MODEL_LIMIT = 512 * 1024 * 1024  # one model folder shipped through the object store, in bytes (the bundled: 8 MiB)
SHARED_HINT = "put it on a shared filesystem and use --ray-data shared"


def content_digest(files: dict[str, bytes]) -> str:
    """sha256 of a folder's files (relative POSIX name → bytes): the same files give the same digest."""
    sums = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    return hashlib.sha256(json.dumps(sums, sort_keys=True).encode("utf-8")).hexdigest()


def _listed_names(folder: Path) -> list[str]:
    """model.json and the files it names ("files" with their sha256, "onnx" the networks); just model.json when it
    cannot be read, and no name that is not a file name ("", ".", a number): the engine then says what is wrong with
    the model.json, on the copy, as it would in place."""
    names = [MANIFEST]
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        names += list(manifest.get("files") or {})
        names += list((manifest.get("onnx") or {}).values())
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    return list(dict.fromkeys(n for n in names if isinstance(n, str) and n.strip() not in ("", ".")))


def pack_model_folder(folder: str, limit: int = MODEL_LIMIT) -> dict:
    """{"digest": content_digest, "files": {name: bytes}} of the model folder ``folder`` on this machine: model.json
    and the files it names (a model card or a fine-tuning checkpoint beside them stays home). A named file that is
    missing is left out, so the engine names it on the worker. FacePolicyError in one sentence when the folder is
    missing, names a file outside itself, or is over ``limit`` bytes."""
    root = Path(folder)
    if not root.is_dir():
        raise FacePolicyError(f'model folder "{folder}" not found on this machine')
    paths: dict[str, Path] = {}
    for name in _listed_names(root):
        rel = PurePosixPath(name.replace("\\", "/"))
        if rel.is_absolute() or ".." in rel.parts or not rel.parts or ":" in rel.parts[0]:
            raise FacePolicyError(f'model folder "{folder}": its {MANIFEST} names "{name}", outside the folder, '
                                  f"which is not sent through Ray's object store; {SHARED_HINT}")
        if (root / rel).is_file():
            paths[rel.as_posix()] = root / rel
    size = sum(p.stat().st_size for p in paths.values())
    if size > limit:
        raise FacePolicyError(f'model folder "{folder}" is {size / 2**20:.0f} MiB, more than the '
                              f"{limit // 2**20} MiB sent through Ray's object store; {SHARED_HINT}")
    files = {name: p.read_bytes() for name, p in paths.items()}
    return {"digest": content_digest(files), "files": files}


def unpack_model_folder(model_dir: str, digest: str, files: dict[str, bytes], target: Path, node: str) -> Path:
    """Write a shipped model folder into ``target`` (a new, private folder) after checking that its files are those
    the driver packed (``digest``); FacePolicyError in one sentence naming the user's ``model_dir`` otherwise."""
    if content_digest(files) != digest:
        raise FacePolicyError(f'model folder "{model_dir}" arrived damaged on node {node} (its checksum is not the '
                              "one the submitting machine sent); run the batch again")
    target.mkdir(parents=True)
    for name, data in files.items():
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts:  # pack_model_folder never sends such a name
            raise FacePolicyError(f'model folder "{model_dir}": "{name}" lies outside the folder')
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return target
