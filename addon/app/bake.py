"""`facepolicy bake` and `facepolicy styles`: headless baking of one line or a whole manifest of lines."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from ..blender.worker import scene_exporter
from ..core import batch
from ..core.engine import ProgressFn
from ..core.errors import FacePolicyError
from ..core.fileio import user_path
from ..core.letters import AUTO, aligned_languages, settable_languages, told_language
from ..core.spec import ACCURACY_MODES, EMOTIONS
from .options import language_argument
from .ray import arguments as ray_arguments

COMMANDS = ("bake", "styles")


def add_parser(subparsers) -> None:
    """Add the `bake` and `styles` subcommands to the CLI's subparsers."""
    _add_bake(subparsers)
    p = subparsers.add_parser(
        "styles", help="list the style presets --style accepts",
        description="List the installed style presets, or those of a model folder (--model DIR, e.g. one made by "
        "'facepolicy finetune'). --style also accepts a reference file: a FacePolicy .json track or a Live Link "
        "Face .csv.")
    p.add_argument("--model", metavar="DIR", help="list the presets of this model folder (its checksums are "
                   "verified) instead of the bundled model's")
    p.set_defaults(func=run)


def _add_bake(subparsers) -> None:
    from ..core.engine import BakeOptions

    default_engine = BakeOptions().engine
    p = subparsers.add_parser(
        "bake",
        help="bake audio lines to facial animation files (csv, json, fbx, glb, blend)",
        description="Bake speech audio to ARKit-52 facial animation. csv (Live Link Face) and json need no Blender; "
        "fbx, glb and blend are written with Blender's bpy (the bundled default head unless --blend is given). "
        "A .txt with the same name beside an audio file is used as its transcript (in "
        f"{aligned_languages('or')}: a transcript in another language or one that does not match the audio is "
        "not used, the line is animated as without one and the summary says why). Outputs that are already "
        "up to date are skipped, so an interrupted batch can simply be run again.",
        epilog="Manifest columns (CSV header or JSON keys): audio, output, style, seed, object, engine, transcript, "
        "transcript_language (as --transcript-language, for this row), "
        "model (a model folder this row bakes with instead of --model, e.g. one `facepolicy finetune` wrote). "
        "Relative paths in a manifest are relative to the manifest's folder; output names are relative to -o "
        "and may not leave it. A line's files appear together: a line that fails or is interrupted leaves "
        "none of them. Exit code: 0 when every line is baked or up to date, 1 when any line failed, "
        "130 when interrupted.",
    )
    p.add_argument("audio", nargs="*", metavar="AUDIO",
                   help="audio files (wav, flac, ogg, mp3; the sound of a movie, .mov, .mp4, .m4a, .mkv, .webm, "
                   "with the video extra: pip install 'facepolicy[video]')")
    p.add_argument("--blend", metavar="FILE", help="a .blend holding the character (default: the bundled head)")
    p.add_argument("--object", metavar="NAME",
                   help="the object to animate in --blend (default: the active mesh with shape keys)")
    p.add_argument("-o", "--output", metavar="OUT", default=".",
                   help="output folder (default: the current folder); for one AUDIO it may be a file name "
                   "whose suffix picks the format, e.g. -o out/line1.fbx. A name ending in / is always a folder")
    p.add_argument("--format", metavar="LIST", help=f"comma-separated formats: {','.join(batch.FORMATS)} "
                   "(default: csv,json, or the suffix of -o)")
    p.add_argument("--fps", type=float, metavar="N", help="frame rate of the outputs (default: 30)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default: 0)")
    p.add_argument("--takes", type=int, default=1, metavar="N",
                   help="takes per line, with seeds seed, seed+1, ...; files get a _takeK suffix when N > 1")
    p.add_argument("--style", metavar="PRESET|FILE", help="a style preset (see 'facepolicy styles') or a "
                   "reference file (.json track or Live Link .csv)")
    p.add_argument("--strength", type=float, default=1.0, metavar="X", help="style strength (default: 1.0)")
    p.add_argument("--transcript", metavar="FILE",
                   help=f"transcript text file for a single AUDIO (in {aligned_languages('or')}; one in another "
                   "language or that does not match the audio is not used: the line is animated as without one, and "
                   "the summary says why)")
    p.add_argument("--transcript-language", metavar="LANG", default=AUTO, type=language_argument,
                   help="the language the transcripts are written in, as a code or English name (" +
                   ", ".join(settable_languages()) + f"; default {AUTO}: told from each text's words and letters). "
                   "Set it for short lines, whose few words may not tell their language")
    p.add_argument("--engine", default=default_engine, metavar="neural|phonetic",
                   help=f"animation engine (default: {default_engine})")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="compute device")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="worker processes, each with its share of the cores: for many lines (default: 1: every "
                        "line gets all the cores, which is faster for a few long lines)")
    p.add_argument("--manifest", metavar="FILE", help="a CSV or JSON manifest with one row per line")
    p.add_argument("--accuracy", choices=ACCURACY_MODES,
                   help="without a transcript. Neural: accurate (default) adds pocketsphinx phone recognition and "
                   "exact lip closures, fast listens with the model alone (about 1.6x faster). Phonetic: fast "
                   "(default) recognises phones (the model's audio encoder adds closures recognition missed), "
                   "accurate recognises words and aligns them (about 12x slower)")
    p.add_argument("--emotion", default="neutral", choices=EMOTIONS,
                   help="emotion preset (default: neutral); the Phonetic engine shapes brows and mouth corners, "
                   "the Neural engine conditions on it")
    p.add_argument("--intensity", type=float, default=0.5, metavar="X",
                   help="emotion intensity, 0 to 1 (default: 0.5)")
    p.add_argument("--audio-guidance", type=float, default=1.0, metavar="X",
                   help="Neural engine: guidance on the audio; above 1 articulates more strongly at the cost of "
                   "one more model pass (default: 1.0)")
    p.add_argument("--phonetic-prior", type=float, metavar="W",
                   help="Neural engine with phone evidence (accurate mode or a transcript): how strongly each "
                   "denoising step steers the mouth toward the Phonetic engine's for the same phones, 0 (the model "
                   "alone: no prior, no jaw floor in recognised vowels, no smoothing) to 1 (default: 0.25)")
    p.add_argument("--steps", type=int, metavar="N",
                   help="Neural engine: denoising steps per chunk (default: the model's, usually 4)")
    p.add_argument("--model", metavar="DIR",
                   help="Neural engine: a model folder with model.json, e.g. one made by fine-tuning, instead of the "
                   "bundled model; its checksums are verified")
    ray_arguments.add_arguments(p)  # --executor local|ray, --address, --ray-data, --ray-retries
    p.set_defaults(func=run)


def run(args) -> int:
    if args.command == "styles":
        return run_styles(args)
    return run_bake(args)


# --- styles ------------------------------------------------------------------------------------------------


def run_styles(args) -> int:
    folder = getattr(args, "model", None)
    if folder:
        from ..core.model_files import read_model_files

        files = read_model_files(user_path(folder))  # one sentence naming a missing or corrupt file
        presets = sorted(files.manifest.get("styles") or {})
        default = files.manifest.get("default_style")
        where = f"the model folder {files.root}"
    else:
        presets, default, where = batch.style_presets(), None, None
    if presets:
        print(f"Style presets{f' of {where}' if where else ''} (use with --style NAME):")
        for name in presets:
            print(f"  {name}{'  (default: used when --style names none)' if name == default else ''}")
    elif where:
        print(f"No style presets in {where}: its model.json lists none.")
    else:
        print("No style presets are installed: they ship with the Neural model (assets/models/model.json).")
    print("--style also accepts a reference file: a FacePolicy .json track or a Live Link Face .csv take.")
    return 0


# --- bake --------------------------------------------------------------------------------------------------


def _check_numbers(args) -> None:
    if args.fps is not None:
        batch.finite_positive(args.fps, "--fps")
    if args.takes < 1:
        raise FacePolicyError(f"--takes must be at least 1, got {args.takes}")
    if args.jobs < 1:
        raise FacePolicyError(f"--jobs must be at least 1, got {args.jobs}")
    if not (math.isfinite(args.strength) and args.strength >= 0):
        raise FacePolicyError(f"--strength must be 0 or more, got {args.strength}")
    if not (math.isfinite(args.intensity) and 0 <= args.intensity <= 1):
        raise FacePolicyError(f"--intensity must be between 0 and 1, got {args.intensity}")
    if not (math.isfinite(args.audio_guidance) and args.audio_guidance >= 0):
        raise FacePolicyError(f"--audio-guidance must be 0 or more, got {args.audio_guidance}")
    if args.phonetic_prior is not None and not (math.isfinite(args.phonetic_prior)
                                                and 0 <= args.phonetic_prior <= 1):
        raise FacePolicyError(f"--phonetic-prior must be between 0 and 1, got {args.phonetic_prior}")
    if args.steps is not None and not 1 <= args.steps <= 100:
        raise FacePolicyError(f"--steps must be between 1 and 100, got {args.steps}")
    if not 0 <= args.seed < 2**32:
        raise FacePolicyError(f"--seed must be between 0 and {2**32 - 1}, got {args.seed}")


def _output_and_formats(args) -> tuple[Path, str | None, tuple[str, ...]]:
    """(output folder, output name for the single input or None, formats).

    -o names a folder when it ends with a slash or is one already; otherwise a suffix makes it a file name,
    and a suffix the bake does not write is refused before anything is created.
    """
    out = user_path(args.output)
    formats = batch.parse_formats(args.format) if args.format else None
    folder = args.output.endswith(("/", os.sep)) or out.is_dir()
    suffix = out.suffix.lower().lstrip(".")
    if suffix and not folder:
        if suffix not in batch.FORMATS:
            raise FacePolicyError(f'-o "{args.output}": bake writes {", ".join("." + f for f in batch.FORMATS)} '
                                  f'files, not {out.suffix}; end a folder name with "/" to use it as a folder')
        if args.manifest or len(args.audio) != 1:
            raise FacePolicyError(f"-o {args.output} names a file, which works for exactly one AUDIO; "
                                  "give a folder for several lines or a manifest")
        if formats is not None and formats != (suffix,):
            raise FacePolicyError(f"-o {args.output} asks for {suffix} but --format asks for {','.join(formats)}; "
                                  "give a folder with -o to write several formats")
        return out.parent.absolute(), out.stem, (suffix,)
    if out.exists() and not out.is_dir():
        raise FacePolicyError(f'-o "{args.output}" is a file; give a folder, or a file name ending in '
                              f"{', '.join('.' + f for f in batch.FORMATS)}")
    return out.absolute(), None, formats or ("csv", "json")


def _entries(args, single_name: str | None) -> list[tuple[str, dict, Path]]:
    """(source, raw values, folder relative paths resolve against) for every line, arguments first."""
    entries = []
    cwd = Path.cwd()
    for audio in args.audio:
        values = {"audio": audio}
        if single_name:
            values["output"] = single_name
        entries.append((f'"{audio}"', values, cwd))
    if args.manifest:
        base = user_path(args.manifest).absolute().parent
        for e in batch.read_manifest(args.manifest):
            entries.append((e.source, e.values if not e.error else {**e.values, "__error__": e.error}, base))
    return entries


def build_plan(args) -> tuple[list[batch.BakeRow], list[batch.RowResult], batch.BatchOptions]:
    """Rows to bake, rows that failed validation, and the batch options, from parsed arguments."""
    from ..core import engine, spec

    _check_numbers(args)
    if not args.audio and not args.manifest:
        raise FacePolicyError("nothing to bake: give AUDIO files or --manifest FILE")
    if args.transcript and (args.manifest or len(args.audio) != 1):
        raise FacePolicyError("--transcript works with exactly one AUDIO; for several lines put NAME.txt beside "
                              "each audio file, or use the manifest's transcript column")
    if args.transcript and not Path(args.transcript).is_file():
        raise FacePolicyError(f'--transcript "{args.transcript}": file not found')
    out_dir, single_name, formats = _output_and_formats(args)
    if args.object and not args.blend:
        raise FacePolicyError(f'--object "{args.object}" needs --blend FILE; without it the bundled head is used')
    blend = None
    if args.blend:
        blend_path = user_path(args.blend)
        if not blend_path.is_file():
            raise FacePolicyError(f'--blend "{args.blend}": file not found')
        if blend_path.suffix.lower() != ".blend":
            raise FacePolicyError(f'--blend "{args.blend}": not a .blend file')
        blend = str(blend_path.absolute())
    model_dir = None
    if args.model:
        from ..core.model_files import read_model_files

        model_dir = str(user_path(args.model).absolute())
        read_model_files(model_dir)  # checked once, before any line, so a corrupt file fails the batch at once
    fps = float(args.fps or spec.MODEL_FPS)
    fps = next((c for c in spec.COMMON_FPS if abs(fps - c) / c < 5e-4), fps)  # 29.97 means 30000/1001
    opts = batch.BatchOptions(
        out_dir=str(out_dir), formats=formats, fps=fps, takes=args.takes,
        strength=args.strength, device=args.device, blend=blend, accuracy=args.accuracy,
        emotion=args.emotion, emotion_intensity=args.intensity, audio_guidance=args.audio_guidance, steps=args.steps,
        prior_weight=args.phonetic_prior, model_dir=model_dir,
    )
    defaults = batch.RowDefaults(
        style=args.style, seed=args.seed, object=args.object, engine=args.engine,
        transcript=str(Path(args.transcript).absolute()) if args.transcript else None,
        transcript_language=told_language(args.transcript_language),
    )
    presets = batch.style_presets(model_dir)
    if not args.manifest:  # a manifest row may name its own model folder, whose presets its style is checked against
        batch.check_style(args.style, presets)
    entries = _entries(args, single_name)
    rows, failures = [], []
    engines = list(engine.ENGINES)
    # Rows are planned group by group (arguments, manifest) because relative paths resolve differently.
    claimed: dict = {}
    for idx, (source, values, base) in enumerate(entries, start=1):
        r, f = batch.plan_rows([(source, values)], defaults, base, opts, engines, presets,
                               start=idx, claimed=claimed)
        rows += r
        failures += f
    return rows, failures, opts


def worker_command() -> list[str]:
    """How to start one batch worker: this Python importing bpy, or Blender itself when we run inside it."""
    package = (__package__ or "facepolicy.app").rpartition(".")[0]  # the add-on's own name inside Blender
    bpy = sys.modules.get("bpy")
    binary = getattr(getattr(bpy, "app", None), "binary_path", "") if bpy else ""
    if binary:
        expr = f"import importlib, sys; sys.exit(importlib.import_module('{package}.blender.worker').main())"
        return [binary, "-b", "--python-exit-code", "1", "--python-expr", expr]
    return [sys.executable, "-m", f"{package}.blender.worker"]


def make_executor(args, n_rows: int, progress: ProgressFn | None = None) -> batch.Executor:
    """Where the rows run; ``progress`` hears the engine's progress where rows run in this process."""
    ray = ray_arguments.executor_from_args(args)  # importing ray.arguments does not import Ray
    if ray is not None:
        return ray
    if args.jobs <= 1 or n_rows <= 1:
        return batch.InProcessExecutor(scene_exporter, progress)
    return batch.ProcessExecutor(min(args.jobs, n_rows), worker_command())


def _prepare_engine(args, executor: batch.Executor | None) -> None:
    """Start loading the engine's models (core.engine.prepare) while the batch is planned, for audio files named on
    the command line and baked in this process (a manifest's rows may each name their own engine and model; they
    are prepared row by row as they are baked)."""
    from ..core.engine import BakeOptions, prepare

    if args.manifest or not args.audio or executor is not None or args.jobs > 1 or \
            getattr(args, "executor", "local") != "local":
        return
    try:
        beside = Path(args.transcript or Path(args.audio[0]).with_suffix(".txt")).is_file()
        model = str(user_path(args.model).absolute()) if args.model else None
    except (ValueError, OSError, FacePolicyError):  # e.g. "." (no file name): build_plan says what is wrong with it
        return
    prepare(BakeOptions(engine=args.engine, device=args.device, accuracy=args.accuracy, model_dir=model,
                        transcript="(beside)" if beside else None))


def run_bake(args, executor: batch.Executor | None = None) -> int:
    _prepare_engine(args, executor)
    rows, failures, opts = build_plan(args)
    results: list[batch.RowResult] = list(failures)
    todo = []
    for row in rows:
        side = batch.up_to_date_sidecar(row, opts)
        if side is not None:  # its summary row says again what the bake said of it
            said = "; ".join(map(str, side.get("warnings", ())))
            results.append(batch.RowResult(row.index, row.output, "skipped", said))
        else:
            todo.append(row)
    progress = batch.Progress(len(todo))
    executor = executor or make_executor(args, len(todo), progress.advance)

    def on_result(result: batch.RowResult) -> None:
        results.append(result)
        progress.update(result)

    interrupted = False
    try:
        if todo:
            executor.run(todo, opts, on_result)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.close()
    finished = {r.index for r in results}
    for row in todo:
        if row.index in finished:
            continue
        # A worker can finish its line as Ctrl-C stops it, before it reports: the files on disk decide.
        if batch.is_up_to_date(row, opts):
            results.append(batch.RowResult(row.index, row.output, "ok", "finished as the bake was interrupted"))
        else:
            results.append(batch.RowResult(row.index, row.output, "cancelled", "not baked (interrupted)"))
    print(batch.summary_table(results))
    speed = progress.speed()  # nothing when no line was baked: failed lines have no speed
    if speed:
        print(speed)
    if interrupted:
        print("facepolicy: interrupted; every line is either complete or left as it was before this run",
              file=sys.stderr)
        return 130
    return 1 if any(r.status in ("failed", "cancelled") for r in results) else 0
