"""Live Link Face UDP packets: the bytes the iPhone Live Link Face app sends and Unreal's Live Link plugin reads.

Big-endian: ``uint8`` version 6; the device id and the subject name, each an ``int32`` byte length then UTF-8
bytes; the frame time as ``int32`` frame, ``float32`` sub-frame, ``int32`` rate numerator, ``int32`` denominator;
``uint8`` count 61; then 61 ``float32``: the 52 ARKit weights in Unreal's ``EARFaceBlendShape`` order, then head
yaw, pitch, roll, left eye yaw, pitch, roll, right eye yaw, pitch, roll (radians).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

import numpy as np

from . import spec
from .errors import FacePolicyError

VERSION = 6
DEFAULT_PORT = 11111  # the port Live Link Face and Unreal's Live Link Face source use
DEFAULT_SUBJECT = "FacePolicy"
DEVICE_ID = "FacePolicy"

# Unreal's EARFaceBlendShape order: the Live Link Face CSV's (spec.ARKIT_NAMES) except that the enum has jawLeft
# before jawRight and mouthLeft before mouthRight.
_EAR_SWAPS = {"jawRight": "jawLeft", "jawLeft": "jawRight", "mouthRight": "mouthLeft", "mouthLeft": "mouthRight"}
EAR_NAMES: tuple[str, ...] = tuple(_EAR_SWAPS.get(n, n) for n in spec.ARKIT_NAMES)
# The packet's 61 values by name: the weights, then the Live Link columns for head and eyes (eye roll is always 0).
PACKET_NAMES: tuple[str, ...] = EAR_NAMES + spec.LIVELINK_EXTRA_COLUMNS
NUM_VALUES = len(PACKET_NAMES)
# Column of spec.CHANNEL_NAMES each packet value comes from (-1: always 0).
_SOURCE = np.array([spec.CHANNEL_INDEX[n] for n in EAR_NAMES]
                   + [spec.CHANNEL_INDEX[c] if c else -1 for c in spec.LIVELINK_EXTRA_TO_CHANNEL.values()])
_HEAD = struct.Struct(">B")
_LENGTH = struct.Struct(">i")
_TIME = struct.Struct(">ifiiB")
_VALUES = struct.Struct(f">{NUM_VALUES}f")


@dataclass(frozen=True)
class Packet:
    """One decoded packet."""

    version: int
    device_id: str
    subject: str
    frame: int
    subframe: float
    rate: tuple[int, int]  # (numerator, denominator) frames per second
    values: np.ndarray  # (NUM_VALUES,) float32 in PACKET_NAMES order

    def value(self, name: str) -> float:
        return float(self.values[PACKET_NAMES.index(name)])


def packet_values(states: np.ndarray) -> np.ndarray:
    """(frames, NUM_VALUES) float32 packet values for (frames, NUM_CHANNELS) canonical states (or one frame)."""
    states = np.asarray(states, np.float32)
    frames = states.reshape(-1, spec.NUM_CHANNELS)
    out = np.zeros((len(frames), NUM_VALUES), np.float32)
    have = _SOURCE >= 0
    out[:, have] = frames[:, _SOURCE[have]]
    return out if states.ndim == 2 else out[0]


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return _LENGTH.pack(len(data)) + data


def encode_packet(values: np.ndarray, frame: int, rate: tuple[int, int] = (spec.MODEL_FPS, 1),
                  subject: str = DEFAULT_SUBJECT, device_id: str = DEVICE_ID, subframe: float = 0.0) -> bytes:
    """The packet for one frame: ``values`` (NUM_VALUES,) in PACKET_NAMES order (packet_values)."""
    values = np.asarray(values, np.float32).reshape(-1)
    if len(values) != NUM_VALUES:
        raise ValueError(f"a Live Link Face packet carries {NUM_VALUES} values, got {len(values)}")
    return b"".join((_HEAD.pack(VERSION), _string(device_id), _string(subject),
                     _TIME.pack(int(frame), float(subframe), int(rate[0]), int(rate[1]), NUM_VALUES),
                     _VALUES.pack(*values.tolist())))


def decode_packet(data: bytes) -> Packet:
    """A packet's fields; raises ValueError with one sentence when the bytes are not a version-6 packet."""
    try:
        (version,) = _HEAD.unpack_from(data, 0)
        if version != VERSION:
            raise ValueError(f"Live Link Face packet version {version}, expected {VERSION}")
        at = 1
        texts = []
        for _ in range(2):
            (n,) = _LENGTH.unpack_from(data, at)
            if n < 0 or at + 4 + n > len(data):
                raise ValueError(f"Live Link Face packet string length {n} does not fit the packet")
            texts.append(data[at + 4 : at + 4 + n].decode("utf-8"))
            at += 4 + n
        frame, subframe, num, den, count = _TIME.unpack_from(data, at)
        at += _TIME.size
        if count != NUM_VALUES:
            raise ValueError(f"Live Link Face packet carries {count} values, expected {NUM_VALUES}")
        if len(data) != at + _VALUES.size:
            raise ValueError(f"Live Link Face packet is {len(data)} bytes, expected {at + _VALUES.size}")
        values = np.array(_VALUES.unpack_from(data, at), np.float32)
    except (struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"not a Live Link Face packet ({exc})") from None
    return Packet(version, texts[0], texts[1], frame, subframe, (num, den), values)


def parse_address(text: str) -> tuple[str, int]:
    """(host, port) from ``HOST:PORT`` (``HOST`` alone: the Live Link Face port); [v6]:port for IPv6."""
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host, port = text.strip(), str(DEFAULT_PORT)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise FacePolicyError(f'"{text}": not a HOST:PORT address (for example 127.0.0.1:{DEFAULT_PORT})')
    return host, int(port)


class Sender:
    """Sends each frame's packet over UDP to one address, numbering frames from 0 (audio time 0)."""

    def __init__(self, address: str, fps: int, subject: str = DEFAULT_SUBJECT, device_id: str = DEVICE_ID):
        host, port = parse_address(address)
        try:
            info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        except OSError as exc:
            raise FacePolicyError(f'"{address}": cannot resolve the Live Link address ({exc.strerror or exc})') \
                from None
        self.socket = socket.socket(info[0], socket.SOCK_DGRAM)
        self.target = info[4]
        self.rate = (int(fps), 1)
        self.subject, self.device_id = subject, device_id
        self.frames_sent = 0

    def send(self, states: np.ndarray) -> None:
        """One packet per row of (frames, NUM_CHANNELS) canonical ``states``, in order."""
        for row in packet_values(np.asarray(states).reshape(-1, spec.NUM_CHANNELS)):
            packet = encode_packet(row, self.frames_sent, self.rate, self.subject, self.device_id)
            try:
                self.socket.sendto(packet, self.target)
            except OSError as exc:
                # A receiver that is not listening yet (ICMP port unreachable) loses this frame, as it would from
                # the phone; anything else is a real network failure.
                if not isinstance(exc, ConnectionRefusedError):
                    raise FacePolicyError(f"cannot send Live Link packets to {self.target[0]}:{self.target[1]} "
                                          f"({exc.strerror or exc})") from None
            self.frames_sent += 1

    def close(self) -> None:
        self.socket.close()
