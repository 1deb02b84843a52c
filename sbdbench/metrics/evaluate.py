"""Scoring denoised clouds: one shape, a pair of files, or a whole folder of predictions.

``evaluate_shape`` returns raw values under the protocol's names ``cd``, ``p2m`` (exact),
``p2m_pt3d`` (PyTorch3D ≥ 0.6.2 default, min_triangle_area=5e-3) and ``hd``. Tables for people
multiply CD and P2M by 10⁴ and say so in the column name (``cd_1e4``, ...): :func:`to_report_units`.

A prediction folder uses ScoreDenoise's layout (``<pred_dir>/<shape>.xyz``) and is matched to the
dataset **by shape name**: a missing or an extra ``.xyz`` is an error that names it, never a
silent mis-pairing. Other files in the folder (logs, CSVs) are ignored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional

import pandas as pd

from sbdbench.errors import DataError, InputError
from sbdbench.metrics.backend import finite_or_raise
from sbdbench.metrics.chamfer import nearest_sqdists
from sbdbench.metrics.p2m import PT3D_DEFAULT_MIN_AREA, _terms_normalized, normalized_inputs

from sbdbench.protocol import (METRICS, NOREF_METRICS, REPORT_SCALE, SCALED_METRICS, SCALED_NOREF_METRICS, reported_column,
                               resolution_in_name)

PRED_SUFFIX = ".xyz"

def evaluate_shape(pred, gt_points, verts, faces, *, device="cpu", backend: Optional[str] = None) -> Dict[str, float]:
    """All metrics of one prediction, raw (unscaled).

    Args:
        pred: (N, 3) denoised cloud; gt_points: (M, 3) clean GT cloud (frame of CD/HD);
        verts (V, 3), faces (F, 3): GT mesh (frame of P2M).
        device / backend: "cpu" → exact float64 CPU backend; CUDA (or backend="torch") → torch.

    Returns:
        ``{"cd", "p2m", "p2m_pt3d", "hd"}`` floats; never NaN (bad input raises InputError).
    """
    x_to_y, y_to_x = nearest_sqdists(pred, gt_points, device=device, backend=backend)
    p, v, f = normalized_inputs(pred, verts, faces)
    p2f, f2p = _terms_normalized(p, v, f, "exact", 0.0, device, backend, None)
    p2f3, f2p3 = _terms_normalized(p, v, f, "pytorch3d", PT3D_DEFAULT_MIN_AREA, device, backend, None)
    return {
        "cd": finite_or_raise(x_to_y.mean() + y_to_x.mean(), "Chamfer distance"),
        "p2m": finite_or_raise(p2f.mean() + f2p.mean(), "P2M"),
        "p2m_pt3d": finite_or_raise(p2f3.mean() + f2p3.mean(), "P2M (pytorch3d)"),
        "hd": finite_or_raise(max(x_to_y.max(), y_to_x.max()), "Hausdorff distance"),
    }

def evaluate_files(pred_path, gt_points_path, gt_mesh_path, *, device="cpu") -> Dict:
    """Score one prediction file against a GT cloud file and a GT mesh file; one record (raw values)."""
    from sbdbench.io import read_mesh, read_points

    pred = read_points(pred_path)
    gt = read_points(gt_points_path)
    verts, faces = read_mesh(gt_mesh_path)
    record = {"shape": Path(pred_path).stem, "category": "unknown", "n_points": len(gt), "n_out": len(pred)}
    record.update(evaluate_shape(pred, gt, verts, faces, device=device))
    return record

def evaluate_file_noref(pred_path, *, frame_path=None) -> Dict:
    """Score one cloud file without GT: the no-reference figures (:mod:`sbdbench.metrics.noref`), raw.

    ``frame_path``: a cloud (e.g. the noisy input) whose unit-sphere frame ``plane_res`` is measured in
    (default: the prediction's own frame)."""
    from sbdbench.io import read_points
    from sbdbench.metrics.noref import noref_record

    frame = read_points(frame_path) if frame_path else None
    return noref_record(read_points(pred_path), Path(pred_path).stem, frame=frame)

def _prediction_files(pred_dir: Path) -> Dict[str, Path]:
    if not pred_dir.is_dir():
        raise InputError(f"{pred_dir}: prediction folder does not exist")
    return {p.stem: p for p in pred_dir.iterdir() if p.is_file() and p.suffix.lower() == PRED_SUFFIX}

def _match_predictions(pred_dir: Path, shapes, known=None) -> Dict[str, Path]:
    """Prediction file of each of ``shapes``; a missing one, or a file that is none of ``known`` (default:
    ``shapes``), is an error. With a subset, predictions of the split's other shapes are ignored."""
    found = _prediction_files(pred_dir)
    missing = sorted(set(shapes) - set(found))
    extra = sorted(set(found) - set(known if known is not None else shapes))
    if missing:
        raise InputError(f"{pred_dir}: no prediction for shape(s) {', '.join(missing[:10])}{' …' if len(missing) > 10 else ''} (expected <shape>{PRED_SUFFIX})")
    if extra:
        names = ", ".join(found[s].name for s in extra[:10])
        raise InputError(f"{pred_dir}: file(s) {names} match no shape of the dataset split (known: {', '.join(sorted(shapes)[:10])}…)")
    return {s: found[s] for s in shapes}

def _name_resolution(pred_dir: Path) -> Optional[int]:
    """N from a ScoreDenoise-layout folder name (``<dataset>_<N>_poisson[_<kind>]_<σ>``), or None."""
    return resolution_in_name(pred_dir.name)

def infer_resolution(dataset, pred_dir, split: str = "test", shapes=None) -> int:
    """The GT resolution of a prediction folder: the N its name carries (``synth_10000_poisson_0.02``), else
    the one point count all its predictions share, else the split's only resolution; an InputError when none
    of these names a resolution of the dataset."""
    from sbdbench.data.dataset import Dataset, open_dataset
    from sbdbench.io import read_points

    ds = dataset if isinstance(dataset, Dataset) else open_dataset(str(dataset))
    for s in shapes or ():
        ds.check_shape(s, split)
    available = ds.resolutions(split)
    pred_dir = Path(pred_dir)
    named = _name_resolution(pred_dir)
    if named in available:
        return named
    files = _prediction_files(pred_dir)
    counts = sorted({len(read_points(files[s])) for s in (shapes or sorted(files)) if s in files})
    if len(counts) == 1 and counts[0] in available:
        return counts[0]
    if len(available) == 1:
        return available[0]
    raise InputError(f"{pred_dir}: cannot infer the resolution (folder name gives {named or 'none'}, point counts "
                     f"{', '.join(map(str, counts)) or 'none'}; dataset {ds.name!r} has {', '.join(map(str, available)) or 'none'}): "
                     "give --resolutions N")

def evaluate_folder(dataset, pred_dir, n_points: int, split: str = "test", device="cpu", progress: bool = False,
                    shapes=None) -> pd.DataFrame:
    """Score a folder of predictions ``<pred_dir>/<shape>.xyz`` against a dataset split.

    Args:
        dataset: a :class:`~sbdbench.data.dataset.Dataset` or a dataset name.
        pred_dir: folder with one ``<shape>.xyz`` per shape of the split, nothing more.
        n_points: the resolution of the GT clouds (the clean cloud at the input's resolution).
        split: dataset split, "test" by default.
        shapes: score only these shapes of the split (the folder may then lack the others); default all.

    Returns:
        One row per shape: ``shape, category, n_points, n_out, cd, p2m, p2m_pt3d, hd`` (raw values).
    """
    from sbdbench.data.dataset import Dataset, open_dataset
    from sbdbench.data.integrity import check_reference_files
    from sbdbench.io import read_points

    ds = dataset if isinstance(dataset, Dataset) else open_dataset(str(dataset))
    ds.require_reference("evaluate --dataset")
    known = ds.shapes(split)
    if not known:
        raise DataError(f"dataset {ds.name!r} has no shapes in split {split!r}")
    if shapes is not None:
        for s in shapes:
            ds.check_shape(s, split)
    shapes = list(shapes) if shapes else known
    if int(n_points) not in ds.resolutions(split):
        raise DataError(f"dataset {ds.name!r} has no {int(n_points)}-point GT clouds in split {split!r} (available: {ds.resolutions(split) or 'none'})")
    check_reference_files(ds, n_points, split)  # GT files changed since the build are refused, not scored
    preds = _match_predictions(Path(pred_dir), shapes, known)
    rows = []
    from sbdbench.progress import progress_iter

    for shape in progress_iter(shapes, len(shapes), "evaluate", "shape", enabled=progress):
        pred = read_points(preds[shape])
        gt = ds.load_clean(shape, n_points, split)
        verts, faces = ds.load_mesh(shape, split)
        try:
            metrics = evaluate_shape(pred, gt, verts, faces, device=device)
        except InputError as exc:
            raise InputError(f"shape {shape!r}: {exc}") from None
        rows.append({"shape": shape, "category": ds.category(shape), "n_points": int(n_points), "n_out": len(pred), **metrics})
    return pd.DataFrame(rows, columns=["shape", "category", "n_points", "n_out", *METRICS])

def to_report_units(frame: pd.DataFrame) -> pd.DataFrame:
    """Copy with ``cd, p2m, p2m_pt3d`` (and the no-reference ``plane_res``) multiplied by 10⁴ and renamed
    ``cd_1e4, p2m_1e4, p2m_pt3d_1e4`` (``plane_res_1e4``), how papers print them; ``hd`` and ``spacing_cv`` stay raw."""
    out = frame.copy()
    scaled = (*SCALED_METRICS, *SCALED_NOREF_METRICS)
    for key in scaled:
        if key in out:
            out[key] = out[key] * REPORT_SCALE
    return out.rename(columns={k: reported_column(k) for k in scaled})

def mean_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Means in report units: one row per category plus an ``all`` row (``n_shapes`` counts rows)."""
    metrics = [k for k in (*METRICS, *NOREF_METRICS) if k in frame]
    rep = to_report_units(frame[["category", *metrics]] if "category" in frame else frame[metrics].assign(category="all"))
    cols = [c for c in rep.columns if c != "category"]
    by_cat = rep.groupby("category")[cols].mean()
    by_cat.insert(0, "n_shapes", rep.groupby("category").size())
    total = rep[cols].mean().to_frame("all").T
    total.insert(0, "n_shapes", len(rep))
    table = pd.concat([by_cat, total]) if len(by_cat) > 1 else total
    table.index.name = "category"
    return table

def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the per-shape table atomically (full precision)."""
    from sbdbench.paths import atomic_write_text

    path = Path(path)
    atomic_write_text(path, frame.to_csv(index=False, float_format="%.10g"))
    return path
