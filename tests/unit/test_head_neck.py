"""The default head's neck ends cleanly: one polygon caps it, its loop lies in the plane z = 0 and turns smoothly,
and nothing else of the head moved (tools/build_default_head.py, finish_neck)."""

from __future__ import annotations

import numpy as np

from facepolicy.core.head import load_default_head


def _open_edges(polygons) -> set[tuple[int, int]]:
    directed = {(int(a), int(b)) for p in polygons for a, b in zip(p, np.roll(p, -1), strict=True)}
    return {(a, b) for a, b in directed if (b, a) not in directed}


def test_the_neck_is_capped_by_one_polygon_in_the_plane_z0():
    head = load_default_head()
    cap_index = head.meta["neck_cap_polygon"]
    cap = head.polygons[cap_index]
    assert len(cap) >= 40
    assert np.abs(head.vertices[cap, 2]).max() == 0.0
    # Closed: every open edge left is high up (the mouth and the eyes' openings, the teeth), none at the neck.
    open_edges = _open_edges(head.polygons)
    assert min(head.vertices[[a for a, _ in open_edges], 2]) > 0.05
    without_cap = [p for i, p in enumerate(head.polygons) if i != cap_index]
    assert {tuple(sorted(e)) for e in _open_edges(without_cap)} >= {tuple(sorted(e)) for e in
                                                                     zip(cap, np.roll(cap, -1), strict=True)}
    # It faces down and out, like the rest of the surface (the preview culls back faces by this winding).
    p = head.vertices[cap].astype(np.float64)
    normal = np.cross(p - p.mean(0), np.roll(p, -1, axis=0) - p.mean(0)).sum(0)
    assert normal[2] < 0 and abs(normal[2]) > 0.99 * np.linalg.norm(normal)


def test_the_neck_loop_turns_smoothly():
    head = load_default_head()
    loop = head.vertices[head.polygons[head.meta["neck_cap_polygon"]], :2].astype(np.float64)
    seg = np.roll(loop, -1, axis=0) - loop
    heading = np.arctan2(seg[:, 1], seg[:, 0])
    turn = np.degrees(np.abs((np.diff(np.r_[heading, heading[0]]) + np.pi) % (2 * np.pi) - np.pi))
    assert turn.max() < 35.0, f"the neck cut has a corner of {turn.max():.0f} degrees"  # 69 before, 22 now


def test_only_the_neck_loop_moved():
    head = load_default_head()
    cap = set(head.polygons[head.meta["neck_cap_polygon"]].tolist())
    for name, group in head.vertex_groups.items():
        assert not cap & set(group.tolist()), name
    assert not cap & set(head.landmarks.values())
    assert not cap & set(head.lip_vertex_indices.tolist())
