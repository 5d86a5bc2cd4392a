"""core.batch.manifest: CSV and JSON manifests, aliases, comments, malformed rows and files."""

from __future__ import annotations

import json

import pytest

from facepolicy.core import batch
from facepolicy.core.errors import FacePolicyError


def test_csv_manifest_rows_aliases_comments_and_malformed_rows(tmp_path):
    m = tmp_path / "lines.csv"
    m.write_text("# dialogue for act 1\nAudio,Output Name,seed\n"
                 "a.wav,act1/a,3\n\n# skipped\nb.wav,b\n\"c, d.wav\",c,1\n", encoding="utf-8")
    entries = batch.read_manifest(m)
    assert [e.source for e in entries] == ["lines.csv line 3", "lines.csv line 6", "lines.csv line 7"]
    assert entries[0].values == {"audio": "a.wav", "output": "act1/a", "seed": "3"}
    assert "2 cells but the header has 3" in entries[1].error
    assert entries[2].values["audio"] == "c, d.wav"


@pytest.mark.parametrize("text, match", [("output,seed\nx,1\n", 'needs an "audio" column'),
                                         ("audio,colour\na.wav,red\n", "unknown column"),
                                         ("# only a comment\n", "no rows")])
def test_csv_manifest_whole_file_problems(tmp_path, text, match):
    m = tmp_path / "m.csv"
    m.write_text(text, encoding="utf-8")
    with pytest.raises(FacePolicyError, match=match):
        batch.read_manifest(m)


def test_json_manifest(tmp_path):
    m = tmp_path / "m.json"
    m.write_text(json.dumps({"rows": [{"audio": "a.wav", "output_name": "x", "seed": 4}, "b.wav", 7,
                                      {"audio": "c.wav", "volume": 3}]}), encoding="utf-8")
    e = batch.read_manifest(m)
    assert e[0].values == {"audio": "a.wav", "output": "x", "seed": 4} and not e[0].error
    assert e[1].values == {"audio": "b.wav"}
    assert "expected an object" in e[2].error
    assert "unknown key(s) volume" in e[3].error
    (tmp_path / "bad.json").write_text("[{", encoding="utf-8")
    with pytest.raises(FacePolicyError, match="not valid JSON"):
        batch.read_manifest(tmp_path / "bad.json")
    with pytest.raises(FacePolicyError, match="file not found"):
        batch.read_manifest(tmp_path / "missing.json")
