"""core.cpu: one rule for how many cores a process uses (the phone decoders, and a batch's workers' share), and
core.model_files' onnxruntime sessions: one thread per model unless told, none spin-waiting."""

from __future__ import annotations

import pytest

from facepolicy.core import cpu


def test_the_budget_caps_the_cores_and_a_bad_value_is_ignored(monkeypatch):
    machine = cpu.machine_cores()
    monkeypatch.delenv(cpu.BUDGET_VARIABLE, raising=False)
    assert cpu.cores() == machine and cpu.core_budget() is None
    monkeypatch.setenv(cpu.BUDGET_VARIABLE, "1")
    assert cpu.cores() == 1
    monkeypatch.setenv(cpu.BUDGET_VARIABLE, str(machine + 7))
    assert cpu.cores() == machine, "never more than the process may run on"
    for bad in ("0", "-2", "two", "1.5", ""):
        monkeypatch.setenv(cpu.BUDGET_VARIABLE, bad)
        assert cpu.core_budget() is None and cpu.cores() == machine


def test_each_job_gets_its_share_and_at_least_one_core(monkeypatch):
    monkeypatch.setenv(cpu.BUDGET_VARIABLE, "8")
    if cpu.machine_cores() < 8:
        monkeypatch.setattr(cpu, "machine_cores", lambda: 8)
    assert [cpu.share(j) for j in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]


def test_batch_workers_run_on_their_share_of_the_cores(monkeypatch):
    from facepolicy.core.batch.workers import ProcessExecutor

    monkeypatch.setattr(cpu, "machine_cores", lambda: 16)
    monkeypatch.delenv(cpu.BUDGET_VARIABLE, raising=False)
    monkeypatch.setenv("SOMETHING_ELSE", "kept")
    env = ProcessExecutor(4, ["true"]).worker_env()
    assert env[cpu.BUDGET_VARIABLE] == "4" and env["SOMETHING_ELSE"] == "kept"
    assert ProcessExecutor(2, ["true"], env={"PATH": "/bin"}).worker_env() == {"PATH": "/bin",
                                                                                cpu.BUDGET_VARIABLE: "8"}


def test_sessions_use_one_thread_unless_told_and_never_spin():
    pytest.importorskip("onnxruntime")
    from facepolicy.core.assets import asset_root
    from facepolicy.core.model_files import create_session

    path = asset_root() / "models" / "style_encoder.onnx"
    for threads, expected in ((0, 1), (3, 3)):
        session, provider = create_session(path, "cpu", threads)
        opts = session.get_session_options()
        assert provider == "cpu" and opts.intra_op_num_threads == expected
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
