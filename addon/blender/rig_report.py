"""What FacePolicy can do with a Blender object's shape keys: checks (``check_rig``), the name mapping stored on the
object, the geometric solve for rigs whose keys are not ARKit-named, and the track of key weights to write."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..core import spec
from ..core.errors import RigError
from ..core.facetrack import FaceTrack
from ..core.head import LANDMARK_NAMES
from ..core.retarget import KeySolver, retarget_track
from ..core.rig import RigMapping, build_mapping, overrides_to_json, parse_overrides

PROP_KEY_MAP = "facepolicy_key_map"  # JSON {shape key: channel | [channels] | ""}, edited by the user
PROP_LANDMARKS = "facepolicy_landmarks"  # JSON {landmark name: vertex index}, picked by the user
# Fewer ARKit channels than this matched by name → the keys are solved geometrically instead.
MIN_NAMED_CHANNELS = 8


@dataclass(frozen=True)
class RigIssue:
    severity: str  # "error": FacePolicy will not animate the object as it is; "warning"; "info"
    message: str


def _library_problem(block) -> str | None:
    if getattr(block, "library", None) is not None:
        return f'is linked from "{block.library.filepath}" (read-only)'
    if getattr(block, "override_library", None) is not None:
        return "is a library override whose data is read-only here"
    return None


def check_rig(obj) -> list[RigIssue]:
    """Everything that stops FacePolicy from animating ``obj``, or that the user should know, in plain words.

    Reads only; never changes the scene. Errors come first.
    """
    if obj is None:
        return [RigIssue("error", "no object selected: select a mesh with shape keys, or add the FacePolicy head "
                                  "(Add › Mesh › FacePolicy Head)")]
    if obj.type != "MESH":
        return [RigIssue("error", f'"{obj.name}" is a {obj.type.lower()}, not a mesh with shape keys')]
    issues: list[RigIssue] = []
    for block in (obj, obj.data, obj.data.shape_keys):
        problem = block is not None and _library_problem(block)
        if problem:
            issues.append(RigIssue("error", f'"{obj.name}" {problem}; make it local first (Object › Relations › '
                                            "Make Local, or Library Override › Make Editable)"))
            break
    if obj.mode == "EDIT":
        issues.append(RigIssue("error", f'"{obj.name}" is in Edit Mode; switch to Object Mode'))
    key = obj.data.shape_keys
    if key is None or len(key.key_blocks) < 2:
        issues.append(RigIssue("error", f'"{obj.name}" has no shape keys. Add the FacePolicy head (Add › Mesh › '
                                        "FacePolicy Head), or sculpt shape keys on this mesh: keys with any names "
                                        "are matched by the geometric solve"))
        return issues
    if not key.use_relative:
        issues.append(RigIssue("error", f'"{obj.name}": its shape keys are absolute (Relative is off); FacePolicy '
                                        "animates relative shape keys"))
    reference = key.reference_key
    others = [b.name for b in key.key_blocks if b != reference and b.relative_key != reference]
    if others:
        shown = ", ".join(f'"{n}"' for n in others[:4]) + (" …" if len(others) > 4 else "")
        issues.append(RigIssue("error", f'shape keys {shown} are relative to a key other than "{reference.name}"; '
                                        f'set their "Relative To" to "{reference.name}" (Shape Keys panel)'))
    try:
        mapping = mapping_for_object(obj)
    except RigError as exc:
        issues.append(RigIssue("error", f'"{obj.name}": {exc}'))
        mapping = None
    if mapping is not None:
        if uses_geometric_solve(mapping):  # names do not matter then, so neither do colliding names
            issues.append(RigIssue("info", f"only {len(spec.ARKIT_NAMES) - len(mapping.unmatched_channels)} ARKit "
                                           "channels match key names, so all keys will be solved geometrically"))
        else:
            collided = [c.message for c in mapping.collisions]
            issues += [RigIssue("error", m) for m in collided]
            issues += [RigIssue("warning", w) for w in mapping.warnings() if w not in collided]
    active = [m.name for m in obj.modifiers if m.show_viewport or m.show_render]
    if active:
        issues.append(RigIssue("warning", f'"{obj.name}" has active modifiers ({", ".join(active[:4])}); the keys '
                                          "are animated under them, and the geometric solve reads the mesh without "
                                          "them"))
    if obj.data.users > 1:
        issues.append(RigIssue("warning", f'"{obj.name}" shares its mesh with other objects; they will move too'))
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(issues, key=lambda i: order[i.severity])


def key_overrides(obj) -> dict[str, tuple[str, ...]]:
    return parse_overrides(str(obj.get(PROP_KEY_MAP, "") or ""))


def set_key_overrides(obj, overrides) -> None:
    """Store the user's mapping on the object (checked first: a bad mapping raises and changes nothing)."""
    obj[PROP_KEY_MAP] = overrides_to_json(parse_overrides(overrides))


def mapping_for_object(obj) -> RigMapping:
    key = obj.data.shape_keys
    names = [b.name for b in key.key_blocks] if key else []
    reference = key.reference_key.name if key else None
    return build_mapping(names, reference=reference, overrides=key_overrides(obj))


def uses_geometric_solve(mapping: RigMapping) -> bool:
    named = len(spec.ARKIT_NAMES) - len(mapping.unmatched_channels)
    return named < MIN_NAMED_CHANNELS and bool(mapping.keys)


def landmarks(obj) -> dict[str, int]:
    """The landmarks the user picked on ``obj`` (names as in the default head's landmarks)."""
    try:
        data = json.loads(str(obj.get(PROP_LANDMARKS, "") or "{}"))
    except json.JSONDecodeError:
        return {}
    n = len(obj.data.vertices)
    return {str(k): int(v) for k, v in data.items() if isinstance(v, int) and 0 <= v < n}


def set_landmark(obj, name: str, vertex_index: int | None) -> None:
    """Pick (or, with None, forget) one landmark on ``obj``; the geometric solve uses 4 or more."""
    if name not in LANDMARK_NAMES:
        raise RigError(f'"{name}" is not a landmark; use one of {", ".join(LANDMARK_NAMES)}')
    if vertex_index is not None and not 0 <= vertex_index < len(obj.data.vertices):
        raise RigError(f'"{obj.name}" has no vertex {vertex_index}')
    picked = landmarks(obj)
    if vertex_index is None:
        picked.pop(name, None)
    else:
        picked[name] = int(vertex_index)
    obj[PROP_LANDMARKS] = json.dumps(dict(sorted(picked.items())))


def solver_for_object(obj) -> KeySolver:
    """The geometric solver for ``obj``'s keys: the same cached solver the keyframe writer uses."""
    from .keys import rig_geometry, solver_for_geometry  # keys imports this module

    return solver_for_geometry(rig_geometry(obj))


def track_for_object(obj, track: FaceTrack, smoothness: float = 0.02) -> tuple[FaceTrack, str]:
    """``track`` (canonical channels) → a track whose channels are ``obj``'s shape keys (plus rotations), and
    how: "name" or "solve". Raises RigError when ``check_rig`` finds an error."""
    errors = [i.message for i in check_rig(obj) if i.severity == "error"]
    if errors:
        raise RigError(errors[0])
    mapping = mapping_for_object(obj)
    if uses_geometric_solve(mapping):
        return retarget_track(track, solver_for_object(obj), smoothness), "solve"
    return mapping.to_rig_track(track), "name"


def report_rows(obj) -> tuple[list[tuple[str, str, str]], str]:
    """Rows (channel, key(s), how) for the rig report, and the method ("name" or "solve")."""
    mapping = mapping_for_object(obj)
    if uses_geometric_solve(mapping):
        return [("all ARKit channels", f"{len(mapping.keys)} keys", "solve")], "solve"
    return mapping.report(), "name"


def report_text(obj) -> str:
    """The rig report as plain text (for a text block or the terminal)."""
    lines = [f"FacePolicy rig report: {obj.name}"]
    for issue in check_rig(obj):
        lines.append(f"{issue.severity.upper()}: {issue.message}")
    if obj.type == "MESH" and obj.data.shape_keys is not None:
        rows, method = report_rows(obj)
        lines.append(f"mapping: by {method}")
        lines += [f"  {ch:<22} {key or '-':<28} {how}" for ch, key, how in rows]
        overrides = key_overrides(obj)
        if overrides:
            lines.append("user mapping: " + json.dumps({k: list(v) for k, v in overrides.items()}))
    return "\n".join(lines)
