"""Reading and writing point clouds and meshes, with errors that name the file and line.

Point clouds: ``.xyz`` / ``.txt`` (whitespace-separated text, written with ``%.8f`` like ScoreDenoise),
``.ply`` and ``.npy``. Meshes: ``.off`` (our own parser), ``.ply``, ``.obj``, ``.stl`` (via trimesh).
Header counts are checked against the data for every format that has them (:mod:`sbdbench.io_formats`):
a truncated file is an error, never a smaller mesh. Every writer is atomic (temp file + rename).
"""

from __future__ import annotations

import io as _io
import os
from pathlib import Path
from typing import Tuple

import numpy as np

from sbdbench.errors import InputError
from sbdbench.geometry import check_mesh, check_points
from sbdbench.io_formats import check_npy_size, check_ply_counts, check_stl_size, read_off
from sbdbench.paths import atomic_path

POINT_FORMATS = (".xyz", ".txt", ".ply", ".npy")
MESH_FORMATS = (".off", ".ply", ".obj", ".stl")


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def _existing_file(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file (a folder or a device)")
    return path


def _scan_text_cloud(path: Path) -> np.ndarray:
    """Slow, careful parse of a text cloud, used to find the first bad line after the fast path failed."""
    rows = []
    width = None
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) < 3:
                raise InputError(f"{path}:{lineno}: expected at least 3 columns (x y z), found {len(parts)}")
            if width is None:
                width = len(parts)
            elif len(parts) != width:
                raise InputError(f"{path}:{lineno}: {len(parts)} columns where the first row has {width}")
            try:
                xyz = [float(p) for p in parts[:3]]
            except ValueError:
                raise InputError(f"{path}:{lineno}: not a number in {line.strip()[:60]!r}") from None
            if not all(np.isfinite(xyz)):
                raise InputError(f"{path}:{lineno}: non-finite coordinate (NaN/Inf) in {line.strip()[:60]!r}")
            rows.append(xyz)
    if not rows:
        raise InputError(f"{path}: the file holds no points")
    return np.asarray(rows, dtype=np.float64)


def _read_text_cloud(path: Path) -> np.ndarray:
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")
    try:
        import pandas as pd

        frame = pd.read_csv(path, sep=r"\s+", header=None, comment="#", dtype=np.float64, engine="c")
        arr = frame.to_numpy()
    except Exception:
        return _scan_text_cloud(path)
    if arr.ndim != 2 or arr.shape[1] < 3 or arr.shape[0] == 0 or np.isnan(arr[:, :3]).any() or not np.isfinite(arr[:, :3]).all():
        return _scan_text_cloud(path)  # names the offending line
    if arr.shape[1] not in (3, 6):
        # 3 columns (xyz) or 6 (xyz + normals) are the formats in use; anything else is likely a mix-up.
        raise InputError(f"{path}:1: expected 3 columns (x y z) or 6 (x y z nx ny nz), found {arr.shape[1]}")
    return np.ascontiguousarray(arr[:, :3])


def read_points(path: str | os.PathLike) -> np.ndarray:
    """Read a point cloud as an (N, 3) float64 array. Extra columns (normals) are dropped."""
    path = _existing_file(path)
    suffix = _suffix(path)
    if suffix in (".xyz", ".txt", ".pts"):
        pts = _read_text_cloud(path)
    elif suffix == ".npy":
        check_npy_size(path)
        try:
            pts = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise InputError(f"{path}: not a readable .npy array ({exc})") from None
        if pts.ndim == 2 and pts.shape[1] > 3:
            pts = pts[:, :3]
    elif suffix == ".ply":
        pts = _read_ply_points(path)
    else:
        raise InputError(f"{path}: unknown point-cloud format {suffix!r} (use one of {', '.join(POINT_FORMATS)})")
    return check_points(pts, name=str(path))


def _read_ply_points(path: Path) -> np.ndarray:
    import trimesh

    check_ply_counts(path)
    try:
        geom = trimesh.load(path, process=False)
    except Exception as exc:
        raise InputError(f"{path}: not a readable PLY file ({exc})") from None
    verts = getattr(geom, "vertices", None)
    if verts is None or len(verts) == 0:
        raise InputError(f"{path}: the PLY file holds no vertices")
    return np.asarray(verts, dtype=np.float64)


def format_xyz(points: np.ndarray) -> str:
    """The text of an (N, 3) cloud as ``np.savetxt(fmt="%.8f")`` writes it (same bytes, ~2.5x faster)."""
    pts = np.asarray(points, dtype=np.float64)
    return ("%.8f %.8f %.8f\n" * len(pts)) % tuple(pts.ravel().tolist())


def write_points(path: str | os.PathLike, points) -> Path:
    """Write an (N, 3) cloud; the format follows the suffix (``.xyz`` uses ScoreDenoise's ``%.8f``)."""
    path = Path(path)
    pts = check_points(points, name=str(path))
    suffix = _suffix(path)
    with atomic_path(path) as tmp:
        if suffix in (".xyz", ".txt", ".pts"):
            tmp.write_text(format_xyz(pts))
        elif suffix == ".npy":
            with open(tmp, "wb") as fh:
                np.save(fh, pts)
        elif suffix == ".ply":
            import trimesh

            data = trimesh.PointCloud(pts).export(file_type="ply", encoding="binary")
            tmp.write_bytes(data)
        else:
            raise InputError(f"{path}: unknown point-cloud format {suffix!r} (use one of {', '.join(POINT_FORMATS)})")
    return path


def read_mesh(path: str | os.PathLike) -> Tuple[np.ndarray, np.ndarray]:
    """Read a triangle mesh as (verts (V, 3) float64, faces (F, 3) int64); quads are triangulated."""
    path = _existing_file(path)
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")
    suffix = _suffix(path)
    if suffix not in MESH_FORMATS:
        raise InputError(f"{path}: unknown mesh format {path.suffix!r} (use one of {', '.join(MESH_FORMATS)})")
    if suffix == ".off":
        verts, faces = read_off(path)
    else:
        verts, faces = _read_trimesh(path, suffix)
    if len(faces) == 0:
        raise InputError(f"{path}: the mesh has no faces")
    return check_mesh(verts, faces, name=str(path))


def _read_trimesh(path: Path, suffix: str) -> Tuple[np.ndarray, np.ndarray]:
    import trimesh

    if suffix == ".ply":
        check_ply_counts(path)
    elif suffix == ".stl":
        check_stl_size(path)
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
        verts = np.asarray(getattr(mesh, "vertices", np.empty((0, 3))), dtype=np.float64)
        faces = np.asarray(getattr(mesh, "faces", np.empty((0, 3))), dtype=np.int64)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise InputError(f"{path}: not a readable mesh ({type(exc).__name__}: {first})") from None
    return verts, faces


def write_mesh(path: str | os.PathLike, verts, faces) -> Path:
    """Write a triangle mesh; the format follows the suffix. ``.off`` is written with ``%.8f`` vertices."""
    path = Path(path)
    v, f = check_mesh(verts, faces, name=str(path))
    suffix = _suffix(path)
    with atomic_path(path) as tmp:
        if suffix == ".off":
            buf = _io.StringIO()
            buf.write(f"OFF\n{len(v)} {len(f)} 0\n")
            np.savetxt(buf, v, fmt="%.8f")
            np.savetxt(buf, np.hstack([np.full((len(f), 1), 3), f]), fmt="%d")
            tmp.write_text(buf.getvalue())
        elif suffix in MESH_FORMATS:
            import trimesh

            data = trimesh.Trimesh(v, f, process=False).export(file_type=suffix[1:])
            tmp.write_bytes(data if isinstance(data, bytes) else data.encode())
        else:
            raise InputError(f"{path}: unknown mesh format {suffix!r} (use one of {', '.join(MESH_FORMATS)})")
    return path
