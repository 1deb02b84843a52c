"""Where cells run: in this process, in a local process pool, or on a Dask cluster.

Every executor runs the same picklable function, :func:`execute_cell`, which never raises for a
cell's own failure: it returns a :class:`CellOutcome` carrying either the per-shape records or the
error text. Only the driver (:func:`sbdbench.bench.runner.run_bench`) writes to the results
database, so workers need no database access — on a SLURM cluster they only need the dataset
folder (a shared filesystem) and sbdbench installed.

The three executors share a tiny interface: ``capacity`` (cells in flight at once),
``submit(fn, *args)`` → future, ``wait_any(futures, timeout)`` → the done ones (maybe none after
``timeout`` seconds), ``close()``; an ``in_process`` executor runs the cell in this process.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from sbdbench.bench.grid import Cell
from sbdbench.errors import InputError
from sbdbench.protocol import METRICS, ShapeRecord

EXECUTORS = ("local", "dask")


@dataclass
class CellOutcome:
    """What a worker sends back: the records of a finished cell, or the error of a failed one."""

    cell: Cell
    records: Optional[List[ShapeRecord]] = None
    error: Optional[str] = None
    started_at: str = ""
    finished_at: str = ""
    seconds: float = 0.0
    #: shapes taken from the journal of an interrupted attempt (not run again)
    resumed_shapes: int = 0
    #: invalid journal lines dropped (those shapes ran again), and why the first one was dropped
    journal_dropped: int = 0
    journal_problem: str = ""
    worker: str = field(default_factory=lambda: f"{os.uname().nodename}:{os.getpid()}")

    @property
    def ok(self) -> bool:
        return self.error is None and self.records is not None


def _check_records(cell: Cell, records: Sequence[ShapeRecord]) -> Optional[str]:
    """A reason to reject the records of a cell (missing shapes, non-finite metrics), or None."""
    if not records:
        return "the cell produced no per-shape records (no test shapes?)"
    for rec in records:
        for key in METRICS:
            value = getattr(rec, key)
            if value is None or not math.isfinite(float(value)):
                return f"shape {rec.shape!r}: metric {key} is {value}"
    return None


def execute_cell(cell: Cell, attempt: int = 1, journal_dir: Optional[str] = None,
                 progress: Optional[Callable[[int, int], None]] = None) -> CellOutcome:
    """Run one cell end to end (make the method, denoise and evaluate every shape); never raises
    for the cell's own errors — they come back as ``CellOutcome.error``.

    With ``journal_dir`` (see :mod:`sbdbench.bench.journal`) the shapes an interrupted attempt finished
    are taken from the journal, the others are run and journaled one by one. ``progress`` (in-process
    only: it is not sent to workers) is called with (shapes done, total) at the start and after each shape."""
    from sbdbench.bench.journal import open_journal
    from sbdbench.bench.store import utc_now

    started_at = utc_now()
    t0 = time.perf_counter()
    try:
        from sbdbench.bench.cell import run_cell
        from sbdbench.data.dataset import Dataset
        from sbdbench.methods import make_method

        dataset = Dataset(cell.dataset, Path(cell.dataset_root))
        shapes = dataset.shapes("test")
        journal = open_journal(journal_dir, cell.key)
        done = journal.load(shapes) if journal else {}
        dropped = (journal.dropped, journal.problem) if journal else (0, "")
        remaining = [s for s in shapes if s not in done]
        new_records = []
        if remaining:
            method = make_method(cell.method_name, **cell.params)
            new_records = run_cell(method, dataset, cell.n_points, cell.sigma, None, noise=cell.noise, device=cell.device,
                                   metrics_device=cell.metrics_device or None, progress=False, shapes=remaining,
                                   on_shape=_on_shape(journal, progress, len(done), len(shapes)))
        by_shape = {**done, **{r.shape: r for r in new_records}}
        records = [by_shape[s] for s in shapes]
        problem = _check_records(cell, records)
        if problem:
            return CellOutcome(cell, error=problem, started_at=started_at, finished_at=utc_now(), seconds=time.perf_counter() - t0,
                               journal_dropped=dropped[0], journal_problem=dropped[1])
        return CellOutcome(cell, records=records, started_at=started_at, finished_at=utc_now(), seconds=time.perf_counter() - t0,
                           resumed_shapes=len(done), journal_dropped=dropped[0], journal_problem=dropped[1])
    except Exception as exc:  # a failing method must never stop the other cells
        message = f"{type(exc).__name__}: {exc}".strip()
        if not isinstance(exc, (InputError,)) and os.environ.get("SBDBENCH_TRACEBACKS"):
            message += "\n" + traceback.format_exc()
        return CellOutcome(cell, error=message, started_at=started_at, finished_at=utc_now(), seconds=time.perf_counter() - t0)


def _on_shape(journal, progress, resumed: int, total: int) -> Callable[[ShapeRecord], None]:
    """run_cell's per-shape callback: journal the record, then report (done, total)."""
    count = [resumed]
    if progress is not None:
        progress(resumed, total)

    def on_shape(record: ShapeRecord) -> None:
        if journal is not None:
            journal.append(record)
        count[0] += 1
        if progress is not None:
            progress(count[0], total)

    return on_shape


# --- executors ----------------------------------------------------------------------------------
class SequentialExecutor:
    """Runs each cell in this process, at submit time (the default; simplest to debug)."""

    capacity = 1
    description = "sequential (this process)"
    in_process = True  # callbacks (progress) can be passed to the cell

    def submit(self, fn: Callable, *args) -> cf.Future:
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args))
        except Exception as exc:
            fut.set_exception(exc)
        return fut

    def wait_any(self, futures: Sequence, timeout: Optional[float] = None) -> List:
        return [f for f in futures if f.done()]

    def close(self) -> None:
        pass


def _exit_with_parent(parent_pid: int, interval_s: float = 1.0) -> None:
    """End this worker when the bench that started it is gone (killed, even with SIGKILL): a pool worker
    otherwise runs its current cell to the end as an orphan, holding the cores of the next bench."""
    import threading

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval_s)
        os._exit(1)  # finished shapes are in the cell's journal

    threading.Thread(target=watch, name="sbdbench-parent-watch", daemon=True).start()


def _init_worker(threads: int, parent_pid: Optional[int] = None) -> None:
    """Pool worker start-up: share the cores between workers instead of oversubscribing them, and
    (local pool) end with the parent."""
    if parent_pid is not None:
        _exit_with_parent(parent_pid)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(threads)


class ProcessPoolExecutor:
    """Runs cells in ``workers`` local processes (spawned, so torch state is never forked)."""

    def __init__(self, workers: int):
        if workers < 1:
            raise InputError(f"--workers must be ≥ 1, got {workers}")
        self.capacity = workers
        self._threads = max(1, (os.cpu_count() or 1) // workers)
        self.description = f"process pool ({workers} workers × {self._threads} threads)"
        self._pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        import multiprocessing

        return cf.ProcessPoolExecutor(self.capacity, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_init_worker, initargs=(self._threads, os.getpid()))

    def submit(self, fn: Callable, *args) -> cf.Future:
        try:
            return self._pool.submit(fn, *args)
        except cf.process.BrokenProcessPool:
            # a worker died (killed, out of memory): its cell is reported as failed by its future;
            # start a fresh pool for the cells still to run.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._pool.submit(fn, *args)

    def wait_any(self, futures: Sequence, timeout: Optional[float] = None) -> List:
        done, _ = cf.wait(futures, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return list(done)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Submits cells to Dask distributed: a new LocalCluster, or an existing scheduler.

    Args:
        scheduler: address of a running scheduler (``tcp://host:8786``), e.g. one started by
            dask-jobqueue on a SLURM cluster; ``None`` starts a LocalCluster.
        workers: LocalCluster size (ignored with ``scheduler``).
        processes: LocalCluster workers as processes (``True``) or threads of this process.
    """

    def __init__(self, scheduler: Optional[str] = None, workers: int = 1, *, processes: bool = True):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise InputError("--executor dask needs dask[distributed]: pip install 'sbdbench[dask]'") from None
        self._cluster = None
        if scheduler:
            try:
                self._client = Client(scheduler, timeout="30s")
            except (OSError, TimeoutError) as exc:
                raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
            self.description = f"dask ({scheduler})"
        else:
            threads = max(1, (os.cpu_count() or 1) // max(1, workers))
            self._cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=processes,
                                         dashboard_address=None, silence_logs=40)
            self._client = Client(self._cluster)
            if processes:
                self._client.run(_init_worker, threads)
            self.description = f"dask LocalCluster ({max(1, workers)} workers)"

    @property
    def capacity(self) -> int:
        n = sum(self._client.nthreads().values())
        return max(2, 2 * n)  # keep every worker busy while the driver stores results

    def submit(self, fn: Callable, *args) -> object:
        return self._client.submit(fn, *args, pure=False)

    def wait_any(self, futures: Sequence, timeout: Optional[float] = None) -> List:
        import asyncio

        from distributed import wait

        try:
            done, _ = wait(list(futures), timeout=timeout, return_when="FIRST_COMPLETED")
        except (TimeoutError, asyncio.TimeoutError):  # the latter is another class before Python 3.11
            return []
        return list(done)

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def check_executor_args(executor: str = "local", workers: int = 1, scheduler: Optional[str] = None) -> None:
    """One-line :class:`InputError` for an unknown executor, fewer than one worker, or a stray --scheduler."""
    if executor not in EXECUTORS:
        raise InputError(f"unknown executor {executor!r} (choose from {', '.join(EXECUTORS)})")
    if workers < 1:
        raise InputError(f"--workers must be ≥ 1, got {workers}")
    if scheduler and executor != "dask":
        raise InputError("--scheduler needs --executor dask")


def make_executor(executor: str = "local", workers: int = 1, scheduler: Optional[str] = None):
    """``local`` with 1 worker → sequential; ``local`` with N → process pool; ``dask`` → Dask."""
    check_executor_args(executor, workers, scheduler)
    if executor == "dask":
        return DaskExecutor(scheduler, workers)
    return SequentialExecutor() if workers == 1 else ProcessPoolExecutor(workers)
