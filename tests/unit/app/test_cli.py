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
