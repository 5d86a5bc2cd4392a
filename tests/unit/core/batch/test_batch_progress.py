"""core.batch.progress: the terminal progress bar and the summary table."""

from __future__ import annotations

import re
import sys
import time

from facepolicy.core import batch


class _Terminal:
    """A stream that says it is a terminal, as stderr is when a user runs the command."""

    def __init__(self, tty: bool):
        self.tty, self.text = tty, ""

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def test_progress_and_summary(tmp_path):
    piped = _Terminal(tty=False)
    p = batch.Progress(3, stream=piped)
    p.advance(0.5, "sampling")
    p.update(batch.RowResult(1, "a", "ok", seconds=1.0))
    p.update(batch.RowResult(2, "b", "failed", "boom"))
    p.close()
    assert piped.text == "" and p.done == 2 and p.failed == 1  # quiet when not a terminal

    terminal = _Terminal(tty=True)
    p = batch.Progress(1, stream=terminal)
    for fraction, message in [(0.25, "recognising"), (0.5, "sampling"), (0.4, "sampling")]:  # never backwards
        time.sleep(0.12)  # tqdm redraws at most every 0.1 s
        p.advance(fraction, message)
    p.close()
    assert " 25%|" in terminal.text and "recognising" in terminal.text
    assert " 50%|" in terminal.text and " 40%|" not in terminal.text
    assert re.search(r"\| 00:0\d<00:0\d, sampling", terminal.text)  # elapsed<remaining: tqdm's ETA

    terminal = _Terminal(tty=True)
    p = batch.Progress(4, stream=terminal)
    p.update(batch.RowResult(1, "a", "ok"))
    p.advance(0.5, "sampling")
    p.close()
    assert " 38%|" in terminal.text and "1/4 lines" in terminal.text


def test_progress_without_tqdm_bakes_quietly(monkeypatch):
    """Blender's Python has no tqdm: a bake inside Blender goes on without a bar."""
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm raises ImportError
    terminal = _Terminal(tty=True)
    p = batch.Progress(2, stream=terminal)
    p.advance(0.5, "sampling")
    p.update(batch.RowResult(1, "a", "ok"))
    p.close()
    assert terminal.text == "" and p.done == 1


def test_summary_table():
    table = batch.summary_table([batch.RowResult(2, "b", "failed", "boom"), batch.RowResult(1, "a", "ok", seconds=1),
                                 batch.RowResult(3, "c", "skipped")])
    lines = table.splitlines()
    assert lines[0].split() == ["#", "output", "status", "seconds", "message"]
    assert lines[1].split()[:3] == ["1", "a", "ok"] and lines[2].split() == ["2", "b", "failed", "boom"]
    assert "up to date" in lines[3]
    assert lines[-1] == "1 baked, 1 up to date, 1 failed"
