"""Reading and writing point clouds and meshes, with errors that name the file and line.

Point clouds: text (``.xyz`` / ``.txt`` / ``.pts`` / ``.csv``: x y z and attribute columns, spaces or commas),
``.ply`` (plyfile), ``.npy``, ``.pcd`` (pypcd4) and ``.las`` / ``.laz`` (laspy), each with its per-point
attributes (:func:`read_cloud` / :func:`write_cloud`; docs/io-formats.md). Meshes: ``.off`` (our own parser), ``.ply``, ``.obj``, ``.stl`` (via trimesh).
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
from sbdbench.io_cloud import PointCloudData, check_attributes, headerless_names, stored_float_dtype
from sbdbench.io_formats import check_npy_size, check_ply_counts, check_stl_size, read_off
from sbdbench.io_ply import ply_bytes, read_ply_cloud
from sbdbench.io_text import format_text_cloud, read_text_cloud
from sbdbench.paths import atomic_path

TEXT_FORMATS = (".xyz", ".txt", ".pts", ".csv")
POINT_FORMATS = (".xyz", ".txt", ".pts", ".csv", ".ply", ".npy", ".pcd", ".las", ".laz")
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


def read_cloud(path: str | os.PathLike, *, drop_invalid: bool = False) -> PointCloudData:
    """Read a point cloud with its per-point attributes (:class:`~sbdbench.io_cloud.PointCloudData`).

    Points with NaN/Inf coordinates are a one-line :class:`InputError`, unless ``drop_invalid``: then they are
    dropped with their attributes and ``cloud.dropped`` says how many (a LAS record is then not kept).

    ``xyz`` is (N, 3) float64, ``xyz_dtype`` the precision the file held, ``attributes`` the other columns,
    fields or properties (intensity, normals, colours, …) in their stored types. See docs/io-formats.md.
    """
    path = _existing_file(path)
    suffix = _suffix(path)
    if suffix in TEXT_FORMATS:
        cloud = read_text_cloud(path)
    elif suffix == ".npy":
        cloud = _read_npy_cloud(path)
    elif suffix == ".ply":
        cloud = read_ply_cloud(path)
    elif suffix == ".pcd":
        from sbdbench.io_pcd import read_pcd_cloud

        cloud = read_pcd_cloud(path)
    elif suffix in (".las", ".laz"):
        from sbdbench.io_las import read_las_cloud

        cloud = read_las_cloud(path)
    else:
        raise InputError(f"{path}: unknown point-cloud format {suffix!r} (use one of {', '.join(POINT_FORMATS)})")
    if drop_invalid:
        cloud = cloud.finite_only()
    try:
        cloud.xyz = check_points(cloud.xyz, name=str(path))
    except InputError as exc:
        hint = "; pass --drop-invalid to drop them" if "NaN/Inf" in str(exc) else ""
        raise InputError(f"{exc}{hint}") from None
    return cloud


def read_points(path: str | os.PathLike) -> np.ndarray:
    """Read a point cloud as an (N, 3) float64 array (attributes dropped; :func:`read_cloud` keeps them)."""
    return read_cloud(path).xyz


def _read_npy_cloud(path: Path) -> PointCloudData:
    """An (N, 3+k) .npy array: x y z, then k attribute columns named by the width (HEADERLESS_COLUMNS)."""
    check_npy_size(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise InputError(f"{path}: not a readable .npy array ({exc})") from None
    if arr.ndim != 2 or arr.shape[1] < 3 or arr.dtype.kind not in "uif":
        check_points(arr, name=str(path))  # the one-line error for a wrong shape or type
    names = headerless_names(arr.shape[1])
    attributes = check_attributes({n: arr[:, 3 + j] for j, n in enumerate(names)}, len(arr), str(path))
    return PointCloudData(np.asarray(arr[:, :3], dtype=np.float64), attributes, stored_float_dtype(arr.dtype))


def format_xyz(points: np.ndarray) -> str:
    """The text of an (N, 3) cloud as ``np.savetxt(fmt="%.8f")`` writes it (same bytes, ~2.5x faster)."""
    pts = np.asarray(points, dtype=np.float64)
    return ("%.8f %.8f %.8f\n" * len(pts)) % tuple(pts.ravel().tolist())


def write_points(path: str | os.PathLike, points) -> Path:
    """Write an (N, 3) cloud; the format follows the suffix. ``.xyz``/``.txt``/``.pts`` use ScoreDenoise's
    ``%.8f`` (the benchmark's own files); every other format is written by :func:`write_cloud` in float64."""
    path = Path(path)
    pts = check_points(points, name=str(path))
    if _suffix(path) in (".xyz", ".txt", ".pts"):
        with atomic_path(path) as tmp:
            tmp.write_text(format_xyz(pts))
        return path
    return write_cloud(path, PointCloudData(pts))


def check_writable(path: str | os.PathLike, cloud: PointCloudData) -> None:
    """Refuse, before any work, a cloud whose attributes the format of ``path`` cannot hold exactly."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix not in POINT_FORMATS:
        raise InputError(f"{path}: unknown point-cloud format {suffix or '(no suffix)'!r} (use one of {', '.join(POINT_FORMATS)})")
    check_attributes(cloud.attributes, len(cloud), str(path))
    if suffix in (".las", ".laz") and cloud.attributes and not (cloud.native is not None and len(cloud.native.points) == len(cloud)):
        from sbdbench.io_las import _laspy, plan_las_attributes

        las_format = _laspy().PointFormat(7 if {"red", "green", "blue"} <= set(cloud.attributes) else 6)
        plan_las_attributes(cloud, las_format)


def write_cloud(path: str | os.PathLike, cloud: PointCloudData) -> Path:
    """Write a cloud and its attributes; the format follows the suffix (docs/io-formats.md says what each keeps).

    Coordinates keep the cloud's stored precision (``xyz_dtype``: float64 unless the input held float32);
    text is written with the shortest digits that read back to the same float64.
    """
    path = Path(path)
    cloud = PointCloudData(check_points(cloud.xyz, name=str(path)), cloud.attributes, cloud.xyz_dtype, cloud.native)
    check_writable(path, cloud)
    suffix = _suffix(path)
    with atomic_path(path) as tmp:
        if suffix in TEXT_FORMATS:
            tmp.write_text(format_text_cloud(cloud, "," if suffix == ".csv" else " "))
        elif suffix == ".npy":
            columns = [cloud.xyz.astype(stored_float_dtype(cloud.xyz_dtype))] + [v[:, None] for v in cloud.attributes.values()]
            with open(tmp, "wb") as fh:
                np.save(fh, np.hstack(columns) if len(columns) > 1 else columns[0])
        elif suffix == ".ply":
            tmp.write_bytes(ply_bytes(cloud))
        elif suffix == ".pcd":
            from sbdbench.io_pcd import write_pcd_cloud

            write_pcd_cloud(tmp, cloud)
        else:
            from sbdbench.io_las import write_las_cloud

            write_las_cloud(tmp, cloud, compress=suffix == ".laz")
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
