"""The one command-line interface: the `facepolicy` console script and `blender -c facepolicy` share this parser."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..core.errors import FacePolicyError
from ..core.version import VERSION

PROG = "facepolicy"


def _add_doctor(subparsers) -> None:
    p = subparsers.add_parser(
        "doctor",
        help="report versions, the compute device and the integrity of every bundled asset",
        description="Print what this installation has: Blender/bpy, onnxruntime and its providers (CUDA or CPU only), "
        "libsndfile, pocketsphinx, and the sha256 of every bundled asset. Exit code 1 if something is wrong.",
    )
    p.add_argument("--no-blender", action="store_true", help="do not load bpy to report Blender's version")
    p.add_argument("--model", metavar="DIR", help="also list and check a model folder of one's own (one made by "
                   "'facepolicy finetune'): its checksums, style presets and what it was fine-tuned on")
    p.set_defaults(func=_run_doctor)


def _run_doctor(args) -> int:
    from ..blender.status import blender_status
    from ..core.doctor import build_report

    report = build_report(VERSION, blender=None if args.no_blender else blender_status(), model_dir=args.model)
    print(report.text())
    return 1 if report.problems else 0


# Each entry adds subcommands: (module relative to this package, function taking the subparsers object, the commands
# it adds).
_SUBCOMMANDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (".bake", "add_parser", ("bake", "styles")),
    ("..preview.command", "add_parser", ("preview",)),  # preview (contact sheet of the splat head)
    (".live", "add_parser", ("live",)),  # live (speech to Live Link and a CSV in real time)
    (".finetune", "add_parser", ("finetune",)),  # finetune (a performer's model folder from Live Link Face captures)
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or with ``command`` (one the parser knows) of that command only: a bake
    does not import the modules of live, preview and finetune (about 10 ms of a 1.5 s bake)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="FacePolicy: speech audio to facial animation (ARKit-52 shape keys) for Blender and game engines.",
        epilog="Run 'facepolicy COMMAND --help' for the options of one command. Inside Blender: "
        "'blender -b -c facepolicy COMMAND ...'.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {VERSION}")
    parser.add_argument("-v", "--verbose", action="store_true", help="print debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    only = command if any(command in names for _, _, names in _SUBCOMMANDS) or command == "doctor" else None
    if only in (None, "doctor"):
        _add_doctor(subparsers)
    for module, func, names in _SUBCOMMANDS:
        if only is None or only in names:
            getattr(importlib.import_module(module, __package__), func)(subparsers)
    return parser


def _command(argv: list[str]) -> str | None:
    """The command ``argv`` names (its first word that is not an option), or None."""
    return next((a for a in argv if not a.startswith("-")), None)


def run(argv: list[str]) -> int:
    """Parse ``argv`` (without the program name) and run the command; returns the exit code."""
    parser = build_parser(_command(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors (2) end here
        return int(exc.code or 0)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FacePolicyError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def one_blas_thread() -> None:
    """numpy's OpenBLAS starts one thread per core when numpy is imported, and each spins for about 0.1 s waiting for
    work: 0.08 CPU-s of a bake's 2.7 taken from the phone decoders starting beside it, in every process and every
    --jobs worker. The commands' numpy products are small (the work runs on the decoders', the models' and the
    workers' own threads), so the console script gives OpenBLAS one thread unless the user chose otherwise. Called
    before numpy is first imported; inside Blender numpy is already loaded and this is not called."""
    import os

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main() -> None:
    """Console-script entry point. The process leaves without tearing the interpreter down: Python's exit handlers
    run (temporary folders, logging), the threads finish and the output is flushed, then it exits at once, which
    skips about 0.045 s of freeing models and modules one by one after a bake (bench/bench_neural.py). It also keeps
    the bpy 4.2 module from segfaulting in a C++ destructor after Python has shut down once its glTF exporter has
    run (tests/conftest.py says more), which turned a finished bake's exit code into 139."""
    one_blas_thread()
    code = run(sys.argv[1:])
    import atexit
    import os
    import threading

    # What the interpreter does first when it exits (CPython 3.11 to 3.13): threading's exit hooks (a thread pool
    # left open wakes its idle threads, which end; joining them before that waited forever), then the threads that
    # are not daemons joined.
    threading._shutdown()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def blender_cli_command(argv: list[str]) -> int:
    """Callback for bpy.utils.register_cli_command: `blender -c facepolicy ...`."""
    return run(list(argv))


if __name__ == "__main__":
    main()
