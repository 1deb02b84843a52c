"""Text clouds (``.xyz``, ``.txt``, ``.pts``, ``.csv``): x y z then any attribute columns, spaces or commas.

* A first data line that is not numbers names the columns (``x y z nx ny nz`` or CloudCompare's
  ``//X,Y,Z,R,G,B``); without one, the width decides (:data:`sbdbench.io_cloud.HEADERLESS_COLUMNS`).
* Lines starting with ``#`` and blank lines are skipped; every row must have the first row's width and
  every value must be a finite number (the error names the file and the line).
* Written values round-trip: coordinates and float attributes as the shortest text that reads back to the
  same float, integer attributes as integers. (The benchmark's own files use ``%.8f``: :func:`sbdbench.io.format_xyz`.)
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from sbdbench.errors import InputError
from sbdbench.io_cloud import PointCloudData, check_attributes, headerless_names, unique_names

MAX_TEXT_COLUMNS = 64  # wider than this is a matrix or a mix-up, not a point cloud


def _first_data_line(path: Path) -> Tuple[int, str]:
    """(0-based line index, text) of the first non-blank, non-comment line; (-1, "") if none."""
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for index, line in enumerate(fh):
            text = line.strip()
            if text and not text.startswith("#"):
                return index, text
    return -1, ""


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _split(line: str, delimiter: Optional[str]) -> List[str]:
    return [t.strip() for t in line.split(delimiter)] if delimiter else line.split()


def _layout(path: Path) -> Tuple[Optional[str], Optional[List[str]], int]:
    """(delimiter: "," or None for whitespace, header names or None, 0-based index of the header line or -1)."""
    index, line = _first_data_line(path)
    if index < 0:
        raise InputError(f"{path}: the file holds no points")
    if line.startswith("//"):  # CloudCompare writes its header as //X,Y,Z,...
        line = line[2:]
    delimiter = "," if "," in line else None
    tokens = _split(line, delimiter)
    if all(_is_number(t) for t in tokens):
        return delimiter, None, -1
    if len(tokens) < 3 or [t.lower() for t in tokens[:3]] != ["x", "y", "z"]:
        raise InputError(f"{path}:{index + 1}: a header line must start with x y z, found {line[:60]!r}")
    return delimiter, tokens, index


def _scan(path: Path, delimiter: Optional[str], skip: int) -> np.ndarray:
    """Slow, careful parse used after the fast one failed: names the first bad line, or returns the rows."""
    rows, width = [], None
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.strip()
            if not text or text.startswith("#") or lineno - 1 == skip:
                continue
            parts = [p for p in _split(text, delimiter)]
            if len(parts) < 3:
                raise InputError(f"{path}:{lineno}: expected at least 3 columns (x y z), found {len(parts)}")
            if width is None:
                width = len(parts)
            elif len(parts) != width:
                raise InputError(f"{path}:{lineno}: {len(parts)} columns where the first row has {width}")
            try:
                values = [float(p) for p in parts]
            except ValueError:
                raise InputError(f"{path}:{lineno}: not a number in {text[:60]!r}") from None
            if not np.isfinite(values).all():
                raise InputError(f"{path}:{lineno}: non-finite value (NaN/Inf) in {text[:60]!r}")
            rows.append(values)
    if not rows:
        raise InputError(f"{path}: the file holds no points")
    return np.asarray(rows, dtype=np.float64)


def _fast_columns(path: Path, delimiter: Optional[str], skip: int) -> Optional[List[np.ndarray]]:
    """The columns (dtype as pandas infers it: int64 or float64) or None when anything is off."""
    try:
        import pandas as pd

        frame = pd.read_csv(path, sep=delimiter or r"\s+", header=None, comment="#", engine="c",
                            skiprows=[skip] if skip >= 0 else None, skipinitialspace=True)
    except Exception:
        return None
    columns = [frame[c].to_numpy() for c in frame.columns]
    if len(frame) == 0 or len(columns) < 3 or any(c.dtype.kind not in "iuf" for c in columns):
        return None
    if any(c.dtype.kind == "f" and not np.isfinite(c).all() for c in columns):
        return None
    return columns


def read_text_cloud(path: Path) -> PointCloudData:
    """A text cloud with its attribute columns (integer columns stay integers)."""
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")
    delimiter, header, skip = _layout(path)
    columns = _fast_columns(path, delimiter, skip)
    if columns is None:
        rows = _scan(path, delimiter, skip)
        columns = [rows[:, j] for j in range(rows.shape[1])]
    width = len(columns)
    if width > MAX_TEXT_COLUMNS:
        raise InputError(f"{path}:1: {width} columns (at most {MAX_TEXT_COLUMNS}: x y z and attributes)")
    if header is not None and len(header) != width:
        raise InputError(f"{path}:{skip + 1}: the header names {len(header)} columns, the rows have {width}")
    names = unique_names(header[3:], str(path)) if header is not None else list(headerless_names(width))
    xyz = np.column_stack([c.astype(np.float64) for c in columns[:3]])
    attributes = check_attributes(dict(zip(names, columns[3:])), len(xyz), str(path))
    return PointCloudData(xyz, attributes)


def _column_text(values: np.ndarray) -> List[str]:
    """Values as the shortest text that reads back to the same number."""
    if values.dtype.kind in "iu":
        return [str(v) for v in values.tolist()]
    if values.dtype == np.float32:
        return [str(v) for v in values]  # numpy prints the shortest text that round-trips float32
    return [repr(v) for v in values.astype(np.float64).tolist()]


def format_text_cloud(cloud: PointCloudData, delimiter: str = " ") -> str:
    """The text of a cloud: a header line when the columns are not what the width implies, then the rows."""
    names = list(cloud.attributes)
    columns = [_column_text(cloud.xyz[:, j]) for j in range(3)] + [_column_text(cloud.attributes[n]) for n in names]
    lines = [delimiter.join(row) for row in zip(*columns)]
    if tuple(names) != headerless_names(3 + len(names)):
        lines.insert(0, delimiter.join(["x", "y", "z"] + names))
    return "\n".join(lines) + "\n"
