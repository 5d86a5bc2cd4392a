"""Gaussian-splat preview: gaussians bound to the head's triangles, drawn by a compiled 3DGS rasterizer.

raster (ctypes binding of csrc/, built by `python -m facepolicy.preview.build`) · cloud (GaussianCloud) · ply (INRIA
.ply I/O) · splats (binding to a mesh, alignment) · scene (posing, relighting, cameras) · command (`facepolicy
preview`) · viewport (Blender draw handler; imports bpy, so it is only imported by the UI).
"""
