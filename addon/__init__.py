"""FacePolicy: speech audio to facial animation for Blender.

This package is both the Blender extension (register/unregister below) and a plain Python package used by the
`facepolicy` console script. Nothing here imports bpy at module level, so the CLI works without Blender.
"""

from .core.version import VERSION as __version__  # noqa: F401 - the package's public version

_cli_handle = None


def register() -> None:
    import bpy

    from . import ui
    from .app.cli import blender_cli_command

    global _cli_handle
    ui.register()
    _cli_handle = bpy.utils.register_cli_command("facepolicy", blender_cli_command)


def unregister() -> None:
    import bpy

    from . import ui

    global _cli_handle
    if _cli_handle is not None:
        bpy.utils.unregister_cli_command(_cli_handle)
        _cli_handle = None
    ui.unregister()
