"""Every difference between the Blender versions FacePolicy supports (4.2 LTS to 5.x), in one place.

- 4.4 brought slotted actions: an Action holds slots (one per animated ID), and its F-curves live in
  layer → keyframe strip → channelbag(slot). 5.0 removed the legacy ``Action.fcurves``/``Action.groups``.
- 4.4 renamed ``SequenceEditor.sequences`` to ``strips`` (5.0 removed the old name).
- 5.0 lifted ID names from 63 to 255 bytes.
"""

from __future__ import annotations

import bpy

SLOTTED_ACTIONS = hasattr(bpy.types, "ActionSlot")
ID_NAME_MAX_BYTES = bpy.types.ID.bl_rna.properties["name"].length_max - 1


def fit_id_name(name: str, reserve: int = 0) -> str:
    """``name`` shortened (on a character boundary) so it fits an ID name with ``reserve`` bytes to spare."""
    budget = ID_NAME_MAX_BYTES - reserve
    data = name.encode("utf-8")
    if len(data) <= budget:
        return name
    return data[:budget].decode("utf-8", errors="ignore").rstrip()


# --- actions --------------------------------------------------------------------------------------------------


def _slot_for(action: bpy.types.Action, id_block: bpy.types.ID):
    """The action's slot for ``id_block`` (matched by ID type and name), created when missing."""
    for slot in action.slots:
        if slot.target_id_type == id_block.id_type and slot.name_display == id_block.name:
            return slot
    return action.slots.new(id_type=id_block.id_type, name=id_block.name)


def _channelbag(action: bpy.types.Action, id_block: bpy.types.ID):
    slot = _slot_for(action, id_block)
    layer = action.layers[0] if action.layers else action.layers.new("Layer")
    strip = layer.strips[0] if layer.strips else layer.strips.new(type="KEYFRAME")
    return strip.channelbag(slot, ensure=True)


def new_fcurve(action: bpy.types.Action, id_block: bpy.types.ID, data_path: str, index: int = 0,
               group: str | None = None) -> bpy.types.FCurve:
    """A new F-curve in ``action`` that animates ``id_block``.

    Slotted actions keep one slot per ID, so one action can hold the shape keys and the head rotation of a take.
    A legacy (4.2) action animates a single ID, so callers give each ID its own action there.
    """
    if SLOTTED_ACTIONS:
        bag = _channelbag(action, id_block)
        fcurves, groups = bag.fcurves, bag.groups
    else:
        if not action.fcurves:
            action.id_root = id_block.id_type
        fcurves, groups = action.fcurves, action.groups
    fcurve = fcurves.new(data_path, index=index)
    if group:
        fcurve.group = groups.get(group) or groups.new(group)
    return fcurve


def action_fcurves(action: bpy.types.Action, id_block: bpy.types.ID | None = None) -> list[bpy.types.FCurve]:
    """The F-curves of ``action`` (only those for ``id_block`` when given and the action is slotted)."""
    if not SLOTTED_ACTIONS:
        return list(action.fcurves)
    # The slot the ID actually plays wins; importers (FBX, glTF) name their slots "Slot", not after the ID.
    ad = id_block.animation_data if id_block is not None else None
    playing = ad.action_slot if ad is not None and ad.action == action else None
    out = []
    for layer in action.layers:
        for strip in layer.strips:
            for bag in strip.channelbags:
                if id_block is None:
                    out.extend(bag.fcurves)
                elif playing is not None:
                    if bag.slot == playing:
                        out.extend(bag.fcurves)
                elif bag.slot.target_id_type == id_block.id_type and bag.slot.name_display == id_block.name:
                    out.extend(bag.fcurves)
    return out


def one_action_per_take() -> bool:
    """True when one action can animate several IDs (the shape keys and a head object or armature)."""
    return SLOTTED_ACTIONS


def assigned_action(id_block: bpy.types.ID) -> bpy.types.Action | None:
    ad = id_block.animation_data
    return ad.action if ad is not None else None


def assign_action(id_block: bpy.types.ID, action: bpy.types.Action | None) -> None:
    """Make ``action`` the active action of ``id_block`` (on its slot for that ID on 4.4+)."""
    ad = id_block.animation_data or id_block.animation_data_create()
    ad.action = action
    if action is not None and SLOTTED_ACTIONS:
        ad.action_slot = _slot_for(action, id_block)


def restore_action(id_block: bpy.types.ID, action: bpy.types.Action | None, had_animation_data: bool) -> None:
    """Put back what ``assigned_action`` saw, removing animation data this code created."""
    if had_animation_data:
        assign_action(id_block, action)
    elif id_block.animation_data is not None:
        id_block.animation_data_clear()


# --- the video sequence editor ---------------------------------------------------------------------------------


def _strip_collection(sequence_editor):
    return sequence_editor.strips if hasattr(sequence_editor, "strips") else sequence_editor.sequences


def all_strips(scene: bpy.types.Scene) -> list:
    """Every strip of the scene, inside meta strips too."""
    sed = scene.sequence_editor
    if sed is None:
        return []
    return list(sed.strips_all if hasattr(sed, "strips_all") else sed.sequences_all)


def new_sound_strip(scene: bpy.types.Scene, name: str, filepath: str, channel: int, frame_start: int):
    """Add a sound strip. Raises RuntimeError where this Blender was built without audio (the 4.2 bpy wheel)."""
    sed = scene.sequence_editor or scene.sequence_editor_create()
    return _strip_collection(sed).new_sound(name, filepath, channel, frame_start)


def remove_strip(scene: bpy.types.Scene, strip) -> None:
    _strip_collection(scene.sequence_editor).remove(strip)
