"""core.batch: a row's own model folder (the manifest's `model` column): resolved against the manifest's folder,
checked once however many rows name it, its style presets the row's, its model.json in the row's fingerprint, and
named by a Ray node that cannot see it."""

from __future__ import annotations

import json
import shutil
import socket
from dataclasses import asdict, replace
from pathlib import Path

import envelope_engine
from batch_helpers import ray_ctx, write_line, write_tone

from facepolicy.core import batch, model_files
from facepolicy.core.assets import asset_root
from facepolicy.core.batch import plan as plan_module
from facepolicy.core.batch import ray_tasks

envelope_engine.register()


def own_model(folder: Path, preset: str = "hero") -> Path:
    shutil.copytree(asset_root() / "models", folder)
    manifest = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    manifest["styles"][preset] = manifest["styles"][manifest["default_style"]]
    (folder / "model.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def plan_neural(values_list, tmp_path, base, model_dir=None):
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("csv",), model_dir=model_dir)
    entries = [(f"line {i}", v) for i, v in enumerate(values_list, start=2)]
    return batch.plan_rows(entries, batch.RowDefaults(engine="neural"), base, opts, ["neural", "envelope"],
                           batch.style_presets(model_dir))


def test_the_model_column_resolves_against_the_manifest_folder_and_is_checked_once(tmp_path, monkeypatch):
    project = tmp_path / "project"
    own_model(project / "models" / "anna")
    write_line(project / "a.wav")
    calls = []
    real = model_files.read_model_files
    monkeypatch.setattr(model_files, "read_model_files", lambda root, *a, **k: calls.append(root) or real(root))
    plan_module._model_folder_problem.cache_clear()
    rows, failures = plan_neural([{"audio": "a.wav", "output": f"l{k}", "model": "models/anna",
                                   "style": "hero" if k else ""} for k in range(5)], tmp_path, project)
    assert not failures, failures
    assert {r.model for r in rows} == {str(project / "models" / "anna")}
    assert len(calls) == 1, "the folder is checked once for all the rows naming it"
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("csv",), model_dir="/elsewhere")
    assert batch.row_model_dir(rows[0], opts) == rows[0].model  # the row's own folder before the batch's --model
    assert batch.row_model_dir(replace(rows[0], model=None), opts) == "/elsewhere"


def test_a_row_model_folder_decides_the_presets_and_bad_folders_fail_alone(tmp_path):
    own_model(tmp_path / "anna", preset="anna")
    broken = own_model(tmp_path / "broken")
    (broken / "style_encoder.onnx").write_bytes(b"not a network")
    write_line(tmp_path / "a.wav")
    rows, failures = plan_neural([
        {"audio": "a.wav", "output": "ok", "model": "anna", "style": "anna"},
        {"audio": "a.wav", "output": "bundled-has-no-anna", "style": "anna"},
        {"audio": "a.wav", "output": "broken", "model": "broken"},
        {"audio": "a.wav", "output": "file", "model": "a.wav"},
        {"audio": "a.wav", "output": "envelope", "model": "anna", "engine": "envelope"},
    ], tmp_path, tmp_path)
    assert [r.output for r in rows] == ["ok"]
    messages = {f.output: f.message for f in failures}
    assert "unknown style preset 'anna'" in messages["bundled-has-no-anna"]
    assert "style_encoder.onnx" in messages["broken"] and str(broken) in messages["broken"]
    assert "is a file" in messages["file"]
    assert "neural engine" in messages["envelope"]
    assert all(m.count(". ") == 0 for m in messages.values()), messages


def test_the_fingerprint_follows_the_rows_model_json(tmp_path):
    anna = own_model(tmp_path / "anna")
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("csv",))
    row = batch.BakeRow(1, str(write_tone(tmp_path / "a.wav")), "a", engine="neural")
    bundled = batch.row_fingerprint(row, opts)
    mine = batch.row_fingerprint(replace(row, model=str(anna)), opts)
    assert mine != bundled
    assert mine == batch.row_fingerprint(row, replace(opts, model_dir=str(anna))), "the same folder either way"
    (anna / "model.json").write_text((anna / "model.json").read_text(encoding="utf-8") + " ", encoding="utf-8")
    assert batch.row_fingerprint(replace(row, model=str(anna)), opts) != mine


def test_a_ray_node_without_the_rows_model_folder_names_it(tmp_path):
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("csv",))
    (tmp_path / "out").mkdir()
    row = batch.BakeRow(1, str(write_tone(tmp_path / "a.wav")), "a", engine="envelope",
                        model=str(tmp_path / "models" / "anna"))
    result = batch.RowResult.from_dict(ray_tasks.bake_shared(asdict(row), ray_ctx(opts)))
    assert result.status == "failed"
    assert f'"{row.model}" not found on node this machine ({socket.gethostname()})' in result.message
    data, files = ray_tasks.bake_shipped(asdict(row), ray_ctx(opts), {row.audio: Path(row.audio).read_bytes()})
    result = batch.RowResult.from_dict(data)
    assert result.status == "failed" and f'model folder "{row.model}" not found on node' in result.message
    assert not files
