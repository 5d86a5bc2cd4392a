"""Build the talking-face training corpus: TTS speech with exact phones, augmented, labelled by the teacher.

    python -m model.data.build_corpus --config default|tiny --out cache/corpus [--jobs N] [--seed S]

Shard k's contents depend only on (config, seed, k), so the corpus is deterministic whatever --jobs is, and an
interrupted build resumes where it stopped: finished shards are files, written atomically, and are skipped.
Shards are added in order until the configured hours of speech are reached.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facepolicy.core import spec
from facepolicy.core.phones import PHONE_INDEX, SIL, PhoneSegment

from . import augment, espeak, festival, flite, sentences
from .speech import Utterance, concatenate

FORMAT_VERSION = 1


@dataclass(frozen=True)
class CorpusConfig:
    name: str
    hours: float  # stop adding shards once this much speech is built
    clips_per_shard: int
    n_styles: int  # style identities; each clip is performed by one
    sentences_per_clip: tuple[int, int] = (1, 3)  # inclusive range
    engine_weights: dict = field(default_factory=lambda: {"espeak": 0.6, "festival": 0.2, "flite": 0.2})
    espeak_bases: tuple[str, ...] = espeak.BASE_VOICES
    espeak_variants: tuple[str, ...] = espeak.VARIANTS
    festival_voices: tuple[str, ...] = festival.VOICES
    flite_voices: tuple[str, ...] = flite.VOICES
    # Voices kept for evaluation only (split "eval"): a whole espeak accent, two espeak variants, one
    # festival and one flite voice, so evaluation meets unseen speakers of every engine.
    held_out: tuple[str, ...] = ("espeak:en-gb-scotland*", "espeak:*+f4", "espeak:*+edward",
                                 "festival:ked_diphone", "flite:rms")
    long_pause_prob: float = 0.3  # chance that a gap between sentences is a long pause (0.4–1.6 s)
    augment_prob: float = 0.7  # the rest of the clips stay clean
    labels: bool = True  # compute the teacher's FaceTrack at build time


CONFIGS: dict[str, CorpusConfig] = {
    # 3.9 h in all, so that the training split (about 79 %; the rest is held-out voices) is ≥ 3 h.
    "default": CorpusConfig("default", hours=3.9, clips_per_shard=24, n_styles=240),
    "tiny": CorpusConfig(
        "tiny", hours=0.004, clips_per_shard=3, n_styles=4, sentences_per_clip=(1, 2),
        espeak_bases=("en-us", "en-gb-scotland"), espeak_variants=("", "f3"),
        festival_voices=("kal_diphone",), flite_voices=("kal16", "rms"), long_pause_prob=0.5,
    ),
}


@dataclass
class ClipPlan:
    clip_id: str
    engine: str
    voice: object  # EspeakVoice | FestivalVoice | FliteVoice
    texts: list[str]
    kinds: list[str]
    pauses: list[float]
    lead_in: float
    tail: float
    style_id: int
    augment_seed: int | None  # None: clean
    teacher_seed: int


def _is_held_out(voice_id: str, patterns: tuple[str, ...]) -> bool:
    from fnmatch import fnmatchcase

    return any(fnmatchcase(voice_id, p) for p in patterns)


def plan_clip(cfg: CorpusConfig, seed: int, shard: int, j: int) -> ClipPlan:
    rng = np.random.default_rng([seed, shard, j])
    engines = list(cfg.engine_weights)
    w = np.array([cfg.engine_weights[e] for e in engines], float)
    engine = engines[int(rng.choice(len(engines), p=w / w.sum()))]
    if engine == "espeak":
        voice = espeak.EspeakVoice(
            base=str(rng.choice(cfg.espeak_bases)), variant=str(rng.choice(cfg.espeak_variants)),
            rate=int(rng.integers(130, 261)), pitch=int(rng.integers(20, 81)), pitch_range=int(rng.integers(20, 91)),
        )
    elif engine == "festival":
        # A few stretch values only, so a shard can batch its festival clips per (voice, stretch).
        voice = festival.FestivalVoice(str(rng.choice(cfg.festival_voices)),
                                       float(rng.choice([0.85, 0.95, 1.0, 1.1, 1.25])))
    else:
        name = str(rng.choice(cfg.flite_voices))
        f0 = float(rng.uniform(80, 130)) if name.startswith("kal") and rng.random() < 0.5 else 0.0
        voice = flite.FliteVoice(name, float(rng.uniform(0.85, 1.25)), f0)
    lo, hi = cfg.sentences_per_clip
    n = int(rng.integers(lo, hi + 1))
    texts, kinds = zip(*(sentences.sentence(rng) for _ in range(n)), strict=True)
    pauses = [float(rng.uniform(0.4, 1.6)) if rng.random() < cfg.long_pause_prob else float(rng.uniform(0.05, 0.3))
              for _ in range(n - 1)]
    lead_in, tail = float(rng.uniform(0.0, 0.5)), float(rng.uniform(0.0, 0.6))
    style_id = int(rng.integers(cfg.n_styles))
    augment_seed = int(rng.integers(2**31)) if rng.random() < cfg.augment_prob else None
    return ClipPlan(f"{shard:05d}-{j:03d}", engine, voice, list(texts), list(kinds), pauses, lead_in, tail,
                    style_id, augment_seed, int(rng.integers(2**31)))


def style_for(seed: int, style_id: int):
    """The teacher's SpeakerStyle of one identity (deterministic, independent of the clips that use it)."""
    from facepolicy.core import teacher

    return teacher.sample_style(np.random.default_rng([seed, 7919, style_id]))


def _synthesize_shard(plans: list[ClipPlan]) -> list[list[Utterance]]:
    """Per plan, one Utterance per sentence. festival sentences are batched per voice to save start-ups."""
    out: list[list[Utterance] | None] = [None] * len(plans)
    groups: dict[object, list[int]] = {}
    for i, p in enumerate(plans):
        if p.engine == "festival":
            groups.setdefault(p.voice, []).append(i)
        elif p.engine == "espeak":
            out[i] = [espeak.synthesize(t, p.voice) for t in p.texts]
        else:
            out[i] = [flite.synthesize(t, p.voice) for t in p.texts]
    for voice, idx in groups.items():
        texts = [t for i in idx for t in plans[i].texts]
        utts = festival.synthesize_batch(texts, voice)
        k = 0
        for i in idx:
            out[i] = utts[k:k + len(plans[i].texts)]
            k += len(plans[i].texts)
    return out  # type: ignore[return-value]


def _pad(utt: Utterance, lead: float, tail: float) -> Utterance:
    sil = Utterance(np.zeros(0, np.float32), [], "", [])
    parts, pauses = [utt], []
    if lead > 0:
        parts, pauses = [sil, *parts], [lead]
    if tail > 0:
        parts, pauses = [*parts, sil], [*pauses, tail]
    return concatenate(parts, pauses)


def _scale(phones: list[PhoneSegment], k: float, duration: float) -> list[PhoneSegment]:
    out = [PhoneSegment(p.phone, p.start * k, min(p.end * k, duration)) for p in phones]
    if out:
        out[-1] = PhoneSegment(out[-1].phone, out[-1].start, duration)
    return [p for p in out if p.end > p.start]


def build_clip(cfg: CorpusConfig, seed: int, plan: ClipPlan, utts: list[Utterance]) -> dict:
    utt = _pad(concatenate(utts, plan.pauses), plan.lead_in, plan.tail)
    samples, phones = utt.samples, utt.phones
    aug: dict = {}
    if plan.augment_seed is not None:
        samples, aug, k = augment.augment(samples, np.random.default_rng(plan.augment_seed))
        phones = _scale(phones, k, len(samples) / spec.SAMPLE_RATE)
    duration = len(samples) / spec.SAMPLE_RATE
    if phones and phones[-1].end < duration:
        phones = [*phones, PhoneSegment(SIL, phones[-1].end, duration)]
    style = style_for(seed, plan.style_id)
    meta = {
        "clip_id": plan.clip_id, "engine": plan.engine, "voice": plan.voice.voice_id,
        "voice_params": dataclasses.asdict(plan.voice), "text": " ".join(plan.texts), "sentences": plan.texts,
        "kinds": plan.kinds, "words": utt.words, "pauses": [round(p, 3) for p in plan.pauses],
        "augmentation": aug, "style_id": plan.style_id, "style": style.to_dict(),
        "teacher_seed": plan.teacher_seed, "duration": round(duration, 4),
        "split": "eval" if _is_held_out(plan.voice.voice_id, cfg.held_out) else "train",
    }
    clip = {"samples": samples, "phones": phones, "meta": meta}
    if cfg.labels:
        from facepolicy.core import teacher

        meta["teacher_version"] = teacher.TEACHER_VERSION
        clip["states"] = teacher_states(phones, samples, style, plan.teacher_seed, duration)
    return clip


def teacher_states(phones, samples, style, teacher_seed: int, duration: float) -> np.ndarray:
    """The teacher's face for one clip at MODEL_FPS: (T, NUM_CHANNELS) float32."""
    from facepolicy.core import teacher

    track = teacher.animate_phones(phones, samples, style=style, seed=teacher_seed, duration=duration,
                                   fps=spec.MODEL_FPS)
    return track.values.astype(np.float32)


def shard_path(out: Path, k: int) -> Path:
    return out / f"shard_{k:05d}.npz"


def build_shard(cfg: CorpusConfig, seed: int, k: int, out: Path) -> dict:
    """Build shard k and write it atomically. Returns its summary (clips, seconds)."""
    plans = [plan_clip(cfg, seed, k, j) for j in range(cfg.clips_per_shard)]
    clips = [build_clip(cfg, seed, p, u) for p, u in zip(plans, _synthesize_shard(plans), strict=True)]
    write_shard(shard_path(out, k), clips)
    return shard_summary(k, [c["meta"] for c in clips])


def shard_summary(k: int, metas: list[dict]) -> dict:
    return {"index": k, "clips": len(metas), "seconds": round(sum(m["duration"] for m in metas), 3),
            "eval_seconds": round(sum(m["duration"] for m in metas if m["split"] == "eval"), 3)}


def write_shard(path: Path, clips: list[dict]) -> None:
    audio = [np.round(np.clip(c["samples"], -1, 1) * 32767).astype(np.int16) for c in clips]
    phones = [c["phones"] for c in clips]
    arrays = {
        "audio": np.concatenate(audio),
        "audio_offsets": np.cumsum([0] + [len(a) for a in audio]).astype(np.int64),
        "phone_ids": np.array([PHONE_INDEX[p.phone] for ps in phones for p in ps], np.int16),
        "phone_times": np.array([[p.start, p.end] for ps in phones for p in ps], np.float64).reshape(-1, 2),
        "phone_offsets": np.cumsum([0] + [len(ps) for ps in phones]).astype(np.int64),
        "meta": np.frombuffer(json.dumps([c["meta"] for c in clips]).encode("utf-8"), np.uint8),
        "format_version": np.array(FORMAT_VERSION),
    }
    if all("states" in c for c in clips):
        arrays["states"] = np.concatenate([c["states"] for c in clips])
        arrays["state_offsets"] = np.cumsum([0] + [len(c["states"]) for c in clips]).astype(np.int64)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _shard_task(args: tuple) -> dict:
    cfg, seed, k, out = args
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return build_shard(cfg, seed, k, Path(out))


def _write_manifest(out: Path, cfg: CorpusConfig, seed: int, done: dict[int, dict], stats: dict,
                    earlier: list[dict]) -> dict:
    """The manifest lists the shortest prefix of shards that reaches the configured hours, and every build run
    (``earlier`` ones, then this one) with its speed."""
    shards, total = [], 0.0
    for k in sorted(done):
        if k != len(shards) or total >= cfg.hours * 3600:
            break
        shards.append(done[k])
        total += done[k]["seconds"]
    manifest = {
        "format_version": FORMAT_VERSION, "config": dataclasses.asdict(cfg), "seed": seed,
        "complete": total >= cfg.hours * 3600, "seconds": round(total, 2), "hours": round(total / 3600, 4),
        "eval_seconds": round(sum(s["eval_seconds"] for s in shards), 2), "shards": shards, "build": stats,
        "builds": [*earlier, stats],
    }
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    os.replace(tmp, out / "manifest.json")
    return manifest


def _existing(out: Path, k: int) -> dict | None:
    from .corpus import read_shard_meta

    path = shard_path(out, k)
    if not path.exists():
        return None
    try:
        return shard_summary(k, read_shard_meta(path))
    except Exception:  # a damaged shard (disk full, killed writer) is rebuilt
        path.unlink()
        return None


def build(cfg: CorpusConfig, out: Path, seed: int = 0, jobs: int = 1, log=print) -> dict:
    import scipy.signal  # noqa: F401  (slow to import: once here, shared by the forked workers)

    out.mkdir(parents=True, exist_ok=True)
    config_file = out / "config.json"
    # Everything but the target size decides shard contents; a bigger --hours extends the same corpus.
    ident = {"config": {k: v for k, v in dataclasses.asdict(cfg).items() if k != "hours"}, "seed": seed,
             "format_version": FORMAT_VERSION}
    if config_file.exists() and json.loads(config_file.read_text()) != json.loads(json.dumps(ident)):
        raise SystemExit(f"{out} holds a corpus with another config or seed; choose another --out")
    config_file.write_text(json.dumps(ident, indent=1), encoding="utf-8")
    target = cfg.hours * 3600
    done: dict[int, dict] = {}
    k = 0
    while True:  # resume: count the finished prefix
        summary = _existing(out, k)
        if summary is None:
            break
        done[k] = summary
        k += 1
    reused = sum(s["seconds"] for s in done.values())
    earlier: list[dict] = []
    if (out / "manifest.json").exists():
        old = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        earlier = old.get("builds", [old["build"]] if old.get("build") else [])
    t0 = time.monotonic()
    built_seconds = 0.0

    def prefix_seconds() -> float:
        total, i = 0.0, 0
        while i in done:
            total += done[i]["seconds"]
            i += 1
        return total

    def cpu_seconds() -> float:
        # This process, its workers and the TTS programs they ran (children count once reaped).
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    cpu0 = cpu_seconds()

    def stats() -> dict:
        wall = time.monotonic() - t0
        cpu = cpu_seconds() - cpu0
        return {"jobs": jobs, "built_seconds": round(built_seconds, 2), "wall_seconds": round(wall, 2),
                "cpu_seconds": round(cpu, 2),
                "audio_seconds_per_wall_second": round(built_seconds / wall, 3) if wall > 0 else None,
                "audio_seconds_per_cpu_second": round(built_seconds / cpu, 3) if cpu > 0 else None}

    log(f"corpus {cfg.name} -> {out}: {len(done)} shards ({reused / 3600:.3f} h) already built, "
        f"target {cfg.hours:.3f} h")
    next_k = k
    if jobs <= 1:
        while prefix_seconds() < target:
            done[next_k] = build_shard(cfg, seed, next_k, out)
            built_seconds += done[next_k]["seconds"]
            _write_manifest(out, cfg, seed, done, stats(), earlier)
            log(f"shard {next_k}: {done[next_k]['seconds']:.1f} s; {prefix_seconds() / 3600:.3f} h")
            next_k += 1
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("fork")) as pool:
            running = {}
            while prefix_seconds() < target or running:
                # Keep the pool busy only while the finished prefix plus running shards may fall short.
                est = max(np.mean([s["seconds"] for s in done.values()]) if done else 1.0, 1.0)
                while len(running) < jobs and prefix_seconds() + est * len(running) < target:
                    running[pool.submit(_shard_task, (cfg, seed, next_k, str(out)))] = next_k
                    next_k += 1
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    kk = running.pop(fut)
                    done[kk] = fut.result()
                    built_seconds += done[kk]["seconds"]
                    _write_manifest(out, cfg, seed, done, stats(), earlier)
                    log(f"shard {kk}: {done[kk]['seconds']:.1f} s; {prefix_seconds() / 3600:.3f} h")
    manifest = _write_manifest(out, cfg, seed, done, stats(), earlier)
    log(f"done: {manifest['hours']:.3f} h in {len(manifest['shards'])} shards; "
        f"built {built_seconds:.1f} s of audio in {stats()['wall_seconds']:.1f} s wall "
        f"({stats()['audio_seconds_per_wall_second']} audio s per wall s, {jobs} jobs; "
        f"{stats()['audio_seconds_per_cpu_second']} audio s per CPU s)")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.data.build_corpus", description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="default")
    parser.add_argument("--out", type=Path, default=Path("cache/corpus"))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hours", type=float, help="override the config's target hours")
    args = parser.parse_args(argv)
    cfg = CONFIGS[args.config]
    if args.hours is not None:
        cfg = dataclasses.replace(cfg, hours=args.hours)
    missing = [n for n, ok in (("espeak-ng", espeak.available()), ("festival", festival.available()),
                               ("flite", flite.available())) if not ok]
    if missing:
        print(f"missing TTS engines: {', '.join(missing)} (apt-get install espeak-ng festival flite ...)",
              file=sys.stderr)
        return 2
    build(cfg, args.out, args.seed, max(1, args.jobs), log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
