"""``sbdbench run`` on a dataset of real scans (no GT): denoise each scan, report the no-reference figures.

A real scan has no clean cloud and no mesh, so CD and P2M do not exist; the figures of
:mod:`sbdbench.metrics.noref` are reported instead, for the input and for the output, both measured in the
input scan's unit-sphere frame (so ``plane_res`` of a method can be compared with the input's and with other
methods' on the same scan). Noise level unknown: the method's frozen settings of the nearest tuned cell at the
scan's N and its default σ (``resolve_method(..., sigma=None)``). The bench (``sbdbench bench``) refuses such a
dataset in one line: its grid is N × σ (docs/datasets.md, "Real scans").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

from sbdbench.errors import DataError

#: columns of ``<out>/per_scan.csv`` (raw values; plane_res is printed ×10⁴)
SCAN_KEYS = ("method", "scan", "n_points", "n_out", "plane_res_in", "plane_res", "spacing_cv_in", "spacing_cv", "seconds",
             "peak_mem_mb", "params")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_scans(method_name: str, ds, *, params: Optional[Dict] = None, use_frozen: bool = True, device: str = "cpu",
              out: Optional[Path] = None, shapes: Optional[Sequence[str]] = None, log: Callable[[str], None] = print,
              max_memory_mb: Optional[float] = None, progress: bool = True):
    """Denoise every scan of ``ds`` with one method (under ``max_memory_mb``: in spatial blocks, as ``denoise
    --max-memory``), each with its points done shown while it runs (``progress``: a bar on a terminal, else a line
    at most every 30 s); outputs to ``<out>/<dataset>_scans/<scan>.xyz`` and the figures to ``<out>/per_scan.csv``. Returns (per-scan DataFrame, summary DataFrame with the means, plane_res ×10⁴)."""
    import pandas as pd

    from sbdbench.bench.cell import denoise_measured
    from sbdbench.bench.progress import PointProgress
    from sbdbench.io import write_points
    from sbdbench.methods import resolve_method
    from sbdbench.metrics.noref import noref_metrics
    from sbdbench.paths import atomic_write_text

    scans = list(shapes) if shapes else ds.scans()
    unknown = sorted(set(scans) - set(ds.scans()))
    if not scans or unknown:
        raise DataError(f"dataset {ds.name!r}: " + (f"no scan named {', '.join(unknown)}" if unknown else "no scans"))
    out = Path(out) if out is not None else Path("runs") / method_name
    rows = []
    for scan in scans:
        noisy = ds.load_scan(scan)
        method = resolve_method(method_name, len(noisy), None, device=device, overrides=params, frozen=use_frozen).method
        bar = PointProgress(_stderr, f"{method_name} {scan}") if progress else None
        try:
            pred, seconds, peak = denoise_measured(method, noisy, None, device, max_memory_mb, progress=bar)
        finally:
            if bar is not None:
                bar.close()
        write_points(out / f"{ds.name}_scans" / f"{scan}.xyz", pred)
        before, after = noref_metrics(noisy), noref_metrics(pred, frame=noisy)
        rows.append({"method": method_name, "scan": scan, "n_points": len(noisy), "n_out": len(pred),
                     "plane_res_in": before["plane_res"], "plane_res": after["plane_res"],
                     "spacing_cv_in": before["spacing_cv"], "spacing_cv": after["spacing_cv"], "seconds": seconds,
                     "peak_mem_mb": peak, "params": json.dumps(method.get_params(), sort_keys=True, default=str)})
        log(f"{method_name} on {ds.name}/{scan} ({len(noisy)} points): plane_res_1e4 {before['plane_res'] * 1e4:.2f} -> "
            f"{after['plane_res'] * 1e4:.2f}, spacing_cv {before['spacing_cv']:.3f} -> {after['spacing_cv']:.3f}")
        frame = pd.DataFrame(rows, columns=list(SCAN_KEYS))
        atomic_write_text(out / "per_scan.csv", frame.to_csv(index=False, float_format="%.10g"))
    numeric = frame.drop(columns=["method", "scan", "params"]).mean().to_frame().T
    for col in ("plane_res_in", "plane_res"):
        numeric[col] = numeric[col] * 1e4
    summary = numeric.rename(columns={"plane_res_in": "plane_res_in_1e4", "plane_res": "plane_res_1e4"})
    summary.insert(0, "n_scans", len(frame))
    summary.insert(0, "method", method_name)
    atomic_write_text(out / "summary.csv", summary.to_csv(index=False, float_format="%.10g"))
    return frame, summary
