"""Live audio in: raw PCM bytes to float samples, the default microphone, and a low-delay resampler to 16 kHz.

A live source delivers audio in chunks of any size; these keep what a chunk leaves over (an odd byte, the samples
a filter still needs) for the next one, so the result does not depend on how the audio was cut.
"""

from __future__ import annotations

import math
import queue

import numpy as np

from . import spec
from .errors import FacePolicyError

# Zero crossings of the windowed-sinc kernel each side: about 1 ms of delay at 16 kHz, stop band below -70 dB.
_ZEROS = 16
# The kernel's pass band ends this far below the lower Nyquist frequency, so the transition band does not alias.
_PASS = 0.92


class PcmDecoder:
    """Signed 16-bit little-endian PCM bytes → float32 samples in [-1, 1); a trailing odd byte waits for its pair."""

    def __init__(self) -> None:
        self._odd = b""

    def push(self, data: bytes) -> np.ndarray:
        data = self._odd + bytes(data)
        whole = len(data) & ~1
        self._odd = data[whole:]
        return np.frombuffer(data[:whole], "<i2").astype(np.float32) / 32768.0

    @property
    def pending(self) -> int:
        """Bytes held back (0 or 1)."""
        return len(self._odd)


class Resampler:
    """Band-limited resampling of a stream from ``rate_in`` to ``rate_out`` Hz, chunk by chunk.

    Output sample m sits at input time m / rate_out; it is a windowed-sinc (Blackman) interpolation of the input
    around that time, with the cut-off below the lower of the two Nyquist frequencies. A sample is given out as soon
    as the input reaches _ZEROS kernel lobes past it, so the delay is about 1 ms. Memory holds one kernel's reach.
    """

    def __init__(self, rate_in: int, rate_out: int = spec.SAMPLE_RATE):
        if rate_in <= 0 or rate_out <= 0:
            raise ValueError(f"sample rates must be positive, got {rate_in} and {rate_out}")
        g = math.gcd(int(rate_in), int(rate_out))
        self.up, self.down = int(rate_out) // g, int(rate_in) // g  # output m ↔ input position m * down / up
        self.cut = _PASS * min(1.0, self.up / self.down)  # in cycles per input sample × 2 (1 = input Nyquist)
        self.reach = int(math.ceil(_ZEROS / self.cut))  # input samples each side of a position
        self._buf = np.zeros(self.reach, np.float32)  # silence before the first sample
        self._base = -self.reach  # absolute input index of _buf[0]
        self._n_in = 0
        self._n_out = 0

    @property
    def passthrough(self) -> bool:
        return self.up == self.down

    def push(self, x: np.ndarray) -> np.ndarray:
        """The output samples the input so far completes (possibly none)."""
        x = np.asarray(x, np.float32).reshape(-1)
        if self.passthrough:
            self._n_in += len(x)
            self._n_out += len(x)
            return x
        self._buf = np.concatenate([self._buf, x])
        self._n_in += len(x)
        # Output m reads input up to floor(m * down / up) + reach, which must be below n_in.
        last = ((self._n_in - self.reach) * self.up - 1) // self.down
        return self._render(last + 1 - self._n_out)

    def finish(self) -> np.ndarray:
        """The rest of the output (round(n_in · rate_out / rate_in) samples in all), the input padded with silence."""
        if self.passthrough:
            return np.zeros(0, np.float32)
        total = int(round(self._n_in * self.up / self.down))
        self._buf = np.concatenate([self._buf, np.zeros(self.reach + 1, np.float32)])
        return self._render(max(0, total - self._n_out))

    def _render(self, count: int) -> np.ndarray:
        if count <= 0:
            return np.zeros(0, np.float32)
        m = np.arange(self._n_out, self._n_out + count, dtype=np.int64)
        whole = (m * self.down) // self.up
        frac = ((m * self.down) % self.up) / self.up
        taps = np.arange(-self.reach + 1, self.reach + 1)
        d = frac[:, None] - taps[None, :]  # distance from each tap to the output position, in input samples
        window = 0.42 + 0.5 * np.cos(np.pi * d / self.reach) + 0.08 * np.cos(2 * np.pi * d / self.reach)
        kernel = self.cut * np.sinc(self.cut * d) * np.where(np.abs(d) < self.reach, window, 0.0)
        idx = whole[:, None] + taps[None, :] - self._base
        y = (self._buf[idx] * kernel).sum(axis=1).astype(np.float32)
        self._n_out += count
        # Keep the input the next output still reaches.
        keep_from = (self._n_out * self.down) // self.up - self.reach + 1 - self._base
        if keep_from > 0:
            self._buf = self._buf[keep_from:]
            self._base += keep_from
        return y


class Microphone:
    """The default input device through PortAudio (the optional ``sounddevice`` package): blocks of
    ``block_seconds`` of mono float32 samples at ``rate`` (the device's own rate when None), read with ``read``.
    Raises FacePolicyError with one sentence when the package, PortAudio or a microphone is missing."""

    def __init__(self, rate: int | None = None, block_seconds: float = 0.01):
        try:
            import sounddevice
        except ImportError:
            raise FacePolicyError("listening to the microphone needs the sounddevice package: pip install "
                                  "'facepolicy[live]' (or pip install sounddevice)") from None
        except OSError as exc:  # the package is there, the PortAudio library it loads is not
            raise FacePolicyError(f"the microphone cannot be used: sounddevice could not load PortAudio ({exc}); "
                                  "install PortAudio (e.g. apt install libportaudio2)") from None
        try:
            device = sounddevice.query_devices(kind="input")
        except Exception as exc:  # noqa: BLE001 - PortAudio reports a missing device with its own error types
            raise FacePolicyError(f"no microphone was found ({str(exc).splitlines()[0]})") from None
        self.name = str(device["name"])
        self.rate = int(rate or device["default_samplerate"])
        self._blocks: queue.Queue[np.ndarray] = queue.Queue()
        try:
            self._stream = sounddevice.InputStream(samplerate=self.rate, channels=1, dtype="float32",
                                                   blocksize=max(1, int(self.rate * block_seconds)),
                                                   callback=self._callback)
            self._stream.start()
        except Exception as exc:  # noqa: BLE001 - PortAudio's errors
            raise FacePolicyError(f'the microphone "{self.name}" cannot be opened at {self.rate} Hz ({exc})') \
                from None

    def _callback(self, indata, frames, when, status) -> None:  # PortAudio's thread
        self._blocks.put(indata[:, 0].copy())

    def read(self, timeout: float = 0.5) -> np.ndarray:
        """The next block, or no samples when none came within ``timeout`` seconds."""
        try:
            return self._blocks.get(timeout=timeout)
        except queue.Empty:
            return np.zeros(0, np.float32)

    def close(self) -> None:
        self._stream.stop()
        self._stream.close()
