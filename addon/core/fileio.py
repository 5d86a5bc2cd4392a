"""Atomic file writes: an interrupted job never leaves a half-written output behind, nor half a set of outputs.
And the one rule for reading a text file a user wrote (a transcript): ``read_user_text``."""

from __future__ import annotations

import codecs
import os
import signal
import tempfile
import threading
import unicodedata
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_beside(path: Path, kind: str = "part") -> Path:
    """A new empty file beside ``path`` (same folder, so a rename onto ``path`` is atomic), named so that whoever
    cleans up after a crash finds it: ``kind`` "part" for new content (``partial_files``: deleted), "aside" for the
    current content while a FileGroup replaces it (``aside_files``: put back, never deleted as a partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".{kind}{path.suffix}", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def _beside(path, kind: str) -> list[Path]:
    path = Path(path)
    return list(path.parent.glob(f".{path.name}.*.{kind}{path.suffix}")) if path.parent.is_dir() else []


def aside_files(path) -> list[Path]:
    """The earlier contents of ``path`` that an interrupted FileGroup moved aside and did not put back."""
    return _beside(path, "aside")


def recover_aside(path, restore: bool = True) -> None:
    """After a writer died between moving ``path`` aside (FileGroup.claim) and committing or rolling back: the earlier
    file goes back where nothing has replaced it (``restore``; else, or where a new file is in place, it is dropped)."""
    path = Path(path)
    for aside in aside_files(path):
        if restore and not path.exists():
            os.replace(aside, path)
        else:
            aside.unlink(missing_ok=True)


def partial_files(path) -> list[Path]:
    """The temporary files beside ``path`` that an interrupted write of it may have left."""
    return _beside(path, "part")


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    tmp = None
    try:
        with signals_held():  # Ctrl-C just after the temporary file is made must still find it to remove
            tmp = _temp_beside(path)
        yield tmp
        # mkstemp makes the file private (0600); give the output the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


@contextmanager
def signals_held():
    """Hold Ctrl-C (SIGINT) and SIGTERM until the block ends, then act on the first one that came.

    For a handful of renames that must not be cut in half. Python runs signal handlers in the main thread only,
    so elsewhere nothing can interrupt the block and nothing is held; a handler not set from Python (None) is
    left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple[int, object]] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if handler is not None:
            previous[sig] = handler
            signal.signal(sig, lambda signum, frame: caught.append((signum, frame)))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            signum, frame = caught[0]
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


class FileGroup:
    """Several outputs that appear together or not at all.

    ``stage(path)`` gives a temporary name to write ``path``'s new content to. ``claim(path)`` is for writers that
    insist on writing the final path themselves: the current file, if any, is moved aside first. ``commit()``
    renames the staged files into place in the order they were staged (Ctrl-C held meanwhile) and drops what was
    moved aside; ``rollback()`` (also on any exception inside ``with``) removes what this group wrote and puts
    the moved-aside files back, so the folder is as it was before.
    """

    def __init__(self):
        self._staged: list[tuple[Path, Path]] = []  # (temporary, final)
        self._claimed: list[tuple[Path, Path | None]] = []  # (final, where its earlier content was moved)
        self._done = False

    def __enter__(self) -> FileGroup:
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is not None:
            self.rollback()

    def stage(self, path) -> Path:
        with signals_held():  # Ctrl-C between making the temporary file and noting it here would leave it behind
            tmp = _temp_beside(Path(path))
            self._staged.append((tmp, Path(path)))
        return tmp

    def stage_text(self, path, text: str) -> None:
        self.stage(path).write_text(text, encoding="utf-8")

    def claim(self, path) -> None:
        path = Path(path)
        aside = None
        with signals_held():  # Ctrl-C between moving the file aside and noting it here would lose the user's file
            if path.exists():
                aside = _temp_beside(path, "aside")
                try:
                    os.replace(path, aside)
                except BaseException:
                    aside.unlink(missing_ok=True)  # nothing was moved aside: leave no empty temporary file
                    raise
            self._claimed.append((path, aside))

    def commit(self) -> None:
        mode = 0o666 & ~_umask()
        with signals_held():
            for tmp, final in self._staged:
                self.claim(final)  # if a rename fails half-way, rollback puts the earlier file back
                # mkstemp makes the file private (0600); give the output the permissions a plain open() would.
                os.chmod(tmp, mode)
                os.replace(tmp, final)
            for _final, aside in self._claimed:
                if aside is not None:
                    aside.unlink(missing_ok=True)
            self._done = True

    def rollback(self) -> None:
        if self._done:
            return
        self._done = True
        for tmp, _final in self._staged:
            tmp.unlink(missing_ok=True)
        for final, aside in reversed(self._claimed):
            if aside is not None:
                os.replace(aside, final)
            else:
                final.unlink(missing_ok=True)
            for tmp in partial_files(final):  # a writer stopped half-way through its own atomic write
                tmp.unlink(missing_ok=True)


def user_path(text) -> Path:
    """``text`` as a path with a leading ``~`` or ``~user`` expanded; FacePolicyError in one sentence when that user
    or home folder does not exist (pathlib raises a bare RuntimeError)."""
    from .errors import FacePolicyError

    try:
        return Path(text).expanduser()
    except RuntimeError:
        head = str(text).split("/", 1)[0].split(os.sep, 1)[0]
        raise FacePolicyError(f'"{text}": "{head}" names no home folder on this machine') from None


# Byte-order marks, the UTF-32 ones before UTF-16's (FF FE 00 00 starts with FF FE): Windows Notepad's "Unicode" is
# UTF-16 with a BOM, its "UTF-8" may carry one.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32", "UTF-32"), (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
         (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"), (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
         (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"))


def decode_user_text(data: bytes) -> str:
    """The text of a file a user saved in any editor: its byte-order mark's encoding when it has one (UTF-8,
    UTF-16, UTF-32), else UTF-8, else Windows-1252 (Windows' Western encoding, which reads Latin-1 letters right).
    ValueError, saying why in a clause, when the bytes are none of these or hold NUL bytes (UTF-16 saved without a
    byte-order mark, or a file that is not text)."""
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError:
                raise ValueError(f"it starts with a {name} byte-order mark but is not {name} text") from None
            break
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:
                raise ValueError("its bytes are neither UTF-8 nor Windows-1252 text") from None
    if "\x00" in text:
        raise ValueError("it holds NUL bytes, as UTF-16 saved without a byte-order mark does")
    return unicodedata.normalize("NFC", text)  # macOS's editors may save "ü" as u and a combining diaeresis


def read_user_text(path, what: str = "transcript") -> str:
    """The text of the file at ``path`` as ``decode_user_text`` reads it; FacePolicyError in one sentence naming the
    file (and ``what`` it is) when it is missing, cannot be read, or is not text, the last saying to save it as
    UTF-8."""
    from .errors import FacePolicyError

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FacePolicyError(f'{what} "{path}": file not found') from None
    except OSError as exc:
        raise FacePolicyError(f'"{path.name}": cannot read the {what} ({exc.strerror or exc})') from None
    try:
        return decode_user_text(data)
    except ValueError as exc:
        raise FacePolicyError(f'"{path.name}": cannot read the {what}: {exc}; save it as UTF-8 text') from None
