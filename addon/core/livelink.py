"""Live Link Face CSV: the layout Epic's iPhone app records and Unreal's Live Link Face importer reads.

Columns: ``Timecode`` (HH:MM:SS:FF.mmm), ``BlendShapeCount``, the 52 capitalised ARKit names, then
HeadYaw/HeadPitch/HeadRoll and LeftEye*/RightEye* Yaw/Pitch/Roll. The file carries no frame rate, so the
timecode rate is the nominal rate (round(fps)) and the fraction after the dot is the sub-frame in 1/1000.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from pathlib import Path

import numpy as np

from . import spec
from .errors import TrackFormatError
from .facetrack import FaceTrack

log = logging.getLogger("facepolicy")

_TIMECODE_RATES = (24, 25, 30, 50, 60, 120)
_HEADER_PREFIX = ("Timecode", "BlendShapeCount")


def format_timecode(seconds: float, rate: int) -> str:
    """HH:MM:SS:FF.mmm at an integer timecode rate; mmm is the sub-frame in thousandths."""
    total = round(seconds * rate * 1000)  # whole thousandths of a frame, avoids float drift
    frames_total, sub = divmod(total, 1000)
    secs_total, ff = divmod(frames_total, rate)
    mm_total, ss = divmod(secs_total, 60)
    hh, mm = divmod(mm_total, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}.{sub:03d}"


def parse_timecode(text: str, rate: int) -> float:
    """Seconds from HH:MM:SS:FF[.mmm] at an integer timecode rate."""
    try:
        hh, mm, ss, rest = text.strip().split(":")
        ff, _, sub = rest.partition(".")
        frames = int(ff) + (int(sub.ljust(3, "0")[:3]) / 1000.0 if sub else 0.0)
        return int(hh) * 3600 + int(mm) * 60 + int(ss) + frames / rate
    except ValueError:
        raise ValueError(f"bad timecode {text!r} (expected HH:MM:SS:FF.mmm)") from None


def _nominal_rate(fps: float) -> int:
    return max(1, int(round(fps)))


def _livelink_csv_blocks(track: FaceTrack, start_seconds: float = 0.0, block: int = 2000):
    """The Live Link Face CSV text for ``track``: the header, then ``block`` frames at a time (so an hour's take
    never exists as one string or one float64 table)."""
    rate = _nominal_rate(track.fps)
    n_arkit = spec.NUM_ARKIT
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(_HEADER_PREFIX + spec.LIVELINK_COLUMNS)
    yield buf.getvalue()
    extra_idx = [
        spec.CHANNEL_INDEX[c] if c is not None else None for c in spec.LIVELINK_EXTRA_TO_CHANNEL.values()
    ]
    count = str(len(spec.LIVELINK_COLUMNS))
    for a in range(0, track.n_frames, block):
        full = FaceTrack(track.fps, track.names, track.values[a : a + block]).select(spec.CHANNEL_NAMES)
        table = np.zeros((full.n_frames, n_arkit + len(extra_idx)), np.float64)
        table[:, :n_arkit] = full.values[:, :n_arkit]
        for j, i in enumerate(extra_idx):
            if i is not None:
                table[:, n_arkit + j] = full.values[:, i]
        # Every value as the shortest repr of its float64 (exact for the float32 it came from), a row per frame; the
        # rows hold only numbers and timecodes, so they need no CSV quoting and are joined directly (10x faster).
        times = (format_timecode(start_seconds + (a + k) / track.fps, rate) for k in range(full.n_frames))
        rows = zip(times, table.tolist(), strict=True)
        yield "".join(f"{tc},{count},{','.join(map(repr, row))}\n" for tc, row in rows)


def track_to_livelink_csv(track: FaceTrack, start_seconds: float = 0.0) -> str:
    """The Live Link Face CSV text for ``track``. Channels the track lacks are written as 0."""
    return "".join(_livelink_csv_blocks(track, start_seconds))


def write_livelink_csv(track: FaceTrack, path, start_seconds: float = 0.0) -> None:
    from .fileio import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        for text in _livelink_csv_blocks(track, start_seconds):
            f.write(text)


def _snap_fps(fps: float) -> float:
    for common in spec.COMMON_FPS:
        if abs(fps - common) / common < 5e-4:
            return common
    return round(fps, 3)


def livelink_csv_to_track(text: str, source: str = "take.csv", fps: float | None = None) -> FaceTrack:
    """Read Live Link Face CSV text into a FaceTrack with the canonical channels.

    Missing channels become 0 and unknown columns are ignored; both are logged and listed in
    ``meta["import_warnings"]``. ``fps`` overrides the rate inferred from the timecodes.
    """
    rows = list(csv.reader(io.StringIO(text)))
    rows = [r for r in rows if r and any(cell.strip() for cell in r)]
    if not rows:
        raise TrackFormatError(f'"{source}": the file is empty')
    header = [h.strip() for h in rows[0]]
    if not header or header[0] != "Timecode":
        raise TrackFormatError(f'"{source}": not a Live Link Face CSV (the first column must be Timecode)')
    data = rows[1:]
    col = {name: i for i, name in enumerate(header)}
    by_column = {c: ch for c, ch in zip(spec.LIVELINK_ARKIT_COLUMNS, spec.ARKIT_NAMES, strict=True)}
    by_column.update({c: ch for c, ch in spec.LIVELINK_EXTRA_TO_CHANNEL.items() if ch is not None})
    known = set(_HEADER_PREFIX) | set(spec.LIVELINK_COLUMNS)
    unknown = [h for h in header if h not in known]
    # Eye roll columns carry no channel, so their absence loses nothing and is not reported.
    missing = [c for c in spec.LIVELINK_COLUMNS
               if c not in col and spec.LIVELINK_EXTRA_TO_CHANNEL.get(c, "") is not None]
    warnings = []
    if missing:
        warnings.append(f"missing columns set to 0: {', '.join(missing)}")
    if unknown:
        warnings.append(f"unknown columns ignored: {', '.join(unknown)}")

    values = np.zeros((len(data), spec.NUM_CHANNELS), np.float32)
    timecodes = []
    for r, row in enumerate(data, start=2):
        if len(row) < len(header):
            raise TrackFormatError(f'"{source}", line {r}: {len(row)} cells but the header has {len(header)}')
        timecodes.append(row[0])
        for column, channel in by_column.items():
            i = col.get(column)
            if i is None:
                continue
            try:
                v = float(row[i])
            except ValueError:
                raise TrackFormatError(f'"{source}", line {r}: {column} is not a number: {row[i]!r}') from None
            if not math.isfinite(v):
                raise TrackFormatError(f'"{source}", line {r}: {column} is {row[i]}')
            values[r - 2, spec.CHANNEL_INDEX[channel]] = v

    if fps is None:
        fps = _infer_fps(timecodes, source)
    start = 0.0
    if timecodes:
        rate = _guess_timecode_rate(timecodes, fps)
        try:
            start = parse_timecode(timecodes[0], rate)
        except ValueError as exc:
            raise TrackFormatError(f'"{source}": {exc}') from None
    for w in warnings:
        log.warning('"%s": %s', source, w)
    meta = {"source": source, "timecode_start": start}
    if warnings:
        meta["import_warnings"] = warnings
    return FaceTrack(fps, spec.CHANNEL_NAMES, values, meta)


def _guess_timecode_rate(timecodes: list[str], fps_hint: float | None = None) -> int:
    if fps_hint:
        return _nominal_rate(fps_hint)
    max_ff = 0
    for tc in timecodes:
        try:
            max_ff = max(max_ff, int(tc.strip().split(":")[3].split(".")[0]))
        except (IndexError, ValueError):
            continue
    return next((r for r in _TIMECODE_RATES if r > max_ff), _TIMECODE_RATES[-1])


def _infer_fps(timecodes: list[str], source: str) -> float:
    if len(timecodes) < 2:
        return float(spec.MODEL_FPS)
    rate = _guess_timecode_rate(timecodes)
    try:
        t = np.array([parse_timecode(tc, rate) for tc in timecodes])
    except ValueError as exc:
        raise TrackFormatError(f'"{source}": {exc}') from None
    dt = np.diff(t)
    dt = dt[dt > 0]
    if dt.size == 0:
        raise TrackFormatError(f'"{source}": timecodes do not advance')
    return _snap_fps(1.0 / float(np.median(dt)))


def read_livelink_csv(path, fps: float | None = None) -> FaceTrack:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise TrackFormatError(f'"{path}": cannot read ({exc.strerror or exc})') from None
    except UnicodeDecodeError:
        raise TrackFormatError(f'"{path.name}": not a text file') from None
    return livelink_csv_to_track(text, source=path.name, fps=fps)
