"""core.model_files: a model folder's own sampler defaults (model.json "sampling"), which a fine-tuned performer's
model sets: read when valid, refused in one sentence naming the file when not."""

from __future__ import annotations

import json
import shutil

import pytest

from facepolicy.core.assets import asset_root
from facepolicy.core.errors import AssetError
from facepolicy.core.model_files import read_model_files


@pytest.fixture
def folder(tmp_path):
    out = tmp_path / "anna"
    shutil.copytree(asset_root() / "models", out)
    return out


def with_sampling(folder, section):
    manifest = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    manifest["sampling"] = section
    (folder / "model.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_the_bundled_model_sets_no_sampling_defaults_and_a_folder_may(folder):
    assert read_model_files().sampling == {}
    with_sampling(folder, {"prior_weight": 0.1, "vowel_floor": True})
    assert read_model_files(folder).sampling == {"prior_weight": 0.1, "vowel_floor": True}


@pytest.mark.parametrize("section, phrase", [
    ({"prior_weight": 1.5}, "prior_weight"),
    ({"prior_weight": "low"}, "prior_weight"),
    ({"prior_weight": True}, "prior_weight"),
    ({"vowel_floor": "yes"}, "vowel_floor"),
    ({"prior": 0.1}, "unknown key(s) prior"),
    ([0.1], "must be an object"),
])
def test_a_bad_sampling_section_is_refused_naming_the_file(folder, section, phrase):
    with_sampling(folder, section)
    with pytest.raises(AssetError) as err:
        read_model_files(folder)
    message = str(err.value)
    assert str(folder / "model.json") in message and phrase in message and "\n" not in message
