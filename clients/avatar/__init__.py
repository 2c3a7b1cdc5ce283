"""Avatars outside the viewer: the built-in one assembled for export (builtin.py), written as glTF 2.0 or
VRM 1.0 (gltf_export.py, vrm.py)."""
