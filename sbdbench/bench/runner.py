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
    t0 = time.perf_counter()
    summary = BenchSummary(cells=len(cells), db_path=str(store.path))
    todo = _cells_to_run(cells, store, config.rerun, summary, log)
    if todo:
        journals = str(journal_folder(store.path))
        if config.rerun:
            for cell in todo:
                CellJournal(journals, cell.key).discard()
        pool = make_executor(config.executor, config.worker_count, config.scheduler)
        log(f"running {len(todo)} cells on {pool.description}")
        watch = CellWatch(progress, journals)
        try:
            _drive(pool, watch, _Recorder(store, summary, len(todo), config.rerun, journals, log), todo, progress is not None)
        finally:
            watch.close()
            pool.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def _cells_to_run(cells: Sequence[Cell], store: ResultsStore, rerun: bool, summary: BenchSummary, log) -> List[Cell]:
    """The distinct cells not finished in the store (all of them with ``rerun``); counts the skipped ones."""
    unique = list({c.key: c for c in cells}.values())
    done = set() if rerun else store.finished_keys()
    todo = [c for c in unique if c.key not in done]
    summary.skipped = len(unique) - len(todo)
    if summary.skipped:
        log(f"{summary.skipped} of {len(unique)} cells already in the store: skipped")
    return todo


def _drive(pool, watch: CellWatch, recorder: "_Recorder", todo: Sequence[Cell], polling: bool) -> None:
    """Keep up to ``pool.capacity`` cells in flight; hand each outcome to ``recorder`` (which may ask for a retry)."""
    pending = deque((cell, 1) for cell in todo)
    in_flight = {}
    while pending or in_flight:
        while pending and len(in_flight) < pool.capacity:
            cell, attempt = pending.popleft()
            recorder.first_start.setdefault(cell.key, utc_now())
            in_flight[_submit(pool, watch, cell, attempt, recorder.journals)] = (cell, attempt)
        finished = pool.wait_any(list(in_flight), timeout=POLL_S if polling else None)
        watch.poll([c for fut, (c, _) in in_flight.items() if fut not in finished])
        for fut in finished:
            cell, attempt = in_flight.pop(fut)
            watch.finished(cell)
            try:
                outcome: CellOutcome = fut.result()
            except Exception as exc:  # the worker itself died (killed, out of memory, lost)
                outcome = CellOutcome(cell, error=f"worker failed: {type(exc).__name__}: {exc}", finished_at=utc_now())
            if recorder.record(cell, attempt, outcome):
                pending.append((cell, attempt + 1))


class _Recorder:
    """Stores each outcome as it comes back (one transaction per cell) and logs it; a failed cell is retried once."""

    def __init__(self, store: ResultsStore, summary: BenchSummary, total: int, rerun: bool, journals: str, log) -> None:
        self.store, self.summary, self.total, self.rerun, self.journals, self.log = store, summary, total, rerun, journals, log
        self.info = current_run_info()
        self.first_start: dict = {}
        self.done = 0

    def record(self, cell: Cell, attempt: int, outcome: CellOutcome) -> bool:
        """Store ``outcome``; True when the cell should be tried again."""
        if outcome.journal_dropped:
            self.log(f"warning: {cell.label}: dropped {outcome.journal_dropped} invalid journal line(s) "
                     f"({outcome.journal_problem}); those shapes were run again")
        if outcome.ok:
            self._finished(cell, attempt, outcome)
            return False
        if attempt < MAX_ATTEMPTS:
            self.log(f"{cell.label}: failed ({_first_line(outcome.error)}); retrying once")
            return True
        self.store.record_failed(cell, outcome.error or "unknown error", info=self.info, attempts=attempt,
                                 started_at=self.first_start[cell.key], finished_at=outcome.finished_at or utc_now(),
                                 seconds=outcome.seconds)
        self.done += 1
        self.summary.failed += 1
        self.summary.failures.append(f"{cell.label}: {_first_line(outcome.error)}")
        self.log(f"[{self.done}/{self.total}] {cell.label}: FAILED twice, recorded: {_first_line(outcome.error)}")
        return False

    def _finished(self, cell: Cell, attempt: int, outcome: CellOutcome) -> None:
        run_id = self.store.record_finished(cell, outcome.records, info=self.info, attempts=attempt,
                                            started_at=self.first_start[cell.key], finished_at=outcome.finished_at,
                                            seconds=outcome.seconds, replace=self.rerun)
        CellJournal(self.journals, cell.key).discard()
        self.done += 1
        self.summary.finished += 1
        note = "" if run_id is not None else " (already stored by a concurrent bench)"
        if outcome.resumed_shapes:
            note += f" ({outcome.resumed_shapes} shapes from an interrupted run)"
        self.log(f"[{self.done}/{self.total}] {cell.label}: {len(outcome.records)} shapes in {outcome.seconds:.1f} s{note}")


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
