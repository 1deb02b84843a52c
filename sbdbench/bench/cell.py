"""One benchmark cell: one method on every test shape of a dataset at one resolution and noise level.

:func:`run_cell` is the unit every runner (``sbdbench run``, ``sbdbench bench``, the executors)
calls: denoise each noisy test input, optionally write it in ScoreDenoise's layout, score it
against the clean cloud at the same N and the mesh, and return one :class:`~sbdbench.protocol.ShapeRecord` per shape.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from sbdbench.errors import DataError, SbdbenchError
from sbdbench.protocol import (GAUSSIAN, METRICS, RECORD_KEYS, REPORT_SCALE, SCALED_METRICS,  # noqa: F401  (RECORD_KEYS: re-exported)
                               ShapeRecord, reported_column)


class CellError(SbdbenchError):
    """A method failed (raised, or returned NaN/Inf) on one shape of a cell; the message names the shape."""


#: the one definition of the ``peak_mem_mb`` column (records, results store, leaderboard).
PEAK_MEM_HEADER = "peak RSS MiB"
PEAK_MEM_DEFINITION = (
    "peak resident memory (RSS) of the whole process during one denoising call, in MiB (2^20 bytes): the Linux "
    "high-water mark VmHWM, reset through /proc/self/clear_refs just before the call; host memory only (CUDA "
    "memory is not counted); empty where the counter cannot be reset (not Linux), never a lifetime peak")


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux ``clear_refs``); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> Optional[float]:
    """Peak resident memory of this process in MiB since the last reset (``VmHWM``), or None without it."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def denoise_measured(method, points: np.ndarray, sigma: Optional[float], device: str = "cpu", max_memory_mb: Optional[float] = None,
                     progress: Optional[Callable[[int, int], None]] = None):
    """Run ``method.denoise`` and measure it: returns (output, seconds, peak_mem_mb).

    With ``max_memory_mb`` the cloud is denoised by :func:`~sbdbench.methods.blocks.denoise_in_blocks` under that
    cap (the whole cloud in one block when it fits, so the output is then the same).

    ``peak_mem_mb`` follows :data:`PEAK_MEM_DEFINITION`: the peak RSS of the process during the call
    (numpy, torch CPU and everything else, as the OS counts it), None where the Linux counter cannot be
    reset. It is one quantity on every device: GPU memory is not added to it. Measuring costs nothing,
    so timings are not distorted by it. ``device`` is kept for the callers' signature. ``progress(done, total)``
    hears of the points done as the method's loops report them (:mod:`sbdbench.methods.meter`).
    """
    from sbdbench.methods.meter import metered

    reset = _reset_peak_rss()
    t0 = time.perf_counter()
    if max_memory_mb is None:
        with metered(progress, len(points)):
            out = method.denoise(points, noise_level=sigma)
    else:
        from sbdbench.methods.blocks import denoise_in_blocks

        out = denoise_in_blocks(method, points, noise_level=sigma, max_memory_mb=max_memory_mb, progress=progress)
    seconds = time.perf_counter() - t0
    return out, seconds, (_peak_rss_mb() if reset else None)


def run_cell(method, dataset, n_points: int, sigma: float, out_dir: Optional[Path], *, noise: str = GAUSSIAN,
             shapes: Optional[Sequence[str]] = None, device: str = "cpu", on_shape: Optional[Callable[[ShapeRecord], None]] = None,
             progress: bool = True, metrics_device: Optional[str] = None, max_memory_mb: Optional[float] = None) -> List[ShapeRecord]:
    """Denoise and score every test shape of one (dataset, N, σ, noise) cell.

    Args:
        method: a :class:`~sbdbench.methods.base.Denoiser` instance (its own params decide everything).
        dataset: a :class:`~sbdbench.data.dataset.Dataset`.
        n_points, sigma, noise: which noisy inputs (``examples/<name>_<N>_poisson[_<noise>]_<σ>``).
        out_dir: if given, each output is written to ``<out_dir>/<shape>.xyz`` (ScoreDenoise's layout).
        shapes: a subset of the test shapes (default: all of them).
        device: the method's device (CUDA peak memory is measured there) and, unless ``metrics_device``
            is given, where the metrics run ("cpu" = exact float64 backend).
        on_shape: called with each record as soon as it is ready.
        progress: show the shapes done (a tqdm bar on a terminal, else a line at most every 30 s; :mod:`sbdbench.progress`).

    Returns:
        One :class:`~sbdbench.protocol.ShapeRecord` per shape (metrics raw, unscaled).

    Raises:
        CellError: the method failed or returned non-finite points on a shape (named in the message).
        DataError: the dataset lacks an input, clean cloud or mesh of the cell, or one of them no longer
            matches the dataset's manifest (:mod:`sbdbench.data.integrity`).
    """
    from sbdbench.data.integrity import check_cell_inputs

    shapes = _cell_shapes(dataset, shapes)
    _check_noisy_dir(dataset, n_points, sigma, noise)
    check_cell_inputs(dataset, n_points, sigma, noise, shapes)  # a file changed since the build is refused, not scored
    from sbdbench.progress import progress_iter

    records = []
    for shape in progress_iter(shapes, len(shapes), f"{method.name} {int(n_points)} {sigma:g}", "shape", enabled=progress,
                               leave=False):
        record = _run_shape(method, dataset, shape, n_points, sigma, noise, out_dir, device, metrics_device, max_memory_mb)
        records.append(record)
        if on_shape is not None:
            on_shape(record)
    return records


def _checked_resolutions(ds, resolutions: Optional[Sequence[int]]) -> List[int]:
    """The resolutions to run: those given (each must have test clouds), else all the dataset has."""
    available = ds.resolutions("test")
    for n in resolutions or ():
        if n not in available:
            raise DataError(f"dataset {ds.name!r} has no {n}-point test clouds (available: {', '.join(map(str, available)) or 'none'})")
    return list(resolutions) if resolutions else available


def _cell_shapes(dataset, shapes: Optional[Sequence[str]]) -> List[str]:
    """The cell's test shapes: all of them, or the subset named (each checked)."""
    if shapes is None:
        shapes = dataset.shapes("test")
    else:
        for s in shapes:
            dataset.check_shape(s, "test")
    if not shapes:
        raise DataError(f"dataset {dataset.name!r} has no test shapes")
    return list(shapes)


def _check_noisy_dir(dataset, n_points: int, sigma: float, noise: str) -> None:
    noisy_dir = dataset.noisy_dir(n_points, sigma, noise)
    if not noisy_dir.is_dir():
        levels = dataset.noise_levels(n_points, noise)
        raise DataError(f"dataset {dataset.name!r} has no noisy inputs at N={int(n_points)}, σ={sigma:g}, noise={noise} "
                        f"({noisy_dir} is absent; σ available at this N: {', '.join(f'{x:g}' for x in levels) or 'none'})")


def _run_shape(method, dataset, shape: str, n_points: int, sigma: float, noise: str, out_dir: Optional[Path], device: str,
               metrics_device: Optional[str], max_memory_mb: Optional[float] = None) -> ShapeRecord:
    """Denoise one shape's noisy input, write it (when ``out_dir``), score it: its record."""
    from sbdbench.io import write_points
    from sbdbench.metrics import evaluate_shape

    noisy = dataset.load_noisy(shape, n_points, sigma, noise)
    try:
        pred, seconds, peak_mb = denoise_measured(method, noisy, sigma, device, max_memory_mb)
    except Exception as exc:
        raise CellError(f"method {method.name!r} failed on shape {shape!r} (N={int(n_points)}, σ={sigma:g}): "
                        f"{type(exc).__name__}: {exc}") from exc
    if pred.ndim != 2 or pred.shape[1] != 3 or len(pred) == 0 or not np.isfinite(pred).all():
        raise CellError(f"method {method.name!r} returned invalid points on shape {shape!r} (N={int(n_points)}, σ={sigma:g})")
    if out_dir is not None:
        write_points(Path(out_dir) / f"{shape}.xyz", pred)
    gt = dataset.load_clean(shape, n_points, "test")
    verts, faces = dataset.load_mesh(shape, "test")
    metrics = evaluate_shape(pred, gt, verts, faces, device=metrics_device or device)
    return ShapeRecord(shape=shape, category=dataset.category(shape), n_points=int(n_points), sigma=float(sigma),
                       n_out=int(len(pred)), **{k: float(metrics[k]) for k in METRICS},
                       seconds=float(seconds), peak_mem_mb=None if peak_mb is None else float(peak_mb))


# --- a whole method run (``sbdbench run``) ---------------------------------------------------------
SUMMARY_COLUMNS = (*(reported_column(m) if m in SCALED_METRICS else m for m in METRICS), "seconds", "peak_mem_mb")


def summarize(frame):
    """Mean table in report units: one row per (method, n_points, sigma) with :data:`SUMMARY_COLUMNS`."""
    from sbdbench.metrics import to_report_units

    rep = to_report_units(frame)
    keys = [k for k in ("method", "n_points", "sigma") if k in rep]
    table = rep.groupby(keys)[list(SUMMARY_COLUMNS)].mean()
    table.insert(0, "n_shapes", rep.groupby(keys).size())
    return table.reset_index()


def run_method(method_name: str, dataset: str = "synth", resolutions: Optional[Sequence[int]] = None,
               noise_levels: Optional[Sequence[float]] = None, *, params: Optional[Dict] = None, use_frozen: bool = True,
               device: str = "cpu", out: Optional[Path] = None, noise: str = GAUSSIAN, shapes: Optional[Sequence[str]] = None,
               progress: bool = True, log: Callable[[str], None] = print, max_memory_mb: Optional[float] = None):
    """Denoise every test input of a dataset with one method and score it (``sbdbench run``).

    For each (N, σ) the method gets its frozen settings (``baselines/<method>.toml``, nearest cell)
    updated with ``params``; outputs go to ``<out>/<dataset>_<N>_poisson_<σ>/<shape>.xyz``
    (ScoreDenoise's layout) and the scores to ``<out>/per_shape.csv`` and ``<out>/summary.csv``.
    ``max_memory_mb`` caps each cloud's working memory (spatial blocks: :mod:`sbdbench.methods.blocks`).

    Returns:
        (per-shape DataFrame with raw metrics, summary DataFrame in report units).
    """
    import json

    from sbdbench.data.dataset import noisy_dir_name, open_dataset
    from sbdbench.methods import resolve_method

    ds = open_dataset(dataset)
    if not ds.has_reference and ds.scans():  # real scans: no GT, no N × σ grid (sbdbench.bench.scans)
        from sbdbench.bench.scans import run_scans

        if resolutions or noise_levels or noise != GAUSSIAN:
            raise DataError(f"dataset {ds.name!r} holds real scans (each its own N, unknown noise): drop --resolutions, "
                            "--sigmas and --noise-kind")
        return run_scans(method_name, ds, params=params, use_frozen=use_frozen, device=device, out=out, shapes=shapes, log=log,
                         max_memory_mb=max_memory_mb, progress=progress)
    resolutions = _checked_resolutions(ds, resolutions)
    first = resolve_method(method_name, resolutions[0] if resolutions else 10000, None, device=device, overrides=params,
                           frozen=use_frozen)  # unknown parameters and bad values fail here, before any work
    if first.note:
        log(first.note)
    out = Path(out) if out is not None else Path("runs") / method_name
    rows = []

    for n_points in resolutions:
        levels = list(noise_levels) if noise_levels else ds.noise_levels(n_points, noise)
        if not levels:
            raise DataError(f"dataset {ds.name!r} has no noisy inputs at N={n_points} (noise {noise})")
        for sigma in levels:
            method = resolve_method(method_name, n_points, sigma, device=device, overrides=params, frozen=use_frozen).method
            cell_dir = out / noisy_dir_name(ds.name, n_points, sigma, noise)
            records = run_cell(method, ds, n_points, sigma, cell_dir, noise=noise, shapes=shapes, device=device, progress=progress,
                               max_memory_mb=max_memory_mb)
            shown = {k: v for k, v in method.get_params().items()}
            for r in records:
                rows.append({"method": method_name, **r.to_dict(), "params": json.dumps(shown, sort_keys=True)})
            mean_cd = sum(r.cd for r in records) / len(records) * REPORT_SCALE
            log(f"{method_name} N={n_points} σ={sigma:g}: {len(records)} shapes, cd_1e4={mean_cd:.3f}, params {shown} -> {cell_dir}")
            _write_run_tables(rows, out)  # after every (N, σ): an interrupted run keeps the scores of its finished cells
    return _write_run_tables(rows, out)


def _write_run_tables(rows: List[dict], out: Path) -> tuple:
    """``per_shape.csv`` and ``summary.csv`` of a run so far (atomic writes): (per-shape frame, summary frame)."""
    import pandas as pd

    from sbdbench.paths import atomic_write_text

    frame = pd.DataFrame(rows, columns=["method", *RECORD_KEYS, "params"])
    summary = summarize(frame)
    atomic_write_text(out / "per_shape.csv", frame.to_csv(index=False, float_format="%.10g"))
    atomic_write_text(out / "summary.csv", summary.to_csv(index=False, float_format="%.10g"))
    return frame, summary
