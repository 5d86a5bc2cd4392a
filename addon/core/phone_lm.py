"""pocketsphinx's phone language model for all-phone recognition, with the closures raised (offline and live)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from .errors import FacePolicyError
from .fileio import atomic_write_text
from .ps_native import load_pocketsphinx

PHONE_LM_WEIGHT = 2.0
BILABIAL_BOOST = 1.2  # log10 added to phone-LM probabilities of M, B and P


@functools.cache
def _phone_lm_arpa(source: str) -> str:
    """The binary phone LM as ARPA text.

    The LogMath is held in a variable on purpose: NGramModel keeps only a borrowed pointer to it, and a temporary
    (or NGramModel.readfile's implicit one) is freed under the model, which then writes garbage scores.
    """
    ps = load_pocketsphinx()
    logmath = ps.LogMath()
    config = ps.Config()
    model = ps.NGramModel(config, logmath, source)
    with tempfile.TemporaryDirectory(prefix="fp_lm_") as tmp:
        arpa = Path(tmp) / "phone.arpa"
        model.write(str(arpa), ps.NGramModel.str_to_type("arpa"))
        text = arpa.read_text(encoding="utf-8")
    del model, logmath, config
    unigrams = text.split("\\1-grams:", 1)[-1].split("\\2-grams:", 1)[0]
    scores = [float(line.split("\t")[0]) for line in unigrams.splitlines() if "\t" in line]
    if not scores or not all(-99.5 < v <= 0 for v in scores):
        raise FacePolicyError("pocketsphinx's phone language model could not be read; reinstall pocketsphinx")
    return text


def bilabial_phone_lm(boost: float = BILABIAL_BOOST) -> Path:
    """pocketsphinx's phone language model with the unigrams M, B and P, and every n-gram that starts with one of
    them, raised by ``boost`` (log10). (The file writes an n-gram's words tab-separated and the first is read: the
    n-grams that end in them are not raised. Every figure was measured so; docs/BENCHMARKS.md, tenth session.)

    Built once from the installed model and kept in the temp folder (about 0.4 MB).
    """
    ps = load_pocketsphinx()
    source = Path(ps.get_model_path("en-us/en-us-phone.lm.bin"))
    stat = source.stat()
    out = Path(tempfile.gettempdir()) / f"facepolicy-phone-lm-{stat.st_size}-{int(stat.st_mtime)}-{boost:.2f}.arpa"
    if out.exists():
        return out
    lines = _phone_lm_arpa(str(source)).split("\n")
    in_ngrams = False
    for k, line in enumerate(lines):
        if line.startswith("\\"):
            in_ngrams = line.endswith("-grams:")
            continue
        fields = line.split("\t")
        if in_ngrams and len(fields) >= 2 and fields[1].split(" ")[-1] in {"M", "B", "P"}:
            logp = float(fields[0])
            if logp > -98:
                fields[0] = f"{logp + boost:.4f}"
                lines[k] = "\t".join(fields)
    atomic_write_text(out, "\n".join(lines))
    return out
