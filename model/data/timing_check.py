"""Check each TTS engine's phone timings against pocketsphinx forced alignment and measure its onset bias.

    python -m model.data.timing_check [--sentences 12] [--seed 0]

For every engine, matched phones (same label in both sequences, found by sequence alignment) give onset
differences engine − aligner. festival and flite write the timings their audio was built from, so their
offset is the aligner's own bias; an engine whose offset differs from theirs (espeak-ng's phoneme events)
is corrected by the difference, so its lips neither lead nor lag.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from dataclasses import dataclass

import numpy as np

from facepolicy.core.phones import SIL, PhoneSegment

from . import espeak, festival, flite, sentences
from .speech import Utterance


@dataclass
class OnsetStats:
    engine: str
    n: int
    median_ms: float
    mean_ms: float
    mae_ms: float  # mean |difference| after removing the median
    failed: int = 0  # utterances the aligner found no path for

    def line(self) -> str:
        return (f"{self.engine}: {self.n} onsets, median {self.median_ms:+.1f} ms, mean {self.mean_ms:+.1f} ms, "
                f"spread (MAE about the median) {self.mae_ms:.1f} ms, {self.failed} utterances not aligned")


PAD_S = 0.25


class Aligner:
    """pocketsphinx 5 forced alignment (its bundled en-us model and dictionary)."""

    def __init__(self) -> None:
        # Batch CMN makes each alignment independent of the previous one; without filler words between
        # every pair of words the first (text) pass finds a path on far more synthetic utterances.
        self.decoder = self._new_decoder()

    @staticmethod
    def _new_decoder():
        from pocketsphinx import Decoder

        return Decoder(samprate=16000, loglevel="FATAL", cmn="batch", fsgusefiller=False)

    def words(self, text: str) -> list[str] | None:
        """Transcript words, or None when one is not in the dictionary (such a sentence is skipped)."""
        words = re.findall(r"[a-z']+", text.lower())
        if not words or any(self.decoder.lookup_word(w) is None for w in words):
            return None
        return words

    def align(self, samples: np.ndarray, words: list[str]) -> list[PhoneSegment] | None:
        """Phone segments, or None when pocketsphinx finds no path through the transcript."""
        pad = np.zeros(int(PAD_S * 16000), np.float32)  # the text pass needs silence at both ends
        pcm = (np.clip(np.concatenate([pad, samples, pad]), -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        d = self.decoder
        try:
            d.set_align_text(" ".join(words))
            for _ in range(2):  # first pass: word alignment; second: phones inside it
                d.start_utt()
                d.process_raw(pcm, full_utt=True)
                d.end_utt()
                if _ == 0:
                    d.set_alignment()
            alignment = d.get_alignment()
        except RuntimeError:
            self.decoder = self._new_decoder()  # a failed search can leave the decoder mid-utterance
            return None
        frame = 1.0 / 100.0
        out = []
        for word in alignment:
            for ph in word:
                name = ph.name.lower()
                start = ph.start * frame - PAD_S
                out.append(PhoneSegment(SIL if name == "sil" else name, start, start + ph.duration * frame))
        return out


# A matched pair further apart than this is an aligner error (a word it lost), not an engine bias.
OUTLIER_S = 0.15


def onset_differences(engine: list[PhoneSegment], reference: list[PhoneSegment]) -> list[float]:
    """Onset differences (seconds) of phones matched between two label sequences, silence and outliers
    excluded."""
    a = [s for s in engine if s.phone != SIL]
    b = [s for s in reference if s.phone != SIL]
    matcher = difflib.SequenceMatcher(a=[s.phone for s in a], b=[s.phone for s in b], autojunk=False)
    diffs = []
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            sa, sb = a[block.a + k], b[block.b + k]
            if sa.start > 0.0 and sb.start > 0.0 and abs(sa.start - sb.start) < OUTLIER_S:
                diffs.append(sa.start - sb.start)
    return diffs


def summarise(engine: str, diffs: list[float], failed: int = 0) -> OnsetStats:
    d = np.asarray(diffs) * 1000.0
    med = float(np.median(d))
    return OnsetStats(engine, len(d), med, float(d.mean()), float(np.mean(np.abs(d - med))), failed)


def test_sentences(seed: int, count: int, aligner: Aligner) -> list[str]:
    """Digit-free sentences whose words are all in the aligner's dictionary."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    while len(out) < count:
        text, kind = sentences.sentence(rng)
        if kind != "number" and aligner.words(text) is not None:
            out.append(text)
    return out


def measure(count: int = 12, seed: int = 0, aligner: Aligner | None = None, by_voice: bool = False,
            correct_espeak: bool = False, engines: tuple[str, ...] = ("espeak-ng", "festival", "flite"),
            ) -> dict[str, OnsetStats]:
    """Onset statistics per engine (or per voice) over ``count`` sentences spread across each engine's voices."""
    aligner = aligner or Aligner()
    texts = test_sentences(seed, count, aligner)
    results: dict[str, list[float]] = {}
    failed: dict[str, int] = {}

    def add(name: str, utt: Utterance, voice_id: str) -> None:
        name = voice_id if by_voice else name
        ref = aligner.align(utt.samples, aligner.words(utt.text))
        results.setdefault(name, [])
        if ref is None:
            failed[name] = failed.get(name, 0) + 1
        else:
            results[name].extend(onset_differences(utt.phones, ref))

    if "espeak-ng" in engines:
        for i, text in enumerate(texts):
            voice = espeak.EspeakVoice(espeak.BASE_VOICES[i % 2], ("", "m3", "f2", "klatt")[i % 4])
            add("espeak-ng", espeak.synthesize(text, voice, correct_bias=correct_espeak), voice.voice_id)
    if "festival" in engines:
        for k, name in enumerate(festival.VOICES):
            part = texts[k::len(festival.VOICES)]
            for utt in festival.synthesize_batch(part, festival.FestivalVoice(name)):
                add("festival", utt, f"festival:{name}")
    if "flite" in engines:
        for i, text in enumerate(texts):
            voice = flite.FliteVoice(flite.VOICES[i % len(flite.VOICES)])
            add("flite", flite.synthesize(text, voice), voice.voice_id)
    return {name: summarise(name, d, failed.get(name, 0)) for name, d in results.items()}


def espeak_correction(stats: dict[str, OnsetStats]) -> float:
    """Seconds to add to espeak-ng's boundaries so its offset matches the exact engines' offset."""
    exact = [stats[k].median_ms for k in ("festival", "flite") if k in stats]
    if "espeak-ng" not in stats or not exact:
        raise RuntimeError("need espeak-ng and at least one exact engine (festival or flite)")
    return -(stats["espeak-ng"].median_ms - float(np.mean(exact))) / 1000.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--by-voice", action="store_true", help="also print the figures of every voice")
    args = parser.parse_args(argv)
    aligner = Aligner()
    if args.by_voice:
        for s in measure(args.sentences, args.seed, aligner, by_voice=True).values():
            print(s.line())
    stats = measure(args.sentences, args.seed, aligner)
    for s in stats.values():
        print(s.line())
    corr = espeak_correction(stats)
    print(f"espeak-ng onset correction: {corr * 1000:+.1f} ms "
          f"(in use: {espeak.ESPEAK_ONSET_CORRECTION_S * 1000:+.1f} ms)")
    corrected = measure(args.sentences, args.seed, aligner, correct_espeak=True, engines=("espeak-ng",))
    print("corrected " + corrected["espeak-ng"].line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
