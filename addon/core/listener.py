"""The shipped neural model's audio encoder used as a frame-wise phone classifier (one small ONNX session): it checks
transcripts, gives recognition its second opinion and hears where the audio is silence (core.evidence).

Two phone classifiers read the encoder's features. Its own ``phone_logits``, trained with the model on English
voices, gives the second opinion and the silence, and checks English transcripts: their rules were tuned and measured
on it. The ear (``ear.onnx`` beside the encoder, model/ear.py: trained afterwards on twelve languages and English
with the encoder frozen) checks transcripts aligned in other languages, whose vowels the English head heard so poorly
that right lines were refused (core.evidence.ear_fit). It runs only for those lines, on the features the encoder
gave. A model without one (fine-tuned before the ear shipped) has ``has_ear`` False and checks every transcript the
English way."""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .engine import check_cancel
from .errors import FacePolicyError
from .model_files import create_session, read_model_files
from .phones import PHONES
from .spec import SAMPLE_RATE

BILABIAL_PHONES = ("p", "b", "m")
AUDIO_OUTPUTS = ["features", "phone_logits"]
# The encoder's features of a listening pass are kept for the sampler up to this much audio (10 min: 15 MB); longer
# lines are encoded again group by group, so memory stays bounded on long audio.
KEEP_SECONDS = 600.0


@dataclass
class EncodedAudio:
    """The audio encoder's features over a whole line, as the listener computed them: ``features`` (rows, D) on the
    encoder's grid (MEL_RATE / stride), row 0 being grid frame ``first`` (negative: frames before the audio).
    Rows before the audio's end are the ones the sampler's own windows compute, bit for bit."""

    features: np.ndarray
    first: int


class BilabialListener:
    """The audio encoder's phone classifier (named for its first use, the closures recognition misses)."""

    MARGIN = 40  # mel frames of context each side of a block (the encoder's receptive field is smaller)
    BLOCK = 1000  # mel frames per encoder call (10 s): memory stays bounded on long audio, the same probabilities

    def __init__(self, model_dir: Path | str | None = None, block: int | None = None, *, session=None,
                 stride: int = 1, ear: Path | None = None):
        """From the model in ``model_dir`` (default: the shipped one), or from an audio-encoder ``session`` that
        is already open (the Neural engine's) with its ``stride`` and the model's ``ear`` file (None: none)."""
        if session is None:
            files = read_model_files(model_dir)
            stride = int(files.manifest["model"].get("audio_stride", 1))
            session, _ = create_session(files.network("audio_encoder"), "cpu")
            ear = ear_file(files)
        self.session, self.stride = session, int(stride)
        outputs = [o.name for o in self.session.get_outputs()]
        if "phone_logits" not in outputs:
            raise FacePolicyError("the neural model's audio encoder has no phone classifier output")
        self.ear_path = ear
        self._ear_session = None
        self._ear_lock = threading.Lock()
        self.block = int(block or self.BLOCK)
        self.block -= self.block % self.stride  # blocks start on the encoder's grid

    @property
    def has_ear(self) -> bool:
        return self.ear_path is not None

    def _ear(self):
        """The ear's ONNX session, opened on first use (most lines never need it)."""
        with self._ear_lock:
            if self._ear_session is None:
                self._ear_session, _ = create_session(self.ear_path, "cpu")
            return self._ear_session

    @property
    def frame_rate(self) -> float:
        from .features import MEL_RATE

        return MEL_RATE / self.stride

    def bilabial_probs(self, samples: np.ndarray, cancel: threading.Event | None = None) -> np.ndarray:
        """(frames, 3) probabilities of p, b and m per encoder frame (phone_probs)."""
        return self.phone_probs(samples, BILABIAL_PHONES, cancel)

    def phone_probs(self, samples: np.ndarray, phones, cancel: threading.Event | None = None) -> np.ndarray:
        """(frames, len(phones)) probabilities of ``phones`` per encoder frame; blocks overlap by MARGIN mel
        frames, so the result does not depend on the block size."""
        return self.listen(samples, phones, cancel)[0]

    def listen(self, samples: np.ndarray, phones, cancel: threading.Event | None = None,
               keep: bool = False) -> tuple[np.ndarray, EncodedAudio | None]:
        """phone_probs, and with ``keep`` the encoder's audio features of the same pass (EncodedAudio; None for
        audio longer than KEEP_SECONDS), which the sampler uses instead of encoding the audio again."""
        probs, encoded, _ = self.listen_checking(samples, phones, cancel, keep, check=False)
        return probs, encoded

    def listen_checking(self, samples: np.ndarray, phones, cancel: threading.Event | None = None,
                        keep: bool = False, check: bool = True
                        ) -> tuple[np.ndarray, EncodedAudio | None, np.ndarray | None]:
        """listen, and with ``check`` in the same pass the ear's probabilities of every phone (frames, NUM_PHONES);
        None without ``check`` or without an ear."""
        from .features import log_mel, n_mel_frames

        columns = [PHONES.index(p) for p in phones]
        n_mel = n_mel_frames(len(samples))
        n_mel += (-n_mel) % self.stride
        keep = keep and len(samples) <= KEEP_SECONDS * SAMPLE_RATE
        check = check and self.has_ear
        out, kept, heard = [], [], []
        for m0 in range(0, n_mel, self.block):
            check_cancel(cancel)
            m1 = min(n_mel, m0 + self.block)
            lo = m0 - self.MARGIN
            mel = log_mel(samples, start_frame=lo, n_frames=m1 - lo + self.MARGIN)
            feats, logits = self.session.run(AUDIO_OUTPUTS, {"mel": mel[None]})
            inner = slice(self.MARGIN // self.stride, (self.MARGIN + m1 - m0) // self.stride)
            if keep:
                # The first block's left margin too: the sampler's first window starts MARGIN mel frames before the
                # audio as well, so those rows are the ones it would compute.
                kept.append(feats[0, : inner.stop] if m0 == 0 else feats[0, inner])
            p = _softmax(logits[0, inner])
            out.append(p[:, columns])
            if check:
                (ear,) = self._ear().run(None, {"features": feats})
                heard.append(_softmax(ear[0, inner]))
        probs = np.concatenate(out) if out else np.zeros((0, len(columns)))
        encoded = EncodedAudio(np.concatenate(kept), -self.MARGIN // self.stride) if kept else None
        every = (np.concatenate(heard) if heard else np.zeros((0, len(PHONES)))) if check else None
        return probs, encoded, every


def ear_file(files) -> Path | None:
    """The ear's ONNX file of a model (core.model_files.ModelFiles), None when it has none or model.json does not
    list it with its checksum (every file a model runs is verified)."""
    name = files.manifest["onnx"].get("ear")
    return files.root / name if name and name in files.manifest["files"] else None


def _softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x -= x.max(axis=1, keepdims=True)
    p = np.exp(x)
    return p / p.sum(axis=1, keepdims=True)


@functools.lru_cache(maxsize=1)
def shared_listener() -> BilabialListener:
    """One listener per process, on the shipped model (a failed load is not cached: the next bake tries again)."""
    return BilabialListener()
