"""`facepolicy finetune` without the training side installed: one sentence saying how to install it, and the add-on's
CLI imports without torch."""

from __future__ import annotations

import subprocess
import sys

from facepolicy.app import cli
from facepolicy.app.finetune import TRAIN_HINT


def test_without_torch_the_command_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    code = cli.run(["finetune", str(tmp_path), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and err.strip() == f"facepolicy: error: {TRAIN_HINT}"
    assert "pip install -e '.[train]'" in err and not (tmp_path / "out").exists()


def test_the_cli_with_its_finetune_command_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None; from facepolicy.app import cli; "
            "cli.build_parser().parse_args(['finetune', 'c', '-o', 'm']); print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
