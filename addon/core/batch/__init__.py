"""Batch baking without Blender's UI: one dialogue line is one ``BakeRow``, baked into files by ``bake_row``.

``bake_row(row, opts)`` is pure and idempotent: the same row and options always give the same files, a line's files
appear all together or not at all (a failed or interrupted line leaves the folder as it was), and a small hidden
sidecar (written last) records what produced them so that a re-run skips rows that are already up to date.
Executors only decide *where* ``bake_row`` runs (in this process, in warm worker processes, as Ray tasks).

rows.py: the row model, output names and a row's input files · manifest.py: reading CSV/JSON manifests ·
plan.py: rows built and checked · resume.py: fingerprints and up-to-date checks · bake.py: ``bake_row`` ·
executors.py, workers.py: where rows run (this process; worker processes and their pipe protocol) ·
ray_tasks.py: what a Ray worker runs · progress.py: the progress bar and the summary table.
"""

from .bake import bake_row, remove_partial_files
from .executors import Executor, InProcessExecutor, ResultFn, load_scene_exporter
from .manifest import MANIFEST_COLUMNS, ManifestEntry, read_manifest
from .plan import (
    RowDefaults,
    check_model_folder,
    check_row,
    check_style,
    finite_positive,
    plan_rows,
    row_from_values,
    style_presets,
)
from .progress import Progress, summary_table
from .resume import SIDECAR_VERSION, file_digest, is_up_to_date, row_fingerprint, up_to_date_sidecar
from .rows import (
    BLENDER_HINT,
    FORMATS,
    SCENE_FORMATS,
    BakeRow,
    BatchOptions,
    RowResult,
    SceneExporter,
    check_output_name,
    output_paths,
    parse_formats,
    row_inputs,
    row_model_dir,
    sidecar_path,
    style_file,
    take_stem,
    transcript_for,
)
from .workers import RESULT_PREFIX, ProcessExecutor, serve

__all__ = [
    "BLENDER_HINT", "FORMATS", "MANIFEST_COLUMNS", "RESULT_PREFIX", "SCENE_FORMATS", "SIDECAR_VERSION", "BakeRow",
    "BatchOptions", "Executor", "InProcessExecutor", "ManifestEntry", "ProcessExecutor", "Progress", "ResultFn",
    "RowDefaults", "RowResult", "SceneExporter", "bake_row", "check_model_folder", "check_output_name", "check_row",
    "check_style", "file_digest", "finite_positive", "is_up_to_date", "load_scene_exporter", "output_paths",
    "parse_formats", "plan_rows", "read_manifest", "remove_partial_files", "row_fingerprint", "row_from_values",
    "row_inputs", "row_model_dir", "serve", "sidecar_path", "style_file", "style_presets", "summary_table",
    "take_stem", "transcript_for", "up_to_date_sidecar",
]
