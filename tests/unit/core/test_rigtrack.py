"""core.rigtrack: the one name-or-solve rule, decided per channel, on rigs built from the default head's shapes."""

from __future__ import annotations

import numpy as np
import pytest

from facepolicy.core import metrics, spec
from facepolicy.core.errors import RigError
from facepolicy.core.facetrack import FaceTrack
from facepolicy.core.head import load_default_head
from facepolicy.core.rig import build_mapping
from facepolicy.core.rigtrack import RigGeometry, RigPlan, lip_geometry, plan_rig, rig_track

POSES = {"AA": {"jawOpen": 0.7}, "OU": {"mouthPucker": 0.9}, "MBP": {"mouthClose": 0.3, "mouthPressLeft": 0.6},
         "Blink": {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}}


def posed_rig(poses: dict[str, dict[str, float]]) -> RigGeometry:
    head = load_default_head()
    deltas = [sum(w * head.deltas[spec.ARKIT_NAMES.index(c)] for c, w in pose.items()) for pose in poses.values()]
    return RigGeometry(tuple(poses), head.vertices.copy(), np.stack(deltas).astype(np.float32))


def plan_for(names) -> RigPlan:
    return plan_rig(build_mapping(["Basis", *names]))


def test_an_arkit_rig_is_driven_by_name_only():
    plan = plan_for(spec.ARKIT_NAMES)
    assert plan.method == "name" and not plan.needs_solve
    assert all(how == "exact" for _, _, how in plan.rows())


def test_a_mixed_rig_names_what_it_can_and_solves_the_rest():
    plan = plan_for(POSES)
    assert plan.method == "name + solve"
    assert plan.solve_keys == ("AA", "OU", "MBP") and "eyeBlinkLeft" not in plan.solved_channels
    rows = {ch: (key, how) for ch, key, how in plan.rows()}
    assert rows["eyeBlinkLeft"][0] == "Blink" and rows["jawOpen"][1] == "solve"
    assert "stay as they are" not in " ".join(plan.warnings())


def test_a_rig_with_no_free_key_leaves_uncovered_channels_undriven():
    plan = plan_for(["jawOpen", "eyeBlinkLeft"])
    assert plan.method == "name" and "mouthPucker" in plan.undriven_channels


def test_rig_track_drives_named_and_solved_keys_and_needs_the_geometry():
    geometry = posed_rig(POSES)
    plan = plan_for(POSES)
    track = FaceTrack.zeros(6)
    track.values[:3, spec.CHANNEL_INDEX["jawOpen"]] = 0.7
    track.values[3:, spec.CHANNEL_INDEX["mouthPucker"]] = 0.9
    track.values[:, spec.CHANNEL_INDEX["eyeBlinkLeft"]] = 0.5
    out = rig_track(track, plan, geometry)
    assert out.names[:4] == ("Blink", "AA", "OU", "MBP")
    np.testing.assert_allclose(out.channel("Blink"), 0.25)  # a two-channel key takes the mean of its channels
    assert out.channel("AA")[:3].min() > 0.9 and out.channel("AA")[3:].max() < 0.1
    assert out.channel("OU")[3:].min() > 0.9 and out.meta["rig"]["fit_error"] < 0.1
    with pytest.raises(RigError):
        rig_track(track, plan, None)


def test_lip_geometry_on_the_default_heads_own_shapes_matches_the_default_metric():
    head = load_default_head()
    geometry = RigGeometry(tuple(f"k{i}" for i in range(52)), head.vertices.copy(), head.deltas.copy())
    plan = plan_rig(build_mapping(["Basis", *geometry.key_names]))  # anonymous names: everything is solved
    lips = lip_geometry(geometry, plan)
    default = metrics.default_geometry()
    assert lips.gap0 == pytest.approx(default.gap0, rel=1e-3)
    assert lips.range == pytest.approx(default.range, rel=0.05)
