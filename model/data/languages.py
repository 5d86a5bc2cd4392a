"""A per-language development set: espeak-ng voices of twelve languages speak sentences written for FacePolicy; the
phone timings come from espeak-ng's phoneme events (IPA names) and are mapped, through their lip class, onto the
ARPAbet phones the lip-sync metrics score (p/b/m closure, open vowels, pauses; rounding and the f/v tuck for the
teacher).

espeak-ng is GPL: it makes evaluation data only and is never linked or shipped by the add-on. The sentences are
FacePolicy's own text (model/data/TEXT_LICENCE.md: CC0). Japanese is written in kana (espeak-ng reads no kanji) with
the particles spelled as spoken (わ, え); Mandarin in tone-numbered pinyin (espeak-ng's cmn voice reads Chinese
characters as English letter names).

    .venv/bin/python -m model.data.languages [--out cache/languages] [--languages es,fr]   # writes name.wav/.lab/.txt
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facepolicy.core.phones import BILABIALS, LABIODENTALS, OPEN_VOWELS, ROUNDED, SIL, PhoneSegment

from . import espeak
from .phonemap import IPA
from .speech import Utterance, concatenate, shift_onsets, to_16k

DEV_SET_VERSION = 1  # bump when the mapping, the sentences or the voices change (the cache is rebuilt)


@dataclass(frozen=True)
class Language:
    code: str  # the short name used in tables (ISO 639-1 where there is one)
    name: str
    voice: str  # espeak-ng voice name
    sentences: tuple[str, ...]


LANGUAGES: tuple[Language, ...] = (
    Language("en", "English (US)", "en-us", (
        "My mother made apple pie, but Bob ate most of the pumpkin bread.",
        "Please pass the map. I am lost somewhere in the big market.",
        "Maybe we can stop by the harbour and watch the boats come back.",
        "The barber opened his shop at nine and combed my hair.",
        "Tom bought a lamp, a broom and a box of plums.",
        "Pam laughed, and the band played a calm and happy tune.")),
    Language("es", "Spanish", "es", (
        "Mi madre compró pan y mantequilla en el mercado del pueblo.",
        "El barco blanco para en el puerto cada mañana.",
        "Pablo bebe un vaso de agua bien fría antes de comer.",
        "Ayer paseamos por el campo y vimos muchas palomas.",
        "¿Me puedes prestar tu mapa? Busco la plaza mayor.",
        "Mamá preparó una sopa de tomate para la cena.")),
    Language("fr", "French", "fr", (
        "Le petit bonhomme mange une pomme au bord du mur.",
        "Ma maman prépare un bon pot-au-feu pour midi.",
        "Paul a perdu son parapluie dans le métro ce matin.",
        "Nous aimons beaucoup marcher au bord de la mer.",
        "Le boulanger ouvre sa boutique à sept heures du matin.",
        "Peux-tu m'apporter deux bouteilles d'eau, s'il te plaît ?")),
    Language("de", "German", "de", (
        "Meine Mutter backt am Montag immer Brot für uns.",
        "Der Bäcker bringt morgens frische Brötchen und Milch.",
        "Bitte mach das Fenster auf, es ist warm im Zimmer.",
        "Wir haben im Sommer oft am Meer gebadet.",
        "Papa malt ein großes Bild mit blauen Blumen.",
        "Am Abend spielen die Kinder im Park Ball.")),
    Language("it", "Italian", "it", (
        "Mia madre ha comprato un bel pomodoro al mercato.",
        "Il bambino mangia una mela e beve molto latte.",
        "Per favore, apri la porta: fa molto caldo.",
        "Domani mattina andiamo al mare con Paolo.",
        "Mio padre porta sempre un ombrello blu.",
        "Abbiamo passato una bella settimana a Roma.")),
    Language("pt", "Portuguese (Portugal)", "pt", (
        "A minha mãe comprou maçãs e pão bem cedo.",
        "O menino bebe um copo de leite pela manhã.",
        "Por favor, abra a porta, está muito calor.",
        "Amanhã vamos passear na praia com o Paulo.",
        "O meu pai pintou um barco branco e azul.",
        "Passámos uma semana maravilhosa em Lisboa.")),
    Language("nl", "Dutch", "nl", (
        "Mijn moeder maakt met plezier een beetje boterbrood.",
        "De bakker brengt 's morgens verse broodjes en melk.",
        "Mag ik de map even pakken? Hij ligt op de kamer.",
        "We hebben in de zomer vaak bij de zee gespeeld.",
        "Papa maakt een groot schilderij met blauwe bloemen.",
        "Morgen gaan we met de boot naar Amsterdam.")),
    Language("pl", "Polish", "pl", (
        "Moja mama kupiła bardzo piękny obraz w mieście.",
        "Pan Paweł pije mleko i je bułkę z masłem.",
        "Proszę, otwórz okno, bo jest bardzo ciepło.",
        "Jutro rano pojedziemy nad morze z bratem.",
        "Mój brat ma małego psa i białego kota.",
        "Po pracy poszliśmy do parku na spacer.")),
    Language("sv", "Swedish", "sv", (
        "Min mamma bakar bröd på måndag morgon.",
        "Pappa köpte mjölk, smör och äpplen i butiken.",
        "Var snäll och öppna fönstret, det är varmt.",
        "Vi badade i havet varje morgon i somras.",
        "Barnen leker med en boll i parken.",
        "Mormor bjuder på kaffe och bullar.")),
    Language("tr", "Turkish", "tr", (
        "Bu sabah annem pazardan bol meyve aldı.",
        "Babam her pazar bahçede mangal yapar.",
        "Lütfen pencereyi aç, burası çok sıcak.",
        "Yarın sabah arkadaşımla denize gideceğim.",
        "Mehmet bir bardak su ve biraz ekmek istedi.",
        "Bebek mama yedikten sonra mışıl mışıl uyudu.")),
    Language("ja", "Japanese", "ja", (
        "ままわ まいあさ ぱんを たべます。",
        "ぼくわ あさから ばすに のって みなとまで いきました。",
        "あめが ふったので かさを もって いきましょう。",
        "ももと まめを かいに まちの みせえ いきます。",
        "はまべで ともだちと ぼーるで あそびました。",
        "まいばん ほんを よんでから ねます。")),
    Language("zh", "Mandarin (pinyin)", "cmn-latn-pinyin", (
        "ma1 ma5 mai3 le5 yi4 ben3 piao4 liang5 de5 shu1.",
        "ba4 ba5 mei3 tian1 zao3 shang5 dou1 pao3 bu4.",
        "wo3 men5 ming2 tian1 qu4 gong1 yuan2 pa2 shan1.",
        "mei4 mei5 xi3 huan1 chi1 mian4 bao1 he2 mang2 guo3.",
        "qing3 ba3 men2 da3 kai1, fang2 jian1 li3 tai4 men4 le5.",
        "lao3 ban3 mai4 de5 pu2 tao5 fei1 chang2 pian2 yi5.")),
)
BY_CODE = {lang.code: lang for lang in LANGUAGES}

# One localised game line per language a transcript can be aligned in (two in Italian), FacePolicy's own text and in
# no training text: the transcript journeys (tests/journeys/test_transcripts.py) and bench/transcript_acceptance.py
# --localised speak them with the espeak-ng command, as a studio would.
LOCALISED_LINES: tuple[tuple[str, str], ...] = (
    ("es", "Pablo bebe un vaso de agua y come pan con mantequilla."),
    ("de", "Bitte bring mir morgen ein Paket mit Obst und Brot vom Markt."),
    ("fr", "Mon papa boit un bon café au lait ce matin."),
    ("it", "Maria mangia una mela e un panino con il burro."),
    ("it", "Paolo compra il pane e beve molto latte la mattina."),
    ("pt", "O meu pai compra pão e bolo para a mamã."),
    ("sv", "Min bror bakar bröd och köper mjölk på morgonen."),
    ("pl", "Mama kupiła mleko i bułki na obiad."),
    ("tr", "Bu akşam babam ve ben çok güzel bir pasta yaptık."),
    ("zh", "ma1ma5 mai3 le5 mian4bao1 he2 pu2tao2."),
    ("ja", "ぼくは まいにち ぱんを たべます。"),
)

# Each sentence is spoken twice: a male voice at a calm rate and a female variant a little faster. A clip is two
# sentences with a pause between them (and a little silence around), so pauses are scored too.
VOICINGS: tuple[tuple[str, int, int], ...] = (("", 160, 45), ("f3", 185, 60))
PAUSE_S = 0.5
EDGE_S = 0.3

# IPA phonemes beyond English, by lip class, as the ARPAbet phone with the same mouth shape. They take precedence
# over model.data.phonemap.IPA (made for English voices), where a language's phoneme differs from English's:
# - front rounded vowels: y as uw, ʏ as uh, ø as ow (close/close-mid, rounded), œ and ɶ as ao (open-mid, rounded);
# - close-mid e (German Beet, Spanish e) as ey: spread and half open, not an "open vowel" (ɛ is);
# - unrounded close back ɯ (Turkish ı) as ih; Japanese compressed ɯᵝ as uh;
# - bilabial approximant β (Spanish b/v between vowels) and fricative ɸ (Japanese ふ) narrow the lips without
#   sealing them: the f/v class, never scored as a closure;
# - the lips play no part in uvular r (ʁ, ʀ, χ): /h/, which takes the neighbouring vowel's shape;
# - alveolo-palatal and retroflex sibilants (Polish ś ć, Mandarin sh) as sh/ch, which round the lips a little.
LIP_IPA: dict[str, tuple[str, ...]] = {
    "y": ("uw",), "ʏ": ("uh",), "ø": ("ow",), "œ": ("ao",), "ɶ": ("ao",), "ɥ": ("w",),
    "e": ("ey",), "ɯ": ("ih",), "ɯᵝ": ("uh",), "ɤ": ("ah",),
    "β": ("v",), "ɸ": ("f",),
    "ʁ": ("hh",), "ʀ": ("hh",), "χ": ("hh",), "ħ": ("hh",), "ʕ": ("hh",),
    "ɕ": ("sh",), "ʑ": ("zh",), "tɕ": ("ch",), "dʑ": ("jh",), "ʂ": ("sh",), "ʐ": ("zh",), "tʂ": ("ch",),
    "dʐ": ("jh",), "pf": ("p", "f"),
    "ɲ": ("n",), "ɴ": ("ng",), "ɳ": ("n",), "ʎ": ("l",), "ɭ": ("l",), "ʝ": ("y",), "c": ("k",), "ɟ": ("g",),
    "ɰ": ("g",), "ʈ": ("t",), "ɖ": ("d",), "ɽ": ("t",), "ɻ": ("r",), "ʋ": ("v",),
    # espeak-ng's Mandarin phoneme names (aspiration written as h, retroflex as a dot)
    "ph": ("p",), "th": ("t",), "kh": ("k",), "s.": ("sh",), "z.": ("zh",), "ts.": ("ch",), "ts.h": ("ch",),
    "tsh": ("t", "s"), "tɕh": ("ch",), "i.": ("ih",), "ɑu": ("aw",), "au": ("aw",), "ai": ("ay",), "ou": ("ow",),
}

# Stress, length, ties, syllabicity and the other marks that carry no lip shape in espeak-ng's names ("ə-" is a
# reduced schwa; ʰ aspiration; ̃ nasal vowels keep their oral vowel's shape).
_MARKS = set("ˈˌːˑ:͡‿-ʰʲʷˠˤ˞ᵝ")


def _plain(name: str) -> str:
    """An espeak-ng IPA name without marks or combining diacritics ("ä" → "a", "o̞" → "o", "ɑ̃" → "ɑ")."""
    decomposed = unicodedata.normalize("NFD", name)
    return "".join(ch for ch in decomposed if ch not in _MARKS and not unicodedata.combining(ch)).strip()


def ipa_to_lip_phones(name: str) -> list[str]:
    """The ARPAbet phones with the mouth shapes of one espeak-ng IPA phoneme name (any language); a pause is ``sil``.

    Raises KeyError for a phoneme no table knows, so a new language cannot be scored with silently dropped phones.
    """
    exact = "".join(ch for ch in name if ch not in "ˈˌːˑ").strip()
    for key in (exact, _plain(name)):
        if not key or key in {"_", "|", "||"}:
            return [SIL]
        if key in LIP_IPA:
            return list(LIP_IPA[key])
        if key in IPA:
            return list(IPA[key])
    key = _plain(name)
    out: list[str] = []
    i = 0
    while i < len(key):  # diphthongs and clusters: the longest known pieces from the left
        for j in range(len(key), i, -1):
            piece = LIP_IPA.get(key[i:j]) or IPA.get(key[i:j])
            if piece:
                out.extend(piece)
                i = j
                break
        else:
            raise KeyError(f"espeak-ng phoneme {name!r} has no lip class")
    return out


def lip_class(phone: str) -> str:
    """The lip class of an ARPAbet phone as the metrics and the teacher see it."""
    if phone == SIL:
        return "pause"
    if phone in BILABIALS:
        return "m" if phone == "m" else "bilabial"
    if phone in LABIODENTALS:
        return "labiodental"
    if phone in OPEN_VOWELS:
        return "open"
    if phone in ROUNDED:
        return "rounded"
    return "other"


def _is_language_switch(name: str) -> bool:
    """espeak-ng announces a switch of phoneme table, e.g. "(en)", as a phoneme event of its own."""
    return name.startswith("(") and name.endswith(")")


def synthesize(text: str, voice: espeak.EspeakVoice) -> Utterance:
    """Speak ``text`` in any espeak-ng language; phones from the phoneme events through ``ipa_to_lip_phones``, with
    the onset correction measured on espeak-ng's English voices (the synthesiser is the same)."""
    eng = espeak._engine()
    audio, events = espeak._synth_isolated(text, voice)
    if len(audio) == 0:
        raise espeak.SynthesisError(f"espeak-ng produced no audio for {text!r}")
    native = len(audio) / eng.rate
    spans = []
    for kind, sample, raw, _pos in events:
        name = raw.split(b"\0", 1)[0].decode("utf-8")
        if kind == espeak._EVENT_PHONEME and not _is_language_switch(name):
            spans.append((sample / eng.rate, ipa_to_lip_phones(name)))
    segs = espeak._segments_from_events(spans, native)
    samples = to_16k(audio, eng.rate)
    duration = len(samples) / 16000
    segs = [PhoneSegment(s.phone, s.start * duration / native, s.end * duration / native) for s in segs]
    return Utterance(samples, shift_onsets(segs, espeak.ESPEAK_ONSET_CORRECTION_S, duration), text)


def write_lab(path: Path, phones: list[PhoneSegment]) -> None:
    """A seconds-based 'start end phone' label file, as core.metrics.read_lab reads it."""
    path.write_text("".join(f"{p.start:.5f} {p.end:.5f} {p.phone}\n" for p in phones), encoding="utf-8")


def _fingerprint(lang: Language) -> str:
    data = json.dumps([DEV_SET_VERSION, lang.voice, lang.sentences, VOICINGS, PAUSE_S, EDGE_S, LIP_IPA,
                       espeak.ESPEAK_ONSET_CORRECTION_S], ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:16]


def dev_clip(lang: Language, pair: int, voicing: int) -> Utterance:
    """Clip ``pair`` of the set in VOICINGS[``voicing``]: sentences 2·pair and 2·pair + 1, PAUSE_S apart, with EDGE_S
    of silence either side."""
    variant, rate, pitch = VOICINGS[voicing]
    voice = espeak.EspeakVoice(lang.voice, variant, rate, pitch)
    texts = lang.sentences[2 * pair:2 * pair + 2]
    parts = [synthesize(text, voice) for text in texts]
    silence = Utterance(np.zeros(int(EDGE_S * 16000), np.float32), [PhoneSegment(SIL, 0.0, EDGE_S)], "")
    utt = concatenate([silence, *parts, silence], [0.0] + [PAUSE_S] * (len(parts) - 1) + [0.0])
    return Utterance(utt.samples, utt.phones, " ".join(texts))


def build_language(lang: Language, out: Path) -> Path:
    """Write ``out/<code>/<k>-<voicing>.wav/.lab/.txt`` (sentences 2k and 2k+1 in each voicing) unless an up-to-date
    copy is there; returns the folder. The stamp file is written last, so an interrupted build is redone."""
    import soundfile as sf

    folder = out / lang.code
    stamp = folder / "devset.json"
    key = _fingerprint(lang)
    if stamp.exists() and json.loads(stamp.read_text(encoding="utf-8")).get("fingerprint") == key:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*"):
        old.unlink()
    for k in range(0, len(lang.sentences), 2):
        for voicing, (variant, _, _) in enumerate(VOICINGS):
            utt = dev_clip(lang, k // 2, voicing)
            name = f"{k // 2:02d}-{variant or 'm'}"
            sf.write(folder / f"{name}.wav", utt.samples, 16000, subtype="PCM_16")
            write_lab(folder / f"{name}.lab", utt.phones)
            (folder / f"{name}.txt").write_text(utt.text + "\n", encoding="utf-8")
    stamp.write_text(json.dumps({"fingerprint": key, "language": lang.name, "voice": lang.voice}), encoding="utf-8")
    return folder


def class_counts(phones: list[PhoneSegment]) -> dict[str, int]:
    """How many phones of each lip class (open vowels and pauses only where the metrics score them)."""
    from facepolicy.core.metrics import OPEN_VOWEL_MIN, PAUSE_MIN

    out = dict.fromkeys(("bilabial", "m", "open", "rounded", "labiodental", "pause"), 0)
    for p in phones:
        c = lip_class(p.phone)
        if c == "open" and p.duration < OPEN_VOWEL_MIN - 1e-9 or c == "pause" and p.duration < PAUSE_MIN - 1e-9:
            continue
        if c in out:
            out[c] += 1
        if c == "m":
            out["bilabial"] += 1
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="cache/languages")
    ap.add_argument("--languages", default=",".join(lang.code for lang in LANGUAGES))
    args = ap.parse_args(argv)
    from facepolicy.core.metrics import read_lab

    for code in args.languages.split(","):
        folder = build_language(BY_CODE[code], Path(args.out))
        labs = sorted(folder.glob("*.lab"))
        counts: dict[str, int] = {}
        seconds = 0.0
        for lab in labs:
            phones = read_lab(lab)
            seconds += phones[-1].end
            for c, n in class_counts(phones).items():
                counts[c] = counts.get(c, 0) + n
        print(f"{code}: {len(labs)} clips, {seconds:.1f} s, " + ", ".join(f"{c} {n}" for c, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
