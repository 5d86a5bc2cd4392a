"""`facepolicy live`: speech to faces in real time, from standard input, a microphone or a file, out to Unreal's Live
Link (Live Link Face UDP packets) and to a Live Link Face CSV of what was sent."""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..core import spec
from ..core.errors import FacePolicyError
from ..core.facetrack import FaceTrack
from ..core.livelink import track_to_livelink_csv
from ..core.livelink_packet import DEFAULT_PORT, DEFAULT_SUBJECT, Sender
from ..core.pcm import Microphone, PcmDecoder, Resampler

log = logging.getLogger("facepolicy")

FRAME_RATES = (30, 60)
CHUNK_SECONDS = 0.01  # a file or microphone is read 10 ms at a time: finer than a frame, so latency stays low
_READ_BYTES = 4096  # at most this much standard input per read; a pipe gives what it has without waiting for more


def add_parser(subparsers) -> None:
    """Add the `live` subcommand to the CLI's subparsers."""
    p = subparsers.add_parser(
        "live", help="animate a face from speech as it comes: Live Link to Unreal, and a CSV of the take",
        description="Stream speech to facial animation in real time with the Neural engine. Frames go out as Live "
        f"Link Face UDP packets (the iPhone app's format; Unreal's Live Link Face source listens on port "
        f"{DEFAULT_PORT}) and/or into a Live Link Face CSV, frame 0 at audio time 0. Each frame waits for 100 ms "
        "of audio after it (the model's look-ahead). At the end of the input the frames still held are sent and "
        "the command exits 0; Ctrl-C stops it, keeping the CSV of what was sent.",
        epilog="Examples: 'arecord -f S16_LE -r 16000 -c 1 | facepolicy live - --livelink 127.0.0.1:11111'; "
        "'facepolicy live line.wav --realtime --livelink 192.168.1.20:11111 --csv take.csv'; "
        "'facepolicy live --mic --livelink 127.0.0.1:11111' (needs: pip install 'facepolicy[live]').")
    p.add_argument("input", nargs="?", metavar="-|FILE",
                   help="'-': 16-bit little-endian mono PCM on standard input; or an audio file (wav, flac, ogg, "
                   "mp3, or a movie's sound with the video extra)")
    p.add_argument("--mic", action="store_true", help="listen to the default microphone (needs sounddevice)")
    p.add_argument("--input-rate", type=int, metavar="HZ",
                   help="sample rate of standard input or the microphone (default: 16000 for standard input, the "
                   "microphone's own rate for --mic)")
    p.add_argument("--realtime", action="store_true", help="play FILE at its real pace instead of as fast as possible")
    p.add_argument("--livelink", metavar="HOST:PORT", help=f"send Live Link Face packets (default port {DEFAULT_PORT})")
    p.add_argument("--subject", default=DEFAULT_SUBJECT, metavar="NAME",
                   help=f"the Live Link subject name (default: {DEFAULT_SUBJECT})")
    p.add_argument("--fps", type=int, default=30, choices=FRAME_RATES, help="frames per second sent (default: 30)")
    p.add_argument("--csv", metavar="FILE", help="also write the frames sent as a Live Link Face CSV")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default: 0)")
    p.add_argument("--style", metavar="PRESET|FILE", help="a style preset (see 'facepolicy styles') or a "
                   "reference file (.json track or Live Link .csv)")
    p.add_argument("--strength", type=float, default=1.0, metavar="X", help="style strength (default: 1.0)")
    p.add_argument("--emotion", default="neutral", choices=spec.EMOTIONS, help="emotion preset (default: neutral)")
    p.add_argument("--intensity", type=float, default=0.5, metavar="X",
                   help="emotion intensity, 0 to 1 (default: 0.5)")
    p.add_argument("--accuracy", choices=("fast", "accurate"), default="accurate",
                   help="accurate (default): pocketsphinx hears the phones as they come and the lips seal on "
                   "p/b/m; fast: the model listens alone (less CPU, fewer closures)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="compute device")
    p.add_argument("--model", metavar="DIR", help="a model folder with model.json, e.g. one made by fine-tuning, "
                   "instead of the bundled model; its checksums are verified")
    p.set_defaults(func=run)


def _check(args) -> None:
    sources = [args.input is not None, args.mic]
    if sum(sources) != 1:
        raise FacePolicyError("give one input: '-' for standard input, an audio FILE, or --mic")
    if args.realtime and (args.mic or args.input == "-"):
        raise FacePolicyError("--realtime plays a FILE at its pace; standard input and --mic already come in "
                              "real time")
    if args.input_rate is not None:
        if args.input not in (None, "-"):
            raise FacePolicyError("--input-rate is for standard input and --mic; a file says its own rate")
        if not 4000 <= args.input_rate <= 384000:
            raise FacePolicyError(f"--input-rate must be between 4000 and 384000 Hz, got {args.input_rate}")
    if not args.livelink and not args.csv:
        raise FacePolicyError("nothing to send the face to: give --livelink HOST:PORT and/or --csv FILE")
    if not (math.isfinite(args.strength) and args.strength >= 0):
        raise FacePolicyError(f"--strength must be 0 or more, got {args.strength}")
    if not (math.isfinite(args.intensity) and 0 <= args.intensity <= 1):
        raise FacePolicyError(f"--intensity must be between 0 and 1, got {args.intensity}")
    if not 0 <= args.seed < 2**32:
        raise FacePolicyError(f"--seed must be between 0 and {2**32 - 1}, got {args.seed}")


# --- sources: (sample rate, chunks of mono float32 samples) ---------------------------------------------------------

def _stdin_source(rate: int) -> tuple[int, Iterator[np.ndarray]]:
    def chunks():
        decoder = PcmDecoder()
        fd = sys.stdin.buffer.fileno()
        while True:
            data = os.read(fd, _READ_BYTES)
            if not data:
                if decoder.pending:
                    log.warning("standard input ended in the middle of a sample; its last byte was dropped")
                return
            yield decoder.push(data)

    return rate, chunks()


def _file_source(path: str, realtime: bool) -> tuple[int, Iterator[np.ndarray]]:
    from ..core.audio import load_audio

    # Decoded as it is, at the model's rate: the stream sets the loudness itself, from what it has heard so far.
    audio = load_audio(path, normalise=False)
    for warning in audio.warnings:
        log.warning("%s", warning)

    def chunks():
        block = int(audio.sample_rate * CHUNK_SECONDS)
        start = time.perf_counter()
        for a in range(0, len(audio.samples), block):
            b = min(len(audio.samples), a + block)
            if realtime:  # a chunk is "spoken" once its last sample's time has come
                time.sleep(max(0.0, start + b / audio.sample_rate - time.perf_counter()))
            yield audio.samples[a:b]

    return audio.sample_rate, chunks()


def _mic_source(rate: int | None) -> tuple[int, Iterator[np.ndarray]]:
    mic = Microphone(rate, CHUNK_SECONDS)
    log.info("the microphone is %s; Ctrl-C stops", mic.name)

    def chunks():
        try:
            while True:
                yield mic.read()  # an empty block after a quiet half second, so Ctrl-C is never kept waiting
        finally:
            mic.close()

    return mic.rate, chunks()


# --- sinks ------------------------------------------------------------------------------------------------------

class CsvTake:
    """A Live Link Face CSV written as the frames come (core.livelink's rows), flushed after each batch, so a
    take that stops at any moment is a valid file."""

    def __init__(self, path: Path, fps: int):
        self.path, self.fps, self.frames = path, fps, 0
        try:
            self.file = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise FacePolicyError(f'"{path}": cannot write the CSV ({exc.strerror or exc})') from None

    def write(self, frames: np.ndarray) -> None:
        for row in frames:
            text = track_to_livelink_csv(FaceTrack(self.fps, spec.CHANNEL_NAMES, row[None]), self.frames / self.fps)
            self.file.write(text if self.frames == 0 else text.split("\n", 1)[1])
            self.frames += 1
        self.file.flush()

    def close(self) -> None:
        if self.frames == 0:  # a take with no frame still gets its header
            self.file.write(track_to_livelink_csv(FaceTrack.zeros(0, self.fps)))
        self.file.close()


def run(args) -> int:
    from ..core.engine import get_engine
    from ..core.policy import emotion_vector
    from ..core.stream import FaceStream

    _check(args)
    if args.mic:
        rate, chunks = _mic_source(args.input_rate)
    elif args.input == "-":
        rate, chunks = _stdin_source(args.input_rate or spec.SAMPLE_RATE)
    else:
        rate, chunks = _file_source(args.input, args.realtime)
    engine = get_engine("neural")
    # One thread per ONNX call: the live plans are small, and more threads cost CPU without cutting the latency.
    policy = engine.policy(args.device, threads=1, model_dir=args.model)
    style, _ = engine.style_code(policy, args.style)
    stream = FaceStream(policy, policy.settings(seed=args.seed, style_scale=args.strength), style,
                        emotion_vector(args.emotion, args.intensity), fps=args.fps,
                        evidence=args.accuracy == "accurate")
    for warning in stream.warnings:
        log.warning("%s", warning)
    sender = Sender(args.livelink, args.fps, args.subject) if args.livelink else None
    take = CsvTake(Path(args.csv), args.fps) if args.csv else None
    resampler = Resampler(rate)
    log.info("live: listening (%d Hz in, %d fps out); each frame leaves %.0f ms after its audio", rate, args.fps,
             stream.latency() * 1000)

    def send(frames: np.ndarray) -> None:
        if sender is not None:
            sender.send(frames)
        if take is not None:
            take.write(frames)

    code = 0
    try:
        for chunk in chunks:
            stream.push(resampler.push(chunk))
            send(stream.pull())
        stream.push(resampler.finish())
        send(stream.finish())
    except KeyboardInterrupt:
        code = 130
    finally:
        if sender is not None:
            sender.close()
        if take is not None:
            take.close()
    seconds = stream.samples_in / spec.SAMPLE_RATE
    where = [f"to {args.livelink} as {args.subject!r}"] if sender else []
    where += [f'into "{args.csv}"'] if take else []
    print(f"live: {'stopped' if code else 'done'}: {stream.frames_out} frames at {args.fps} fps for {seconds:.2f} s "
          f"of audio, sent {' and '.join(where)}", file=sys.stderr)
    return code
