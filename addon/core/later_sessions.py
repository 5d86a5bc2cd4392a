"""The Neural policy's style encoder and denoiser sessions, loaded on a thread of their own (about 0.02 s, mostly
without the GIL) while the audio encoder, loaded first, listens; their first use waits for them (core.sampler)."""

from __future__ import annotations

import atexit
import logging
import threading

from .model_files import ModelFiles, create_session

log = logging.getLogger("facepolicy")

# Loads under way. The interpreter stops daemon threads where they stand when it exits, and one stopped inside
# onnxruntime while it makes a session aborts the process ("terminate called without an active exception", exit code
# 134): a script that loads the engine and ends at once. They are waited for at exit instead (a tenth of a second).
_loading: set[threading.Thread] = set()
_loading_lock = threading.Lock()


@atexit.register
def _finish_loads() -> None:
    with _loading_lock:
        threads = list(_loading)
    for thread in threads:
        thread.join()


class LaterSessions:
    """(style session, denoiser session, provider) of a model folder's files, made on a thread of its own. A load
    that fails raises its error at the first use."""

    def __init__(self, files: ModelFiles, device: str, threads: int, audio_provider: str):
        self._made: list = []
        self._thread = threading.Thread(target=self._load, args=(files, device, threads, audio_provider),
                                        name="facepolicy-sessions", daemon=True)
        with _loading_lock:
            _loading.add(self._thread)
        self._thread.start()

    def _load(self, files: ModelFiles, device: str, threads: int, audio_provider: str) -> None:
        try:
            style, p2 = create_session(files.network("style_encoder"), device, threads)
            denoiser, p3 = create_session(files.network("denoiser"), device, threads)
        except BaseException as exc:  # noqa: BLE001 - raised at the first use, on the caller's thread
            self._made.append(exc)
            return
        finally:
            with _loading_lock:
                _loading.discard(threading.current_thread())
        provider = "cuda" if {audio_provider, p2, p3} == {"cuda"} else "cpu"
        if provider == "cpu":
            log.info("neural engine: running on the CPU")
        self._made.append([style, denoiser, provider])

    def failed(self) -> bool:
        """Whether the load has ended in an error (without waiting for a load still under way)."""
        return not self._thread.is_alive() and bool(self._made) and isinstance(self._made[0], BaseException)

    def get(self) -> list:
        self._thread.join()
        if isinstance(self._made[0], BaseException):
            raise self._made[0]
        return self._made[0]

    class Slot:
        """One of them as an attribute of the object whose ``_later`` they are (settable, e.g. by a test)."""

        def __init__(self, k: int):
            self.k = k

        def __get__(self, owner, cls=None):
            return self if owner is None else owner._later.get()[self.k]

        def __set__(self, owner, value) -> None:
            owner._later.get()[self.k] = value
