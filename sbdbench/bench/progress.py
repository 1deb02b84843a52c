"""Per-shape progress of the bench's cells in flight, each with an ETA.

The driver (:func:`sbdbench.bench.runner.run_cells`) reports how many shapes of a cell are done: in this
process straight from :func:`~sbdbench.bench.executors.execute_cell` (sequential executor), or by counting
the lines of the cell's journal while pool or Dask workers run it. :class:`ShapeProgress` shows that as one
tqdm bar per cell on a terminal, and as plain lines (at most one per ``min_interval_s`` per cell, plus the
first shape) otherwise, so a log of a 30-minute learned cell still says how far it is. The generic parts (the
bar, the ETA, :func:`format_seconds`) live in :mod:`sbdbench.progress`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

from sbdbench.progress import Progress, eta_seconds, format_seconds, tqdm_bar

__all__ = ["CellWatch", "PointProgress", "ShapeProgress", "format_seconds"]


@dataclass
class _Cell:
    label: str
    total: int
    resumed: int
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    last_line: float = 0.0
    bar: object = None

    def eta(self) -> Optional[float]:
        """Seconds left, from the mean time of the shapes run so far in this attempt (None before the first)."""
        return eta_seconds(time.monotonic() - self.started, self.done - self.resumed, self.total - self.resumed)


class ShapeProgress:
    """Shows ``done / total`` shapes and an ETA per cell; ``tty=None`` → bars when stderr is a terminal."""

    def __init__(self, log: Callable[[str], None], *, tty: Optional[bool] = None, min_interval_s: float = 30.0):
        self.log = log
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.min_interval_s = min_interval_s
        self.cells: Dict[str, _Cell] = {}

    def start(self, key: str, label: str, total: int, done: int = 0) -> None:
        """A cell begins (``done`` shapes come from the journal of an interrupted run)."""
        cell = self.cells[key] = _Cell(label, int(total), int(done), done=int(done))
        if self.tty:
            cell.bar = tqdm_bar(cell.total, label, "shape", initial=cell.done, leave=False)

    def update(self, key: str, done: int) -> None:
        """``done`` shapes of cell ``key`` are finished (a count, so repeated polls are harmless)."""
        cell = self.cells.get(key)
        if cell is None or done <= cell.done:
            return
        step, cell.done = done - cell.done, min(int(done), cell.total)
        if cell.bar is not None:
            cell.bar.update(step)
            return
        now = time.monotonic()
        if cell.done == cell.total or (cell.last_line and now - cell.last_line < self.min_interval_s):
            return  # the finished cell gets its own line from the runner
        cell.last_line = now
        eta = cell.eta()
        self.log(f"  {cell.label}: {cell.done}/{cell.total} shapes"
                 + ("" if eta is None else f", ETA {format_seconds(eta)}"))

    def finish(self, key: str) -> None:
        cell = self.cells.pop(key, None)
        if cell is not None and cell.bar is not None:
            cell.bar.close()

    def close(self) -> None:
        for key in list(self.cells):
            self.finish(key)


class CellWatch:
    """Feeds a :class:`ShapeProgress` from the cells in flight: through a callback when a cell runs in this
    process, by counting its journal's lines when a worker runs it (``poll`` every few seconds)."""

    def __init__(self, progress: Optional[ShapeProgress], journals: str):
        self.progress = progress
        self.journals = journals

    def callback(self, cell) -> Optional[Callable[[int, int], None]]:
        """For :func:`~sbdbench.bench.executors.execute_cell` in this process: called with (done, total)."""
        if self.progress is None:
            return None
        progress = self.progress

        def report(done: int, total: int) -> None:
            if cell.key in progress.cells:
                progress.update(cell.key, done)
            else:
                progress.start(cell.key, cell.label, total, done)

        return report

    def submitted(self, cell) -> None:
        """A cell went to a worker: its bar starts at the shapes its journal already holds."""
        if self.progress is None or cell.key in self.progress.cells:
            return
        from pathlib import Path

        from sbdbench.data.dataset import Dataset

        try:
            total = len(Dataset(cell.dataset, Path(cell.dataset_root)).shapes("test"))
        except Exception:  # progress is cosmetic: a dataset the driver cannot read is the worker's error
            return
        self.progress.start(cell.key, cell.label, total, self._journaled(cell))

    def poll(self, cells) -> None:
        if self.progress is not None:
            for cell in cells:
                self.progress.update(cell.key, self._journaled(cell))

    def finished(self, cell) -> None:
        if self.progress is not None:
            self.progress.finish(cell.key)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()

    def _journaled(self, cell) -> int:
        from sbdbench.bench.journal import CellJournal

        return CellJournal(self.journals, cell.key).count()


class PointProgress:
    """``progress(done, total)`` of one denoise, in points: a tqdm bar with an ETA on a terminal, else a plain line
    at most every ``min_interval_s`` (and none for work that ends sooner): a :class:`sbdbench.progress.Progress`
    whose total is the first call's."""

    def __init__(self, log: Callable[[str], None], label: str, *, tty: Optional[bool] = None, min_interval_s: float = 30.0):
        self.log, self.label = log, label
        self.progress = Progress(None, label, "pt", noun="points", log=lambda msg: log(f"  {msg}"), tty=tty,
                                 min_interval_s=min_interval_s, unit_scale=True, summary=False, leave=False)

    def __call__(self, done: int, total: int) -> None:
        if self.progress.total != int(total):
            self.progress.total = int(total)
        self.progress.update_to(int(done))

    def close(self) -> None:
        self.progress.close()
