"""How far one denoise has come, reported from inside the methods' own loops.

:func:`~sbdbench.methods.blocks.denoise_in_blocks` opens a meter around its work (:func:`metered`), so that a
whole-cloud run of a learned method (one call that may take most of an hour at 1M points) still moves its
progress bar. Inside, a method's pass loop steps through :func:`metered_steps`, and its patch-batch loop calls
:func:`batch_done`. Each step takes an equal share of the span it runs in, so nested loops (blocks → passes →
subsets → batches) report one fraction that only grows; the meter shows it as points out of the cloud's N,
through the same ``progress(done_points, total_points)`` callback the blocks use.

Without an open meter (tests, the bench's per-shape progress, the Python API without a callback) every call
is a no-op. The meter lives in a :class:`contextvars.ContextVar`, so concurrent denoises (threads, Dask
workers) never see each other's.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, TypeVar

__all__ = ["batch_done", "metered", "metered_span", "metered_steps"]

Progress = Callable[[int, int], None]
T = TypeVar("T")


@dataclass
class _Meter:
    report: Progress
    total: int
    lo: float = 0.0  # the span [lo, hi) of the whole work that the loop running now covers
    hi: float = 1.0
    shown: int = 0

    def show(self, fraction: float) -> None:
        done = int(self.total * min(1.0, max(0.0, fraction)))
        if done > self.shown:
            self.shown = done
            self.report(done, self.total)


_METER: ContextVar[Optional[_Meter]] = ContextVar("sbdbench_denoise_meter", default=None)


@contextmanager
def metered(progress: Optional[Progress], total_points: int) -> Iterator[None]:
    """Report the work done inside the block as ``progress(done, total_points)``, ending with ``(total_points,
    total_points)`` once when it succeeds (nothing at all when ``progress`` is None)."""
    if progress is None:
        yield
        return
    meter = _Meter(progress, int(total_points))
    token = _METER.set(meter)
    try:
        yield
        meter.show(1.0)
    finally:
        _METER.reset(token)


@contextmanager
def metered_span(start: float, stop: float) -> Iterator[None]:
    """The work inside covers the fractions [start, stop) of the span around it; shown done when it ends."""
    meter = _METER.get()
    if meter is None:
        yield
        return
    lo, hi = meter.lo, meter.hi
    meter.lo, meter.hi = lo + (hi - lo) * start, lo + (hi - lo) * stop
    try:
        yield
        meter.show(meter.hi)
    finally:
        meter.lo, meter.hi = lo, hi


def metered_steps(items: Iterable[T]) -> Iterator[T]:
    """``items`` one by one, each taking an equal share of the span around the loop (a pass loop, a subset loop)."""
    items = list(items)
    for i, item in enumerate(items):
        with metered_span(i / len(items), (i + 1) / len(items)):
            yield item


def batch_done(done: int, total: int) -> None:
    """``done`` of ``total`` batches (or patches) of the loop running now are finished."""
    meter = _METER.get()
    if meter is not None and total > 0:
        meter.show(meter.lo + (meter.hi - meter.lo) * done / total)
