import os
import subprocess
import sys

import pytest

from facepolicy import __version__
from facepolicy.app.cli import run


def test_version(capsys):
    assert run(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"facepolicy {__version__}"


def test_help_lists_commands(capsys):
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    assert "doctor" in out and "usage: facepolicy" in out


@pytest.mark.parametrize("argv", [["--bogus"], ["doctor", "--bogus"], ["no-such-command"]])
def test_unknown_arguments_give_usage_and_exit_2(argv, capsys):
    assert run(argv) == 2
    assert "usage: facepolicy" in capsys.readouterr().err


def test_no_command_prints_help_and_exit_2(capsys):
    assert run([]) == 2
    assert "usage: facepolicy" in capsys.readouterr().out


def test_doctor_reports_cpu_only_without_cuda(capsys):
    import onnxruntime

    code = run(["doctor", "--no-blender"])
    out = capsys.readouterr().out
    assert f"onnxruntime   {onnxruntime.__version__}" in out or onnxruntime.__version__ in out
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        assert "CPU only" in out
    assert "Traceback" not in out
    assert code in (0, 1)
    assert ("no problems found" in out) == (code == 0)


def test_console_script_runs_as_a_process():
    proc = subprocess.run([sys.executable, "-m", "facepolicy.cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert __version__ in proc.stdout


def test_the_console_script_leaves_with_a_thread_pool_still_open():
    # main() leaves through os._exit after the interpreter's own steps: a thread pool that a command (or a library
    # it used) left open, its thread idle, must end as it does when the interpreter exits, not keep the process
    # waiting forever.
    script = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from facepolicy.app import cli\n"
        "def run(argv):\n"
        "    global pool\n"
        "    pool = ThreadPoolExecutor(1)\n"
        "    pool.submit(print, 'ran')\n"
        "    return 3\n"
        "cli.run = run\n"
        "cli.main()\n"
    )
    try:
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the console script never left: main() waited for an idle thread pool")
    assert (proc.returncode, proc.stdout) == (3, "ran\n"), proc.stderr


@pytest.mark.parametrize(("chosen", "seen"), [(None, "1"), ("3", "3")])
def test_the_console_script_gives_openblas_one_thread_unless_the_user_chose(chosen, seen):
    # numpy's OpenBLAS threads spin for about 0.1 s after numpy loads, beside the phone decoders; the commands do
    # their work on threads of their own. What the command sees, with numpy loaded inside it as a bake loads it:
    script = (
        "import os\n"
        "from facepolicy.app import cli\n"
        "def run(argv):\n"
        "    import numpy\n"
        "    print(os.environ['OPENBLAS_NUM_THREADS'])\n"
        "    return 0\n"
        "cli.run = run\n"
        "cli.main()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if chosen is not None:
        env["OPENBLAS_NUM_THREADS"] = chosen
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert (proc.returncode, proc.stdout) == (0, seen + "\n"), proc.stderr
