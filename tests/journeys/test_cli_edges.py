"""The command line at its edges, as a user meets them: an output name with a suffix bake does not write, Ctrl-C in
the middle of a multi-format batch, a truncated WAV, a contact sheet of a Live Link CSV take, --device cuda on a
machine without CUDA, and the progress bar of one long line. Each asserts what the user sees: the exit code, the
message, which files exist, and files parsed after writing."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from journey import ARCTIC, DEMO_WAV, console_script, facepolicy, write_wav
from test_preview_command import decode_png  # the one PNG reader of the tests (tests/unit, see conftest.py)

REFUSAL = ('facepolicy: error: -o "{output}": bake writes .csv, .json, .fbx, .glb, .blend files, not {suffix}; '
           'end a folder name with "/" to use it as a folder\n')


def speech(seconds: float) -> np.ndarray:
    """Real speech (CMU ARCTIC and the demo line, 16 kHz) repeated to ``seconds``."""
    parts = [sf.read(str(p), dtype="float32")[0] for p in (ARCTIC / "arctic_a0007.wav", DEMO_WAV,
                                                            ARCTIC / "arctic_a0009.wav")]
    joined = np.concatenate(parts)
    return np.resize(joined, int(seconds * 16000))


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --- an output suffix bake does not write -------------------------------------------------------------------


@pytest.mark.parametrize("output", ["line.gltf", "renders.v2"])
def test_an_output_suffix_bake_does_not_write_is_refused_and_nothing_is_made(tmp_path, output):
    write_wav(tmp_path / "line.wav", speech(1.0))
    before = files_under(tmp_path)
    run = facepolicy("bake", "line.wav", "-o", output, "--engine", "phonetic", cwd=tmp_path)
    suffix = "." + output.rsplit(".", 1)[1]
    assert run.returncode == 1, run.stdout
    assert run.stderr == REFUSAL.format(output=output, suffix=suffix)
    assert files_under(tmp_path) == before
    # The same name as a folder, with a slash, is a folder.
    run = facepolicy("bake", "line.wav", "-o", output + "/", "--engine", "phonetic", "--format", "csv", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert files_under(tmp_path / output) == [".line.facepolicy-bake", "line.csv"]


# --- Ctrl-C: every line is complete or absent ----------------------------------------------------------------

CTRL_C_FORMATS = ("csv", "json", "glb", "fbx")


def _line_files(out: Path, stem: str) -> set[str]:
    """Every file of one line in ``out``: its outputs, its sidecar, and any temporary file of either."""
    return {p.name for p in out.iterdir() if p.name.startswith((f"{stem}.", f".{stem}."))}


def _writing(out: Path, stems: list[str]) -> bool:
    """A line has files (finished or temporary) but not yet its sidecar: it is in the middle of being written."""
    if not out.is_dir():
        return False
    for stem in stems:
        names = _line_files(out, stem)
        if names and f".{stem}.facepolicy-bake" not in names:
            return True
    return False


@pytest.mark.blender
@pytest.mark.slow
def test_ctrl_c_leaves_every_line_complete_or_absent(tmp_path):
    stems = [f"line{i}" for i in range(1, 7)]
    for i, stem in enumerate(stems):
        write_wav(tmp_path / f"{stem}.wav", np.roll(speech(2.0), 4000 * i))
    out = tmp_path / "out"
    cmd = [console_script(), "bake", *[f"{s}.wav" for s in stems], "-o", "out", "--engine", "phonetic",
           "--format", ",".join(CTRL_C_FORMATS), "--jobs", "2"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Ctrl-C exactly while a worker writes a line's files: the moment that used to leave half a line.
        deadline = time.monotonic() + 240
        while not _writing(out, stems) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert proc.poll() is None, "the bake ended before any line was being written"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    status = {row.split()[1]: row.split()[2] for row in stdout.splitlines() if row[:1].isdigit()}
    done = []
    for stem in stems:
        names = _line_files(out, stem) if out.is_dir() else set()
        expected = {f".{stem}.facepolicy-bake", *(f"{stem}.{f}" for f in CTRL_C_FORMATS)}
        assert names in (set(), expected), f"{stem} is half there: {sorted(names)}"
        assert status[stem] == ("ok" if names else "cancelled"), stdout
        if names:
            done.append(stem)
    assert len(done) < len(stems)
    for stem in done:  # a complete line's files are whole
        assert (out / f"{stem}.glb").read_bytes()[:4] == b"glTF"
        assert (out / f"{stem}.fbx").read_bytes()[:18] == b"Kaydara FBX Binary"
    rerun = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(stems) - len(done)} baked, {len(done)} up to date, 0 failed" in rerun.stdout


# --- a truncated WAV --------------------------------------------------------------------------------------------


def test_a_truncated_wav_bakes_what_is_there_and_says_how_much(tmp_path):
    wav = write_wav(tmp_path / "cut.wav", speech(3.0))
    data = wav.read_bytes()
    body = data.index(b"data") + 8
    wav.write_bytes(data[: body + int(0.6 * 16000) * 2])  # a copy that stopped at 0.6 s; the header says 3.0 s
    run = facepolicy("bake", "cut.wav", "-o", "out", "--engine", "phonetic", "--format", "csv", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    warning = '"cut.wav": the file is truncated; read 0.60 s of the 3.00 s its header announces and used that'
    (row,) = [line for line in run.stdout.splitlines() if line.split()[:2] == ["1", "cut"]]
    assert row.split()[2] == "ok" and row.endswith(warning)
    frames = (tmp_path / "out" / "cut.csv").read_text().strip().splitlines()[1:]
    assert len(frames) == 18


# --- preview of a Live Link CSV take ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def splat_library():
    from facepolicy.preview import build

    if build.find_cxx() is None:
        pytest.skip("no C++ compiler to build the splat library (bash run.sh test installs g++)")
    build.ensure_cpu_library()


def test_preview_of_a_live_link_csv_take(tmp_path, splat_library):
    write_wav(tmp_path / "line.wav", speech(2.0))
    run = facepolicy("bake", "line.wav", "-o", "take.csv", "--engine", "phonetic", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    run = facepolicy("preview", "take.csv", "-o", "sheet.png", "--frames", "0:60:20", "--size", "64",
                     "--columns", "3", "--backend", "cpu", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "3 frames (0..40) of take.csv" in run.stdout
    sheet = decode_png((tmp_path / "sheet.png").read_bytes()).astype(float)
    assert sheet.shape[:2] == (64, 3 * 64 + 2 * 2)
    assert sheet[16:48, 16:48].mean() > 60  # the head is drawn
    run = facepolicy("preview", "take.csv", "-o", "sheet.jpg", cwd=tmp_path)
    assert run.returncode == 1
    assert run.stderr == ('facepolicy: error: -o "sheet.jpg": the contact sheet is written as PNG only; give a name '
                          "ending in .png\n")
    assert not (tmp_path / "sheet.jpg").exists()


# --- --device cuda without CUDA ------------------------------------------------------------------------------


def test_device_cuda_without_cuda_says_so_once(tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    write_wav(tmp_path / "line.wav", speech(1.0))
    run = facepolicy("bake", "line.wav", "-o", "out", "--engine", "neural", "--accuracy", "fast", "--device", "cuda",
                     "--format", "json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    warning = "CUDA was asked for but this onnxruntime has no CUDA provider; using the CPU"
    assert run.stderr.count(warning) == 1, run.stderr


# --- progress of one long line -------------------------------------------------------------------------------


def _run_on_a_terminal(args: list[str], cwd: Path, timeout: float = 300) -> tuple[int, str, str]:
    """Run the console script with stderr on a pseudo-terminal 100 columns wide, as in a user's shell.
    Returns (exit code, stdout, what the terminal showed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    shown = bytearray()

    def read_terminal():
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the other end closed
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    try:
        run = subprocess.run([console_script(), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=slave,
                             stdin=subprocess.DEVNULL, text=True, timeout=timeout)
    finally:
        os.close(slave)
    reader.join(timeout=10)
    os.close(master)
    return run.returncode, run.stdout, shown.decode("utf-8", "replace")


@pytest.mark.slow
def test_one_long_line_shows_progress_with_an_eta_on_a_terminal_only(tmp_path):
    write_wav(tmp_path / "long.wav", speech(20.0))
    args = ["bake", "long.wav", "-o", "out", "--format", "json"]  # the default engine, as in the issue
    code, stdout, terminal = _run_on_a_terminal(args, tmp_path)
    assert code == 0, terminal
    states = re.findall(r"(\d+)%\|[^|]*\| (\d\d:\d\d)<(\d\d:\d\d|\?)", terminal)
    percents = {int(p) for p, _, _ in states}
    assert any(0 < p < 100 for p in percents), terminal  # it moves within the line, not only 0 % then 100 %
    assert any(0 < int(p) < 100 and eta != "?" for p, _, eta in states), terminal  # with the time remaining
    assert "1 baked" in stdout
    # Piped or logged, the same bake prints no bar and no progress lines: only the summary.
    run = facepolicy(*args, "--seed", "1", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "%|" not in run.stderr and "[1/1]" not in run.stderr and "lines/min, " not in run.stderr


@pytest.mark.parametrize("option", ["--model", "-o", "--blend", "manifest"])
def test_a_home_folder_of_no_such_user_is_one_sentence_and_nothing_is_made(tmp_path, option):
    nowhere = "~nosuchuser-facepolicy/x"
    line = ARCTIC / "arctic_a0009.wav"
    if option == "manifest":
        manifest = tmp_path / "lines.csv"
        manifest.write_text(f"audio,output\n{nowhere}.wav,a.csv\n{line},b.csv\n", encoding="utf-8")
        args = ("--manifest", manifest, "-o", tmp_path / "out/")
    else:
        args = (line, "-o", tmp_path / "out" / "a.csv", *((option, nowhere) if option != "-o" else ()))
        if option == "-o":
            args = (line, "-o", nowhere + ".csv")
    done = facepolicy("bake", *args, cwd=tmp_path, timeout=300)
    said = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in said, said
    assert '"~nosuchuser-facepolicy" names no home folder on this machine' in said, said
    made = files_under(tmp_path / "out") if (tmp_path / "out").exists() else []
    # A manifest's other line is baked (a batch line is all or nothing, each on its own); else nothing is made.
    assert [m for m in made if not m.startswith(".")] == (["b.csv", "b.json"] if option == "manifest" else []), made
