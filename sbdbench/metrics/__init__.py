"""Denoising metrics with PyTorch3D semantics, without PyTorch3D: Chamfer (CD), point-to-mesh
(P2M, exact or PyTorch3D-mode) and ScoreDenoise's Hausdorff (HD); without a GT, the no-reference figures
``plane_res`` (mean distance to the local kNN plane) and ``spacing_cv`` (:mod:`sbdbench.metrics.noref`).

Raw values are returned; tables multiply CD and P2M by 10⁴ and label the columns ``*_1e4``.
``device="cpu"`` uses the exact float64 CPU backend; a CUDA device (or ``backend="torch"``) the
chunked torch brute force. See docs/metrics.md for the exact formulas.
"""

from sbdbench.metrics.chamfer import chamfer, hausdorff, nearest_sqdists
from sbdbench.metrics.evaluate import (
    REPORT_SCALE,
    evaluate_file_noref,
    evaluate_files,
    evaluate_folder,
    evaluate_shape,
    mean_table,
    to_report_units,
)
from sbdbench.metrics.noref import NOREF_METRICS, noref_metrics, plane_distances, plane_residual, spacing_cv
from sbdbench.metrics.p2m import PT3D_DEFAULT_MIN_AREA, p2m, point_mesh_terms, point_to_mesh_distances

__all__ = [
    "chamfer",
    "hausdorff",
    "nearest_sqdists",
    "p2m",
    "point_mesh_terms",
    "point_to_mesh_distances",
    "PT3D_DEFAULT_MIN_AREA",
    "evaluate_shape",
    "evaluate_files",
    "evaluate_file_noref",
    "noref_metrics",
    "plane_residual",
    "plane_distances",
    "spacing_cv",
    "NOREF_METRICS",
    "evaluate_folder",
    "mean_table",
    "to_report_units",
    "REPORT_SCALE",
]
