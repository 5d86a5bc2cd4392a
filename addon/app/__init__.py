"""The command layer: the `facepolicy` console script and `blender -c facepolicy` (cli.py), the `bake` and `styles`
commands (bake.py) and the driver of `--executor ray` (ray/). Only the package's entry points use it."""
