"""The default head's neck ends cleanly: a cap of rings closes it, its loop lies in the plane z = 0 and turns
smoothly, and nothing else of the head moved or was renumbered (tools/build_default_head.py, finish_neck)."""

from __future__ import annotations

import numpy as np

from facepolicy.core.head import load_default_head


def _open_edges(polygons) -> set[tuple[int, int]]:
    directed = {(int(a), int(b)) for p in polygons for a, b in zip(p, np.roll(p, -1), strict=True)}
    return {(a, b) for a, b in directed if (b, a) not in directed}


def _cap(head):
    start, stop = head.meta["neck_cap_polygons"]
    return head.polygons[start:stop], start, stop


def _neck_loop(head) -> np.ndarray:
    """The loop the cap closes, in the cap's order: the first vertex of each of the outer ring's quads."""
    cap, _, _ = _cap(head)
    n = sum(len(p) == 3 for p in cap)  # one centre triangle per loop vertex
    return np.array([p[0] for p in cap[:n]])


def test_the_neck_is_capped_in_the_plane_z0():
    head = load_default_head()
    cap, start, stop = _cap(head)
    cap_vertices = np.unique(np.concatenate(cap))
    assert np.abs(head.vertices[cap_vertices, 2]).max() == 0.0
    # The cap's own vertices come after all the others (nothing renumbered) and the polygons are all small.
    assert cap_vertices.max() == head.num_vertices - 1 and len(_neck_loop(head)) == 46
    edges = [np.linalg.norm(head.vertices[a] - head.vertices[b]) for p in cap for a, b in zip(p, np.roll(p, -1),
                                                                                           strict=True)]
    assert max(edges) < 0.025
    # Closed: every open edge left is high up (the mouth and the eyes' openings, the teeth), none at the neck.
    open_edges = _open_edges(head.polygons)
    assert min(head.vertices[[a for a, _ in open_edges], 2]) > 0.05
    assert _open_edges(head.polygons[:start] + head.polygons[stop:])  # without the cap, the neck is open
    # It faces down, like the rest of the surface faces out (the preview culls back faces by this winding).
    for p in cap:
        q = head.vertices[p].astype(np.float64)
        assert np.cross(q[1] - q[0], q[2] - q[0])[2] < 0


def test_the_neck_loop_turns_smoothly():
    head = load_default_head()
    loop = head.vertices[_neck_loop(head), :2].astype(np.float64)
    seg = np.roll(loop, -1, axis=0) - loop
    heading = np.arctan2(seg[:, 1], seg[:, 0])
    turn = np.degrees(np.abs((np.diff(np.r_[heading, heading[0]]) + np.pi) % (2 * np.pi) - np.pi))
    assert turn.max() < 35.0, f"the neck cut has a corner of {turn.max():.0f} degrees"  # 69 before, 22 now


def test_only_the_neck_loop_moved():
    head = load_default_head()
    cap = set(_neck_loop(head).tolist())
    for name, group in head.vertex_groups.items():
        assert not cap & set(group.tolist()), name
    assert not cap & set(head.landmarks.values())
    assert not cap & set(head.lip_vertex_indices.tolist())
