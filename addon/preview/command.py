"""`facepolicy preview TRACK -o sheet.png`: a contact sheet of the default head (or a bound 3DGS .ply) animated
by a FaceTrack (.json) or a Live Link Face take (.csv), rendered with the splat rasterizer, without Blender."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..core.errors import FacePolicyError, TrackFormatError
from ..core.facetrack import FaceTrack
from .png import write_png

MAX_FRAMES = 100
DEFAULT_FRAMES = 12

# 3x5 bitmap digits for the frame labels (no font rendering library is needed).
_DIGITS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001001001001",
    "8": "111101111101111", "9": "111101111001111",
}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "preview", help="render a contact sheet of the head animated by a track (Gaussian-splat renderer)",
        description="Render frames of a track (FacePolicy .json or Live Link Face .csv) on the default head with "
        "the Gaussian-splat rasterizer and tile them into one PNG. Needs the preview library: "
        "python -m facepolicy.preview.build")
    p.add_argument("track", type=Path, help="a track as written by `facepolicy bake`: FacePolicy .json or "
                   "Live Link Face .csv")
    p.add_argument("-o", "--output", type=Path, required=True, help="the PNG to write (.png)")
    p.add_argument("--frames", default=None, metavar="A:B:STEP",
                   help=f"track frames to show, as a Python slice (default: {DEFAULT_FRAMES} evenly spaced)")
    p.add_argument("--size", type=int, default=256, help="pixels per tile side (default: %(default)s)")
    p.add_argument("--columns", type=int, default=6, help="tiles per row (default: %(default)s)")
    p.add_argument("--splats-per-triangle", type=int, default=1,
                   help="gaussians per head triangle, besides one per vertex, when no --ply is given "
                   "(default: %(default)s)")
    p.add_argument("--ply", type=Path, default=None, help="a 3DGS .ply (INRIA layout) to bind to the head instead")
    p.add_argument("--ply-landmarks", type=Path, default=None, metavar="JSON",
                   help="align the .ply with landmarks: {\"nose_tip\": [x, y, z], ...} in the .ply's space "
                   "(at least 3 of the head's landmark names)")
    p.add_argument("--ply-transform", type=Path, default=None, metavar="JSON",
                   help="align the .ply with a 4x4 matrix (rotation, uniform scale, translation) instead")
    p.add_argument("--ply-max-distance", type=float, default=0.02,
                   help="drop .ply gaussians farther than this from the head surface, metres (default: %(default)s)")
    p.add_argument("--ply-memory-limit", type=float, default=None, metavar="MB",
                   help="refuse a .ply that needs more memory than this to load (default: "
                   "$FACEPOLICY_PLY_MEMORY_LIMIT_MB or 4096)")
    p.add_argument("--export-ply", type=Path, default=None, metavar="FILE",
                   help="also write the bound splat, posed at the first shown frame, as a 3DGS .ply")
    p.add_argument("--backend", choices=("auto", "cpu", "cuda", "numpy"), default="auto",
                   help="renderer (default: auto: CUDA where it runs, else the CPU library, else numpy)")
    p.set_defaults(func=run)


def parse_frames(spec: str | None, n_frames: int) -> list[int]:
    """Frame indices for ``--frames`` (a Python slice such as 0:90:10); None gives evenly spaced frames."""
    if n_frames < 1:
        raise TrackFormatError("the track has no frames")
    if spec is None:
        count = min(DEFAULT_FRAMES, n_frames)
        return sorted({int(round(i)) for i in np.linspace(0, n_frames - 1, count)})
    parts = spec.split(":")
    if len(parts) > 3:
        raise FacePolicyError(f"--frames {spec!r}: use A:B:STEP (like a Python slice)")
    try:
        values = [int(p) if p.strip() else None for p in parts]
    except ValueError:
        raise FacePolicyError(f"--frames {spec!r}: A, B and STEP must be integers") from None
    if len(values) == 1:
        if values[0] is None:
            raise FacePolicyError("--frames is empty")
        index = values[0] + n_frames if values[0] < 0 else values[0]
        if not 0 <= index < n_frames:
            raise FacePolicyError(f"--frames {spec}: the track has frames 0..{n_frames - 1}")
        return [index]
    if len(values) == 3 and values[2] == 0:
        raise FacePolicyError("--frames: STEP must not be 0")
    frames = list(range(n_frames))[slice(*values)]
    if not frames:
        raise FacePolicyError(f"--frames {spec} selects no frame of the track's {n_frames}")
    if len(frames) > MAX_FRAMES:
        raise FacePolicyError(f"--frames {spec} selects {len(frames)} frames; a contact sheet holds at most "
                              f"{MAX_FRAMES} (use a larger STEP)")
    return frames


def _draw_label(tile: np.ndarray, text: str, scale: int = 2, color=(0.85, 0.85, 0.85)) -> None:
    x = 3 * scale
    y = tile.shape[0] - 8 * scale
    for ch in text:
        bits = np.array([int(b) for b in _DIGITS[ch]], bool).reshape(5, 3)
        glyph = np.kron(bits, np.ones((scale, scale), bool))
        h, w = glyph.shape
        if y < 0 or x + w > tile.shape[1]:
            return
        tile[y:y + h, x:x + w][glyph] = color
        x += 4 * scale


def _load_json(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FacePolicyError(f'"{path.name}": cannot read the {what} ({exc.strerror})') from None
    except json.JSONDecodeError as exc:
        raise FacePolicyError(f'"{path.name}": the {what} is not valid JSON ({exc.msg}, line {exc.lineno})') from None


def load_track(path: Path) -> FaceTrack:
    """A Live Link Face .csv take, or a FacePolicy .json track (any other name is read as JSON)."""
    if path.suffix.lower() == ".csv":
        from ..core.livelink import read_livelink_csv

        return read_livelink_csv(path)
    return FaceTrack.load_json(path)


def build_scene(head, args):
    """The SplatScene to render: splats made from the head mesh, or an aligned and bound .ply."""
    from .ply import read_ply
    from .scene import SplatScene
    from .splats import BindingError, bind_cloud, similarity_from_landmarks, similarity_from_matrix

    if args.ply is None:
        if args.ply_landmarks or args.ply_transform:
            raise FacePolicyError("--ply-landmarks and --ply-transform need --ply")
        return SplatScene.from_head(head, args.splats_per_triangle)
    if args.ply_landmarks and args.ply_transform:
        raise FacePolicyError("give either --ply-landmarks or --ply-transform, not both")
    limit = None if args.ply_memory_limit is None else int(args.ply_memory_limit * 1024**2)
    cloud = read_ply(args.ply, max_bytes=limit)
    if args.ply_landmarks:
        data = _load_json(args.ply_landmarks, "landmark file")
        if not isinstance(data, dict):
            raise FacePolicyError(f'"{args.ply_landmarks.name}": expected an object {{"nose_tip": [x, y, z], ...}}')
        unknown = sorted(set(data) - set(head.landmarks))
        if unknown:
            raise FacePolicyError(f'"{args.ply_landmarks.name}": unknown landmarks {", ".join(unknown)}; the head '
                                  f'has {", ".join(sorted(head.landmarks))}')
        names = sorted(data)
        try:
            src = np.array([data[n] for n in names], np.float64)
        except (TypeError, ValueError):
            raise FacePolicyError(f'"{args.ply_landmarks.name}": every landmark must be [x, y, z]') from None
        dst = head.vertices[[head.landmarks[n] for n in names]]
        cloud = cloud.transformed(*similarity_from_landmarks(src, dst))
    elif args.ply_transform:
        data = _load_json(args.ply_transform, "transform file")
        matrix = data.get("matrix") if isinstance(data, dict) else data
        try:
            matrix = np.array(matrix, np.float64)
        except (TypeError, ValueError):
            raise BindingError(f'"{args.ply_transform.name}": expected a 4x4 matrix') from None
        cloud = cloud.transformed(*similarity_from_matrix(matrix))
    return SplatScene(bind_cloud(cloud, head.vertices, head.faces, max_distance=args.ply_max_distance))


def contact_sheet(track: FaceTrack, frames: list[int], scene, head, renderer, size: int = 256, columns: int = 6,
                  background=(0.14, 0.14, 0.16)) -> np.ndarray:
    """(H, W, 3) float image: one tile per frame, labelled with its frame number."""
    from .scene import front_camera, posed_head_vertices

    camera = front_camera(head.vertices, size, size)
    columns = max(1, min(columns, len(frames)))
    rows = -(-len(frames) // columns)
    gap = 2
    sheet = np.full((rows * size + (rows - 1) * gap, columns * size + (columns - 1) * gap, 3), 0.05, np.float32)
    for i, frame in enumerate(frames):
        verts = posed_head_vertices(head, track.values[frame], track.names)
        tile = renderer.render(*scene.render_arrays(verts, camera), camera, background=background)
        _draw_label(tile, str(frame))
        r, c = divmod(i, columns)
        sheet[r * (size + gap):r * (size + gap) + size, c * (size + gap):c * (size + gap) + size] = tile
    return sheet


def run(args) -> int:
    from ..core.head import load_default_head
    from .raster import MAX_IMAGE_SIDE, get_renderer

    if not 16 <= args.size <= min(2048, MAX_IMAGE_SIDE):
        raise FacePolicyError(f"--size must be 16..2048 pixels, got {args.size}")
    if args.columns < 1:
        raise FacePolicyError("--columns must be at least 1")
    if not 1 <= args.splats_per_triangle <= 64:
        raise FacePolicyError("--splats-per-triangle must be 1..64")
    if args.output.suffix.lower() != ".png":
        raise FacePolicyError(f'-o "{args.output}": the contact sheet is written as PNG only; give a name ending '
                              "in .png")
    t0 = time.perf_counter()
    track = load_track(args.track)
    frames = parse_frames(args.frames, track.n_frames)
    renderer = get_renderer(None if args.backend == "auto" else args.backend)
    if renderer.note:
        print(f"note: {renderer.note}")
    head = load_default_head()
    scene = build_scene(head, args)
    sheet = contact_sheet(track, frames, scene, head, renderer, args.size, args.columns)
    write_png(args.output, sheet)
    if args.export_ply:
        from .ply import write_ply
        from .scene import posed_head_vertices

        write_ply(args.export_ply, scene.cloud(posed_head_vertices(head, track.values[frames[0]], track.names)))
        print(f"wrote {args.export_ply}: the bound splat at frame {frames[0]}")
    print(f"wrote {args.output}: {len(frames)} frames ({frames[0]}..{frames[-1]}) of {args.track.name}, "
          f"{scene.splats.n} gaussians, {args.size}x{args.size} tiles, {renderer.backend} renderer, "
          f"{time.perf_counter() - t0:.1f}s")
    return 0
