"""What one ``sbdbench bench`` does, as one object built once (from the CLI or in Python) and passed down.

``BenchConfig`` holds the grid (methods × datasets × resolutions × σ, the noise kind, the devices), how it runs
(executor, workers, scheduler) and where results go (database, rerun, init); :func:`sbdbench.bench.grid.build_grid`
and :func:`sbdbench.bench.runner.run_bench` read it instead of relaying a dozen keyword arguments each.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Optional, Sequence, Tuple

from sbdbench.protocol import GAUSSIAN

#: --quick uses up to this many local processes unless --workers says otherwise
QUICK_WORKERS = 2


def _tuple(values) -> Optional[tuple]:
    return None if values is None else tuple(values)


@dataclass(frozen=True)
class BenchConfig:
    """A benchmark run. ``None`` in a grid field means the default (every method with frozen settings in
    ``baselines/``, ``synth``, 10K and 50K, 1/2/3 %), or the ``quick`` subset.

    Fields:
        methods, datasets, resolutions, sigmas: the grid.
        noise: noise kind of the noisy inputs.
        device: torch device for methods and metrics (``cpu``, ``cuda``...).
        metrics_device: run the metrics elsewhere (e.g. denoise on ``cuda``, score with the exact float64 CPU
            backend, which prunes with KD-trees where the torch backend is brute force).
        quick: the quick subset (10K, the fast methods).
        build: build the synth dataset when it is absent (it is never replaced or extended).
        executor, workers, scheduler: see :func:`sbdbench.bench.executors.make_executor`; ``workers=None`` is 1,
            or with ``quick`` one per core up to :data:`QUICK_WORKERS`.
        db: results database (default ``$SBDBENCH_HOME/results.db``).
        rerun: run finished cells again (the new run supersedes the old one in the leaderboard).
        init_db: set up an existing empty (zero-byte) database file as a new results database.
    """

    methods: Optional[Tuple[str, ...]] = None
    datasets: Optional[Tuple[str, ...]] = None
    resolutions: Optional[Tuple[int, ...]] = None
    sigmas: Optional[Tuple[float, ...]] = None
    noise: str = GAUSSIAN
    device: str = "cpu"
    metrics_device: Optional[str] = None
    quick: bool = False
    build: bool = False
    executor: str = "local"
    workers: Optional[int] = None
    scheduler: Optional[str] = None
    db: Optional[str] = None
    rerun: bool = False
    init_db: bool = False

    def __post_init__(self) -> None:  # lists given by a caller become tuples: a config is a value
        for name in ("methods", "datasets", "resolutions", "sigmas"):
            object.__setattr__(self, name, _tuple(getattr(self, name)))

    @classmethod
    def of(cls, *grid, **fields) -> "BenchConfig":
        """The config of fields given as ``run_bench`` takes them: methods, datasets, resolutions, σ positionally,
        the rest by name (``noise_levels`` is accepted for ``sigmas``)."""
        if "noise_levels" in fields:
            fields["sigmas"] = fields.pop("noise_levels")
        return cls(*grid, **fields)

    def with_(self, **changes) -> "BenchConfig":
        return replace(self, **changes)

    @property
    def worker_count(self) -> int:
        """The local workers this run uses (``workers``, else 1, or one per core up to 2 with ``quick``)."""
        if self.workers is not None:
            return int(self.workers)
        return min(QUICK_WORKERS, os.cpu_count() or 1) if self.quick else 1
