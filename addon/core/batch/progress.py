"""How a batch shows itself: the terminal progress bar while it runs, the summary table when it ends."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from .rows import RowResult


class Progress:
    """The terminal progress bar of a bake: percent done, elapsed and remaining time, lines per minute.

    Drawn with tqdm, only when ``stream`` is a terminal: piped or logged output stays quiet (the summary table
    says everything). tqdm comes with the console script; Blender's Python has none and the bake runs without a
    bar there. ``advance`` moves the bar within the current line (the engine's progress, on the thread that runs
    it); ``update`` counts a finished line.
    """

    def __init__(self, total: int, stream=None):
        self.total = total
        self.done = 0
        self.failed = 0
        self.baked = 0  # lines finished "ok": the only ones a speed is about
        self.t0 = time.monotonic()
        self._bar = _terminal_bar(total, stream or sys.stderr)
        self._position = 0.0  # lines done, plus the fraction of the line in progress
        self._logs = None
        if self._bar is not None:
            from tqdm.contrib.logging import logging_redirect_tqdm

            # Log lines (a CUDA warning, ...) are printed above the bar instead of through it.
            self._logs = logging_redirect_tqdm()
            self._logs.__enter__()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def rate(self) -> float:
        """Lines finished per minute so far."""
        minutes = self.elapsed() / 60
        return self.done / minutes if minutes > 0 else 0.0

    def advance(self, fraction: float, message: str) -> None:
        """The line in progress is ``fraction`` done (ProgressFn); ``message`` says what the engine is doing."""
        if self._bar is not None:
            self._bar.set_postfix_str(message if self.total == 1 else f"{self._counts()}, {message}", refresh=False)
            self._move_to(self.done + min(max(fraction, 0.0), 1.0))

    def update(self, result: RowResult) -> None:
        self.done += 1
        self.failed += result.status == "failed"
        self.baked += result.status == "ok"
        if self._bar is not None:
            self._bar.set_postfix_str(self._counts(), refresh=False)
            self._move_to(self.done)

    def speed(self) -> str | None:
        """How fast the lines were baked, for the end of the run ("2 lines baked in 3.1s (38.7 lines/min)"); None when
        none was baked: a line that failed or was cancelled says nothing about speed."""
        if not self.baked:
            return None
        elapsed = self.elapsed()
        rate = f" ({self.baked / (elapsed / 60):.1f} lines/min)" if elapsed > 0 else ""
        return f"{self.baked} line{'s' if self.baked != 1 else ''} baked in {elapsed:.1f}s{rate}"

    def _counts(self) -> str:
        return f"{self.done}/{self.total} lines, {self.rate():.1f} lines/min, {self.failed} failed"

    def _move_to(self, position: float) -> None:
        step = position - self._position
        if step > 0:  # a line finished by another worker can be ahead of the one reporting its fraction
            self._position = position
            self._bar.update(step)

    def close(self) -> None:
        if self._bar is not None:
            self._logs.__exit__(None, None, None)
            self._bar.close()


def _terminal_bar(total: int, stream):
    """A tqdm bar on ``stream`` when it is a terminal and tqdm is installed, else None."""
    if total < 1 or not getattr(stream, "isatty", lambda: False)():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, file=stream, dynamic_ncols=True, smoothing=0.1,
                bar_format="{percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}")


def summary_table(results: Sequence[RowResult]) -> str:
    """A plain-text table of every row (sorted as given) and a totals line."""
    results = sorted(results, key=lambda r: r.index)
    head = ("#", "output", "status", "seconds", "message")
    body = [(str(r.index), r.output or "-", "up to date" if r.status == "skipped" else r.status,
             f"{r.seconds:.2f}" if r.status == "ok" else "", r.message) for r in results]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    widths[-1] = 0
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)).rstrip() for b in body]
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "skipped", "failed", "cancelled")}
    lines.append(f"{counts['ok']} baked, {counts['skipped']} up to date, {counts['failed']} failed"
                 + (f", {counts['cancelled']} cancelled" if counts["cancelled"] else ""))
    return "\n".join(lines)
