"""Transcript acceptance: exact transcripts of TTS and real lines must be used, other lines' texts refused.

TTS lines are made the way a game studio makes them, with the command-line tools (espeak-ng voices and rates,
festival's text2wave, flite -voice); the real clips are CMU ARCTIC (tests/data/arctic), the demo line
(assets/audio/demo) and Debian's pocketsphinx-testdata (LibriVox, cards, goforward) when installed. Each line is
tried with its exact transcript, with another line's text (swapped: sentences with sentences, short barks with
barks) and with a near miss (about a quarter of its words changed, at least one). Every try goes through
``core.evidence.gather_evidence`` (the function both engines call) without recognition, so it measures exactly the
product's rule. Lines are split into a tuning half and a test half (each voice appears in both); the rule's
threshold is chosen on the tuning half (midway between the lowest exact fit and the highest swapped fit) and
reported on both. Prints a table, then one parseable summary line:

    transcript acceptance (fit >= -7.2): exact rejected 0/74 (tts 0/60, real 0/14), swapped rejected 74/74
    (100.0%), near-miss rejected 30/74; tune: exact min -6.3 swapped max -8.1 -> -7.2; test: ...

It first checks which language core.transcript takes each text for: generated English sentences
(model.data.sentences, 3000 by default) must all be English, and every sentence of the per-language development set
(model.data.languages) its own language (aligned as it where core.letters has it enabled, else refused):

    language detection: 0/3000 generated English sentences taken for another language; dev set: 66/66 ...

With --languages, the development set's clips of every language core.letters aligns are tried with their own text
and with another clip's, through the same rule (one line per language: exact used, swapped refused, the fits).

With --localised, lines as a studio localises them: development-set sentences and the localised game lines
(model.data.languages.LOCALISED_LINES) of the languages core.letters aligns, made with the espeak-ng command in eight
voice variants (half of them never heard by the ear's training, model/ear.py) at three speeds, each tried with its
own text and with a development-set sentence's, the language set as a studio sets it (``--transcript-language``; the
detection is measured above). Each try is scored by the rule in force (core.evidence: the ear for these languages)
and, in the same run, by the English phone head's rule that judged them before:

    localised (ear fit >= -3.9): exact rejected 9/504 swapped rejected 504/504; English head (>= -7.7): exact
    rejected 31/504 swapped rejected 502/504; tune: ...

    .venv/bin/python bench/transcript_acceptance.py [--seed 15] [--keep DIR] [--json results.json]
        [--detection 3000] [--detection-only] [--languages] [--localised]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = Path("/usr/share/pocketsphinx/test/data")
# (tool, voice, rate): espeak-ng words per minute, festival Duration_Stretch, flite duration_stretch.
VOICES = [("espeak-ng", v, r) for v, r in (("en-us", 175), ("en-gb", 150), ("en-us+f3", 200), ("en-gb-scotland", 130),
                                           ("en-029", 220), ("en-gb-x-rp", 175), ("en-us+m7", 160),
                                           ("en-us+klatt", 260))]
VOICES += [("text2wave", v, r) for v, r in (("kal_diphone", 1.0), ("ked_diphone", 1.2),
                                            ("cmu_us_slt_arctic_hts", 1.0), ("cmu_us_slt_arctic_hts", 0.8))]
VOICES += [("flite", v, r) for v, r in (("slt", 1.0), ("rms", 1.2), ("awb", 1.0), ("kal16", 0.85), ("kal", 1.0),
                                        ("slt", 0.8))]
# Short lines as NPCs say them (written for this bench).
BARKS = ("Yes.", "No way!", "Follow me.", "Hello there, traveller.", "Watch out!", "Over here!", "I need more gold.",
         "Stay close.", "What do you want?", "Thank you kindly.", "Get down!", "Move along.")
NEAR_WORDS = ("table", "river", "yellow", "quickly", "seven", "garden", "music", "winter", "doctor", "silver")


@dataclass
class Line:
    name: str
    group: str  # "tts" or "real"
    kind: str  # "sentence" or "bark" (TTS), "real"
    voice: str
    samples: np.ndarray
    text: str
    half: str  # "tune" or "test"


def synthesize(tool: str, voice: str, rate: float, text: str, wav: Path) -> Path:
    if tool == "espeak-ng":
        cmd = ["espeak-ng", "-v", voice, "-s", str(int(rate)), "-w", str(wav), text]
    elif tool == "text2wave":
        txt = wav.with_suffix(".txt")
        txt.write_text(text, encoding="utf-8")
        cmd = ["text2wave", "-o", str(wav), "-eval", f"(voice_{voice})", "-eval",
               f"(Parameter.set 'Duration_Stretch {rate})", str(txt)]
    else:
        cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={rate}", "-t", text, "-o", str(wav)]
    subprocess.run(cmd, check=True, capture_output=True)
    return wav


def tts_lines(folder: Path, n_sentences: int, seed: int) -> list[Line]:
    from facepolicy.core.audio import load_audio
    from model.data.sentences import sentence

    missing = sorted({tool for tool, _, _ in VOICES if shutil.which(tool) is None})
    if missing:
        sys.exit(f"needs {', '.join(missing)} (bash run.sh test installs the TTS tools)")
    rng = np.random.default_rng(seed)
    texts: list[tuple[str, str]] = []
    while len(texts) < n_sentences:
        text, _ = sentence(rng)
        if 5 <= len(text.split()) <= 16 and all(text != t for t, _ in texts):
            texts.append((text, "sentence"))
    texts += [(b, "bark") for b in BARKS]
    out = []
    for k, (text, kind) in enumerate(texts):
        tool, voice, rate = VOICES[k % len(VOICES)]
        wav = synthesize(tool, voice, rate, text, folder / f"tts{k:02d}.wav")
        half = "tune" if (k + k // len(VOICES)) % 2 == 0 else "test"
        out.append(Line(f"tts{k:02d}", "tts", kind, f"{tool} {voice} {rate}", load_audio(wav).samples, text, half))
    return out


def real_lines() -> list[Line]:
    from facepolicy.core.audio import from_array, load_audio

    clips = [(w, w.with_suffix(".txt").read_text(encoding="utf-8").strip())
             for w in sorted((ROOT / "tests" / "data" / "arctic").glob("*.wav"))]
    demo = ROOT / "assets" / "audio" / "demo" / "dashwood.wav"
    clips.append((demo, demo.with_suffix(".txt").read_text(encoding="utf-8").strip()))
    for listing in (TESTDATA / "librivox" / "transcription", TESTDATA / "cards" / "cards.transcription"):
        if listing.exists():
            for row in listing.read_text(encoding="utf-8").splitlines():
                m = re.match(r"<s>\s*(.*?)\s*</s>\s*\((.+)\)", row.strip())
                if m and (listing.parent / f"{m.group(2)}.wav").exists():
                    clips.append((listing.parent / f"{m.group(2)}.wav", m.group(1)))
    out = [Line(w.stem, "real", "real", "real", load_audio(w).samples, text, "tune" if k % 2 == 0 else "test")
           for k, (w, text) in enumerate(clips)]
    raw = TESTDATA / "goforward.raw"
    if raw.exists():
        samples = from_array(np.fromfile(raw, dtype="<i2").astype(np.float32) / 32768.0, 16000).samples
        out.append(Line("goforward", "real", "real", "real", samples, "go forward ten meters",
                        "tune" if len(out) % 2 == 0 else "test"))
    return out


def swapped_text(lines: list[Line], k: int) -> str:
    """Another line's text from the same kind (sentences with sentences, barks with barks, real with real)."""
    same = [j for j, line in enumerate(lines) if line.kind == lines[k].kind]
    return lines[same[(same.index(k) + len(same) // 2) % len(same)]].text


def near_miss(text: str, rng: np.random.Generator) -> str:
    words = text.split()
    for i in rng.choice(len(words), size=max(1, round(len(words) / 4)), replace=False):
        words[i] = NEAR_WORDS[int(rng.integers(len(NEAR_WORDS)))]
    return " ".join(words)


def try_transcript(line: Line, text: str) -> tuple[bool, float | None, str]:
    from facepolicy.core.evidence import TRANSCRIPT, gather_evidence

    heard = gather_evidence(line.samples, text, None)
    return heard.source == TRANSCRIPT, heard.fit, "; ".join(heard.warnings)


def midpoint(rows: list[dict]) -> tuple[float, float, float]:
    """(lowest exact fit, highest swapped fit, the threshold midway) over ``rows``; a refused alignment has no fit
    and counts as the lowest possible."""
    def fits(kind):
        return [r["fit"] if r["fit"] is not None else -np.inf for r in rows if r["case"] == kind]

    low, high = min(fits("exact")), max(fits("swapped"))
    return low, high, round(0.5 * (low + high), 1)


def language_detection(n: int, seed: int) -> str:
    """One line: how many of ``n`` generated English sentences are taken for another language (each is named), and
    how many sentences of the per-language development set are taken for their own language."""
    from facepolicy.core.align import shared_aligner
    from facepolicy.core.letters import ALIGNED
    from facepolicy.core.transcript import transcript_language
    from model.data import languages, sentences

    known = shared_aligner().in_dictionary
    rng = np.random.default_rng(seed)
    wrong = []
    for _ in range(n):
        text, _kind = sentences.sentence(rng)
        verdict = transcript_language(text, known)
        if not verdict.english:
            wrong.append(f"{text!r} ({verdict.reason})")
    for line in wrong:
        print(f"  English sentence taken for another language: {line}")
    own = total = aligned = 0
    for lang in languages.LANGUAGES:
        if lang.code == "en":
            continue
        for text in lang.sentences:
            code = transcript_language(text, known).code
            total += 1
            own += code == lang.code
            aligned += code == lang.code and code in ALIGNED
            if code != lang.code:
                print(f"  {lang.name} sentence taken for {code}: {text!r}")
    return (f"language detection: {len(wrong)}/{n} generated English sentences taken for another language; dev set: "
            f"{own}/{total} sentences taken for their own language, {aligned} of them aligned as it "
            f"({', '.join(ALIGNED)})")


def language_acceptance(root: Path) -> list[str]:
    """Per language that core.letters aligns: its dev-set clips with their own text and with the text of the clip
    two on (other sentences, same voicing); one line each."""
    import soundfile as sf

    from facepolicy.core.evidence import TRANSCRIPT, gather_evidence
    from facepolicy.core.letters import ALIGNED
    from model.data import languages

    out = []
    for code in ALIGNED:
        folder = languages.build_language(languages.BY_CODE[code], root)
        wavs = sorted(folder.glob("*.wav"))
        texts = [w.with_suffix(".txt").read_text(encoding="utf-8") for w in wavs]
        tries = {"exact": [], "swapped": []}
        for k, wav in enumerate(wavs):
            samples, _ = sf.read(str(wav), dtype="float32")
            for case, text in (("exact", texts[k]), ("swapped", texts[(k + 2) % len(wavs)])):
                heard = gather_evidence(samples, text, None)
                tries[case].append((heard.source == TRANSCRIPT, heard.fit))
        fits = {case: [f for _, f in t if f is not None] for case, t in tries.items()}
        out.append(f"{code}: exact used {sum(u for u, _ in tries['exact'])}/{len(wavs)} (lowest fit "
                   f"{min(fits['exact'], default=float('nan')):.1f}), swapped refused "
                   f"{sum(not u for u, _ in tries['swapped'])}/{len(wavs)} (highest fit "
                   f"{max(fits['swapped'], default=float('nan')):.1f}; unaligned {len(wavs) - len(fits['swapped'])})")
    return out


# --localised: espeak-ng variants and speeds (words per minute); the tuning half's variants, the rest are the test half.
LOCALISED_VARIANTS = ("m3", "klatt2", "m7", "f5", "f2", "david", "klatt", "croak")
LOCALISED_TUNE = ("m3", "klatt2", "m7", "f5")
LOCALISED_SPEEDS = (130, 175, 230)


def _localised_tries(folder: Path, code: str, voice: str, variant: str, speed: int, kind: str, spoken: str,
                     other: str) -> list[dict]:
    """One localised line made with the espeak-ng command, tried with its text and with ``other``."""
    from facepolicy.core import evidence
    from facepolicy.core.align import shared_aligner
    from facepolicy.core.audio import load_audio
    from facepolicy.core.listener import shared_listener
    from facepolicy.core.phones import PHONES

    wav = folder / f"{code}-{variant}-{speed}-{kind.replace(' ', '')}.wav"
    subprocess.run(["espeak-ng", "-v", f"{voice}+{variant}", "-s", str(speed), "-w", str(wav), spoken], check=True,
                   capture_output=True)
    samples = load_audio(wav).samples
    probs = shared_listener().phone_probs(samples, PHONES)
    rows = []
    for case, text in (("exact", spoken), ("swapped", other)):
        heard = evidence.gather_evidence(samples, text, None, language=code)  # as a studio sets it
        try:
            aligned = shared_aligner().align(samples, text, 16000, language=code)
            english = evidence.transcript_fit(aligned, probs, shared_listener().frame_rate)
        except Exception:  # noqa: BLE001 - not aligned: no fit, as the rule sees it
            english = None
        rows.append({"language": code, "voice": variant, "speed": speed, "kind": kind, "case": case, "text": text,
                     "half": "tune" if variant in LOCALISED_TUNE else "test",
                     "used": heard.source == evidence.TRANSCRIPT, "fit": heard.fit, "english_head_fit": english})
    return rows


def localised_acceptance(folder: Path) -> tuple[list[dict], str]:
    """Every try of --localised (a row each: language, voice, speed, half, case, used, the rule's fit and the
    English head's) and the summary line."""
    from facepolicy.core import evidence
    from facepolicy.core.letters import ALIGNED
    from model.data import languages

    rows = []
    for code in ALIGNED:
        lang = languages.BY_CODE[code]
        n = len(lang.sentences)
        for v, variant in enumerate(LOCALISED_VARIANTS):
            for speed in LOCALISED_SPEEDS:
                k = (v * len(LOCALISED_SPEEDS) + speed) % n
                rows += _localised_tries(folder, code, lang.voice, variant, speed, "sentence", lang.sentences[k],
                                         lang.sentences[(k + n // 2) % n])
                for j, (_, line) in enumerate(x for x in languages.LOCALISED_LINES if x[0] == code):
                    rows += _localised_tries(folder, code, lang.voice, variant, speed, f"game line {j}", line,
                                             lang.sentences[(k + j) % n])

    def refused(case, ok):
        sel = [r for r in rows if r["case"] == case]
        return f"{sum(not ok(r) for r in sel)}/{len(sel)}"

    halves = []
    for half in ("tune", "test"):
        # tries that could not be aligned have no fit for any rule to judge
        low, high, mid = midpoint([r for r in rows if r["half"] == half and r["fit"] is not None])
        halves.append(f"{half}: exact min {low:.2f} swapped max {high:.2f} -> midpoint {mid}")
    floor = evidence.TRANSCRIPT_MIN_FIT
    head = lambda r: r["english_head_fit"] is not None and r["english_head_fit"] >= floor  # noqa: E731
    line = (f"localised (ear fit >= {evidence.EAR_MIN_FIT}): exact rejected {refused('exact', lambda r: r['used'])} "
            f"swapped rejected {refused('swapped', lambda r: r['used'])}; English head (>= {floor}): exact rejected "
            f"{refused('exact', head)} swapped rejected {refused('swapped', head)}; " + "; ".join(halves))
    return rows, line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=48, help="generated sentences (12 short barks are added)")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--keep", type=Path, help="keep the synthesized lines here")
    ap.add_argument("--json", type=Path, help="write every try here")
    ap.add_argument("--detection", type=int, default=3000, help="generated English sentences for the language check")
    ap.add_argument("--detection-only", action="store_true", help="only the language check (no audio)")
    ap.add_argument("--languages", action="store_true",
                    help="only the aligned languages' dev-set clips with their own and another clip's text")
    ap.add_argument("--localised", action="store_true",
                    help="only localised lines (dev-set sentences and game lines in the aligned languages) made with "
                         "the espeak-ng command in eight voices at three speeds, with their own and another's text")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.localised:
        with tempfile.TemporaryDirectory(prefix="fp_localised_") as tmp:
            folder = args.keep or Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            rows, line = localised_acceptance(folder)
        for r in rows:
            if r["used"] != (r["case"] == "exact"):
                print(f"  {r['language']} {r['voice']} {r['speed']} {r['kind']} {r['case']}: used {r['used']}, "
                      f"fit {r['fit']}")
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1, ensure_ascii=False), encoding="utf-8")
        print(line)
        return 0
    detection = language_detection(args.detection, args.seed)
    print(detection)
    if args.languages:
        for line in language_acceptance(ROOT / "cache" / "languages"):
            print(line)
    if args.detection_only or args.languages:
        return 0
    from facepolicy.core.evidence import TRANSCRIPT_MIN_FIT

    with tempfile.TemporaryDirectory(prefix="fp_transcripts_") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        tts = tts_lines(folder, args.sentences, args.seed)
    lines = tts + real_lines()
    rng = np.random.default_rng(args.seed)
    rows = []
    print(f"{'line':44s} {'half':4s} {'voice':34s} {'case':8s} {'fit':>6s} used  text")
    for group in (tts, lines[len(tts):]):
        for k, line in enumerate(group):
            for case, text in (("exact", line.text), ("swapped", swapped_text(group, k)),
                               ("near", near_miss(line.text, rng))):
                used, fit, why = try_transcript(line, text)
                rows.append({"line": line.name, "group": line.group, "kind": line.kind, "voice": line.voice,
                             "half": line.half, "case": case, "text": text, "fit": fit, "used": used, "why": why})
                shown = "  -  " if fit is None else f"{fit:6.1f}"
                print(f"{line.name[-44:]:44s} {line.half:4s} {line.voice:34s} {case:8s} {shown} "
                      f"{'yes ' if used else 'no  '}  {text[:60]}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")

    def count(rows_, case, used, group=None):
        sel = [r for r in rows_ if r["case"] == case and (group is None or r["group"] == group)]
        return sum(r["used"] == used for r in sel), len(sel)

    halves = []
    for half in ("tune", "test"):
        part = [r for r in rows if r["half"] == half]
        low, high, mid = midpoint(part)
        fr, fn = count(part, "exact", False)
        sr, sn = count(part, "swapped", False)
        halves.append(f"{half}: exact min {low:.1f} swapped max {high:.1f} -> midpoint {mid}, exact rejected "
                      f"{fr}/{fn}, swapped rejected {sr}/{sn}")
    fr, fn = count(rows, "exact", False)
    tr, tn = count(rows, "exact", False, "tts")
    rr, rn = count(rows, "exact", False, "real")
    sr, sn = count(rows, "swapped", False)
    nr, nn = count(rows, "near", False)
    print(f"\ntranscript acceptance (fit >= {TRANSCRIPT_MIN_FIT}): exact rejected {fr}/{fn} (tts {tr}/{tn}, real "
          f"{rr}/{rn}), swapped rejected {sr}/{sn} ({100 * sr / max(1, sn):.1f}%), near-miss rejected {nr}/{nn}; "
          + "; ".join(halves))
    print(detection)
    return 0


if __name__ == "__main__":
    sys.exit(main())
