"""The ground floor: camera geometry, voxel grids and surface normals, shared by every stage.

- :mod:`tracklift.geometry.camera`: intrinsics, poses, projection and back-projection, the pixel rule.
- :mod:`tracklift.geometry.voxels`: voxel cells and keys, first-point and mean downsampling.
- :mod:`tracklift.geometry.normals`: mesh face/vertex normals, normals of organised point images.

Imports nothing of tracklift but :mod:`tracklift.errors`, and no heavy libraries (numpy only).
"""
