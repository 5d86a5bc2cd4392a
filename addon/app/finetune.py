"""`facepolicy finetune CAPTURE_DIR -o MODEL_DIR`: an actor's model folder from Live Link Face captures.

The training side (torch, model/finetune*.py) is imported only when the command runs, so the add-on and the rest of
the CLI never need torch; without it the command says in one sentence how to install it.
"""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

from ..core.capture_sync import KEEP_S, MAX_OFFSET_S, PERFORMER_TIMING_S
from ..core.errors import FacePolicyError
from ..core.letters import AUTO, settable_languages, told_language
from .options import language_argument

TRAIN_HINT = ("fine-tuning needs torch and onnx, the `train` extra: in the FacePolicy source folder run "
              "pip install -e '.[train]'")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "finetune", help="fine-tune the Neural model on a performer's Live Link Face captures",
        description="Fine-tune the Neural model on one performer's Live Link Face takes and write a model folder "
        "that 'bake --model', the batch manifest's model column and the add-on's Model Folder preference load. "
        "Every NAME.csv in CAPTURE_DIR (Live Link Face: Timecode, BlendShapeCount and the 61 curves) with NAME.wav "
        "(or another audio file, or a .mov/.mp4 take with the video extra) beside it is one take; a NAME.txt "
        "transcript beside it is used for the phones. Every take is checked first (columns, frame rate, dropped or "
        "repeated timecodes, audio length, flat or clipped curves, speech) and put in sync with its audio (curves "
        f"more than {KEEP_S * 1000:.0f} ms early or late of the sound are moved onto it, up to {MAX_OFFSET_S:g} s); "
        "a take with a problem stops "
        "the run before training, naming the file. Training runs on the CPU, resumes from "
        "its cache after an interruption, and stops early when the held-out takes stop improving; then how the "
        "performer's brows follow their voice's pitch and loudness is fitted as a layer that bake and live apply, "
        "kept only where it lowers the held-out takes' brow error. MODEL_DIR is "
        "written only when the run finishes; its default style preset is named after CAPTURE_DIR.",
        epilog="Example: 'facepolicy finetune captures/anna -o models/anna', then "
        "'facepolicy bake line.wav -o line.fbx --model models/anna'. Needs: pip install -e '.[train]'.")
    p.add_argument("captures", metavar="CAPTURE_DIR", help="folder of Live Link Face takes (NAME.csv + NAME.wav)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL_DIR",
                   help="the model folder to write (must not exist, or be empty, unless --overwrite)")
    p.add_argument("--base", metavar="DIR", help="the model folder to start from (default: the bundled model)")
    p.add_argument("--steps", type=int, metavar="N", help="most training steps (default: 600; early stopping "
                   "may end sooner)")
    p.add_argument("--batch", type=int, metavar="N", help="windows per step (default: 24)")
    p.add_argument("--lr", type=float, metavar="X", help="learning rate (default: 1e-3)")
    p.add_argument("--eval-every", type=int, metavar="N", help="steps between held-out checks (default: 100)")
    p.add_argument("--held-out", type=float, metavar="SHARE",
                   help="share of the capture seconds held out for early stopping and the card (default: 0.15)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for training (default: 2)")
    p.add_argument("--seed", type=int, metavar="N", help="random seed (default: 0)")
    p.add_argument("--max-minutes", type=float, metavar="M",
                   help="stop training after M minutes; the same command later resumes where it stopped")
    p.add_argument("--cache", metavar="DIR", help="where checkpoints are kept (default: ~/.cache/facepolicy/finetune)")
    p.add_argument("--keep-dynamics", type=float, metavar="W",
                   help="how strongly the lips' and jaw's movement over time is held to the base model's (--base; "
                   "the bundled one by default), so lip sync on new voices stays as good (a larger jaw or a resting "
                   "smile are learned freely; default 3, 0 learns the captured articulation freely)")
    p.add_argument("--keep-closures", type=float, metavar="W",
                   help="how strongly lips the base model (--base) closes stay closed (a larger jaw could "
                   "otherwise part lips the base model only just closes; default 0.05, 0 turns it off)")
    p.add_argument("--brow-weight", type=float, metavar="W",
                   help="extra weight of the brows' error in the training loss (the base loss counts a brow's "
                   "error four times less than the jaw's; default 0.5, 0 is the base loss)")
    p.add_argument("--transcript-language", metavar="LANG", default=AUTO, type=language_argument,
                   help="the language the takes' NAME.txt transcripts are written in, as a code or English name (" +
                   ", ".join(settable_languages()) + f"; default {AUTO}: told from each text)")
    p.add_argument("--keep-timing", action="store_true",
                   help=f"keep curves up to {PERFORMER_TIMING_S:g} s early or late of the sound as the performer's own "
                   f"timing (default: anything beyond the sync check's {KEEP_S * 1000:.0f} ms precision is corrected, "
                   "so the model's lips follow the sound)")
    p.add_argument("--overwrite", action="store_true", help="replace MODEL_DIR when the run finishes")
    p.set_defaults(func=run)


def _training_side():
    """model.finetune_run, with the source checkout on the path when the console script runs from elsewhere."""
    try:
        import onnx  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        raise FacePolicyError(TRAIN_HINT) from None
    try:
        return importlib.import_module("model.finetune_run")
    except ModuleNotFoundError as exc:
        if exc.name not in ("model", "model.finetune_run", "export_onnx"):
            raise
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / "model" / "finetune_run.py").is_file():
        raise FacePolicyError("fine-tuning runs from the FacePolicy source folder (its model/ package): "
                              "pip install -e '.[train]' there") from None
    sys.path.insert(0, str(checkout))
    return importlib.import_module("model.finetune_run")


def _settings(args, settings_cls):
    s = settings_cls()
    for name in ("steps", "batch", "lr", "eval_every", "held_out", "threads", "seed", "max_minutes", "keep_dynamics",
                 "keep_closures", "brow_weight"):
        value = getattr(args, name)
        if value is not None:
            setattr(s, name, value)
    s.keep_timing = bool(getattr(args, "keep_timing", False))
    s.transcript_language = told_language(getattr(args, "transcript_language", None))
    if s.steps < 1 or s.batch < 1 or s.eval_every < 1 or s.threads < 1:
        raise FacePolicyError("--steps, --batch, --eval-every and --threads must be at least 1")
    if not (math.isfinite(s.lr) and s.lr > 0):
        raise FacePolicyError(f"--lr must be a positive number, got {s.lr}")
    for flag, value in (("--keep-dynamics", s.keep_dynamics), ("--keep-closures", s.keep_closures),
                        ("--brow-weight", s.brow_weight)):
        if not (math.isfinite(value) and value >= 0):
            raise FacePolicyError(f"{flag} must be 0 or a positive number, got {value}")
    if not 0 < s.held_out < 0.9:
        raise FacePolicyError(f"--held-out must be between 0 and 0.9, got {s.held_out}")
    if s.max_minutes is not None and not (math.isfinite(s.max_minutes) and s.max_minutes > 0):
        raise FacePolicyError(f"--max-minutes must be a positive number, got {s.max_minutes}")
    return s


def _progress_bar(total: int):
    """A tqdm bar with ETA on a terminal; None (quiet) when stderr is not one."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    def make(tuner):
        bar = tqdm(total=total, initial=tuner.step, unit="step", desc="fine-tuning", dynamic_ncols=True)

        def update(step: int, loss: float, best: float) -> None:
            bar.n = step
            bar.set_postfix_str(f"loss {loss:.3f}, held-out {best:.3f}", refresh=False)
            bar.refresh()

        update.close = bar.close
        return update

    return make


def run(args) -> int:
    train = _training_side()
    from model.finetune import FinetuneSettings

    settings = _settings(args, FinetuneSettings)
    command = "facepolicy finetune " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["finetune"] else [])
    manifest = train.finetune(args.captures, args.output, settings, base_dir=args.base, cache_root=args.cache,
                              overwrite=args.overwrite, log=lambda text: print(text, file=sys.stderr, flush=True),
                              progress_bar=_progress_bar(settings.steps), command=command.strip())
    f = manifest["finetune"]
    held = f.get("held_out", {})
    figures = ""
    if held:
        figures = "; held-out error (mouth, brows, eyes) " + ", ".join(
            f"{label} {' / '.join(f'{held[label][g]:.3f}' for g in ('mouth', 'brows', 'eyes'))}"
            for label in ("shipped", "fine-tuned"))
    weight = (manifest.get("sampling") or {}).get("prior_weight")
    prior = f", phonetic prior weight {weight}" if weight is not None else ""
    brows = held.get("brows") or {}
    if brows.get("kept"):
        figures += (f"; brow layer from pitch and loudness: held-out brow error {brows['error_before']:.3f} → "
                    f"{brows['error_after']:.3f}")
    elif brows:
        figures += "; no brow layer (it did not lower the held-out brows)"
    print(f"wrote {args.output}: style preset '{manifest['default_style']}', {len(f['captures']['takes'])} takes "
          f"({f['captures']['hours'] * 60:.1f} min), {f['steps']} steps{prior}{figures}")
    return 0
