"""Blender's version for the doctor report, without importing bpy until asked (the CLI works without Blender)."""


def blender_status() -> str:
    """Blender's version: inside Blender, from the bpy module, or why there is none."""
    try:
        import bpy  # heavy: only when a report asks for it
    except Exception:  # the bpy wheel may be absent or fail to load its libraries
        return "not available (bpy not installed: csv/json baking only)"
    where = "inside Blender" if bpy.app.binary_path else "bpy module"  # binary_path is empty for the module
    return f"{bpy.app.version_string} ({where})"
