"""core.batch.rows: output names stay inside the output folder; formats; the files a row reads."""

from __future__ import annotations

import pytest

from facepolicy.core import batch
from facepolicy.core.errors import FacePolicyError


@pytest.mark.parametrize("name", ["../x", "a/../../x", "a/..", "/etc/passwd", "C:\\x", "c:x", "~/x", "..\\..\\x",
                                  "", "   ", ".hidden", "a/.x", "./."])
def test_output_names_that_leave_the_folder_are_refused(name):
    with pytest.raises(FacePolicyError):
        batch.check_output_name(name)


@pytest.mark.parametrize("name, expected", [("line1", "line1"), ("act1/line1.fbx", "act1/line1"),
                                            ("act1\\scene2\\l3", "act1/scene2/l3"), ("./a/./b", "a/b"),
                                            ("take.v2", "take.v2"), ("x.CSV", "x")])
def test_output_names_are_normalised(name, expected):
    assert batch.check_output_name(name) == expected


def test_parse_formats():
    assert batch.parse_formats("fbx, CSV,.json") == ("csv", "json", "fbx")
    with pytest.raises(FacePolicyError, match="unknown output format 'usd'.*csv, json, fbx, glb, blend"):
        batch.parse_formats("csv,usd")
