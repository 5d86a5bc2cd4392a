"""Loading ahead: what the Neural engine needs to animate a line (its model's sessions; the phone decoders of the
accurate mode) is made on threads of its own while the caller does other work first (importing the engine,
reading the audio), through a module that imports much less than the engine does (core.engine.prepare).

Making the policy checks the model's files and creates its onnxruntime sessions: about 0.05 s, most of it without
the GIL, which the Python of the caller's work then runs beside.
"""

from __future__ import annotations

import threading
from pathlib import Path

from .model_files import MANIFEST, default_model_dir

# onnxruntime's extension module and Blender's (bpy) must not load at the same time: with the first loading on the
# preparing thread while the main thread imported bpy for a bake's FBX export, the process hung in about one run in
# twelve (each thread inside its import for good). The preparing thread makes its policy (onnxruntime and its
# sessions) under this lock, and whoever imports bpy while a bake may be preparing holds it
# (blender.worker.scene_exporter).
native_imports = threading.Lock()

_prepared: dict[tuple, tuple[tuple | None, threading.Thread, list]] = {}
_warm: set[tuple] = set()  # (folder, device, threads, version) of the policies an engine holds (held_warm)
_lock = threading.Lock()


def prepare_neural(options) -> None:
    """Start loading what the Neural engine needs for ``options`` (core.engine.BakeOptions): the phone decoders in
    the accurate mode without a transcript, and the model folder's policy."""
    if (options.accuracy or "accurate") == "accurate" and not options.transcript:
        from .cpu import cores
        from .recognition import shared_decoders

        shared_decoders().warm(cores())
    prepare_policy(options.model_dir, options.device, options.threads)


def folder_version(root: Path | str | None) -> tuple[Path, tuple | None]:
    """The model folder (None: the bundled one) as an absolute path, and its model.json's (size, mtime): None where
    it is missing (read_model_files says so)."""
    root = Path(root or default_model_dir()).absolute()
    try:
        st = (root / MANIFEST).stat()
    except OSError:
        return root, None
    return root, (st.st_size, st.st_mtime_ns)


def prepare_policy(root: Path | str | None = None, device: str = "auto", threads: int = 0) -> None:
    """Start making the NeuralPolicy of the model folder ``root`` (None: the bundled model) on a thread of its own;
    take_prepared hands it over."""
    root, version = folder_version(root)
    key = (root, device, threads)
    with _lock:
        if key in _prepared or (*key, version) in _warm:
            return
        made: list = []
        thread = threading.Thread(target=_make, args=(made, root, device, threads), name="facepolicy-prepare",
                                  daemon=True)
        _prepared[key] = (version, thread, made)
    thread.start()


def _make(made: list, root: Path, device: str, threads: int) -> None:
    from .sampler import NeuralPolicy

    try:
        # The whole policy under the lock, not only the import: a session on CUDA loads onnxruntime's provider
        # library as it is made.
        with native_imports:
            made.append(NeuralPolicy(root, device, threads))
    except Exception:  # noqa: BLE001 - the engine makes its own and reports the error there
        pass


def take_prepared(root: Path | str | None = None, device: str = "auto", threads: int = 0):
    """The NeuralPolicy that prepare_policy started for the same folder, device and threads (waiting for it), once;
    None when none was started, it failed, or the folder's model.json changed since it was started."""
    root, version = folder_version(root)
    with _lock:
        held = _prepared.pop((root, device, threads), None)
    if held is None:
        return None
    prepared_version, thread, made = held
    thread.join()
    return made[0] if made and prepared_version == version else None


def held_warm(root: Path, device: str, threads: int, version: tuple | None) -> None:
    """Note that an engine holds the policy of this folder (as folder_version gives it), so that prepare_policy
    does not make another."""
    with _lock:
        _warm.add((root, device, threads, version))
