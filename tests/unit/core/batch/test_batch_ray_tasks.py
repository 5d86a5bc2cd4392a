"""core.batch.ray_tasks: what a Ray worker runs, called in this process (the driver's tests are in
tests/unit/app/test_ray_executor.py, real clusters in tests/integration/test_ray_cluster.py)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from dataclasses import asdict, replace
from pathlib import Path

import envelope_engine
import pytest
from batch_helpers import ray_ctx, write_line, write_tone

from facepolicy.core import batch
from facepolicy.core.assets import asset_root
from facepolicy.core.batch import model_shipping, ray_tasks
from facepolicy.core.errors import FacePolicyError

envelope_engine.register()


def test_bake_shared_names_paths_this_node_cannot_see(tmp_path):
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("csv",))
    (tmp_path / "out").mkdir()
    row = batch.BakeRow(1, str(tmp_path / "on-another-machine.wav"), "a", engine="envelope")
    result = batch.RowResult.from_dict(ray_tasks.bake_shared(asdict(row), ray_ctx(opts)))
    assert result.status == "failed"
    assert f'"{row.audio}" not found on node this machine ({socket.gethostname()})' in result.message
    assert "--ray-data object-store" in result.message
    # The output folder must exist on the node too: otherwise the files would land on the worker's own disk.
    row = batch.BakeRow(1, str(write_tone(tmp_path / "a.wav")), "a", engine="envelope")
    opts = batch.BatchOptions(out_dir=str(tmp_path / "missing-out"), formats=("csv",))
    result = batch.RowResult.from_dict(ray_tasks.bake_shared(asdict(row), ray_ctx(opts)))
    assert result.status == "failed" and f'"{opts.out_dir}" not found on node' in result.message
    assert not Path(opts.out_dir).exists()


def test_a_style_reference_the_node_cannot_see_is_named_not_taken_for_a_preset(tmp_path):
    # The node's missing inputs are the row's inputs (batch.row_inputs): a reference file is one even where the
    # node cannot see it.
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("csv",))
    (tmp_path / "out").mkdir()
    style = tmp_path / "styles" / "hero.json"
    row = batch.BakeRow(1, str(write_tone(tmp_path / "a.wav")), "a", engine="envelope", style=str(style))
    assert style in batch.row_inputs(row, opts)
    result = batch.RowResult.from_dict(ray_tasks.bake_shared(asdict(row), ray_ctx(opts)))
    assert result.status == "failed" and f'"{style}" not found on node' in result.message
    assert str(row.audio) not in result.message  # the audio is there


def test_bake_shared_removes_what_a_crashed_attempt_left_and_bakes(tmp_path):
    opts = batch.BatchOptions(out_dir=str(tmp_path / "out"), formats=("csv", "json"))
    stale = tmp_path / "out" / ".a.json.deadbeef.part.json"
    stale.parent.mkdir()
    stale.write_text("{half")
    row = batch.BakeRow(1, str(write_tone(tmp_path / "a.wav")), "a", engine="envelope", seed=3)
    result = batch.RowResult.from_dict(ray_tasks.bake_shared(asdict(row), ray_ctx(opts)))
    assert result.status == "ok" and not stale.exists()
    assert batch.is_up_to_date(row, opts)


def test_the_blend_file_is_staged_once_per_worker_process(tmp_path, monkeypatch):
    monkeypatch.setattr(ray_tasks, "_warm", {})
    first = ray_tasks._staged_blend("/studio/chars/hero.blend", b"BLENDER-v500 first")
    assert Path(first).name == "hero.blend" and Path(first).read_bytes() == b"BLENDER-v500 first"
    Path(first).write_bytes(b"touched")
    assert ray_tasks._staged_blend("/studio/chars/hero.blend", b"BLENDER-v500 first") == first
    assert Path(first).read_bytes() == b"touched"  # not written again for the next row
    other = ray_tasks._staged_blend("/studio/chars/villain.blend", b"BLENDER-v500 other")
    assert Path(other).read_bytes() == b"BLENDER-v500 other" and not Path(first).exists()


# --- a model folder through the object store ----------------------------------------------------------------------


def own_model(folder: Path) -> Path:
    """A model folder of one's own: the bundled model with another default style, so its lines differ."""
    shutil.copytree(asset_root() / "models", folder)
    manifest = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    default = manifest["default_style"]
    manifest["styles"][default] = manifest["styles"][next(n for n in sorted(manifest["styles"]) if n != default)]
    (folder / "model.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


class ObjectStore:
    """Stands for Ray in a worker process: ``get`` returns what the driver put, and counts the fetches."""

    def __init__(self, objects: dict):
        self.objects, self.fetched = objects, []

    def get(self, ref):
        self.fetched.append(ref)
        return self.objects[ref]

    @staticmethod
    def is_initialized() -> bool:
        return False


def shipped_outputs(row, opts, model, audio: bytes) -> tuple[batch.RowResult, dict[str, bytes]]:
    data, files = ray_tasks.bake_shipped(asdict(row), ray_ctx(opts), {row.audio: audio}, None, model)
    return batch.RowResult.from_dict(data), files


def test_a_shipped_model_folder_bakes_on_a_node_without_it_like_the_folder_in_place(tmp_path, monkeypatch):
    monkeypatch.setattr(ray_tasks, "_warm", {})
    anna = own_model(tmp_path / "studio" / "models" / "anna")
    wav = write_line(tmp_path / "studio" / "line.wav", 0.6)
    row = batch.BakeRow(1, str(wav), "line", engine="neural", model=str(anna))
    settings = dict(formats=("csv", "json"), accuracy="fast", steps=4)

    # Shared mode, the folder in place: the reference files.
    shared = batch.BatchOptions(out_dir=str(tmp_path / "shared"), **settings)
    (tmp_path / "shared").mkdir()
    result = batch.RowResult.from_dict(ray_tasks.bake_shared(asdict(row), ray_ctx(shared)))
    assert result.status == "ok", result.message
    bundled = batch.BatchOptions(out_dir=str(tmp_path / "bundled"), **settings)
    (tmp_path / "bundled").mkdir()
    assert batch.bake_row(batch.BakeRow(1, str(wav), "line", engine="neural"), bundled).status == "ok"
    assert (tmp_path / "bundled" / "line.csv").read_bytes() != (tmp_path / "shared" / "line.csv").read_bytes()

    # What the driver sends; then the folder is gone, as on a node of a cluster without a shared filesystem.
    packed = model_shipping.pack_model_folder(str(anna))
    assert sorted(packed["files"]) == ["audio_encoder.onnx", "denoiser.onnx", "ear.onnx", "model.json",
                                       "style_encoder.onnx"]
    anna.rename(tmp_path / "studio" / "models" / "anna-on-the-laptop")
    store = ObjectStore({"ref-anna": packed["files"]})
    monkeypatch.setitem(sys.modules, "ray", store)
    model = {"path": str(anna), "digest": packed["digest"], "files": "ref-anna"}
    opts = batch.BatchOptions(out_dir=str(tmp_path / "unused"), **settings)
    result, files = shipped_outputs(row, opts, model, wav.read_bytes())
    assert result.status == "ok", result.message
    side = batch.sidecar_path(row, shared).name
    assert sorted(files) == sorted(["line.csv", "line.json", side])
    assert files["line.csv"] == (tmp_path / "shared" / "line.csv").read_bytes()
    assert files["line.json"] == (tmp_path / "shared" / "line.json").read_bytes()
    # The sidecar records the same fingerprint (the copy has the same model.json); the driver restores "audio".
    record = json.loads(files[side])
    assert {**record, "audio": str(wav)} == json.loads((tmp_path / "shared" / side).read_text(encoding="utf-8"))

    # A later or retried row of the same folder on this worker process reuses the copy without fetching it again.
    result, files = shipped_outputs(replace(row, output="again"), opts, model, wav.read_bytes())
    assert result.status == "ok" and files["again.csv"] == (tmp_path / "shared" / "line.csv").read_bytes()
    assert store.fetched == ["ref-anna"]
    staged = Path(ray_tasks._warm["models"][packed["digest"]])
    assert staged.is_dir() and not staged.is_relative_to(tmp_path)


def test_a_model_folder_damaged_on_the_way_is_refused_in_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setattr(ray_tasks, "_warm", {})
    anna = own_model(tmp_path / "models" / "anna")
    wav = write_line(tmp_path / "line.wav", 0.6)
    row = batch.BakeRow(1, str(wav), "line", engine="neural", model=str(anna))
    opts = batch.BatchOptions(out_dir=str(tmp_path / "unused"), formats=("csv",), accuracy="fast", steps=4)
    packed = model_shipping.pack_model_folder(str(anna))
    shutil.rmtree(anna)

    # Bytes that changed on the way: the checksum the driver sent does not match.
    damaged = dict(packed["files"])
    damaged["denoiser.onnx"] = damaged["denoiser.onnx"][:-1] + bytes([damaged["denoiser.onnx"][-1] ^ 1])
    model = {"path": str(anna), "digest": packed["digest"], "files": damaged}
    result, files = shipped_outputs(row, opts, model, wav.read_bytes())
    assert result.status == "failed" and not files
    assert result.message.startswith(f'model folder "{anna}" arrived damaged on node this machine (')
    assert result.message.count(". ") == 0 and "run the batch again" in result.message
    assert not ray_tasks._warm.get("models"), "a damaged folder is not kept for the next row"

    # A folder sent as it was, whose file does not match its model.json (damaged before it was sent): the engine's
    # own sha256 check runs on the copy, and the message names the folder the user gave, not the copy.
    model = {"path": str(anna), "digest": model_shipping.content_digest(damaged), "files": damaged}
    result, files = shipped_outputs(row, opts, model, wav.read_bytes())
    assert result.status == "failed" and not files
    assert result.message.startswith(f'neural model file "{anna / "denoiser.onnx"}" is corrupt: its sha256 is not')
    assert ray_tasks._STAGING_PREFIX not in result.message and result.message.count(". ") == 0


def test_a_model_folder_is_packed_with_the_files_its_model_json_names(tmp_path):
    anna = own_model(tmp_path / "anna")
    (anna / "checkpoint.pt").write_bytes(b"fine-tuning state that stays home")
    packed = model_shipping.pack_model_folder(str(anna))
    assert "checkpoint.pt" not in packed["files"] and "MODEL_CARD.md" not in packed["files"]
    assert packed["digest"] == model_shipping.pack_model_folder(str(anna))["digest"]
    with pytest.raises(FacePolicyError, match=r'model folder ".*anna" is \d+ MiB, more than the 1 MiB .*'
                                              r"--ray-data shared"):
        model_shipping.pack_model_folder(str(anna), limit=2**20)
    manifest = json.loads((anna / "model.json").read_text(encoding="utf-8"))
    manifest["files"]["../../etc/passwd"] = "0" * 64
    (anna / "model.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(FacePolicyError, match=r'names "\.\./\.\./etc/passwd", outside the folder'):
        model_shipping.pack_model_folder(str(anna))
    with pytest.raises(FacePolicyError, match=r'model folder ".*nowhere" not found on this machine'):
        model_shipping.pack_model_folder(str(tmp_path / "nowhere"))


def test_a_model_json_that_names_no_file_is_sent_for_the_engine_to_judge(tmp_path):
    # "", "." or a number where a file name belongs is a broken model.json, not a path outside the folder: it is
    # sent as it is, and the engine's own sentence about it comes from the worker.
    anna = own_model(tmp_path / "anna")
    manifest = json.loads((anna / "model.json").read_text(encoding="utf-8"))
    first = next(iter(manifest["onnx"]))
    for broken in ("", ".", 7):
        manifest["onnx"][first] = broken
        (anna / "model.json").write_text(json.dumps(manifest), encoding="utf-8")
        packed = model_shipping.pack_model_folder(str(anna))
        assert "model.json" in packed["files"] and "" not in packed["files"] and "." not in packed["files"]


def test_a_worker_keeps_only_the_model_folders_it_used_last(monkeypatch):
    # A long-lived worker of a batch with many model folders keeps MODELS_KEPT of them written, not every one.
    monkeypatch.setattr(ray_tasks, "_warm", {})
    packs = []
    for k in range(ray_tasks.MODELS_KEPT + 1):
        files = {"model.json": json.dumps({"name": f"actor {k}"}).encode()}
        packs.append({"path": f"/studio/models/actor{k}", "digest": model_shipping.content_digest(files),
                      "files": files})
    first, second, third = (ray_tasks._staged_model(p) for p in packs[:3])
    assert not Path(first).exists() and Path(second).is_dir() and Path(third).is_dir()
    assert ray_tasks._staged_model(packs[1]) == second  # used again: now the newest
    fourth = ray_tasks._staged_model(packs[0])  # written again; the third, used least lately, goes
    assert Path(fourth).is_dir() and Path(second).is_dir() and not Path(third).exists()
    for folder in (second, fourth):
        shutil.rmtree(folder, ignore_errors=True)


def test_a_ray_task_decodes_on_the_one_cpu_it_is_given(monkeypatch):
    from facepolicy.core import cpu

    seen = []
    monkeypatch.delenv(cpu.BUDGET_VARIABLE, raising=False)
    monkeypatch.setattr(ray_tasks, "bake_row", lambda row, opts, exporter: seen.append(cpu.cores()) or "done")
    row, opts = batch.BakeRow(1, "a.wav", "a"), batch.BatchOptions(out_dir=".", formats=("csv",))
    assert ray_tasks._bake(row, opts, {}) == "done" and seen == [1]
    assert cpu.BUDGET_VARIABLE not in os.environ, "the worker's environment is left as it was"
    monkeypatch.setenv(cpu.BUDGET_VARIABLE, "3")
    ray_tasks._bake(row, opts, {})
    assert seen[-1] == min(3, cpu.machine_cores()) and os.environ[cpu.BUDGET_VARIABLE] == "3"
