"""The default head looks finished in the splat preview: its outline is smooth at the scalp and at the neck cut,
with no stray splats sticking out (the old binding drew wisps above the scalp and a fringe of spikes below the neck).

The outline is read from the PNG `facepolicy preview` writes: per image column, the top-most and bottom-most pixels
that differ from the background; a wisp or a spike moves a column's end away from its neighbours'. At the scalp:
the mean distance, in pixels, of each column's top from the median of the 7 columns around it (0.061 before, 0.006
now, at 384 px). At the neck's end (the lowest 25 rows of the outline): the mean step between neighbouring columns'
bottoms (0.72 before, 0.45 now)."""

from __future__ import annotations

import json

import numpy as np
from journey import facepolicy
from numpy.lib.stride_tricks import sliding_window_view
from test_preview_command import decode_png

SIZE = 384
TOP_LIMIT, BOTTOM_LIMIT = 0.03, 0.55


def roughness(ends: np.ndarray) -> float:
    median = np.median(sliding_window_view(ends, 7), axis=1)
    return float(np.abs(ends[3:-3] - median).mean())


def neck_steps(bottom: np.ndarray) -> float:
    low = np.flatnonzero(bottom >= bottom.max() - 25)
    return float(np.abs(np.diff(bottom[low[0]:low[-1] + 1])).mean())


def test_the_preview_outline_is_smooth_at_the_scalp_and_the_neck(tmp_path):
    from facepolicy.core import spec

    values = np.zeros((1, len(spec.CHANNEL_NAMES)))
    values[0, spec.CHANNEL_NAMES.index("jawOpen")] = 0.3
    track = {"fps": 30, "names": list(spec.CHANNEL_NAMES), "weights": values.tolist()}
    (tmp_path / "take.json").write_text(json.dumps(track), encoding="utf-8")
    run = facepolicy("preview", "take.json", "-o", "sheet.png", "--size", SIZE, "--backend", "cpu", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    image = decode_png((tmp_path / "sheet.png").read_bytes()).astype(float)
    image = image[:SIZE - 40]  # the frame number is drawn in the bottom rows
    drawn = np.abs(image - image[5, 5]).sum(-1) > 12
    columns = np.flatnonzero(drawn.any(axis=0))
    assert len(columns) > SIZE // 3, "the head is drawn"
    top = np.array([np.flatnonzero(drawn[:, c])[0] for c in columns])
    bottom = np.array([np.flatnonzero(drawn[:, c])[-1] for c in columns])
    assert roughness(top) <= TOP_LIMIT, f"wisps above the scalp: roughness {roughness(top):.3f} px"
    assert neck_steps(bottom) <= BOTTOM_LIMIT, f"spikes below the neck: steps of {neck_steps(bottom):.3f} px"
