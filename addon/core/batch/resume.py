"""Resuming a batch: a row is up to date when its sidecar's fingerprint (input contents and every parameter) matches
and every output is newer than every input; such rows are skipped."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..model_files import MANIFEST
from ..version import VERSION
from .rows import (
    BakeRow,
    BatchOptions,
    output_paths,
    row_inputs,
    row_model_dir,
    sidecar_path,
    style_file,
    transcript_for,
)

SIDECAR_VERSION = 1

_hash_cache: dict[tuple[str, int, int], str] = {}


def file_digest(path) -> str:
    """sha256 of a file, cached by (path, size, mtime) so each input is hashed once per process."""
    p = Path(path)
    st = p.stat()
    key = (str(p.absolute()), st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
        _hash_cache[key] = h.hexdigest()
    return _hash_cache[key]


def row_fingerprint(row: BakeRow, opts: BatchOptions) -> str:
    """A hash of everything that changes the row's outputs: input contents and every parameter."""
    params = {
        "sidecar": SIDECAR_VERSION,
        "version": VERSION,
        "engine": row.engine,
        "seed": row.seed,
        "style": None if style_file(row.style) else row.style,
        "object": row.object,
        "fps": opts.fps,
        "takes": opts.takes,
        "strength": opts.strength,
        "accuracy": opts.accuracy,
        "emotion": [opts.emotion, opts.emotion_intensity] if opts.emotion != "neutral" else None,
        "audio_guidance": opts.audio_guidance if opts.audio_guidance != 1.0 else None,
        "steps": opts.steps,
        "prior_weight": opts.prior_weight,
        "fbx_armature": opts.fbx_armature if opts.needs_blender else None,
        "blend": bool(opts.blend) if opts.needs_blender else None,
        "inputs": [file_digest(p) for p in row_inputs(row, opts)],
    }
    if row.transcript_language and transcript_for(row) is not None:  # only where it changes the outputs (earlier
        params["transcript_language"] = row.transcript_language  # sidecars keep their fingerprints)
    model_dir = row_model_dir(row, opts)
    if model_dir:
        # model.json records the sha256 of every network, so its own digest names the model; without a model folder
        # (--model or the manifest's model column) the bundled model goes with the version, and the fingerprint
        # keeps its earlier bytes.
        manifest = Path(model_dir) / MANIFEST
        params["model"] = file_digest(manifest) if manifest.is_file() else None
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def up_to_date_sidecar(row: BakeRow, opts: BatchOptions) -> dict | None:
    """The row's sidecar when every requested output exists, is newer than every input, and was made with the same
    parameters and input contents (its fingerprint); else None. Its "warnings" are what the summary said of the line
    when it was baked (none in an older sidecar)."""
    try:
        side = json.loads(sidecar_path(row, opts).read_text(encoding="utf-8"))
        if side.get("fingerprint") != row_fingerprint(row, opts):
            return None
        made = set(side.get("files", ()))
        newest_input = max(p.stat().st_mtime_ns for p in row_inputs(row, opts))
        for takes in output_paths(row, opts).values():
            for path in takes.values():
                if path.name not in made or path.stat().st_mtime_ns < newest_input:
                    return None
    except (OSError, ValueError, AttributeError):
        return None
    return side


def is_up_to_date(row: BakeRow, opts: BatchOptions) -> bool:
    return up_to_date_sidecar(row, opts) is not None
