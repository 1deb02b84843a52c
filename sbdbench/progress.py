"""Progress of long work: a tqdm bar with an ETA on a terminal, plain loggable lines otherwise.

:class:`Progress` counts units of work (shapes, sets, points, bytes). When stderr is a terminal it drives a
tqdm bar; otherwise (a log file, a pipe, CI, click's test runner) it writes a plain line at most every
``min_interval_s`` seconds, each with the count and an ETA (the mean time per unit so far × the units left),
and, for work that took longer than that, one summary line at the end (``building synth: 64/64 shapes in
1 min 30 s``), so a log never fills with carriage-return redraws. Work that ends sooner prints nothing.

This module imports nothing of sbdbench: the data layer, the bench and the CLI all use it.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")


def format_seconds(seconds: float) -> str:
    """72 → '1 min 12 s', 4000 → '1 h 06 min'."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def format_bytes(n: float) -> str:
    """512 → '512 B', 126143897 → '120.3 MiB' (binary units, as tqdm's byte bars show them)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def eta_seconds(elapsed: float, done: int, total: Optional[int]) -> Optional[float]:
    """Seconds left at the mean rate of the ``done`` units so far (None before the first, or with no total)."""
    if total is None or done <= 0:
        return None
    return elapsed / done * max(total - done, 0)


def stderr_line(message: str) -> None:
    """The default ``log``: one line to the current ``sys.stderr`` (looked up at each call)."""
    print(message, file=sys.stderr, flush=True)


def tqdm_bar(total: Optional[int], desc: str, unit: str, *, initial: int = 0, unit_scale: bool = False,
             leave: bool = True, file=None):
    """A tqdm bar on ``file`` (default stderr); bytes (``unit="B"``) count in KiB, MiB, GiB."""
    from tqdm import tqdm

    extra = {"unit_divisor": 1024} if unit == "B" else {}
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, unit_scale=unit_scale or unit == "B",
                leave=leave, file=file if file is not None else sys.stderr, **extra)


class Progress:
    """``done / total`` units of one piece of work, as a bar on a terminal or as plain lines (see the module doc).

    Args:
        total: the units to do (None when unknown; it may be set later through :attr:`total`).
        desc: what the work is ("building synth", "downloading PUNet.zip").
        unit: tqdm's unit ("shape", "set", "pt", "B"); lines say ``noun`` (default ``unit + "s"``), and count
            bytes in KiB/MiB/GiB when ``unit`` is "B".
        log: where the plain lines go (default :func:`stderr_line`).
        tty: bar (True) or lines (False); None → a bar when stderr is a terminal.
        enabled: False → silent (no bar, no lines).
        initial: units already done before this run (a resumed download); the ETA counts only the new ones.
        min_interval_s: the least time between two plain lines, and the least duration of work that gets a
            summary line.
        summary: False → no summary line at :meth:`close` (when the caller prints its own).
        file: the bar's stream (default stderr).
        clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(self, total: Optional[int], desc: str, unit: str = "it", *, noun: Optional[str] = None,
                 log: Optional[Callable[[str], None]] = None, tty: Optional[bool] = None, enabled: bool = True,
                 initial: int = 0, min_interval_s: float = 30.0, unit_scale: bool = False, summary: bool = True,
                 leave: bool = True, file=None, clock: Callable[[], float] = time.monotonic):
        self._total = None if total is None else int(total)
        self.desc, self.unit, self.noun = desc, unit, noun or f"{unit}s"
        self.log = log or stderr_line
        self.enabled, self.summary, self.min_interval_s, self.clock = enabled, summary, min_interval_s, clock
        self.n = self.initial = int(initial)
        self.started = self.last_line = clock()
        self.closed = False
        self.bar = None
        if enabled and (sys.stderr.isatty() if tty is None else tty):
            self.bar = tqdm_bar(self._total, desc, unit, initial=self.n, unit_scale=unit_scale, leave=leave, file=file)

    @property
    def total(self) -> Optional[int]:
        return self._total

    @total.setter
    def total(self, value: Optional[int]) -> None:
        self._total = None if value is None else int(value)
        if self.bar is not None:
            self.bar.total = self._total
            self.bar.refresh()

    def update(self, n: int = 1) -> None:
        """``n`` more units are done; a plain line when ``min_interval_s`` passed since the last (or the start)."""
        self.n += int(n)
        if self.bar is not None:
            self.bar.update(int(n))
            return
        if not self.enabled or self.closed or (self._total is not None and self.n >= self._total):
            return  # the finished work gets the summary line instead
        now = self.clock()
        if now - self.last_line < self.min_interval_s:
            return
        self.last_line = now
        eta = eta_seconds(now - self.started, self.n - self.initial, self._total)
        self.log(f"{self.desc}: {self._count()}" + ("" if eta is None else f", ETA {format_seconds(eta)}"))

    def update_to(self, done: int) -> None:
        """``done`` units in all are done (for callbacks that report a running count)."""
        if done > self.n:
            self.update(done - self.n)

    def close(self) -> None:
        """End the bar, or write the summary line for work that lasted ``min_interval_s`` or more (once)."""
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.close()
            return
        took = self.clock() - self.started
        if not (self.enabled and self.summary) or took < self.min_interval_s:
            return
        if self._total is None or self.n >= self._total:
            self.log(f"{self.desc}: {self._count(percent=False)} in {format_seconds(took)}")
        else:
            self.log(f"{self.desc}: stopped at {self._count(percent=False)} after {format_seconds(took)}")

    def _count(self, percent: bool = True) -> str:
        """'12/64 shapes (19 %)', '120.3 MiB / 1.2 GiB (10 %)', or '12 shapes' with no total."""
        total = self._total
        if self.unit == "B":
            text = format_bytes(self.n) if total is None else f"{format_bytes(self.n)} / {format_bytes(total)}"
        else:
            text = f"{self.n} {self.noun}" if total is None else f"{self.n}/{total} {self.noun}"
        if percent and total:
            text += f" ({100 * self.n / total:.0f} %)"
        return text

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_iter(iterable: Iterable[T], total: Optional[int], desc: str, unit: str = "it", *, enabled: bool = True,
                  **options) -> Iterator[T]:
    """Yield the items of ``iterable``, counting each in a :class:`Progress` (``options`` go to it); the
    progress ends when the iteration does, or when the loop leaves early."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with Progress(total, desc, unit, enabled=enabled, **options) as progress:
        for item in iterable:
            yield item
            progress.update(1)
