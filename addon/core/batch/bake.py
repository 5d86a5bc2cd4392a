"""``bake_row``: one line into its files, all or nothing, its sidecar last.

Pure and idempotent: the same row and options always give the same files. Formats that need Blender (fbx, glb,
blend) are written by a ``SceneExporter`` the caller passes in, so this module never imports bpy.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path

from ..engine import BakeOptions, ProgressFn
from ..errors import Cancelled, FacePolicyError
from ..facetrack import FaceTrack
from .resume import row_fingerprint
from .rows import (
    BLENDER_HINT,
    SCENE_FORMATS,
    BakeRow,
    BatchOptions,
    RowResult,
    SceneExporter,
    output_paths,
    row_model_dir,
    sidecar_path,
    transcript_for,
)


def bake_row(row: BakeRow, opts: BatchOptions, scene_exporter: SceneExporter | None = None,
             cancel: threading.Event | None = None, progress: ProgressFn | None = None) -> RowResult:
    """Bake one line into its files. Never raises for a bad row: the failure is in the result.

    All or nothing: the line's files appear together, its sidecar last, or (on a failure or Ctrl-C) the folder
    is left as it was, earlier files of the line included. ``progress(fraction, message)`` is called on this
    thread while the engine works.
    """
    from ..engine import animate, prepare

    t0 = time.perf_counter()
    result = RowResult(row.index, row.output, "failed")
    stack = contextlib.ExitStack()
    try:
        if opts.needs_blender and scene_exporter is None:
            raise FacePolicyError(f"fbx, glb and blend need Blender; {BLENDER_HINT}")
        transcript = _read_transcript(transcript_for(row))
        prepare(_options(row, opts, transcript, 1))  # the engine's models load while the audio is read
        fingerprint = row_fingerprint(row, opts)
        from ..audio import SpooledAudio, load_line_audio

        audio = load_line_audio(row.audio)  # a long file is spooled to disk and animated in segments
        if isinstance(audio, SpooledAudio):
            stack.callback(audio.close)
        result.audio_seconds = audio.duration
        tracks = []
        for take in range(1, opts.takes + 1):
            options = _options(row, opts, transcript, take)
            track = animate(audio, options, progress=_take_progress(progress, take, opts.takes), cancel=cancel)
            track.meta["take"] = take
            if abs(track.fps - opts.fps) > 1e-9:
                track = track.resample(opts.fps)
            tracks.append(track)
        if progress is not None:
            progress(1.0, "writing files")
        # What the user should know (a truncated file, a transcript the engine could not align, a .blend without
        # its sound strip, ...) shows in the summary, one line per row, and again when a later run finds it up to date.
        notes = list(dict.fromkeys([*audio.warnings, *(str(w) for t in tracks for w in t.meta.get("warnings") or ())]))
        result.files, export_warnings = _write_outputs(row, opts, tracks, fingerprint, scene_exporter, notes)
        result.status = "ok"
        result.message = "; ".join(dict.fromkeys([*notes, *export_warnings]))
    except Cancelled:
        result.status, result.message = "cancelled", "cancelled"
    except FacePolicyError as exc:
        result.message = str(exc)
    except Exception as exc:  # a bug or a bpy failure on one row must not end the batch
        result.message = f"internal error: {type(exc).__name__}: {exc}"
    finally:
        stack.close()
    result.seconds = time.perf_counter() - t0
    return result


def _options(row: BakeRow, opts: BatchOptions, transcript: str | None, take: int) -> BakeOptions:
    """What the engine is asked for one take of the row."""
    return BakeOptions(engine=row.engine, transcript=transcript, transcript_language=row.transcript_language,
                       seed=row.seed + take - 1, style=row.style, strength=opts.strength, device=opts.device,
                       emotion=opts.emotion, emotion_intensity=opts.emotion_intensity, accuracy=opts.accuracy,
                       audio_guidance=opts.audio_guidance, steps=opts.steps, prior_weight=opts.prior_weight,
                       model_dir=row_model_dir(row, opts))


def _take_progress(progress: ProgressFn | None, take: int, takes: int) -> ProgressFn | None:
    """The engine's progress of one take as a fraction of the whole row."""
    if progress is None:
        return None
    return lambda fraction, message: progress((take - 1 + fraction) / takes, message)


def _write_outputs(row: BakeRow, opts: BatchOptions, tracks: list[FaceTrack], fingerprint: str,
                   scene_exporter: SceneExporter | None, notes: list[str] = ()) -> tuple[list[str], list[str]]:
    """Write every output of the row as one group (fileio.FileGroup), the sidecar last (with ``notes``, what the
    line's summary row says, and the scene exporter's warnings, so that a later run finding the line up to date says
    it again); returns their paths and the scene exporter's warnings."""
    from ..fileio import FileGroup
    from ..livelink import write_livelink_csv

    targets = output_paths(row, opts)
    side = sidecar_path(row, opts)
    with FileGroup() as group:
        # The earlier sidecar goes first: while the scene exporter replaces files the line is not up to date.
        group.claim(side)
        for k, track in enumerate(tracks, start=1):
            if "csv" in targets:
                write_livelink_csv(track, group.stage(targets["csv"][k]))
            if "json" in targets:
                track.save_json(group.stage(targets["json"][k]))
        scene_targets = {f: t for f, t in targets.items() if f in SCENE_FORMATS}
        warnings: list[str] = []
        if scene_targets:
            # Blender's exporters name the take after the file, so they write the final paths themselves.
            for takes in scene_targets.values():
                for path in takes.values():
                    group.claim(path)
            warnings = list(scene_exporter(tracks, row, opts, scene_targets) or ())
        files = [p.name for takes in targets.values() for p in takes.values()]
        group.stage_text(side, json.dumps({
            "fingerprint": fingerprint, "files": files, "audio": row.audio, "engine": row.engine,
            "seed": row.seed, "takes": opts.takes, "frames": tracks[0].n_frames, "fps": opts.fps,
            "warnings": list(dict.fromkeys([*notes, *warnings])),
        }, indent=1))
        group.commit()
    return [str(p) for takes in targets.values() for p in takes.values()], warnings


def _read_transcript(path: Path | None) -> str | None:
    """The row's transcript (core.fileio.read_user_text: UTF-8, UTF-16/32 with a BOM, Windows-1252), or None; a
    file that cannot be read or is not text fails the row in one sentence naming it."""
    from ..fileio import read_user_text

    return (read_user_text(path).strip() or None) if path is not None else None


def remove_partial_files(row: BakeRow, opts: BatchOptions) -> None:
    """Clean up after a bake of ``row`` that died half-way (a worker killed or crashed before its file group rolled
    back): its temporary files are deleted and the earlier outputs it had moved aside go back where no new one is in
    place. The sidecar's earlier copy is dropped, so the line is baked again rather than taken as up to date over a
    mix of old and new files."""
    from ..fileio import partial_files, recover_aside

    paths = [p for takes in output_paths(row, opts).values() for p in takes.values()]
    side = sidecar_path(row, opts)
    for path in [*paths, side]:
        for tmp in partial_files(path):
            tmp.unlink(missing_ok=True)
        recover_aside(path, restore=path != side)

