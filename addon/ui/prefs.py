"""Add-on preferences: where inference runs, how many threads, where the models are, the default style."""

from __future__ import annotations

import functools

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty

# The extension's root package: "facepolicy" as a plain package, "bl_ext.<repo>.facepolicy" inside Blender.
ADDON_PACKAGE = __package__.rpartition(".")[0]


@functools.cache
def onnx_providers() -> tuple[str, ...]:
    try:
        import onnxruntime
    except ImportError:
        return ()
    return tuple(onnxruntime.get_available_providers())


def device_note(device: str) -> str | None:
    """What the device choice means on this machine, when it is not what the user might expect."""
    providers = onnx_providers()
    if not providers:
        return "onnxruntime is not installed: the Neural engine is unavailable"
    has_cuda = "CUDAExecutionProvider" in providers
    if device == "AUTO" and not has_cuda:
        return "No CUDA here: Auto runs on the CPU"
    if device == "CUDA" and not has_cuda:
        return "CUDA is not available (onnxruntime has no CUDA provider): bakes fall back to the CPU"
    return None


class FacePolicyPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    device: EnumProperty(name="Device", items=(
        ("AUTO", "Auto", "CUDA when onnxruntime has it, otherwise the CPU"),
        ("CPU", "CPU", "Always the CPU"),
        ("CUDA", "CUDA", "An NVIDIA GPU through onnxruntime's CUDA provider"),
    ), default="AUTO")
    threads: IntProperty(name="Threads", default=0, min=0, max=256,
                         description="CPU threads per model for inference (0: one, the fastest measured: the "
                                     "phone decoders use the other cores)")
    model_dir: StringProperty(name="Model Folder", subtype="DIR_PATH",
                              description="Use the models in this folder instead of the bundled ones")
    default_style: StringProperty(name="Default Style", description="Style preset used when the panel names none")

    def draw(self, context):
        layout = self.layout
        col = layout.column()
        col.prop(self, "device")
        note = device_note(self.device)
        if note:
            col.label(text=note, icon="INFO")
        col.prop(self, "threads")
        col.prop(self, "model_dir")
        col.prop(self, "default_style")


def get_preferences(context=None):
    """The add-on's preferences, or None where the package runs without being enabled as an add-on."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon is not None else None


CLASSES = (FacePolicyPreferences,)
