"""PCL's ``.pcd`` through pypcd4 (``ascii``, ``binary`` and ``binary_compressed``).

Every field but x y z is an attribute (PCL's ``normal_x`` … read as ``nx`` …; a field with COUNT k as k
attributes ``name__0000`` …; padding fields ``_`` are dropped). A packed ``rgb`` field is read as
``red green blue`` (uint8) and packed again on writing, as PCL does; a non-zero alpha byte is kept as
``alpha``. Before pypcd4 reads the data, the header is checked: POINTS = WIDTH × HEIGHT, a binary body holds
exactly POINTS records, a compressed one announces exactly that size and cannot expand past LZF's bound.
Written files are ``binary_compressed``, x y z in the cloud's stored precision.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from sbdbench.errors import InputError
from sbdbench.io_cloud import PointCloudData, check_attributes, stored_float_dtype, unique_names

LZF_MAX_RATIO = 100  # LZF writes at least 3 bytes per 264 output bytes: larger claims are forged
PCD_NAMES = {"nx": "normal_x", "ny": "normal_y", "nz": "normal_z"}


def _pypcd4():
    try:
        import pypcd4
    except ImportError:
        raise InputError(".pcd files need pypcd4: pip install 'pypcd4>=1.5'") from None
    return pypcd4


def _header(path: Path) -> Tuple[List[str], int]:
    """(header lines, header length in bytes) of a PCD file; the header ends with its DATA line."""
    lines, offset = [], 0
    with open(path, "rb") as fh:
        for raw in fh:
            offset += len(raw)
            line = raw.decode("utf-8", errors="replace").strip()
            if line and not line.startswith("#"):
                lines.append(line)
            if line.upper().startswith("DATA") or len(lines) > 11 or offset > 1 << 16:
                break
    if not lines or not lines[-1].upper().startswith("DATA"):
        raise InputError(f"{path}: not a PCD file (no header ending with a DATA line)")
    return lines, offset


def _record_dtype(path: Path, meta) -> np.dtype:
    """The record type the header's FIELDS / SIZE / TYPE / COUNT describe (each list one entry per field)."""
    lengths = {len(meta.fields), len(meta.size), len(meta.type), len(meta.count)}
    try:
        if len(lengths) != 1:
            raise ValueError("FIELDS, SIZE, TYPE and COUNT differ in length")
        return meta.build_dtype()
    except Exception as exc:
        raise InputError(f"{path}: malformed PCD header ({_one_line(exc)})") from None


def _one_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:120]}"


def _check_body(path: Path, meta, header_len: int) -> None:
    dtype = _record_dtype(path, meta)
    if meta.width * meta.height != meta.points:
        raise InputError(f"{path}: the PCD header's WIDTH × HEIGHT ({meta.width} × {meta.height}) is not POINTS ({meta.points})")
    if meta.points == 0:
        raise InputError(f"{path}: the file holds no points")
    need = meta.points * dtype.itemsize
    body = path.stat().st_size - header_len
    if meta.data.value == "binary" and body < need:
        raise InputError(f"{path}: the PCD header announces {meta.points} points ({need} bytes), the file holds {body} (truncated?)")
    if meta.data.value in ("binary_compressed", "binaryscompressed"):
        with open(path, "rb") as fh:
            fh.seek(header_len)
            sizes = fh.read(8)
        if len(sizes) < 8:
            raise InputError(f"{path}: the compressed PCD body has no size words (truncated?)")
        packed, unpacked = struct.unpack("<II", sizes)
        if unpacked != need or packed > body - 8 or unpacked > LZF_MAX_RATIO * packed + 64:
            raise InputError(f"{path}: the compressed PCD body announces {packed} → {unpacked} bytes for {meta.points} points "
                             f"({need} bytes) in {body - 8} bytes (truncated or forged?)")


def _load(path: Path):
    pypcd4 = _pypcd4()
    lines, header_len = _header(path)
    try:
        meta = pypcd4.pypcd4.MetaData.parse_header(lines)
    except Exception as exc:
        raise InputError(f"{path}: malformed PCD header ({_one_line(exc)})") from None
    _check_body(path, meta, header_len)
    try:
        pc = pypcd4.PointCloud.from_path(path)
    except Exception as exc:
        raise InputError(f"{path}: not a readable PCD file ({_one_line(exc)})") from None
    data = np.atleast_1d(pc.pc_data)  # numpy's loadtxt gives a 0-d record for a one-line body
    if len(data) != meta.points:
        raise InputError(f"{path}: the PCD header announces {meta.points} points, the file holds {len(data)} (truncated?)")
    return data


def _unpack_rgb(packed: np.ndarray) -> Dict[str, np.ndarray]:
    word = np.ascontiguousarray(packed).view(np.uint32)
    out = {"red": ((word >> 16) & 255).astype(np.uint8), "green": ((word >> 8) & 255).astype(np.uint8),
           "blue": (word & 255).astype(np.uint8)}
    alpha = (word >> 24).astype(np.uint8)
    if alpha.any():
        out["alpha"] = alpha
    return out


def read_pcd_cloud(path: Path) -> PointCloudData:
    """A .pcd cloud with its fields as attributes."""
    data = _load(path)
    fields = [f for f in data.dtype.names if not f.startswith("#$%&~~")]  # pypcd4's names for '_' padding
    if not {"x", "y", "z"} <= set(fields):
        raise InputError(f"{path}: the PCD fields {' '.join(fields)[:60]!r} hold no x y z")
    xyz = np.column_stack([np.asarray(data[c], dtype=np.float64) for c in "xyz"])
    attributes: Dict[str, np.ndarray] = {}
    rest = [f for f in fields if f not in ("x", "y", "z")]
    for name, f in zip(unique_names(rest, str(path)), rest):
        if name == "rgb" and data.dtype[f].itemsize == 4:
            attributes.update(_unpack_rgb(np.asarray(data[f])))
        else:
            attributes[name] = np.asarray(data[f]).astype(data.dtype[f].newbyteorder("="))
    return PointCloudData(xyz, check_attributes(attributes, len(xyz), str(path)), stored_float_dtype(data.dtype["x"]))


def _fields(cloud: PointCloudData) -> Tuple[List[str], List[np.ndarray]]:
    """PCD field names and columns: x y z, then the attributes (colours packed into one ``rgb``)."""
    coord = stored_float_dtype(cloud.xyz_dtype)
    names, columns = ["x", "y", "z"], [cloud.xyz[:, j].astype(coord) for j in range(3)]
    attrs = dict(cloud.attributes)
    if {"red", "green", "blue"} <= set(attrs) and all(_fits_byte(attrs[c]) for c in ("red", "green", "blue", "alpha") if c in attrs):
        word = sum(attrs.pop(c).astype(np.uint32) << shift for c, shift in (("red", 16), ("green", 8), ("blue", 0)))
        if "alpha" in attrs:
            word = word | (attrs.pop("alpha").astype(np.uint32) << 24)
        names.append("rgb")
        columns.append(np.asarray(word, dtype=np.uint32).view(np.float32))
    for name, values in attrs.items():
        names.append(PCD_NAMES.get(name, name))
        columns.append(values)
    return names, columns


def _fits_byte(values: np.ndarray) -> bool:
    return values.dtype.kind in "ui" and (len(values) == 0 or (values.min() >= 0 and values.max() <= 255))


def write_pcd_cloud(tmp: Path, cloud: PointCloudData) -> None:
    """Write the cloud as a binary_compressed .pcd at ``tmp``."""
    pypcd4 = _pypcd4()
    names, columns = _fields(cloud)
    pc = pypcd4.PointCloud.from_points(columns, names, [c.dtype for c in columns])
    with open(tmp, "wb") as fh:
        pc.save(fh, encoding=pypcd4.Encoding.BINARY_COMPRESSED)
