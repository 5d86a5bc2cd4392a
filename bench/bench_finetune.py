"""Fine-tuning on a synthetic performer (model.synthetic_performer): captures of 1, 3 and 10 minutes, fine-tuned with
`facepolicy finetune`'s own code, then held-out lines of the same performer baked by the shipped model (its default
style) and by each fine-tuned model (the performer's preset), accurate mode, seed 0:

- error against the performer per channel group (mouth, brows, eyes) and on the habit channels (mouthSmile L/R,
  jawOpen, browInnerUp, browOuterUp L/R);
- each habit as recovered: mean smile, mean jaw opening over speech, brow raise on stressed vowels, lip lead
  (core.capture_sync's offset of the mouth against the sound, teacher's timing = 0);
- per habit channel, the same error of the shipped model with the habits added exactly (what learning the habits
  perfectly, and nothing else, would score);
- lip-sync figures on the held-out lines (their exact TTS phones) and on the real clips model/evaluate.py scores,
  each fine-tuned model at its own prior weight (model.json "sampling"); with --seeds N, the real clips at sampling
  seeds 0..N-1 (mean ± standard deviation), the spread against which "no worse than the shipped model" is judged.

The held-out lines are compared against the performer's curves **as the product aligns them** (core.captures'
check_folder, as `finetune` reads captures): by default the sync check moves a take whose curves are more than 20 ms
early or late of the sound onto it, so the performer's 40 ms lip lead is corrected there as it is in the captures
the model learns from, and the lead column shows what is kept (about 0). With --keep-timing both keep the lead (as
`finetune --keep-timing` does) and the shipped model's real-clip tracks are also scored with the lead added (the
metrics time the lips against the sound).

These are figures on a synthetic performer (the teacher's face with habits added, flite voices the shipped model
never heard); real captures are what the feature is for.

    flock /tmp/fp/bench.lock .venv/bin/python bench/bench_finetune.py [--minutes 1 3 10] [--work DIR] [--seeds 3]
        [--keep-timing] [--keep-dynamics W] [--train-seed S] [--face teacher|shipped] [--no-real] [--json FILE]
        [--lines held_out|tuning] [--set NAME=VALUE ...] [--tag TAG]

Settings are chosen with --lines tuning (another 90 s of the same performer) so that the held-out lines stay unseen.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from facepolicy.core import metrics, spec  # noqa: E402
from facepolicy.core.capture_sync import check_sync  # noqa: E402
from facepolicy.core.captures import check_folder  # noqa: E402
from facepolicy.core.facetrack import FaceTrack  # noqa: E402
from facepolicy.core.model_files import read_model_files  # noqa: E402
from facepolicy.core.phonetic import phonetic_prior_take  # noqa: E402
from facepolicy.core.policy import NeuralPolicy, default_model_dir  # noqa: E402
from model.finetune import FinetuneSettings  # noqa: E402
from model.finetune_run import finetune, group_errors, sample_settings, sample_take  # noqa: E402
from model.synthetic_performer import (  # noqa: E402
    HABIT_CHANNELS,
    JAW,
    SMILE,
    Performer,
    performer_lines,
    stressed_vowels,
    write_take,
)

HABIT_INDEX = sorted({c for cs in HABIT_CHANNELS.values() for c in cs})
BROW = spec.CHANNEL_INDEX["browInnerUp"]


LINE_SEEDS = {"held_out": 99, "tuning": 7}  # the held-out lines report; the tuning lines choose settings


def make_data(work: Path, performer: Performer, lines: str = "held_out") -> tuple[Path, list[dict]]:
    """10 minutes of capture takes (seed 1) and 90 s of held-out lines (seed 99; ``lines="tuning"``: another 90 s,
    seed 7, on which settings are chosen so that the held-out lines stay unseen), written once into ``work``."""
    captures, held = work / "captures_10min", work / lines
    lines_file = work / f"{lines}_lines.npz"
    if not (captures / "done").exists():
        for k, take in enumerate(performer_lines(performer, 600.0, seed=1), 1):
            write_take(captures, f"take{k:02d}", take["samples"], take["states"], start_timecode=36000.0 + 100 * k)
        (captures / "done").write_text("")
    if not lines_file.exists():
        made = performer_lines(performer, 90.0, seed=LINE_SEEDS[lines])
        for k, line in enumerate(made, 1):
            write_take(held, f"line{k:02d}", line["samples"], line["states"])
        np.savez(lines_file, phones=np.array([json.dumps([[p.phone, p.start, p.end] for p in x["phones"]])
                                              for x in made]))
    from facepolicy.core.phones import PhoneSegment

    phones = [[PhoneSegment(p, s, e) for p, s, e in json.loads(str(x))] for x in np.load(lines_file)["phones"]]
    return captures, phones


def subset(captures: Path, minutes: float, work: Path) -> Path:
    """The first takes of the 10-minute folder that make ``minutes`` (symlinks, so the sets are nested)."""
    out = work / f"captures_{minutes:g}min"
    out.mkdir(exist_ok=True)
    total = 0.0
    for wav in sorted(captures.glob("*.wav")):
        if total >= minutes * 60 - 5:
            break
        total += sf.info(str(wav)).duration
        for f in (wav, wav.with_suffix(".csv")):
            if not (out / f.name).exists():
                os.symlink(f, out / f.name)
    return out


def habit_figures(states: np.ndarray, take, phones) -> dict:
    speech = take.evidence.speech_gate(len(states)) >= 0.5
    t = np.arange(len(states)) / spec.MODEL_FPS
    stressed = [0.5 * (p.start + p.end) for p in stressed_vowels(phones)]
    vowels = [0.5 * (p.start + p.end) for p in phones if p.phone in {"aa", "ae", "ah", "ao", "aw", "ay", "eh", "er",
                                                                     "ey", "ih", "iy", "ow", "oy", "uh", "uw"}]
    other = sorted(set(vowels) - set(stressed))
    at = lambda times: np.interp(times, t, states[:, BROW]).mean() if times else np.nan  # noqa: E731
    reference = phonetic_prior_take(take.evidence.alignment, take.samples, take.seconds)
    lead = check_sync(take.samples, states[:, JAW], np.asarray(reference[0 : len(states)])[:, JAW])
    return {"smile": float(states[:, list(SMILE)].mean()), "jaw": float(states[speech, JAW].mean()),
            "brow_raise": float(at(stressed) - at(other)), "lead_ms": 1000 * lead.offset}


def evaluate(model_dir: Path, style: str | None, takes, phones, **override) -> dict:
    """Held-out figures of one model; ``override``: SampleSettings fields instead of the model's (prior_weight,
    vowel_floor)."""
    policy = NeuralPolicy(model_dir, threads=2)
    code = policy.style_preset(style or policy.default_style)
    errs, figs, scores, frames = {}, [], [], 0
    per_channel = np.zeros(len(HABIT_INDEX))
    for take, ph in zip(takes, phones, strict=True):
        pred = sample_take(policy, take, code, **override)
        n = min(len(pred), len(take.states))
        for g, e in group_errors(pred[:n], take.states[:n]).items():
            errs[g] = errs.get(g, 0.0) + e * n
        per_channel += np.abs(pred[:n, HABIT_INDEX] - take.states[:n, HABIT_INDEX]).mean(0) * n
        frames += n
        figs.append(habit_figures(pred, take, ph))
        scores.append(metrics.score_clip(FaceTrack(spec.MODEL_FPS, spec.CHANNEL_NAMES, pred), ph, take.samples))
    out = {g: v / frames for g, v in errs.items()}
    out["habit"] = float(per_channel.mean() / frames)
    out["habit_channels"] = {spec.CHANNEL_NAMES[c]: float(e / frames)
                             for c, e in zip(HABIT_INDEX, per_channel, strict=True)}
    out["prior_weight"] = sample_settings(policy).prior_weight
    out.update({k: float(np.nanmean([f[k] for f in figs])) for k in figs[0]})
    out["lipsync"] = metrics.aggregate(scores)
    return out


def real_clips(model_dir: Path, lead: float = 0.0, seed: int = 0) -> dict:
    """Lip-sync figures on the real clips model/evaluate.py scores, accurate mode, sampling ``seed``, at the model
    folder's own prior weight (model.json "sampling", given to the engine as --phonetic-prior gives it). ``lead`` (s):
    the articulation channels of every baked track moved that much earlier before scoring (a lip lead added to a
    model without one)."""
    from facepolicy.core.audio import Audio
    from facepolicy.core.engine import BakeOptions
    from facepolicy.core.policy import ARTICULATION, NeuralEngine
    from model import evaluate_phonetic as ep

    engine = NeuralEngine(model_dir)
    own = read_model_files(model_dir, verify=False).sampling.get("prior_weight")
    scores = []
    for clip in ep.arctic_clips() + ep.librivox_clips():
        options = BakeOptions(engine="neural", accuracy="accurate", seed=seed, prior_weight=own)
        track = engine.animate(Audio(clip.audio.samples, clip.audio.sample_rate, ""), options, lambda f, m: None, None)
        if lead:
            t = np.arange(track.n_frames) / track.fps
            values = track.values.copy()
            for c in ARTICULATION:
                values[:, c] = np.interp(t + lead, t, track.values[:, c])
            track = FaceTrack(track.fps, track.names, values)
        scores.append(metrics.score_clip(track, clip.reference, clip.audio.samples))
    out = metrics.aggregate(scores)
    out["hits"] = {k: [sum(getattr(x, f"{k}_hits") for x in scores), sum(getattr(x, f"{k}_total") for x in scores)]
                     for k in ("bilabial", "open")}
    return out


REAL_FIGURES = ("bilabial", "m", "open", "pause", "slcc", "jitter")


def real_over_seeds(model_dir: Path, seeds: int) -> dict:
    """The real clips at sampling seeds 0..seeds-1: {"per_seed": [...], "mean": {...}, "sd": {...}}."""
    runs = [real_clips(model_dir, seed=s) for s in range(seeds)]
    return {"per_seed": runs, "mean": {k: float(np.mean([r[k] for r in runs])) for k in REAL_FIGURES},
            "sd": {k: float(np.std([r[k] for r in runs], ddof=1)) if seeds > 1 else 0.0 for k in REAL_FIGURES}}


def spread_line(label: str, m: dict) -> str:
    return f"  {label:<30} " + "  ".join(f"{k} {m['mean'][k]:.3f} ± {m['sd'][k]:.3f}" for k in REAL_FIGURES)


def habit_ceiling(takes, phones, performer: Performer) -> dict:
    """The habit channels' error of the shipped model's own states with the performer's habits added exactly (the
    function that made the performer, on the exact TTS phones): what a model that learned the habits perfectly but
    kept everything else of the shipped model would score. The smile counts as learned exactly (added to the shipped
    default style's own smile it would be counted twice)."""
    from model.synthetic_performer import apply_habits

    policy = NeuralPolicy(default_model_dir(), threads=2)
    code = policy.style_preset(policy.default_style)
    err, frames = np.zeros(len(HABIT_INDEX)), 0
    for take, ph in zip(takes, phones, strict=True):
        pred = apply_habits(sample_take(policy, take, code), ph, performer.habits)
        n = min(len(pred), len(take.states))
        pred[:n, list(SMILE)] = take.states[:n, list(SMILE)]
        err += np.abs(pred[:n, HABIT_INDEX] - take.states[:n, HABIT_INDEX]).mean(0) * n
        frames += n
    return {spec.CHANNEL_NAMES[c]: float(e / frames) for c, e in zip(HABIT_INDEX, err, strict=True)}


def lipsync_line(label: str, m: dict) -> str:
    counts = m.get("hits")
    hits = (f"bilabial {counts['bilabial'][0]}/{counts['bilabial'][1]}  open {counts['open'][0]}/{counts['open'][1]}"
            if counts else f"bilabial {m['bilabial']:.3f}  open {m['open']:.3f}")
    return (f"  {label:<30} {hits}  m {m['m']:.3f}  pause {m['pause']:.3f}  SLCC {m['slcc']:.3f}  "
            f"lag {m['lag_ms']:.0f} ms  jitter {m['jitter']:.3f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[1.0, 3.0, 10.0])
    ap.add_argument("--work", default="/tmp/facepolicy-bench-finetune")
    ap.add_argument("--steps", type=int, help="most training steps (default: the command's)")
    ap.add_argument("--no-real", action="store_true", help="skip the real clips")
    ap.add_argument("--lip-lead", type=float, help="the performer's lip lead in seconds (default: Habits' 0.04)")
    ap.add_argument("--seeds", type=int, default=1, help="score the real clips at sampling seeds 0..N-1 (mean and "
                    "standard deviation; the run-to-run spread against which 'no worse' is judged)")
    ap.add_argument("--keep-timing", action="store_true", help="fine-tune as `finetune --keep-timing` does (and "
                    "align the held-out lines so): the lip lead kept as the performer's own timing")
    ap.add_argument("--keep-dynamics", type=float, help="weight of the term keeping the base model's articulation "
                    "over time (default: the command's)")
    ap.add_argument("--face", choices=("teacher", "shipped"), default="teacher", help="the performer's face: the "
                    "teacher's (default, the harder test) or the shipped model's own bakes; use another --work")
    ap.add_argument("--train-seed", type=int, default=0, help="fine-tuning seed (windows, noise)")
    ap.add_argument("--lines", choices=tuple(LINE_SEEDS), default="held_out", help="the lines measured: the "
                    "held-out lines (default, the reported figures) or the tuning lines (another 90 s of the "
                    "performer, seed 7), on which fine-tuning settings are chosen")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a FinetuneSettings field for the fine-tuning runs (repeatable), e.g. brow_weight=1")
    ap.add_argument("--tag", default="", help="added to the model folders' names")
    ap.add_argument("--json", help="write every figure here")
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    performer = Performer(face=args.face)
    if args.lip_lead is not None:
        import dataclasses

        performer = dataclasses.replace(performer, habits=dataclasses.replace(performer.habits, lip_lead=args.lip_lead))
    print(f"performer: flite voice {performer.voice}, the {performer.face}'s face, habits {performer.habits}")
    captures, phones = make_data(work, performer, args.lines)
    takes, _ = check_folder(work / args.lines, keep_timing=args.keep_timing)
    print(f"{args.lines} lines: {len(takes)}, {sum(t.seconds for t in takes):.0f} s")
    results = {"shipped": evaluate(default_model_dir(), None, takes, phones)}
    truth = [habit_figures(t.states, t, p) for t, p in zip(takes, phones, strict=True)]
    results["performer"] = {k: float(np.nanmean([f[k] for f in truth])) for k in truth[0]}
    ceiling = habit_ceiling(takes, phones, performer)
    if not args.no_real:
        if args.seeds > 1:
            results["shipped"]["real_seeds"] = real_over_seeds(default_model_dir(), args.seeds)
            results["shipped"]["real"] = results["shipped"]["real_seeds"]["per_seed"][0]
        else:
            results["shipped"]["real"] = real_clips(default_model_dir())
        if performer.habits.lip_lead and args.keep_timing:
            # The metrics time the lips against the sound: the shipped model's own tracks with the performer's lead.
            results["shipped"]["real, lips ahead"] = real_clips(default_model_dir(), performer.habits.lip_lead)
    for minutes in args.minutes:
        folder = subset(captures, minutes, work)
        settings = FinetuneSettings(keep_timing=args.keep_timing, seed=args.train_seed)
        if args.keep_dynamics is not None:
            settings.keep_dynamics = args.keep_dynamics
        if args.steps:
            settings.steps = args.steps
        for item in args.set:
            name, _, value = item.partition("=")
            if not hasattr(settings, name):
                ap.error(f"--set {item}: FinetuneSettings has no field {name!r}")
            kind = type(getattr(settings, name))
            setattr(settings, name, None if value == "None" else (value.lower() in ("1", "true", "yes"))
                    if kind is bool else (float(value) if "." in value or "e" in value else int(value))
                    if kind in (int, float, type(None)) else kind(value))
        out = work / f"model_{minutes:g}min_w{settings.keep_dynamics:g}_s{settings.seed}{args.tag}"
        t0 = time.perf_counter()
        m = finetune(folder, out, settings, cache_root=work / "cache", overwrite=True, log=lambda s: None)
        wall = time.perf_counter() - t0
        r = evaluate(out, None, takes, phones)
        r.update(wall_s=wall, train_s=m["finetune"]["train_seconds"], steps=m["finetune"]["steps"],
                 best_step=m["finetune"]["best_step"], capture_min=60 * m["finetune"]["captures"]["hours"])
        if not args.no_real:
            if args.seeds > 1:
                r["real_seeds"] = real_over_seeds(out, args.seeds)
                r["real"] = r["real_seeds"]["per_seed"][0]
            else:
                r["real"] = real_clips(out)
        results[f"{minutes:g} min"] = r
        s = results["shipped"]
        print(f"finetune {r['capture_min']:.1f} min captures: {wall / 60:.1f} min wall ({r['train_s'] / 60:.1f} min "
              f"training, {r['steps']} steps, best {r['best_step']}), habit-channel error {s['habit']:.4f} → "
              f"{r['habit']:.4f} ({r['habit'] / s['habit']:.2f}x), prior weight {r['prior_weight']}", flush=True)
    print("\nheld-out lines (mean absolute error of ARKit weights against the performer):")
    print(f"  {'model':<12} {'mouth':>7} {'brows':>7} {'eyes':>7} {'habit':>7} | {'smile':>6} {'jaw':>6} "
          f"{'brow↑':>6} {'lead ms':>7}")
    perf = results["performer"]
    print(f"  {'performer':<12} {'':>7} {'':>7} {'':>7} {'':>7} | {perf['smile']:6.3f} {perf['jaw']:6.3f} "
          f"{perf['brow_raise']:6.3f} {perf['lead_ms']:7.0f}")
    for key, r in results.items():
        if key == "performer":
            continue
        print(f"  {key:<12} {r['mouth']:7.4f} {r['brows']:7.4f} {r['eyes']:7.4f} {r['habit']:7.4f} | "
              f"{r['smile']:6.3f} {r['jaw']:6.3f} {r['brow_raise']:6.3f} {r['lead_ms']:7.0f}")
    print("\nhabit channels (mean absolute error against the performer):")
    names = list(ceiling)
    print(f"  {'model':<26} " + " ".join(f"{n[:13]:>13}" for n in names) + f" {'mean':>7}")
    rows = {k: r["habit_channels"] for k, r in results.items() if "habit_channels" in r}
    rows["shipped + exact habits"] = ceiling
    for key, ch in rows.items():
        print(f"  {key:<26} " + " ".join(f"{ch[n]:13.4f}" for n in names) + f" {np.mean(list(ch.values())):7.4f}")
    print("\nlip sync, held-out lines (exact TTS phones):")
    for key, r in results.items():
        if key != "performer":
            print(lipsync_line(key, r["lipsync"]))
    if not args.no_real:
        print("\nlip sync, real clips (ARCTIC + LibriVox, accurate mode):")
        for key, r in results.items():
            for label in ("real", "real, lips ahead"):
                if label in r:
                    name = key if label == "real" else f"{key}, lips {1000 * performer.habits.lip_lead:.0f} ms ahead"
                    print(lipsync_line(name, r[label]))
        if args.seeds > 1:
            print(f"\nreal clips over sampling seeds 0..{args.seeds - 1} (mean ± standard deviation):")
            for key, r in results.items():
                if "real_seeds" in r:
                    print(spread_line(key, r["real_seeds"]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
