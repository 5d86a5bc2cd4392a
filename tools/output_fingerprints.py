"""sha256 of every output of a fixed set of bakes, to show that a refactor changed no output.

`.venv/bin/python tools/output_fingerprints.py -o fingerprints.txt [--formats csv,json,fbx,glb,blend] [--quick]`

Five clips (two CMU ARCTIC lines, the bundled LibriVox line, two pocketsphinx-testdata LibriVox clips), each with its
transcript beside it and without one; the Neural engine in both accuracy modes with seeds 0, 1 and 2, and the
Phonetic engine in both modes; every export format. Each configuration is one `python -m facepolicy.cli bake` run
(so PYTHONPATH can point it at another checkout's package to compare two versions). The list is sorted; compare two
lists with `diff`. FBX and .blend bytes differ from run to run (object ids, pointers, time stamps), so they are hashed
by what they hold: the FBX's curves and geometry arrays, the .blend's objects, shape keys, actions (every keyframe),
scene range and sound strips, read with bpy. Two runs of the same code give the same list.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCTIC = ROOT / "tests" / "data" / "arctic"
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
CLIPS = [ARCTIC / "arctic_a0007.wav", ARCTIC / "arctic_a0009.wav", ROOT / "assets" / "audio" / "demo" / "dashwood.wav",
         LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0870.wav",
         LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0880.wav"]


def configurations(quick: bool) -> list[tuple[str, list[str]]]:
    seeds = (0,) if quick else (0, 1, 2)
    out = [(f"neural-{mode}-seed{seed}", ["--engine", "neural", "--accuracy", mode, "--seed", str(seed)])
           for mode in ("accurate", "fast") for seed in seeds]
    out += [(f"phonetic-{mode}", ["--engine", "phonetic", "--accuracy", mode]) for mode in ("fast", "accurate")]
    return out


def transcript_of(clip: Path) -> str | None:
    txt = clip.with_suffix(".txt")
    if txt.exists():
        return txt.read_text(encoding="utf-8").strip()
    listing = clip.parent / "transcription"
    if listing.exists():
        for line in listing.read_text(encoding="utf-8").splitlines():
            if line.rstrip().endswith(f"({clip.stem})"):
                return line[: line.rindex("(")].replace("<s>", "").replace("</s>", "").strip().lower()
    return None


def _fbx_content(path: Path) -> bytes:
    """What an FBX holds for a game engine: every animation curve's key times and values and every geometry's
    vertices and shape deltas, in a stable order. Names and ids are left out: a batch worker that baked other lines
    first gives its objects other ids and suffixes from run to run."""
    sys.path.insert(0, str(ROOT / "tests" / "journeys"))
    from test_export_sync import parse_fbx

    arrays = []

    def walk(nodes) -> None:
        for name, props, children in nodes:
            if name in (b"KeyTime", b"KeyValueFloat", b"Vertices", b"PolygonVertexIndex", b"Indexes"):
                arrays.append(name + b":" + props[0].tobytes())
            walk(children)

    walk(parse_fbx(path))
    return b"\n".join(sorted(arrays))


def _blend_content(path: Path) -> bytes:
    """What a .blend holds for an animator: objects, shape keys, actions with every keyframe, range, sound strips."""
    import bpy

    bpy.ops.wm.open_mainfile(filepath=str(path))
    from facepolicy.blender import compat

    scene = bpy.context.scene
    out = [(scene.frame_start, scene.frame_end, scene.render.fps, scene.render.fps_base)]
    for ob in sorted(bpy.data.objects, key=lambda o: o.name):
        keys = ob.data.shape_keys if ob.type == "MESH" else None
        out.append((ob.name, ob.type, [(k.name, round(k.value, 6)) for k in keys.key_blocks] if keys else None))
    for action in sorted(bpy.data.actions, key=lambda a: a.name):
        curves = sorted((fc.data_path, fc.array_index, [tuple(k.co) for k in fc.keyframe_points])
                        for fc in compat.action_fcurves(action))
        out.append((action.name, curves))
    out += sorted((s.name, s.frame_start, s.channel) for s in compat.all_strips(scene))
    return repr(out).encode()


def digest(path: Path) -> str:
    if path.suffix == ".fbx":
        data = _fbx_content(path)
    elif path.suffix == ".blend":
        data = _blend_content(path)
    else:
        data = path.read_bytes()
    return hashlib.sha256(data).hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", required=True, help="where the sorted sha256 list goes")
    ap.add_argument("--formats", default="csv,json,fbx,glb,blend")
    ap.add_argument("--quick", action="store_true", help="seed 0 only")
    args = ap.parse_args(argv)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for with_text in (True, False):
            folder = Path(tmp) / ("transcript" if with_text else "audio-only")
            folder.mkdir()
            for clip in CLIPS:
                if not clip.exists():
                    sys.exit(f"{clip}: missing (bash run.sh test installs pocketsphinx-testdata)")
                shutil.copy(clip, folder / clip.name)
                text = transcript_of(clip)
                if with_text and text:
                    (folder / clip.with_suffix(".txt").name).write_text(text + "\n", encoding="utf-8")
            for name, flags in configurations(args.quick):
                out = Path(tmp) / "out" / folder.name / name
                cmd = [sys.executable, "-m", "facepolicy.cli", "bake", *sorted(map(str, folder.glob("*.wav"))),
                       "-o", str(out), "--format", args.formats, "--jobs", "2", *flags]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
                for f in sorted(out.iterdir()):
                    if not f.name.startswith("."):
                        lines.append(f"{digest(f)}  {folder.name}/{name}/{f.name}")
                print(f"{folder.name}/{name}: {len(list(out.glob('*.*')))} files", file=sys.stderr)
    Path(args.output).write_text("\n".join(sorted(lines, key=lambda s: s[66:])) + "\n", encoding="utf-8")
    print(f"output fingerprints: {len(lines)} files → {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
