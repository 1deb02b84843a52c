"""Real scans without ground truth (Kinect v1, Paris-rue-Madame) → ``<data>/<name>/scans/test/<scan>.xyz``.

Card options (``[options]``): ``dataset`` (the installed name), ``members`` (glob patterns matched against the
member paths of an archive download; a non-archive download is itself the scan), ``max_points`` (optional:
a scan above it is cut, as Hermosilla et al.'s ``GenerateRueMadameDataSet.py`` cuts Rue Madame, at the midpoint
of its bounding box's longest axis, recursively, into pieces of at most ``max_points``; ``<scan>_<i>.xyz``).
Coordinates are kept as published (not normalised). There is no clean cloud and no mesh: ``sbdbench run``
reports the no-reference figures for such a dataset and ``bench`` refuses it in one line (docs/datasets.md).
"""

from __future__ import annotations

import fnmatch
import re
import shutil
from pathlib import Path
from typing import Dict, List

import numpy as np

from sbdbench.data.sources.archives import archive_kind, extract, limit_for
from sbdbench.data.sources.context import FetchContext, FetchResult
from sbdbench.errors import DataError, SbdbenchError
from sbdbench.protocol import scan_rel_dir

CLOUD_SUFFIXES = (".xyz", ".txt", ".ply", ".pcd", ".las", ".laz", ".npy")


def split_by_bbox(points: np.ndarray, max_points: int) -> List[np.ndarray]:
    """Cut (N, 3) points at the bounding-box midpoint of the longest axis until every piece has ≤ max_points.

    The pieces are in depth-first order, left (< midpoint) before right, as Hermosilla et al. write them."""
    pieces, stack = [], [points]
    while stack:
        part = stack.pop()
        if len(part) <= max_points:
            pieces.append(part)
            continue
        lo, hi = part.min(axis=0), part.max(axis=0)
        axis = int(np.argmax(hi - lo))
        left = part[:, axis] < (lo[axis] + hi[axis]) / 2.0
        if left.all() or not left.any():  # all points on one coordinate: cannot be cut further
            pieces.append(part)
            continue
        stack += [part[~left], part[left]]
    return pieces


def _scan_files(ctx: FetchContext, raw: Path) -> List[Path]:
    """The downloaded scans: members of each archive matching ``members``, or each plain download itself."""
    patterns = ctx.options.get("members") or ["*"]
    found: List[Path] = []
    for spec in ctx.card.files:
        if spec.optional:
            continue
        path = ctx.get_file(spec)
        if _is_archive(path):
            wanted = (lambda name: Path(name).suffix.lower() in CLOUD_SUFFIXES
                      and any(fnmatch.fnmatch(name, p) for p in patterns))
            names = extract(path, raw / spec.name, members=wanted, max_bytes=limit_for(spec))
            found += [raw / spec.name / n for n in names if (raw / spec.name / n).is_file()]
        else:
            found.append(path)
    if not found:
        raise DataError(f"{ctx.card.name}: the download(s) hold no scan matching {', '.join(patterns)} "
                        "(unexpected archive layout: the card's `members` could not be checked from here)")
    return sorted(found)


def _is_archive(path: Path) -> bool:
    try:
        return archive_kind(path) in ("zip", "tar")
    except DataError:  # not an archive: the download is the scan itself (read and checked below)
        return False


def _scan_name(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem)


def install(ctx: FetchContext) -> FetchResult:
    from sbdbench.io import read_points, write_points

    card = ctx.card
    name = ctx.options.get("dataset", card.name)
    present = ctx.present(name)
    if present is not None:
        return present
    max_points = int(ctx.options.get("max_points") or 0)
    downloads: Dict[str, str] = {}
    with ctx.staging() as staging:
        raw = staging / "raw"
        scans = _scan_files(ctx, raw)
        downloads = {spec.name: ctx.expected_sha256(spec) for spec in card.files if not spec.optional}
        target = staging / scan_rel_dir(name)
        target.mkdir(parents=True)
        counts = {}
        for path in scans:
            try:
                points = read_points(path)
            except SbdbenchError as exc:
                raise DataError(f"{card.name}: {path.name} is not a readable point cloud ({exc})") from None
            pieces = split_by_bbox(points, max_points) if max_points else [points]
            for i, piece in enumerate(pieces):
                scan = _scan_name(path) if len(pieces) == 1 else f"{_scan_name(path)}_{i}"
                if scan in counts:
                    raise DataError(f"{card.name}: two scans are both named {scan!r}; the card's `members` must pick one")
                write_points(target / f"{scan}.xyz", piece)
                counts[scan] = len(piece)
        shutil.rmtree(raw, ignore_errors=True)
        extra = {"note": ctx.options.get("note", ""), "reference": "none (real scans: no clean cloud, no mesh)",
                 "scan_points": counts}
        return ctx.install_dataset(staging, name, downloads, extra=extra)
