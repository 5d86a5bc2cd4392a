"""Registration of every Blender class, handler and property, from one explicit list of modules."""

import bpy

from ..preview import viewport
from . import animate, characters, doctor, live, panel, prefs, props

# Order matters: property groups before the classes that point to them, panels last (the splat preview's panel
# sits below the main one).
_MODULES = (props, prefs, doctor, characters, animate, live, panel, viewport)


def _classes():
    for module in _MODULES:
        yield from module.CLASSES


def register() -> None:
    for cls in _classes():
        bpy.utils.register_class(cls)
    for module in _MODULES:
        if hasattr(module, "register_extra"):
            module.register_extra()


def unregister() -> None:
    for module in reversed(_MODULES):
        if hasattr(module, "unregister_extra"):
            module.unregister_extra()
    for cls in reversed(list(_classes())):
        if getattr(cls, "is_registered", False):
            bpy.utils.unregister_class(cls)
