"""ASPRS ``.las`` and ``.laz`` through laspy (LAZ through its lazrs backend).

LAS stores x y z as 32-bit integers times a scale plus an offset, so its precision is the scale. Reading
gives the scaled float64 positions; every dimension but X Y Z that is not all zeros (intensity, colours,
classification, extra bytes such as normals) is an attribute. Writing a cloud read from a .las/.laz keeps
its header (scales, offsets, CRS and other VLRs) and every dimension, with the new positions rounded to the
same grid; any other cloud gets point format 6 (7 with colours), LAS 1.4, offsets at its minimum corner and
a power-of-ten scale at most extent / 2·10⁹, and its non-LAS attributes as extra bytes.
The header's point count is checked against the file's size before laspy allocates the points.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import List, Tuple

import numpy as np

from sbdbench.errors import InputError
from sbdbench.io_cloud import PointCloudData, check_attributes, unique_names

LAZ_MAX_RATIO = 200  # a LAZ body claiming to expand more than this is refused (real files compress 5-15x)
INSTALL_HINT = "pip install 'laspy[lazrs]>=2.4'"


def _laspy():
    try:
        import laspy
    except ImportError:
        raise InputError(f".las/.laz files need laspy: {INSTALL_HINT}") from None
    return laspy


def _one_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:120]}"


def _check_count(path: Path, header) -> None:
    n, record = int(header.point_count), int(header.point_format.size)
    if n == 0:
        raise InputError(f"{path}: the file holds no points")
    body = path.stat().st_size - int(header.offset_to_point_data)
    need = n * record
    if header.are_points_compressed:
        if need > LAZ_MAX_RATIO * max(body, 0) + (1 << 20):
            raise InputError(f"{path}: the LAZ header announces {n} points ({need} bytes) in {body} compressed bytes (forged?)")
    elif body < need:
        raise InputError(f"{path}: the LAS header announces {n} points ({need} bytes), the file holds {body} (truncated?)")


def read_las_cloud(path: Path) -> PointCloudData:
    """A .las/.laz cloud; its LasData rides along as ``native`` for a LAS writer."""
    laspy = _laspy()
    try:
        with laspy.open(str(path)) as reader:
            _check_count(path, reader.header)
            las = reader.read()
    except InputError:
        raise
    except Exception as exc:
        hint = f" (LAZ needs a backend: {INSTALL_HINT})" if "LazBackend" in str(exc) or "backend" in str(exc).lower() else ""
        raise InputError(f"{path}: not a readable LAS/LAZ file ({_one_line(exc)}){hint}") from None
    if len(las.points) != int(las.header.point_count):
        raise InputError(f"{path}: the LAS header announces {las.header.point_count} points, the file holds {len(las.points)} (truncated?)")
    xyz = np.column_stack([np.asarray(las.x, dtype=np.float64), np.asarray(las.y, dtype=np.float64), np.asarray(las.z, dtype=np.float64)])
    extra = set(las.point_format.extra_dimension_names)
    dims = [d for d in las.point_format.dimension_names if d not in ("X", "Y", "Z")]
    values = {d: np.asarray(las[d]) for d in dims}
    kept = [d for d in dims if d in extra or values[d].any()]
    attributes = {name: values[d] for name, d in zip(unique_names(kept, str(path)), kept)}
    return PointCloudData(xyz, check_attributes(attributes, len(xyz), str(path)), np.dtype(np.float64), native=las)


def _grid(xyz: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(offsets, scales): the minimum corner, and one power of ten that fits the extent in 2·10⁹ steps."""
    lo, hi = xyz.min(axis=0), xyz.max(axis=0)
    extent = float((hi - lo).max())
    scale = 10.0 ** np.ceil(np.log10(extent / 2e9)) if extent > 0 else 1e-9
    return lo, np.full(3, scale)


def plan_las_attributes(cloud: PointCloudData, point_format) -> Tuple[List[str], List[str]]:
    """(attributes stored in standard LAS dimensions, attributes stored as extra bytes); refuses values a
    standard dimension cannot hold exactly (e.g. a fractional intensity in LAS's 16-bit integer)."""
    laspy = _laspy()
    standard_names = set(point_format.standard_dimension_names) - {"X", "Y", "Z"}
    standard, extra = [], []
    probe = laspy.ScaleAwarePointRecord.zeros(1, point_format=point_format, scales=np.ones(3), offsets=np.zeros(3))
    for name, values in cloud.attributes.items():
        if name in standard_names:
            target = np.asarray(probe[name]).dtype
            if not np.array_equal(values.astype(target), values):
                raise InputError(f"attribute {name!r} does not fit LAS's {np.dtype(target)} {name} dimension "
                                 f"(values {values.min():g}..{values.max():g}); write .ply, .pcd or text instead")
            standard.append(name)
        elif name.lower() in ("x", "y", "z"):
            raise InputError(f"attribute {name!r} collides with a LAS coordinate")
        else:
            extra.append(name)
    return standard, extra


def _new_las(cloud: PointCloudData):
    laspy = _laspy()
    has_rgb = {"red", "green", "blue"} <= set(cloud.attributes)
    las = laspy.create(point_format=7 if has_rgb else 6, file_version="1.4")
    standard, extra = plan_las_attributes(cloud, las.point_format)
    if extra:
        las.add_extra_dims([laspy.ExtraBytesParams(name=n, type=cloud.attributes[n].dtype) for n in extra])
    las.header.offsets, las.header.scales = _grid(cloud.xyz)
    las.points = laspy.ScaleAwarePointRecord.zeros(len(cloud), header=las.header)
    for name in standard + extra:
        las[name] = cloud.attributes[name]
    return las


def _same_las(cloud: PointCloudData):
    laspy = _laspy()
    src = cloud.native
    return laspy.LasData(header=copy.deepcopy(src.header), points=src.points.copy())


def write_las_cloud(tmp: Path, cloud: PointCloudData, compress: bool) -> None:
    """Write ``cloud`` as LAS (``compress`` False) or LAZ at ``tmp``."""
    las = _same_las(cloud) if cloud.native is not None and len(cloud.native.points) == len(cloud) else _new_las(cloud)
    try:
        las.x, las.y, las.z = cloud.xyz[:, 0], cloud.xyz[:, 1], cloud.xyz[:, 2]
        with open(tmp, "wb") as fh:  # a stream: laspy would take the compression from the temp file's suffix
            las.write(fh, do_compress=compress)
    except InputError:
        raise
    except Exception as exc:
        hint = f" (LAZ needs a backend: {INSTALL_HINT})" if compress and "backend" in str(exc).lower() else ""
        raise InputError(f"{tmp.name}: cannot write LAS/LAZ ({_one_line(exc)}){hint}") from None
