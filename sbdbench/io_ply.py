"""PLY point clouds through plyfile: every scalar vertex property is an attribute, in its stored type.

Reading checks the header's counts first (:func:`sbdbench.io_formats.check_ply_size`), so a forged count
never allocates more than the file holds. Writing is binary little-endian, x y z in the cloud's stored
precision (float64 unless the input held float32), attributes in their own types (64-bit integers, which
PLY lacks, become 32-bit when their values fit, float64 otherwise).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sbdbench.errors import InputError
from sbdbench.io_cloud import PointCloudData, check_attributes, stored_float_dtype, unique_names
from sbdbench.io_formats import check_ply_size


def _plyfile():
    try:
        import plyfile
    except ImportError:
        raise InputError(".ply point clouds need plyfile: pip install 'plyfile>=1.0'") from None
    return plyfile


def read_ply_cloud(path: Path) -> PointCloudData:
    """The vertices of a PLY file (a point cloud or a mesh) with their scalar properties."""
    PlyData = _plyfile().PlyData
    check_ply_size(path)
    try:
        ply = PlyData.read(str(path), mmap=False)
        vertex = ply["vertex"].data
    except KeyError:
        raise InputError(f"{path}: the PLY file has no 'vertex' element") from None
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:120]
        raise InputError(f"{path}: not a readable PLY file ({type(exc).__name__}: {first})") from None
    fields = list(vertex.dtype.names or ())
    if not {"x", "y", "z"} <= set(fields):
        raise InputError(f"{path}: the PLY vertices have no x, y, z properties")
    if len(vertex) == 0:
        raise InputError(f"{path}: the PLY file holds no vertices")
    xyz = np.column_stack([np.asarray(vertex[c], dtype=np.float64) for c in "xyz"])
    extra = [f for f in fields if f not in ("x", "y", "z") and vertex.dtype[f].shape == () and vertex.dtype[f].kind in "uif"]
    names = unique_names(extra, str(path))
    attributes = {name: np.asarray(vertex[f]).astype(vertex.dtype[f].newbyteorder("=")) for name, f in zip(names, extra)}
    return PointCloudData(xyz, check_attributes(attributes, len(xyz), str(path)), stored_float_dtype(vertex.dtype["x"]))


def _ply_type(values: np.ndarray) -> np.dtype:
    """A type PLY can store that holds ``values`` exactly."""
    if values.dtype.itemsize <= 4 or values.dtype.kind == "f":
        return values.dtype
    for small in ((np.int32,) if values.dtype.kind == "i" else (np.uint32, np.int32)):
        info = np.iinfo(small)
        if len(values) == 0 or (values.min() >= info.min and values.max() <= info.max):
            return np.dtype(small)
    return np.dtype(np.float64)


def ply_bytes(cloud: PointCloudData) -> bytes:
    """A binary little-endian PLY of the cloud and its attributes."""
    import io

    plyfile = _plyfile()
    coord = stored_float_dtype(cloud.xyz_dtype)
    names = list(cloud.attributes)
    dtype = [(c, coord.newbyteorder("<")) for c in "xyz"]
    dtype += [(n, _ply_type(cloud.attributes[n]).newbyteorder("<")) for n in names]
    record = np.empty(len(cloud), dtype=dtype)
    for j, c in enumerate("xyz"):
        record[c] = cloud.xyz[:, j]
    for n in names:
        record[n] = cloud.attributes[n]
    buf = io.BytesIO()
    plyfile.PlyData([plyfile.PlyElement.describe(record, "vertex")], text=False, byte_order="<").write(buf)
    return buf.getvalue()
