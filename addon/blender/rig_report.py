"""What FacePolicy can do with a Blender object's shape keys: checks (``check_rig``), the name mapping and landmarks
stored on the object, the rig's geometry for the solve, and the per-channel plan of core.rigtrack as a report.

The keyframe writer reads the rig through this module; the name-or-solve rule itself lives in core.rigtrack."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ..core.errors import RigError
from ..core.facetrack import FaceTrack
from ..core.head import LANDMARK_NAMES
from ..core.retarget import KeySolver
from ..core.rig import RigMapping, build_mapping, overrides_to_json, parse_overrides
from ..core.rigtrack import RigGeometry, RigPlan, plan_rig, rig_track, solver_for

PROP_KEY_MAP = "facepolicy_key_map"  # JSON {shape key: channel | [channels] | ""}, edited by the user
PROP_LANDMARKS = "facepolicy_landmarks"  # JSON {landmark name: vertex index}, picked by the user


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
        plan = rig_plan(obj)
    except RigError as exc:
        issues.append(RigIssue("error", f'"{obj.name}": {exc}'))
        plan = None
    if plan is not None:
        issues.append(RigIssue("info", plan.summary()))
        collided = [c.message for c in plan.mapping.collisions]
        issues += [RigIssue("error", m) for m in collided]
        issues += [RigIssue("warning", w) for w in plan.warnings() if w not in collided]
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
    """The user's mapping stored on ``obj`` (JSON text, or an ID property group set from a script)."""
    stored = obj.get(PROP_KEY_MAP, "") or ""
    return parse_overrides(stored.to_dict() if hasattr(stored, "to_dict") else str(stored))


def set_key_overrides(obj, overrides) -> None:
    """Store the user's mapping on the object (checked first: a bad mapping raises and changes nothing)."""
    obj[PROP_KEY_MAP] = overrides_to_json(parse_overrides(overrides))


def mapping_for_object(obj) -> RigMapping:
    key = obj.data.shape_keys
    names = [b.name for b in key.key_blocks] if key else []
    reference = key.reference_key.name if key else None
    return build_mapping(names, reference=reference, overrides=key_overrides(obj))


def rig_plan(obj, mapping: RigMapping | None = None) -> RigPlan:
    """Which key each ARKit channel of ``obj`` drives, and how (core.rigtrack's one rule)."""
    return plan_rig(mapping or mapping_for_object(obj))


def rig_geometry(obj) -> RigGeometry:
    """``obj``'s rest shape and key deltas, read on the main thread for a solve on any thread."""
    key = obj.data.shape_keys
    n = len(obj.data.vertices)

    def coords(kb) -> np.ndarray:
        co = np.empty(n * 3, np.float32)
        kb.data.foreach_get("co", co)
        return co.reshape(n, 3)

    ref = key.reference_key
    cache = {ref.name: coords(ref)}
    names, deltas = [], []
    for kb in key.key_blocks:
        if kb == ref:
            continue
        base = kb.relative_key if kb.relative_key is not None else ref
        if base.name not in cache:
            cache[base.name] = coords(base)
        names.append(kb.name)
        deltas.append(coords(kb) - cache[base.name])
    if not names:
        raise RigError(f'"{obj.name}" has no shape keys to solve for')
    return RigGeometry(tuple(names), cache[ref.name], np.stack(deltas), landmarks(obj))


def track_for_rig(obj, shaped: FaceTrack, plan: RigPlan | None = None, smoothness: float = 0.02) -> FaceTrack:
    """``shaped`` (canonical channels) in ``obj``'s own key channels, by the plan (the geometry is read only when
    the plan solves)."""
    plan = plan or rig_plan(obj)
    return rig_track(shaped, plan, rig_geometry(obj) if plan.needs_solve else None, smoothness)


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
    """The geometric solver of all ARKit channels over all of ``obj``'s keys (the writer's cache)."""
    return solver_for(rig_geometry(obj))


def track_for_object(obj, track: FaceTrack, smoothness: float = 0.02) -> tuple[FaceTrack, str]:
    """``track`` (canonical channels) → a track whose channels are ``obj``'s shape keys (plus rotations), and
    how ("name", "solve" or "name + solve"). Raises RigError when ``check_rig`` finds an error."""
    errors = [i.message for i in check_rig(obj) if i.severity == "error"]
    if errors:
        raise RigError(errors[0])
    plan = rig_plan(obj)
    return track_for_rig(obj, track, plan, smoothness), plan.method


def report_rows(obj) -> tuple[list[tuple[str, str, str]], str]:
    """Rows (channel, key(s), how) for the rig report, and the method: exactly what a bake will do."""
    plan = rig_plan(obj)
    return plan.rows(), plan.method


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
