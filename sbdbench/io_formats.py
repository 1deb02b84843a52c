"""Format checks behind :mod:`sbdbench.io`: every count a file's header announces is checked against its data.

* ``.off``: parsed here (trimesh reads a truncated OFF without complaint, and reads face lines as
  vertices when the header's vertex count is too large). Plain ``OFF`` only (ModelNet's ``OFF<V> <F> <E>``
  first line included); vertex lines hold exactly 3 numbers, face lines ``n i1 … in`` (n ≥ 3, up to 4
  colour values after), polygons are fan-triangulated; any line short of or beyond the counts is an error.
* ``.ply``: the header's element counts must match the data (ASCII: one line per element; binary: the
  file must hold at least the bytes the counts need, checked before a reader allocates them).
* ``.stl``: binary files must be ``84 + 50·n`` bytes for the ``n`` their header announces; ASCII ones must
  end with ``endsolid``.
* ``.npy``: the header's shape must fit the file's size (a forged header never allocates memory).
* ``.obj`` has no counts: a file cut at a line boundary cannot be told from a complete one.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np

from sbdbench.errors import InputError

MAX_FACE_EXTRAS = 4  # colour values an OFF face line may carry after its indices


def _data_lines(path: Path) -> List[Tuple[int, List[str]]]:
    """(line number, tokens) of the non-blank, non-comment lines of a text file."""
    out = []
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            parts = line.split("#", 1)[0].split()
            if parts:
                out.append((lineno, parts))
    return out


def _off_header(path: Path, lines) -> Tuple[int, int, int]:
    """(V, F, index of the first vertex line) from the ``OFF`` line and the counts line."""
    if not lines:
        raise InputError(f"{path}: the file holds no data")
    lineno, first = lines[0]
    keyword = first[0]
    if not keyword.startswith("OFF"):
        raise InputError(f"{path}:{lineno}: not an OFF file (first word {keyword[:20]!r}; plain OFF expected)")
    counts = ([keyword[3:]] if len(keyword) > 3 else []) + first[1:]  # ModelNet writes "OFF490 518 0"
    start = 1
    if not counts:
        if len(lines) < 2:
            raise InputError(f"{path}: the OFF header has no vertex/face counts")
        lineno, counts = lines[1]
        start = 2
    try:
        values = [int(c) for c in counts]
    except ValueError:
        raise InputError(f"{path}:{lineno}: OFF counts must be integers, got {' '.join(counts)[:60]!r}") from None
    if len(values) not in (2, 3) or min(values) < 0:
        raise InputError(f"{path}:{lineno}: expected 'V F E' counts, got {' '.join(counts)[:60]!r}")
    return values[0], values[1], start


def _off_vertices(path: Path, rows) -> np.ndarray:
    for lineno, parts in rows:
        if len(parts) != 3:
            raise InputError(f"{path}:{lineno}: expected 3 vertex coordinates, found {len(parts)} values")
    try:
        verts = np.array([[float(x) for x in parts] for _, parts in rows], dtype=np.float64).reshape(-1, 3)
    except ValueError:
        bad = next(n for n, parts in rows if not all(_is_float(x) for x in parts))
        raise InputError(f"{path}:{bad}: not a number in a vertex line") from None
    return verts


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _off_faces(path: Path, rows) -> np.ndarray:
    tris = []
    for lineno, parts in rows:
        try:
            n = int(parts[0])
            idx = [int(x) for x in parts[1 : n + 1]]
        except ValueError:
            raise InputError(f"{path}:{lineno}: a face line must be 'n i1 ... in' with integer indices") from None
        if n < 3 or len(idx) != n or len(parts) > n + 1 + MAX_FACE_EXTRAS:
            raise InputError(f"{path}:{lineno}: malformed face line ({len(parts)} values for a {n}-gon)")
        tris.extend((idx[0], idx[i], idx[i + 1]) for i in range(1, n - 1))
    return np.asarray(tris, dtype=np.int64).reshape(-1, 3)


def read_off(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    """(verts, faces) of a plain OFF file whose header counts match its data exactly."""
    lines = _data_lines(path)
    n_verts, n_faces, start = _off_header(path, lines)
    body = lines[start:]
    if len(body) < n_verts + n_faces:
        raise InputError(f"{path}: the header announces {n_verts} vertices and {n_faces} faces, but the file holds only "
                         f"{len(body)} data lines (truncated?)")
    if len(body) > n_verts + n_faces:
        extra_line = body[n_verts + n_faces][0]
        raise InputError(f"{path}:{extra_line}: more data than the header's {n_verts} vertices and {n_faces} faces")
    return _off_vertices(path, body[:n_verts]), _off_faces(path, body[n_verts:])


# --- PLY -------------------------------------------------------------------------------------------
def _ply_header(path: Path) -> Tuple[str, List[Tuple[str, int]], int]:
    """(format, [(element, count)], header length in bytes) of a PLY file."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        raise InputError(f"{path}: not a PLY file (no 'ply' ... 'end_header' header)")
    fmt, elements = "", []
    for raw in head[:end].decode("ascii", errors="replace").splitlines():
        parts = raw.split()
        if parts[:1] == ["format"] and len(parts) > 1:
            fmt = parts[1]
        elif parts[:1] == ["element"]:
            try:
                elements.append((parts[1], int(parts[2])))
            except (IndexError, ValueError):
                raise InputError(f"{path}: malformed PLY header line {raw.strip()[:60]!r}") from None
    newline = head.find(b"\n", end)
    return fmt, elements, (newline + 1 if newline >= 0 else len(head))


def check_ply_counts(path: Path) -> None:
    """Refuse an ASCII PLY whose data lines differ from the header's element counts."""
    fmt, elements, header_len = _ply_header(path)
    if fmt != "ascii":
        return  # binary: trimesh refuses a file of the wrong length
    with open(path, "rb") as fh:
        fh.seek(header_len)
        n_lines = sum(1 for line in fh if line.strip())
    expected = sum(count for _, count in elements)
    if n_lines != expected:
        counts = ", ".join(f"{count} {name}" for name, count in elements)
        raise InputError(f"{path}: the PLY header announces {counts} ({expected} lines), the file holds {n_lines} (truncated?)")


PLY_TYPE_SIZES = {"char": 1, "int8": 1, "uchar": 1, "uint8": 1, "short": 2, "int16": 2, "ushort": 2, "uint16": 2,
                  "int": 4, "int32": 4, "uint": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8}


def _ply_row_bytes(path: Path, header: str) -> List[Tuple[str, int, int]]:
    """[(element, count, least bytes per row)] of a PLY header; a list property counts its length field only."""
    rows: List[Tuple[str, int, int]] = []
    for raw in header.splitlines():
        parts = raw.split()
        if parts[:1] == ["element"] and len(parts) >= 3:
            if int(parts[2]) < 0:
                raise InputError(f"{path}: negative PLY element count in {raw.strip()[:60]!r}")
            rows.append((parts[1], int(parts[2]), 0))
        elif parts[:1] == ["property"] and rows:
            kind = parts[2] if parts[1:2] == ["list"] and len(parts) > 2 else (parts[1] if len(parts) > 1 else "")
            if kind not in PLY_TYPE_SIZES:
                raise InputError(f"{path}: unknown PLY property type in {raw.strip()[:60]!r}")
            name, count, size = rows[-1]
            rows[-1] = (name, count, size + PLY_TYPE_SIZES[kind])
    return rows


def check_ply_size(path: Path) -> None:
    """Refuse a binary PLY shorter than its header's element counts need (before any reader allocates them)."""
    fmt, _, header_len = _ply_header(path)
    if fmt == "ascii":
        check_ply_counts(path)
        return
    with open(path, "rb") as fh:
        header = fh.read(header_len).decode("ascii", errors="replace")
    least = sum(count * size for _, count, size in _ply_row_bytes(path, header))
    actual = path.stat().st_size - header_len
    if actual < least:
        raise InputError(f"{path}: the PLY header announces at least {least} bytes of data, the file holds {actual} (truncated?)")


# --- STL, NPY --------------------------------------------------------------------------------------
def check_stl_size(path: Path) -> None:
    """Binary STL: size must be 84 + 50·n; ASCII STL: must end with ``endsolid``."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(84)
        fh.seek(max(0, size - 512))
        tail = fh.read()
    if head.lstrip().startswith(b"solid") and b"facet" in head + tail:
        if b"endsolid" not in tail:
            raise InputError(f"{path}: ASCII STL without 'endsolid' (truncated?)")
        return
    if len(head) < 84:
        raise InputError(f"{path}: too short for a binary STL ({size} bytes)")
    n = int.from_bytes(head[80:84], "little")
    if size != 84 + 50 * n:
        raise InputError(f"{path}: the binary STL header announces {n} triangles ({84 + 50 * n} bytes), the file has {size}")


def check_npy_size(path: Path) -> None:
    """Refuse a ``.npy`` whose header's shape and dtype do not fit the file's size (before allocating)."""
    from numpy.lib import format as npf

    try:
        with open(path, "rb") as fh:
            version = npf.read_magic(fh)
            read_header = npf.read_array_header_1_0 if version == (1, 0) else npf.read_array_header_2_0
            shape, _, dtype = read_header(fh)
            offset = fh.tell()
    except Exception as exc:
        raise InputError(f"{path}: not a readable .npy array ({type(exc).__name__}: {str(exc)[:120]})") from None
    if dtype.hasobject:
        raise InputError(f"{path}: the .npy array holds Python objects (refused; numbers expected)")
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    actual = path.stat().st_size - offset
    if expected != actual:
        raise InputError(f"{path}: the .npy header announces shape {shape} ({expected} bytes), the file holds {actual} (truncated?)")
