"""Executors decide *where* ``bake_row`` runs; this one runs the rows in this process, one after the other.

The warm worker processes of ``--jobs N`` are in workers.py; Ray tasks plug in the same way (ray_tasks.py holds what
a Ray worker runs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..engine import ProgressFn
from ..errors import FacePolicyError
from .bake import bake_row, remove_partial_files
from .rows import BLENDER_HINT, BakeRow, BatchOptions, RowResult, SceneExporter

ResultFn = Callable[[RowResult], None]


def load_scene_exporter(factory: Callable[[], SceneExporter]) -> SceneExporter:
    """The factory's exporter; if Blender cannot be loaded, an exporter that fails each row with the reason."""
    try:
        return factory()
    except ImportError as exc:
        reason = f"fbx, glb and blend need Blender's bpy module ({exc}); {BLENDER_HINT}"
    except Exception as exc:  # bpy that fails to load its libraries, or a FacePolicyError explaining it
        reason = str(exc) if isinstance(exc, FacePolicyError) else f"{type(exc).__name__}: {exc}"

    def unavailable(tracks, row, opts, targets):
        raise FacePolicyError(reason)

    return unavailable


class Executor:
    """Runs ``bake_row`` for many rows and reports each result as it finishes (in any order)."""

    def run(self, rows: Sequence[BakeRow], opts: BatchOptions, on_result: ResultFn) -> None:
        raise NotImplementedError


class InProcessExecutor(Executor):
    """Bakes rows one after the other in this process (inside Blender, or for --jobs 1).

    ``progress(fraction, message)`` hears how far the line in progress is (the engine's ProgressFn, on this thread).
    """

    def __init__(self, scene_exporter_factory: Callable[[], SceneExporter] | None = None,
                 progress: ProgressFn | None = None):
        self._factory = scene_exporter_factory
        self._exporter: SceneExporter | None = None
        self._progress = progress

    def run(self, rows, opts, on_result):
        for row in rows:
            if opts.needs_blender and self._exporter is None and self._factory is not None:
                self._exporter = load_scene_exporter(self._factory)
            try:
                on_result(bake_row(row, opts, self._exporter, progress=self._progress))
            except BaseException:
                remove_partial_files(row, opts)
                raise

