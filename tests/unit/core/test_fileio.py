"""Atomic writes and file groups: an interrupted or failed write leaves the folder as it was."""

import os
import signal
import stat
import tempfile
import threading

import pytest

from facepolicy.core import fileio
from facepolicy.core.errors import FacePolicyError
from facepolicy.core.fileio import FileGroup, atomic_path, atomic_write_bytes, atomic_write_text, partial_files


def listing(folder):
    """Every file under ``folder`` with its bytes (folders as None): what a user would find there."""
    return {p.relative_to(folder).as_posix(): (None if p.is_dir() else p.read_bytes())
            for p in sorted(folder.rglob("*"))}


def test_atomic_writes_replace_the_file_whole_with_plain_permissions(tmp_path):
    out = tmp_path / "sub" / "take.csv"  # the folder is made
    atomic_write_text(out, "a,b\n1,2\n")
    assert out.read_text(encoding="utf-8") == "a,b\n1,2\n"
    atomic_write_bytes(out, b"\x00\x01")
    assert out.read_bytes() == b"\x00\x01"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask  # not mkstemp's private 0600
    assert listing(tmp_path) == {"sub": None, "sub/take.csv": b"\x00\x01"}


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_partial_file(tmp_path, error):
    out = tmp_path / "take.json"
    out.write_text("old", encoding="utf-8")
    with pytest.raises(type(error)):
        with atomic_path(out) as tmp:
            assert partial_files(out) == [tmp]  # whoever cleans up after a crash would find it
            tmp.write_text("half of the new", encoding="utf-8")
            raise error
    assert listing(tmp_path) == {"take.json": b"old"}
    assert partial_files(out) == []


def test_a_file_group_appears_whole(tmp_path):
    (tmp_path / "line.csv").write_text("old csv", encoding="utf-8")
    with FileGroup() as group:
        group.stage_text(tmp_path / "line.csv", "new csv")
        group.stage(tmp_path / "line.json").write_bytes(b"{}")
        assert not (tmp_path / "line.json").exists()  # nothing appears before commit
        group.commit()
    assert listing(tmp_path) == {"line.csv": b"new csv", "line.json": b"{}"}


def test_a_file_group_that_fails_before_commit_leaves_the_folder_as_it_was(tmp_path):
    (tmp_path / "line.csv").write_text("old csv", encoding="utf-8")
    before = listing(tmp_path)
    with pytest.raises(RuntimeError):
        with FileGroup() as group:
            group.stage_text(tmp_path / "line.csv", "new csv")
            group.claim(tmp_path / "line.fbx")  # a writer that writes the final path itself
            (tmp_path / "line.fbx").write_bytes(b"half an fbx")
            raise RuntimeError("the exporter failed")
    assert listing(tmp_path) == before


def test_a_claimed_file_is_moved_aside_and_put_back_on_rollback(tmp_path):
    out = tmp_path / "line.blend"
    out.write_bytes(b"earlier take")
    group = FileGroup()
    group.claim(out)
    assert not out.exists()  # the writer may now write it itself
    out.write_bytes(b"new take")
    group.rollback()
    assert listing(tmp_path) == {"line.blend": b"earlier take"}

    group = FileGroup()
    group.claim(out)
    out.write_bytes(b"new take")
    group.commit()
    assert listing(tmp_path) == {"line.blend": b"new take"}  # the moved-aside file is dropped


def test_a_commit_that_fails_half_way_puts_everything_back(tmp_path):
    """The second output's name is taken by a folder: the first output is rolled back too, and the failed claim
    leaves no temporary file behind (it used to leave an empty one beside the folder)."""
    (tmp_path / "line.csv").write_text("old csv", encoding="utf-8")
    (tmp_path / "line.json").mkdir()
    (tmp_path / "line.json" / "keep.txt").write_text("a user's file", encoding="utf-8")
    before = listing(tmp_path)
    with pytest.raises(OSError):
        with FileGroup() as group:
            group.stage_text(tmp_path / "line.csv", "new csv")
            group.stage_text(tmp_path / "line.json", "{}")
            group.commit()
    assert listing(tmp_path) == before


def test_a_failed_claim_leaves_no_temporary_file(tmp_path):
    taken = tmp_path / "line.fbx"
    taken.mkdir()  # a folder cannot be moved onto the temporary file
    group = FileGroup()
    with pytest.raises(OSError):
        group.claim(taken)
    assert listing(tmp_path) == {"line.fbx": None}
    group.rollback()
    assert listing(tmp_path) == {"line.fbx": None}  # the folder it never claimed is not touched


def test_ctrl_c_during_held_signals_acts_after_the_block():
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with fileio.signals_held():
            signal.raise_signal(signal.SIGINT)
            finished.append("the renames")
    assert finished == ["the renames"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is restored


def test_signals_are_not_touched_off_the_main_thread():
    seen = []

    def work():
        with fileio.signals_held():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [signal.default_int_handler]


@pytest.mark.parametrize("step", ["stage", "claim", "atomic write"])
def test_ctrl_c_just_after_a_temporary_file_is_made_leaves_the_folder_as_it_was(tmp_path, monkeypatch, step):
    # The moment a bake's Ctrl-C test aimed at (it sends the signal as soon as a line's first file appears): a
    # signal between making a temporary file and noting it used to leave the file behind, or lose a claimed one.
    (tmp_path / "line.csv").write_text("old")
    real = tempfile.mkstemp

    def mkstemp_then_ctrl_c(*args, **kwargs):
        made = real(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)
        return made

    monkeypatch.setattr(fileio.tempfile, "mkstemp", mkstemp_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        if step == "atomic write":
            fileio.atomic_write_text(tmp_path / "line.csv", "new")
        else:
            with FileGroup() as group:
                if step == "stage":
                    group.stage_text(tmp_path / "line.csv", "new")
                else:
                    group.claim(tmp_path / "line.csv")
                group.commit()
    monkeypatch.undo()
    assert listing(tmp_path) == {"line.csv": b"old"}


TEXT = "Fünf schöne Bälle für Bärbel – 5 €."


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-be", "utf-32", "utf-32-be", "cp1252"])
def test_user_text_is_read_in_every_encoding_an_editor_saves(tmp_path, encoding):
    data = TEXT.encode(encoding)
    if encoding == "utf-16-be":  # big-endian with its byte-order mark, as some editors save "Unicode big endian"
        data = b"\xfe\xff" + data
    if encoding == "utf-32-be":
        data = b"\x00\x00\xfe\xff" + data
    (tmp_path / "line.txt").write_bytes(data)
    assert fileio.read_user_text(tmp_path / "line.txt") == TEXT


def test_latin_1_text_reads_right():
    assert fileio.decode_user_text("Ça coûte très cher, señor.".encode("latin-1")) == "Ça coûte très cher, señor."


@pytest.mark.parametrize("data, why", [
    ("Bitte bring mir morgen ein Paket.".encode("utf-16-le"), "it holds NUL bytes, as UTF-16 saved without"),
    ("Bitte bring mir morgen ein Paket.".encode("utf-16-be"), "it holds NUL bytes, as UTF-16 saved without"),
    (b"\xff\xfeB\x00i", "it starts with a UTF-16 byte-order mark but is not UTF-16 text"),
    (b"\x81\x8d\x8f\x90\x9d", "its bytes are neither UTF-8 nor Windows-1252 text"),
])
def test_bytes_that_are_not_text_are_one_sentence_naming_the_file(tmp_path, data, why):
    (tmp_path / "line.txt").write_bytes(data)
    with pytest.raises(FacePolicyError) as info:
        fileio.read_user_text(tmp_path / "line.txt")
    assert str(info.value).startswith(f'"line.txt": cannot read the transcript: {why}')
    assert str(info.value).endswith("; save it as UTF-8 text") and "\n" not in str(info.value)


def test_a_missing_or_unreadable_user_file_is_one_sentence(tmp_path):
    with pytest.raises(FacePolicyError, match=r'^transcript ".*missing.txt": file not found$'):
        fileio.read_user_text(tmp_path / "missing.txt")
    with pytest.raises(FacePolicyError, match=r'^"sub": cannot read the transcript \(.+\)$'):
        (tmp_path / "sub").mkdir()
        fileio.read_user_text(tmp_path / "sub")
