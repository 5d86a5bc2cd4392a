"""One `facepolicy finetune` run: check the captures, fine-tune (model.finetune), measure the held-out takes with
the shipped and the fine-tuned model, and write the model folder (ONNX, model.json with its checksums, MODEL_CARD.md,
the performer's style preset) into a temporary folder beside MODEL_DIR that becomes MODEL_DIR only at the end.

    python -m model.finetune_run CAPTURE_DIR -o MODEL_DIR        # what the console command runs
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from facepolicy.core import spec
from facepolicy.core.assets import sha256_file
from facepolicy.core.captures import CaptureError, check_folder, find_takes
from facepolicy.core.errors import FacePolicyError
from facepolicy.core.model_files import MANIFEST, SAMPLING, default_model_dir, read_model_files
from facepolicy.core.performer_brows import MIN_GAIN as BROW_MIN_GAIN

from .finetune import FineTuner, FinetuneSettings, cache_key, default_cache_root, take_arrays, unit

# Channel groups of the held-out figures (ARKit weights; head and gaze are left out).
GROUPS = {"mouth": ("mouth",), "brows": ("brows",), "eyes": ("eyes", "blinks")}
GROUP_INDEX = {g: [i for i, n in enumerate(spec.ARKIT_NAMES) if spec.region_of(n) in regions]
               for g, regions in GROUPS.items()}


def preset_name(folder: Path) -> str:
    """The style preset's name: the capture folder's name in lower case, other characters as '_'."""
    name = re.sub(r"[^a-z0-9_-]+", "_", folder.resolve().name.lower()).strip("_")
    return name or "performer"


def group_errors(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Mean absolute error per channel group between two (T, C) state arrays."""
    n = min(len(pred), len(ref))
    return {g: float(np.abs(pred[:n, idx] - ref[:n, idx]).mean()) for g, idx in GROUP_INDEX.items()}


def sample_settings(policy, seed: int = 0, **override):
    """The accurate mode's SampleSettings for ``policy`` as the engine makes them: the model folder's own sampler
    defaults (model.json "sampling": a fine-tuned performer's prior weight and jaw floor), then ``override``."""
    from facepolicy.core.policy import SampleSettings

    settings = SampleSettings(seed=seed)
    for key, value in {**policy.files.sampling, **override}.items():
        if value is not None:
            setattr(settings, key, value)
    return settings


def sample_take(policy, take, code: np.ndarray, seed: int = 0, **override) -> np.ndarray:
    """The engine's accurate-mode states for a take, with the take's own evidence (as `bake` makes them);
    ``override``: SampleSettings fields (prior_weight, vowel_floor) instead of the model's."""
    from facepolicy.core.evidence import calm_nonspeech
    from facepolicy.core.policy import ARTICULATION, sample_with_evidence

    states = sample_with_evidence(policy, take.samples, sample_settings(policy, seed, **override),
                                  take.evidence.alignment, style=code)
    return calm_nonspeech(states, take.evidence.speech_gate(len(states)), policy.rest_state, ARTICULATION)


# The accurate mode's phonetic prior pulls the mouth toward the teacher's for the heard phones, and so pulls a
# performer's own articulation (a larger jaw, lips ahead of the sound) back toward the teacher's. A fine-tuned model
# keeps the weight among these that fits its held-out takes best (model.json "sampling"; the engine's default is the
# first), a lower one only where it fits clearly better (PRIOR_MARGIN).
PRIOR_WEIGHTS = (0.25, 0.15, 0.1, 0.05)
PRIOR_MARGIN = 0.02


def held_out_errors(policy, by_name: dict, valid_items, code, **override) -> dict[str, float]:
    """Mean absolute error per channel group of ``policy``'s accurate-mode states against the held-out frames."""
    errs, frames = {g: 0.0 for g in GROUPS}, 0
    for it in valid_items:
        take = by_name[it.name]
        pred = sample_take(policy, take, code, **override)[it.lo : it.hi]
        n = len(pred)
        for g, e in group_errors(pred, take.states[it.lo : it.hi]).items():
            errs[g] += e * n
        frames += n
    return {g: round(v / max(1, frames), 4) for g, v in errs.items()}


def choose_prior_weight(mouth_error: dict[float, float]) -> float:
    """The highest prior weight whose held-out mouth error is within PRIOR_MARGIN of the lowest."""
    best = min(mouth_error.values())
    return max(w for w, e in mouth_error.items() if e <= best * (1.0 + PRIOR_MARGIN))


def fit_brows(policy, by_name: dict, train_items, valid_items, code, weight: float):
    """The performer's brow layer (core.performer_brows): fitted to what ``policy``'s accurate-mode states at prior
    ``weight`` leave in the training frames' brows, its strength chosen on the held-out frames (a BrowFit)."""
    from facepolicy.core.performer_brows import BrowFit, brow_features, fit_brow_layer, performer_f0

    reference = performer_f0(by_name[name].samples for name in sorted({it.name for it in train_items}))
    if reference is None:
        return BrowFit(None, 0.0, 0.0, None, {})  # no voiced frame in the training takes

    def items(its):
        out = []
        for it in its:
            take = by_name[it.name]
            pred = sample_take(policy, take, code, prior_weight=weight)
            feats = brow_features(take.samples, len(pred), reference)
            out.append((feats[it.lo : it.hi], pred[it.lo : it.hi], take.states[it.lo : it.hi]))
        return out

    return fit_brow_layer(items(train_items), items(valid_items), reference)


def held_out_figures(base_dir, model_dir, takes, valid_items, base_code, code, train_items=(),
                     manifest: dict | None = None) -> dict:
    """Per channel group, the error of the shipped model (its default style) and of the fine-tuned one (the
    performer's preset, at the prior weight its held-out mouth fits best, with the performer's brow layer where one
    fitted on ``train_items`` lowers the held-out brows: written into ``manifest`` and model_dir's model.json)
    against the held-out captured frames."""
    from facepolicy.core.performer_brows import SECTION as BROWS
    from facepolicy.core.policy import NeuralPolicy

    by_name = {t.name: t for t in takes}
    out = {"shipped": held_out_errors(NeuralPolicy(base_dir, threads=1), by_name, valid_items, base_code)}
    tuned = NeuralPolicy(model_dir, threads=1)
    per_weight = {w: held_out_errors(tuned, by_name, valid_items, code, prior_weight=w) for w in PRIOR_WEIGHTS}
    weight = choose_prior_weight({w: e["mouth"] for w, e in per_weight.items()})
    out["fine-tuned"] = per_weight[weight]
    if manifest is not None and train_items:
        fit = fit_brows(tuned, by_name, train_items, valid_items, code, weight)
        out["brows"] = {"kept": fit.layer is not None, "error_before": round(fit.error_before, 4),
                        "error_after": round(fit.error_after, 4), "strength": fit.strength,
                        "error_by_strength": {str(k): v for k, v in fit.by_strength.items()}}
        if fit.layer is not None:
            manifest[BROWS] = fit.layer.to_dict()
            (Path(model_dir) / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
            with_brows = NeuralPolicy(model_dir, threads=1)
            out["fine-tuned"] = held_out_errors(with_brows, by_name, valid_items, code, prior_weight=weight)
    out["prior_weight"] = weight
    out["mouth_error_by_prior_weight"] = {str(w): e["mouth"] for w, e in per_weight.items()}
    out["held_out_seconds"] = round(sum(it.hi - it.lo for it in valid_items) / spec.MODEL_FPS, 1)
    out["held_out_takes"] = sorted({it.name for it in valid_items})
    return out


def rest_state(arrays: list[dict], base_rest: np.ndarray) -> np.ndarray:
    """The performer's face where the audio is not speech (median over those frames), else the base's."""
    quiet = [a["states"][~a["speech"]] for a in arrays if (~a["speech"]).sum() >= 5]
    if not quiet:
        return base_rest
    return np.median(np.concatenate(quiet), axis=0).astype(np.float32)


def write_model_dir(tuner: FineTuner, arrays, takes, out: Path, base_dir: Path, name: str, capture_dir: Path,
                    command: str) -> dict:
    """Export the best fine-tuned denoiser and the shipped encoders into ``out`` with model.json and the card."""
    from export_onnx.export import FILES, export_networks

    model = tuner.best_model()
    diffs = export_networks(model, tuner.cfg, out)
    base = read_model_files(base_dir, verify=False)
    for net in ("audio_encoder", "style_encoder"):  # the encoders are the shipped ones, byte for byte
        shutil.copyfile(base.network(net), out / FILES[net])
    ear = base.manifest["onnx"].get("ear")
    if ear:  # and the ear that checks transcripts in other languages (model/ear.py)
        shutil.copyfile(base.root / ear, out / ear)
    m = json.loads(json.dumps(base.manifest))
    m["name"] = name
    m["parity_max_abs_diff"] = diffs
    m["styles"][name] = tuner.preset.tolist()
    m["style_presets_made_from"] = dict(m.get("style_presets_made_from", {}))
    m["style_presets_made_from"][name] = (f"the performer's captures ({len(tuner.train)} training takes of "
                                          f"{capture_dir.name})")
    m["default_style"] = name
    m["normalisation"]["rest_state"] = rest_state(arrays, np.asarray(m["normalisation"]["rest_state"])).tolist()
    m["files"] = {f: sha256_file(out / f) for f in [*FILES.values(), *([ear] if ear else [])]}
    seconds = sum(a["seconds"] for a in arrays)
    held = {it.name for it in tuner.valid}
    m["finetune"] = {
        "base_model": {"name": base.manifest.get("name"), "folder": str(base.root),
                       "model_json_sha256": sha256_file(base.root / MANIFEST)},
        "captures": {"folder": str(capture_dir), "takes": [
            {"name": t.name, "seconds": round(t.seconds, 2), "capture_fps": t.fps,
             "sync_offset_ms": round(1000 * t.sync.offset, 1) if t.sync else None,
             "sync_corrected": bool(t.sync and t.sync.corrected), "held_out": t.name in held,
             "evidence": t.evidence.source if t.evidence else None} for t in takes],
            "hours": round(seconds / 3600, 4)},
        "settings": asdict(tuner.settings), "command": command,
        "steps": tuner.step, "best_step": tuner.best_step, "stopped_early": tuner.stopped_early,
        "train_seconds": round(tuner.elapsed, 1),
        "held_out_loss": {"shipped": round(tuner.base_valid, 5), "fine-tuned": round(tuner.best_valid, 5)},
        "history": tuner.history,
    }
    (out / MANIFEST).write_text(json.dumps(m, indent=1), encoding="utf-8")
    return m


def add_figures(out: Path, m: dict, figures: dict) -> None:
    """The held-out figures into model.json and the card, and the prior weight they chose as the model's own."""
    m["finetune"]["held_out"] = figures
    m[SAMPLING] = {"prior_weight": figures["prior_weight"]}
    (out / MANIFEST).write_text(json.dumps(m, indent=1), encoding="utf-8")
    (out / "MODEL_CARD.md").write_text(model_card(m), encoding="utf-8")


def model_card(m: dict) -> str:
    f = m["finetune"]
    caps = f["captures"]
    held = f.get("held_out", {})
    lines = [
        f"# FacePolicy model `{m['name']}`: fine-tuned on a performer's captures",
        "",
        f"The shipped model `{f['base_model']['name']}` (model.json sha256 `{f['base_model']['model_json_sha256']}`)"
        f" with its denoiser fine-tuned on Live Link Face captures; the audio and style encoders are the shipped"
        f" ones. Its default style preset `{m['default_style']}` is the performer's style code.",
        "",
        "## Captures",
        "",
        f"- folder: `{caps['folder']}`; {len(caps['takes'])} takes, {caps['hours'] * 60:.1f} min"
        f" ({caps['hours']:.3f} h)",
        *[f"- `{t['name']}`: {t['seconds']:.1f} s at {t['capture_fps']:g} fps, sync {t['sync_offset_ms']} ms"
          f"{' (corrected)' if t['sync_corrected'] else ''}, phones from {t['evidence']}"
          f"{', held out' if t['held_out'] else ''}" for t in caps["takes"]],
        "",
        "## Training",
        "",
        f"- command: `{f['command']}`",
        f"- steps: {f['steps']} (best held-out loss at step {f['best_step']}"
        f"{', stopped early' if f['stopped_early'] else ''}); {f['train_seconds'] / 60:.1f} min of training on the"
        " CPU",
        f"- held-out denoising loss: shipped {f['held_out_loss']['shipped']}, fine-tuned"
        f" {f['held_out_loss']['fine-tuned']}",
        "",
        "## Held-out takes",
        "",
    ]
    if held:
        lines += [f"Mean absolute error of the ARKit weights against the captured curves on {held['held_out_seconds']}"
                  f" s held out ({', '.join(held['held_out_takes'])}), accurate mode, seed 0:", "",
                  "| model | " + " | ".join(GROUPS) + " |", "|---|" + "---|" * len(GROUPS)]
        for label in ("shipped", "fine-tuned"):
            lines.append(f"| {label} | " + " | ".join(f"{held[label][g]:.4f}" for g in GROUPS) + " |")
        if "prior_weight" in held:
            tried = ", ".join(f"{w}: {e:.4f}" for w, e in held["mouth_error_by_prior_weight"].items())
            lines += ["", f"Phonetic prior weight {held['prior_weight']} (model.json `sampling`; the shipped model's"
                      f" is 0.25), the one whose held-out mouth error was lowest ({tried}), the highest within"
                      f" {PRIOR_MARGIN:.0%} of it. `--phonetic-prior W` overrides it."]
        brows = held.get("brows")
        if brows and brows["kept"]:
            lines += ["", f"Brow layer (model.json `brows`): the performer's brows from the line's pitch and loudness,"
                      f" fitted on the training takes; held-out brow error (browDown, browInnerUp, browOuterUp)"
                      f" {brows['error_before']:.4f} without it, {brows['error_after']:.4f} with it (ridge strength"
                      f" {brows['strength']:g})."]
        elif brows and not brows["error_by_strength"]:
            lines += ["", "No brow layer: too few voiced frames (or held-out frames) to fit one."]
        elif brows:
            lines += ["", f"No brow layer: fitted to the training takes, it did not lower the held-out brow error"
                      f" ({brows['error_before']:.4f}) by {BROW_MIN_GAIN:.0%} or more."]
    else:
        lines.append("- not measured")
    lines += ["", "## Files", "", *[f"- `{k}`: sha256 `{v}`" for k, v in m["files"].items()], ""]
    return "\n".join(lines)


def finetune(capture_dir, out_dir, settings: FinetuneSettings | None = None, base_dir=None, cache_root=None,
             overwrite: bool = False, log=print, progress_bar=None, command: str = "") -> dict:
    """Check, train, measure and write; returns the manifest. MODEL_DIR is written only when everything finished
    (FacePolicyError otherwise, with MODEL_DIR as it was)."""
    settings = settings or FinetuneSettings()
    capture_dir, out_dir = Path(capture_dir), Path(out_dir)
    base_dir = Path(base_dir) if base_dir else default_model_dir()
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise FacePolicyError(f'"{out_dir}" already exists and is not empty; choose a new model folder, or add '
                              "--overwrite to replace it when the run finishes")
    if out_dir.resolve() == base_dir.resolve():
        raise FacePolicyError(f'"{out_dir}" is the base model\'s own folder; write the fine-tuned model elsewhere')
    files, problems = find_takes(capture_dir)
    if problems:
        raise CaptureError(problems, f"{len(problems)} problem(s) in the captures; nothing was trained:")
    base = read_model_files(base_dir)
    t0 = time.perf_counter()
    takes, warnings = check_folder(capture_dir, keep_timing=settings.keep_timing,
                                   language=settings.transcript_language)
    for w in warnings:
        log(w)
    from facepolicy.core.policy import NeuralPolicy

    policy = NeuralPolicy(base_dir, threads=settings.threads)
    arrays = [take_arrays(policy, t) for t in takes]
    minutes = sum(a["seconds"] for a in arrays) / 60
    log(f"{len(takes)} takes, {minutes:.1f} min of captures checked in {time.perf_counter() - t0:.0f} s")
    cache = Path(cache_root or default_cache_root()) / cache_key(files, base.root / MANIFEST, settings, arrays)
    tuner = FineTuner(base_dir, arrays, settings, cache, log=log)
    if tuner.try_resume():
        log(f"resuming from {tuner.ckpt} at step {tuner.step}")
    held = sum(it.hi - it.lo for it in tuner.valid) / spec.MODEL_FPS
    log(f"fine-tuning on {len(tuner.train)} take(s), holding out {held:.0f} s "
        f"({', '.join(sorted({it.name for it in tuner.valid}))}); checkpoints in {cache}")
    bar = progress_bar(tuner) if progress_bar else None
    tuner.quiet_log = bar is None
    try:
        tuner.run(bar)
    finally:
        if bar is not None:
            bar.close()
    if not tuner.finished:
        raise FacePolicyError(f"stopped after {tuner.step} of {settings.steps} steps (--max-minutes); run the same "
                              f"command again to resume from {tuner.ckpt}; nothing was written to \"{out_dir}\"")
    name = preset_name(capture_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        m = write_model_dir(tuner, arrays, takes, tmp, base_dir, name, capture_dir, command)
        base_code = policy.style_preset(policy.default_style)
        log("measuring the held-out takes with the shipped and the fine-tuned model")
        add_figures(tmp, m, held_out_figures(base_dir, tmp, takes, tuner.valid, base_code, unit(tuner.preset),
                                             tuner.train, m))
        read_model_files(tmp)  # the folder checks as `bake --model` will check it
        _move_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return m


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    """``tmp`` becomes ``out_dir``; an existing ``out_dir`` (with --overwrite) is set aside first and then removed."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{int(time.time())}")
        out_dir.rename(old)
    tmp.chmod(0o755)
    tmp.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def main(argv=None) -> int:
    from facepolicy.app.cli import run

    return run(["finetune", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
