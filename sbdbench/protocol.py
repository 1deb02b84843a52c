"""The benchmark protocol's facts, in one place: the on-disk layout, the default grid, the noise kinds and the
metric schema. Every writer, reader and the bench's cell hash build and parse paths with these functions, so
they cannot drift apart. The records passed between modules live here too: :class:`ShapeRecord` (one shape's
scores in a cell) and :class:`TunedCell` (one ``[[cell]]`` of a frozen-settings TOML).

Layout (ScoreDenoise's ``data/`` folder, so either tool reads the other's)::

    <root>/<dataset>/meshes/<split>/<shape>.off                        GT meshes
    <root>/<dataset>/pointclouds/<split>/<N>_poisson/<shape>.xyz       clean GT clouds
    <root>/examples/<dataset>_<N>_poisson_<σ>/<shape>.xyz              noisy test inputs, Gaussian noise
    <root>/examples/<dataset>_<N>_poisson_<kind>_<σ>/<shape>.xyz       other noise kinds
    <root>/examples/<dataset>_val_<N>_poisson_[<kind>_]<σ>/            noisy val inputs (never read as test inputs)
    <root>/<dataset>/scans/<split>/<scan>.xyz                          real scans without GT (noisy only, any N)

``σ`` is written as ScoreDenoise writes it (``0.01``, ``0.025``: :func:`sigma_label`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from typing import Any, Dict, List, Mapping, Optional, Tuple

from sbdbench.errors import DataError

# --- splits, grid, noise -------------------------------------------------------------------------
SPLITS: Tuple[str, ...] = ("train", "val", "test")
#: the papers' grid: 10K and 50K points, σ = 1, 2, 3 % of the unit sphere
DEFAULT_RESOLUTIONS: Tuple[int, ...] = (10000, 50000)
DEFAULT_SIGMAS: Tuple[float, ...] = (0.01, 0.02, 0.03)
#: the protocol's noise kind (ScoreDenoise's folders carry no kind in their name)
GAUSSIAN = "gaussian"
#: every noise kind ``sbdbench build`` can add (implemented in :mod:`sbdbench.data.noise`)
NOISE_KINDS: Tuple[str, ...] = (GAUSSIAN, "laplace", "uniform_ball", "anisotropic", "outliers", "scanner_ray")

# --- metrics ---------------------------------------------------------------------------------------
#: per-shape metrics, in column order: Chamfer, exact P2M, PyTorch3D-default P2M, Hausdorff (all squared, raw)
METRICS: Tuple[str, ...] = ("cd", "p2m", "p2m_pt3d", "hd")
#: the metrics papers print multiplied by REPORT_SCALE (columns ``<metric>_1e4``)
SCALED_METRICS: Tuple[str, ...] = ("cd", "p2m", "p2m_pt3d")
REPORT_SCALE = 1e4
#: no-reference figures (no GT needed: real scans, ``evaluate --pred X`` alone): mean distance to the local
#: kNN plane (unit-sphere frame, not squared) and the spacing's coefficient of variation (sbdbench.metrics.noref)
NOREF_METRICS: Tuple[str, ...] = ("plane_res", "spacing_cv")
#: the no-reference figures printed ×REPORT_SCALE (``plane_res_1e4``)
SCALED_NOREF_METRICS: Tuple[str, ...] = ("plane_res",)


def reported_column(metric: str) -> str:
    """The report column of a scaled metric: ``cd`` → ``cd_1e4``."""
    return f"{metric}_1e4"


# --- layout ------------------------------------------------------------------------------------------
CLEAN_SUFFIX = "_poisson"


def sigma_label(sigma: float) -> str:
    """The folder label of a noise level as ScoreDenoise writes it: 0.01 → '0.01', 0.025 → '0.025'."""
    return f"{float(sigma):g}"


def clean_dir_name(n_points: int) -> str:
    """``<N>_poisson``: the folder of the clean clouds at N points."""
    return f"{int(n_points)}{CLEAN_SUFFIX}"


def clean_rel_dir(dataset: str, split: str, n_points: int) -> str:
    """``<dataset>/pointclouds/<split>/<N>_poisson`` (relative to the data root)."""
    return f"{dataset}/pointclouds/{split}/{clean_dir_name(n_points)}"


def mesh_rel_dir(dataset: str, split: str) -> str:
    """``<dataset>/meshes/<split>`` (relative to the data root)."""
    return f"{dataset}/meshes/{split}"


def scan_rel_dir(dataset: str, split: str = "test") -> str:
    """``<dataset>/scans/<split>``: real scans, noisy as captured, with no clean cloud or mesh (no GT)."""
    return f"{dataset}/scans/{split}"


def noisy_dir_name(dataset: str, n_points: int, sigma: float, noise: str = GAUSSIAN, split: str = "test") -> str:
    """``<dataset>[_<split>]_<N>_poisson[_<kind>]_<σ>``: no split for test, no kind for Gaussian noise."""
    prefix = dataset if split == "test" else f"{dataset}_{split}"
    kind = "" if noise == GAUSSIAN else f"{noise}_"
    return f"{prefix}_{int(n_points)}{CLEAN_SUFFIX}_{kind}{sigma_label(sigma)}"


def noisy_rel_dir(dataset: str, n_points: int, sigma: float, noise: str = GAUSSIAN, split: str = "test") -> str:
    """``examples/<noisy_dir_name>`` (relative to the data root)."""
    return f"examples/{noisy_dir_name(dataset, n_points, sigma, noise, split)}"


@dataclass(frozen=True)
class NoisyDir:
    """What a noisy folder's name says."""

    dataset: str
    split: str
    n_points: int
    noise: str
    sigma: float


_NOISY_TAIL = r"(?:_(?P<split>val|train))?_(?P<n>\d+)_poisson_(?:(?P<kind>[a-z][a-z_]*)_)?(?P<sigma>[0-9.eE+-]+)"


def parse_noisy_dir(name: str, dataset: Optional[str] = None) -> Optional[NoisyDir]:
    """The :class:`NoisyDir` a folder name encodes (of ``dataset`` only, when given), or None for any other name."""
    head = re.escape(dataset) if dataset is not None else r"(?P<dataset>.+?)"
    found = re.fullmatch(head + _NOISY_TAIL, name)
    if not found:
        return None
    try:
        sigma = float(found.group("sigma"))
    except ValueError:
        return None
    return NoisyDir(dataset if dataset is not None else found.group("dataset"), found.group("split") or "test",
                    int(found.group("n")), found.group("kind") or GAUSSIAN, sigma)


def parse_clean_dir(name: str) -> Optional[int]:
    """N of a clean-cloud folder name (``10000_poisson`` → 10000), or None."""
    found = re.fullmatch(r"(\d+)" + CLEAN_SUFFIX, name)
    return int(found.group(1)) if found else None


def resolution_in_name(name: str) -> Optional[int]:
    """N carried by a folder name in the layout (``synth_10000_poisson_0.02``, or a run's copy of it), or None."""
    found = re.search(r"_(\d+)" + CLEAN_SUFFIX + r"(?:_|$)", name)
    return int(found.group(1)) if found else None


# --- records -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShapeRecord:
    """One shape's scores in one cell (metrics raw, unscaled): what :func:`sbdbench.bench.cell.run_cell` returns,
    a line of a cell journal, a row of ``per_shape.csv`` and of the results store's ``shapes`` table."""

    shape: str
    category: str
    n_points: int
    sigma: float
    n_out: int
    cd: float
    p2m: float
    p2m_pt3d: float
    hd: float
    seconds: float
    #: see :data:`sbdbench.bench.cell.PEAK_MEM_DEFINITION`; None where it cannot be measured
    peak_mem_mb: Optional[float]

    def to_dict(self) -> Dict[str, Any]:
        """The record as a dict, keys in :data:`RECORD_KEYS` order (the journal's JSON, the CSV's columns)."""
        return {key: getattr(self, key) for key in RECORD_KEYS}

    @classmethod
    def from_dict(cls, data: Any) -> "ShapeRecord":
        """The record of a parsed journal line; a one-line :class:`DataError` when it is not a usable record
        (not an object, a key missing, a metric not a finite number ≥ 0, a count not a positive integer)."""
        problem = _record_problem(data)
        if problem:
            raise DataError(problem)
        return cls(**{key: data[key] for key in RECORD_KEYS})


#: keys of every per-shape record, in CSV column order.
RECORD_KEYS: Tuple[str, ...] = tuple(f.name for f in fields(ShapeRecord))
assert RECORD_KEYS[5:5 + len(METRICS)] == METRICS, "ShapeRecord's metric fields must be METRICS, in order"
#: what a record must hold as finite numbers ≥ 0 (``peak_mem_mb`` may be None)
_FINITE_KEYS = (*METRICS, "seconds", "sigma")


def _record_problem(record: Any) -> Optional[str]:
    """Why a parsed journal line is not a usable per-shape record, or None."""
    if not isinstance(record, dict):
        return f"not a JSON object: {type(record).__name__}"
    missing = [k for k in RECORD_KEYS if k not in record]
    if missing:
        return f"missing {', '.join(missing)}"
    if not isinstance(record["shape"], str) or not isinstance(record["category"], str):
        return "shape and category must be strings"
    for key in _FINITE_KEYS:
        value = record[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            return f"shape {record['shape']!r}: {key} is {value!r}, not a finite number ≥ 0"
    for key in ("n_points", "n_out"):
        if isinstance(record[key], bool) or not isinstance(record[key], int) or record[key] < 1:
            return f"shape {record['shape']!r}: {key} is {record[key]!r}, not a count"
    return None


@dataclass
class TunedCell:
    """One ``[[cell]]`` of a frozen-settings TOML (``baselines/<method>.toml``): what ``sbdbench tune`` chose at one
    (resolution, σ). Every field but ``n_points`` and ``sigma`` may be unset (None), and is then not written."""

    n_points: int
    sigma: float
    shapes: Optional[List[str]] = None
    cd: Optional[float] = None
    noisy_cd: Optional[float] = None
    seconds_per_shape: Optional[float] = None
    #: the grid keys this cell searched; the other parameters were held (``held_from`` says where from)
    searched: Optional[List[str]] = None
    held_from: Optional[str] = None
    params: Optional[Dict[str, Any]] = None
    #: with ``tune --within``: the tolerance, and the best trial, which was not frozen
    within: Optional[float] = None
    #: with ``tune --max-seconds``: the cost cap (wall seconds per shape) the frozen trial had to meet
    max_seconds: Optional[float] = None
    best_params: Optional[Dict[str, Any]] = None
    best_cd: Optional[float] = None
    trials: Optional[List[Dict[str, Any]]] = None

    @property
    def key(self) -> Tuple[int, float]:
        """The (resolution, σ) the cell stands for, σ rounded so that 0.03 and 0.030000001 are one cell."""
        return int(self.n_points), round(float(self.sigma), 6)

    def to_dict(self) -> Dict[str, Any]:
        """The cell's TOML table: the set fields, in :data:`CELL_KEYS` order."""
        return {key: getattr(self, key) for key in CELL_KEYS if getattr(self, key) is not None}

    @classmethod
    def from_dict(cls, data: Any) -> "TunedCell":
        """The cell of a parsed TOML table (keys other than :data:`CELL_KEYS` are dropped); a one-line
        :class:`DataError` when it is not a table or lacks ``n_points`` or ``sigma``."""
        if not isinstance(data, Mapping):
            raise DataError(f"a tuned cell must be a table, got {type(data).__name__}")
        missing = [k for k in ("n_points", "sigma") if k not in data]
        if missing:
            raise DataError(f"tuned cell lacks {', '.join(missing)}")
        return cls(**{key: data[key] for key in CELL_KEYS if data.get(key) is not None})


#: the keys of a frozen-settings TOML's ``[[cell]]``, in the order they are written.
CELL_KEYS: Tuple[str, ...] = tuple(f.name for f in fields(TunedCell))
