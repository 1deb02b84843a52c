"""``run_bench``: run a grid of cells on an executor and keep every result in the results store.

The driver loop is the same for every executor: skip the cells the store already has, keep up to
``executor.capacity`` cells in flight, store each finished cell in one transaction as soon as it
comes back, retry a failed cell once, then record it as failed with its error — one failing cell
never stops the others, and a killed bench loses only the shapes that were in flight (the finished shapes
of an unfinished cell are journaled beside the database, :mod:`sbdbench.bench.journal`).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from sbdbench.bench.config import QUICK_WORKERS, BenchConfig  # noqa: F401  (QUICK_WORKERS: re-exported)
from sbdbench.bench.devices import check_devices
from sbdbench.bench.executors import CellOutcome, check_executor_args, execute_cell, make_executor
from sbdbench.bench.grid import Cell, build_grid
from sbdbench.bench.journal import CellJournal, journal_folder
from sbdbench.bench.progress import CellWatch, ShapeProgress
from sbdbench.bench.store import ResultsStore, current_run_info, default_db_path, utc_now

MAX_ATTEMPTS = 2  # a failing cell is retried once
POLL_S = 2.0  # with progress shown, how often the journals of cells running in workers are counted


@dataclass
class BenchSummary:
    """What a bench run did."""

    cells: int = 0
    skipped: int = 0
    finished: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    db_path: str = ""

    def line(self) -> str:
        return (f"{self.cells} cells: {self.finished} run, {self.skipped} already in the store, {self.failed} failed "
                f"({self.seconds:.0f} s); results in {self.db_path}")


def run_cells(
    cells: Sequence[Cell],
    store: ResultsStore,
    config: Optional[BenchConfig] = None,
    *,
    log: Callable[[str], None] = lambda msg: None,
    progress: Optional[ShapeProgress] = None,
) -> BenchSummary:
    """Run ``cells`` (skipping finished ones unless ``rerun``) and store every outcome; the shapes of a
    cell that an interrupted bench finished are not run again (``--rerun`` runs them again). ``progress``
    shows each cell's finished shapes and ETA (:mod:`sbdbench.bench.progress`)."""
    config = config or BenchConfig()
    rerun = config.rerun
    t0 = time.perf_counter()
    summary = BenchSummary(cells=len(cells), db_path=str(store.path))
    unique = list({c.key: c for c in cells}.values())
    done = set() if rerun else store.finished_keys()
    todo = [c for c in unique if c.key not in done]
    summary.skipped = len(unique) - len(todo)
    if summary.skipped:
        log(f"{summary.skipped} of {len(unique)} cells already in the store: skipped")
    if not todo:
        summary.seconds = time.perf_counter() - t0
        return summary

    journals = str(journal_folder(store.path))
    if rerun:
        for cell in todo:
            CellJournal(journals, cell.key).discard()
    info = current_run_info()
    pool = make_executor(config.executor, config.worker_count, config.scheduler)
    log(f"running {len(todo)} cells on {pool.description}")
    pending = deque((cell, 1) for cell in todo)
    in_flight = {}
    first_start = {}
    n_done = 0
    watch = CellWatch(progress, journals)
    try:
        while pending or in_flight:
            while pending and len(in_flight) < pool.capacity:
                cell, attempt = pending.popleft()
                first_start.setdefault(cell.key, utc_now())
                in_flight[_submit(pool, watch, cell, attempt, journals)] = (cell, attempt)
            finished = pool.wait_any(list(in_flight), timeout=POLL_S if progress is not None else None)
            watch.poll([c for fut, (c, _) in in_flight.items() if fut not in finished])
            for fut in finished:
                cell, attempt = in_flight.pop(fut)
                watch.finished(cell)
                try:
                    outcome: CellOutcome = fut.result()
                except Exception as exc:  # the worker itself died (killed, out of memory, lost)
                    outcome = CellOutcome(cell, error=f"worker failed: {type(exc).__name__}: {exc}", finished_at=utc_now())
                if outcome.journal_dropped:
                    log(f"warning: {cell.label}: dropped {outcome.journal_dropped} invalid journal line(s) "
                        f"({outcome.journal_problem}); those shapes were run again")
                if outcome.ok:
                    run_id = store.record_finished(cell, outcome.records, info=info, attempts=attempt,
                                                   started_at=first_start[cell.key], finished_at=outcome.finished_at,
                                                   seconds=outcome.seconds, replace=rerun)
                    CellJournal(journals, cell.key).discard()
                    n_done += 1
                    summary.finished += 1
                    note = "" if run_id is not None else " (already stored by a concurrent bench)"
                    if outcome.resumed_shapes:
                        note += f" ({outcome.resumed_shapes} shapes from an interrupted run)"
                    log(f"[{n_done}/{len(todo)}] {cell.label}: {len(outcome.records)} shapes in {outcome.seconds:.1f} s{note}")
                elif attempt < MAX_ATTEMPTS:
                    log(f"{cell.label}: failed ({_first_line(outcome.error)}); retrying once")
                    pending.append((cell, attempt + 1))
                else:
                    store.record_failed(cell, outcome.error or "unknown error", info=info, attempts=attempt,
                                        started_at=first_start[cell.key], finished_at=outcome.finished_at or utc_now(),
                                        seconds=outcome.seconds)
                    n_done += 1
                    summary.failed += 1
                    summary.failures.append(f"{cell.label}: {_first_line(outcome.error)}")
                    log(f"[{n_done}/{len(todo)}] {cell.label}: FAILED twice, recorded: {_first_line(outcome.error)}")
    finally:
        watch.close()
        pool.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def _submit(pool, watch: CellWatch, cell: Cell, attempt: int, journals: str):
    """Submit one cell; a cell run in this process reports its shapes itself, a worker's through its journal."""
    if getattr(pool, "in_process", False):
        return pool.submit(execute_cell, cell, attempt, journals, watch.callback(cell))
    watch.submitted(cell)
    return pool.submit(execute_cell, cell, attempt, journals)


def _first_line(text: Optional[str]) -> str:
    return (text or "unknown error").strip().splitlines()[0][:300]


def run_bench(*grid, log: Callable[[str], None] = lambda msg: None, progress: Optional[ShapeProgress] = None,
              **fields) -> BenchSummary:
    """Run the benchmark grid and store the results (the function behind ``sbdbench bench``).

    Call it with one :class:`~sbdbench.bench.config.BenchConfig`, or with that config's fields
    (``run_bench(["pca"], ["synth"], [10000], [0.01], workers=2)``: methods, datasets, resolutions, σ positionally).
    ``log`` receives one line per event (the CLI prints them); ``progress`` shows per-shape progress and the ETA
    of each cell in flight (the CLI's unless --quiet).

    Everything is checked before the first cell starts: the executor, the devices, the database, the
    methods and their parameters, every learned method's weights file, and the data of every cell.
    """
    config = grid[0] if len(grid) == 1 and isinstance(grid[0], BenchConfig) and not fields else BenchConfig.of(*grid, **fields)
    check_executor_args(config.executor, config.worker_count, config.scheduler)
    check_devices(config.device, config.metrics_device, local=not config.scheduler)
    db_path = Path(config.db) if config.db is not None else default_db_path()
    # an existing database is checked before any work; a new one is created only once the grid is valid
    store = ResultsStore(db_path, init=config.init_db) if db_path.exists() else None
    try:
        grid_cells = build_grid(config, log=log)
        for note in grid_cells.notes:
            log(note)
        if store is None:
            store = ResultsStore(db_path, init=config.init_db)
        summary = run_cells(grid_cells.cells, store, config, log=log, progress=progress)
        summary.notes = grid_cells.notes
        return summary
    finally:
        if store is not None:
            store.close()
