"""Score the Phonetic engine (and the teacher on reference timings) on real clips; print the lip-sync metric table.

Clips: the CMU ARCTIC clips in tests/data/arctic (a0009 has reference phone labels; a0007 is referenced by forced
alignment of its prompt), the LibriVox clips of Debian's pocketsphinx-testdata (referenced by forced
alignment of their transcripts), with --testdata a second real set from the same package (five card-game
utterances and "go forward ten meters", also referenced by forced alignment), held-out festival and flite
sentences with their exact phone timings (--tts N), and any folder of ``name.wav`` + ``name.lab``
(+ ``name.txt``) given with --clips.

    .venv/bin/python -m model.evaluate_phonetic [--testdata] [--tts 24] [--clips DIR ...]
        [--modes teacher,transcript,fast,accurate]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facepolicy.core import metrics, spec
from facepolicy.core.align import shared_aligner
from facepolicy.core.audio import Audio, from_array, load_audio
from facepolicy.core.engine import BakeOptions, animate
from facepolicy.core.phones import PhoneSegment
from facepolicy.core.second_opinion import add_missed_bilabials
from facepolicy.core.teacher import animate_phones

ROOT = Path(__file__).resolve().parent.parent
ARCTIC_DIR = ROOT / "tests" / "data" / "arctic"
TESTDATA_DIR = Path("/usr/share/pocketsphinx/test/data")
LIBRIVOX_DIR = TESTDATA_DIR / "librivox"
MODES = ("teacher", "transcript", "fast", "accurate")


@dataclass
class Clip:
    name: str
    audio: Audio
    transcript: str | None
    reference: list[PhoneSegment]
    reference_kind: str  # "labels" or "alignment"


def _reference(audio: Audio, lab: Path | None, transcript: str | None) -> tuple[list[PhoneSegment], str]:
    if lab is not None and lab.exists():
        return metrics.read_lab(lab), "labels"
    if transcript:
        return shared_aligner().align(audio.samples, transcript).phones, "alignment"
    raise SystemExit(f"{audio.source}: needs a .lab or a transcript to be scored")


def arctic_clips() -> list[Clip]:
    out = []
    for wav in sorted(ARCTIC_DIR.glob("arctic_*.wav")):
        name = wav.stem
        text = wav.with_suffix(".txt").read_text(encoding="utf-8").strip()
        audio = load_audio(wav)
        ref, kind = _reference(audio, ARCTIC_DIR / f"{name}_phone.lab", text)
        out.append(Clip(name, audio, text, ref, kind))
    return out


def transcribed_clips(listing: Path, prefix: str = "") -> list[Clip]:
    """The clips of a sphinx transcription file (lines ``<s> text </s> (name)``, ``name.wav`` beside it), each
    referenced by forced alignment of its text; none when the file is absent."""
    if not listing.exists():
        return []
    out = []
    for line in listing.read_text(encoding="utf-8").splitlines():
        m = re.match(r"<s>\s*(.*?)\s*</s>\s*\((.+)\)", line.strip())
        wav = listing.parent / f"{m.group(2)}.wav" if m else None
        if wav is None or not wav.exists():
            continue
        audio = load_audio(wav)
        ref, kind = _reference(audio, None, m.group(1))
        out.append(Clip(prefix + m.group(2), audio, m.group(1), ref, kind))
    return out


def librivox_clips(folder: Path = LIBRIVOX_DIR) -> list[Clip]:
    return transcribed_clips(folder / "transcription")


def testdata_clips(folder: Path = TESTDATA_DIR) -> list[Clip]:
    """A second real set from Debian's pocketsphinx-testdata: five card-game utterances (another speaker; their
    transcripts are in cards.transcription) and "go forward ten meters" (goforward.raw, 16 kHz 16-bit mono).
    References are forced alignments of the transcripts."""
    out = transcribed_clips(folder / "cards" / "cards.transcription", prefix="cards-")
    if not out:
        return []
    raw = folder / "goforward.raw"
    if raw.exists():
        text = "go forward ten meters"
        audio = from_array(np.fromfile(raw, dtype="<i2").astype(np.float32) / 32768.0, spec.SAMPLE_RATE, source="")
        ref, kind = _reference(audio, None, text)
        out.append(Clip("goforward", audio, text, ref, kind))
    return out


def folder_clips(folder: Path) -> list[Clip]:
    out = []
    for wav in sorted(folder.glob("*.wav")):
        txt = wav.with_suffix(".txt")
        text = txt.read_text(encoding="utf-8").strip() if txt.exists() else None
        audio = load_audio(wav)
        ref, kind = _reference(audio, wav.with_suffix(".lab"), text)
        out.append(Clip(wav.stem, audio, text, ref, kind))
    return out


TTS_SEED = 271828  # held out: neither the corpus builder nor the tuning runs (seed 90417) used it


def tts_clips(n: int, seed: int = TTS_SEED) -> list[Clip]:
    """``n`` sentences spoken by festival and flite voices in turn, with the engines' exact phone timings."""
    from model.data import festival, flite
    from model.data.sentences import sentence

    voices = []
    if flite.available():
        voices += [flite.FliteVoice(v) for v in ("slt", "rms", "awb", "kal16")]
    if festival.available():
        voices += [festival.FestivalVoice(v) for v in festival.VOICES]
    if not voices:
        return []
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        text, _ = sentence(rng)
        voice = voices[k % len(voices)]
        module = flite if isinstance(voice, flite.FliteVoice) else festival
        utt = module.synthesize(text, voice)
        audio = from_array(utt.samples, spec.SAMPLE_RATE, source="")
        out.append(Clip(f"{voice.voice_id}-{k}", audio, text, utt.phones, "labels"))
    return out


def run_mode(mode: str, clip: Clip):
    if mode == "teacher":
        return animate_phones(clip.reference, clip.audio.samples, duration=clip.audio.duration)
    options = BakeOptions(engine="phonetic", transcript=clip.transcript if mode == "transcript" else None,
                          accuracy="accurate" if mode == "accurate" else "fast")
    if mode != "transcript":
        # No sidecar transcript either: recognition only.
        clip = Clip(clip.name, Audio(clip.audio.samples, clip.audio.sample_rate, ""), None, clip.reference,
                    clip.reference_kind)
    return animate(clip.audio, options)


def evaluate(clips: list[Clip], modes: list[str], verbose: bool = False) -> dict[str, dict]:
    results = {}
    for mode in modes:
        scores = []
        t0 = time.perf_counter()
        for clip in clips:
            track = run_mode(mode, clip)
            # Upper-face liveliness against the teacher on the reference timings (no captured faces exist here).
            reference = run_mode("teacher", clip) if mode != "teacher" else None
            s = metrics.score_clip(track, clip.reference, clip.audio.samples, reference=reference)
            scores.append(s)
            if verbose:
                print(f"  {mode:10s} {clip.name:40s} {metrics.format_row('', s.summary())}  misses {s.missed}")
        summary = metrics.aggregate(scores)
        summary["seconds"] = time.perf_counter() - t0
        summary["audio_seconds"] = sum(c.audio.duration for c in clips)
        results[mode] = summary
    return results


def closure_sources(clips: list[Clip], margin: float = 0.050) -> int:
    """Precision of the fast mode's bilabials by source: recognised p/b/m, and those the audio encoder added.
    A bilabial is true when a reference p/b/m overlaps it within ``margin``; spurious ones are per audio second."""
    from facepolicy.core.listener import shared_listener
    from facepolicy.core.phones import BILABIALS

    listener = shared_listener()
    counts = {"recognised": [0, 0], "added by the second opinion": [0, 0]}
    for clip in clips:
        heard = shared_aligner().recognise_phones(clip.audio.samples, clip.audio.sample_rate)
        before = {(p.start, p.end) for p in heard.phones if p.phone in BILABIALS}
        phones, _, _ = add_missed_bilabials(heard.phones, heard.confidence,
                                            listener.bilabial_probs(clip.audio.samples), listener.frame_rate)
        for p in phones:
            if p.phone not in BILABIALS:
                continue
            true = any(r.phone in BILABIALS and r.start < p.end + margin and r.end > p.start - margin
                       for r in clip.reference)
            counts["recognised" if (p.start, p.end) in before else "added by the second opinion"][not true] += 1
    seconds = sum(c.audio.duration for c in clips)
    reference = sum(1 for c in clips for r in c.reference if r.phone in BILABIALS)
    print(f"reference bilabials: {reference} in {seconds:.1f} s")
    for source, (true, false) in counts.items():
        print(f"{source}: {true + false} bilabials, {true} true, {false} spurious ({false / seconds:.2f} per s)")
    return 0


LABELS = {"teacher": "teacher on reference timings", "transcript": "Phonetic, with transcript",
          "fast": "Phonetic, no transcript (fast)", "accurate": "Phonetic, no transcript (accurate)"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=Path, action="append", default=[], help="folder of wav + lab/txt clips")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--no-builtin", action="store_true", help="only the --clips folders and --tts clips")
    ap.add_argument("--testdata", action="store_true",
                    help="add the second real set (pocketsphinx-testdata's cards and goforward clips)")
    ap.add_argument("--tts", type=int, default=0, help="add N held-out festival/flite sentences")
    ap.add_argument("--tts-seed", type=int, default=TTS_SEED,
                    help=f"sentence draw of --tts (default {TTS_SEED}, the held-out one; tune on another)")
    ap.add_argument("--closures", action="store_true",
                    help="instead: where the fast mode's p/b/m come from (recognition, the audio encoder's second "
                         "opinion) and how many lie within 50 ms of a reference bilabial")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        ap.error(f"unknown modes {sorted(unknown)}")
    clips = [] if args.no_builtin else arctic_clips() + librivox_clips()
    clips += testdata_clips() if args.testdata else []
    for folder in args.clips:
        clips += folder_clips(folder)
    clips += tts_clips(args.tts, args.tts_seed) if args.tts else []
    if not clips:
        print("no clips found (install pocketsphinx-testdata or pass --clips)", file=sys.stderr)
        return 1
    kinds = {k: sum(1 for c in clips if c.reference_kind == k) for k in ("labels", "alignment")}
    total = sum(c.audio.duration for c in clips)
    print(f"{len(clips)} clips, {total:.1f} s; references: {kinds['labels']} label files or TTS timings, "
          f"{kinds['alignment']} forced alignments")
    if args.closures:
        return closure_sources(clips)
    results = evaluate(clips, modes, args.verbose)
    print(metrics.TABLE_HEADER.replace("| |", "| engine |", 1))
    for mode in modes:
        print(metrics.format_row(LABELS[mode], results[mode]))
    for mode in modes:
        r = results[mode]
        upper = f"upper-face ratio {r['upper_ratio']:.2f}; " if np.isfinite(r["upper_ratio"]) else ""
        print(f"{mode}: {upper}SLCC {r['slcc']:.4f}, jitter {r['jitter']:.4f}; {r['seconds']:.2f} s for "
              f"{r['audio_seconds']:.1f} s of audio; counts {r['counts']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
