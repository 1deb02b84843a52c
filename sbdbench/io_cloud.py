"""A point cloud with its per-point attributes, as the readers of :mod:`sbdbench.io` return it.

``xyz`` is always (N, 3) float64 (what every method takes); ``xyz_dtype`` is the precision the file held
(float32 or float64), which a writer keeps. ``attributes`` maps a name to a 1-D array of N values in the
dtype the file held (intensity, normals ``nx ny nz``, colours ``red green blue``, or any other column).
Names follow PLY's conventions; the aliases other formats use (PCL's ``normal_x``, a text header's ``r``)
are mapped onto them on reading, and back on writing. See docs/io-formats.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from sbdbench.errors import InputError

#: other spellings of the attribute names, lower-cased, mapped onto the names used here.
ALIASES = {
    "normal_x": "nx", "normal_y": "ny", "normal_z": "nz", "normalx": "nx", "normaly": "ny", "normalz": "nz",
    "r": "red", "g": "green", "b": "blue", "a": "alpha", "i": "intensity", "scalar_intensity": "intensity",
}
#: what the columns after x y z hold in a text or .npy file without a header line, by the total width.
HEADERLESS_COLUMNS = {
    3: (),
    4: ("intensity",),
    6: ("nx", "ny", "nz"),
    7: ("intensity", "red", "green", "blue"),
    9: ("nx", "ny", "nz", "red", "green", "blue"),
}


@dataclass
class PointCloudData:
    """An (N, 3) float64 cloud, its stored precision and its per-point attributes (name → (N,) array)."""

    xyz: np.ndarray
    attributes: Dict[str, np.ndarray] = field(default_factory=dict)
    xyz_dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float64))
    #: the reader's own record (the laspy ``LasData`` of a .las/.laz file), so that a writer of the same
    #: format keeps what the attributes cannot say (scales, offsets, CRS); None for other formats.
    native: Optional[Any] = None
    #: how many points with NaN/Inf coordinates the reader dropped (``read_cloud(..., drop_invalid=True)``)
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.xyz)

    def xyz_only(self) -> "PointCloudData":
        """The same cloud without attributes or native record (what a count-changing method's output gets)."""
        return PointCloudData(self.xyz, {}, self.xyz_dtype, None)

    def finite_only(self) -> "PointCloudData":
        """The points whose x y z are all finite, with their attributes; ``dropped`` counts the others (a LAS
        record cannot be cut row by row here, so it is dropped when any point is)."""
        xyz = np.asarray(self.xyz)
        if xyz.ndim != 2 or xyz.dtype.kind not in "iuf":
            return self  # check_points refuses it with its own message
        keep = np.isfinite(xyz).all(axis=1)
        if keep.all():
            return self
        attributes = {name: values[keep] for name, values in self.attributes.items()}
        return PointCloudData(self.xyz[keep], attributes, self.xyz_dtype, None, int((~keep).sum()))

    def with_xyz(self, xyz: np.ndarray) -> "PointCloudData":
        """New positions for the same points: point i keeps its attributes (len(xyz) must be N)."""
        if len(xyz) != len(self.xyz):
            raise InputError(f"{len(xyz)} new positions for {len(self.xyz)} points: the attributes cannot be carried")
        return PointCloudData(np.asarray(xyz, dtype=np.float64), dict(self.attributes), self.xyz_dtype, self.native)


def canonical_name(name: str) -> str:
    """The attribute name used here for a column or field called ``name`` in a file."""
    low = name.strip().lower()
    return ALIASES.get(low, low)


def headerless_names(width: int) -> Tuple[str, ...]:
    """Attribute names of the columns after x y z of a ``width``-column text or .npy file without names."""
    if width in HEADERLESS_COLUMNS:
        return HEADERLESS_COLUMNS[width]
    return tuple(f"column_{j}" for j in range(4, width + 1))


def unique_names(names: List[str], where: str) -> List[str]:
    """``names`` canonicalised, refused when two columns end up with the same name or one is x, y or z."""
    out = [canonical_name(n) for n in names]
    seen = set()
    for name in out:
        if not name or name in seen or name in ("x", "y", "z"):
            raise InputError(f"{where}: attribute name {name!r} is empty, repeated or one of x, y, z")
        seen.add(name)
    return out


def check_attributes(attributes: Dict[str, np.ndarray], n_points: int, where: str) -> Dict[str, np.ndarray]:
    """Each attribute a real 1-D array of ``n_points`` finite values; returns them as contiguous arrays."""
    out = {}
    for name, values in attributes.items():
        arr = np.asarray(values)
        if arr.dtype.kind not in "uif" or arr.ndim != 1 or len(arr) != n_points:
            raise InputError(f"{where}: attribute {name!r} must be {n_points} real numbers, got {arr.dtype} of shape {arr.shape}")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = int(np.argmax(~np.isfinite(arr)))
            raise InputError(f"{where}: attribute {name!r} has NaN/Inf values (first at row {bad})")
        out[name] = np.ascontiguousarray(arr)
    return out


def stored_float_dtype(dtype) -> np.dtype:
    """float32 stays float32; every other coordinate type (float64, integers, text) is kept as float64."""
    return np.dtype(np.float32) if np.dtype(dtype) == np.float32 else np.dtype(np.float64)
