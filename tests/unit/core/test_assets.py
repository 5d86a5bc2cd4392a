import re
from pathlib import Path

import pytest

from facepolicy.core import assets
from facepolicy.core.doctor import build_report
from facepolicy.core.errors import AssetError


def test_shipped_assets_match_their_sums(repo_root):
    root = repo_root / "assets"
    listed = assets.read_sums(root)
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*")
               if p.is_file() and p.name != assets.SUMS_FILE and not p.name.startswith(".")
               and "__pycache__" not in p.parts}
    assert set(listed) == on_disk, "run: .venv/bin/python tools/update_asset_sums.py"
    bad = [s for s in assets.check_assets(root) if not s.ok]
    assert not bad, bad


def make_root(tmp_path: Path) -> Path:
    root = tmp_path / "assets"
    (root / "models").mkdir(parents=True)
    (root / "models" / "a.onnx").write_bytes(b"model bytes")
    (root / "LICENSE.txt").write_text("CC0")
    assets.write_sums(root)
    return root


def test_corrupt_and_missing_assets_are_named(tmp_path, monkeypatch):
    root = make_root(tmp_path)
    monkeypatch.setenv(assets.ENV_ASSETS, str(root))
    assert assets.verify_asset("models/a.onnx") == root / "models" / "a.onnx"
    expected = assets.read_sums(root)["models/a.onnx"]
    (root / "models" / "a.onnx").write_bytes(b"tampered")
    with pytest.raises(AssetError, match=f"models/a.onnx.*corrupt.*{expected}"):
        assets.verify_asset("models/a.onnx")
    (root / "models" / "a.onnx").unlink()
    with pytest.raises(AssetError, match=f"models/a.onnx.*missing.*{expected}"):
        assets.verify_asset("models/a.onnx")
    report = build_report("test")
    assert any("models/a.onnx: missing" in p for p in report.problems)


def test_doctor_lists_each_asset_with_its_sha(tmp_path, monkeypatch):
    root = make_root(tmp_path)
    monkeypatch.setenv(assets.ENV_ASSETS, str(root))
    text = build_report("test").text()
    for name, digest in assets.read_sums(root).items():
        assert name in text and digest in text


def test_every_shipped_asset_folder_records_its_source_and_licence(repo_root):
    """Every folder of bundled files says where they come from and under which licence."""
    root = repo_root / "assets"
    folders = {p.parent for p in root.rglob("*") if p.is_file() and p.parent != root}
    assert folders, "no bundled assets found"
    for folder in folders:
        records = [p for p in folder.iterdir() if p.suffix == ".md"
                   and p.stem.upper() in ("LICENSE", "LICENCE", "SOURCE", "README", "MODEL_CARD")]
        text = " ".join(p.read_text(encoding="utf-8") for p in records).lower()
        assert records and "licen" in text, f"{folder.relative_to(root)}: no source/licence record"
        assert re.search(r"\b(cc0|public domain|mit|bsd|apache)\b", text), f"{folder}: no permissive licence named"


def test_doctor_checks_the_neural_model(tmp_path, monkeypatch, repo_root):
    import shutil

    root = tmp_path / "assets"
    shutil.copytree(repo_root / "assets" / "models", root / "models")
    assets.write_sums(root)
    monkeypatch.setenv(assets.ENV_ASSETS, str(root))
    report = build_report("test")
    assert not report.problems and "4 ONNX files, sha256 ok" in report.text() and "average" in report.text()
    with open(root / "models" / "denoiser.onnx", "r+b") as f:
        f.seek(100)
        f.write(b"\0\0\0\0")
    report = build_report("test")
    assert any("denoiser.onnx" in p and "corrupt" in p for p in report.problems)
