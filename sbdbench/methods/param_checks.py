"""Checks of a method's parameters, run at denoise time (constructors store values as given, as scikit-learn's do).

Every failure is one :class:`~sbdbench.errors.InputError` line naming the parameter, the allowed range and the value,
prefixed with the method's name when one is given (``pdflow: niters must be an integer ≥ 1, got 0``) and with
``parameter`` otherwise.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from sbdbench.errors import InputError


def _subject(name: str, method: Optional[str]) -> str:
    return f"{method}: {name}" if method else f"parameter {name}"


def check_int(name: str, value, minimum: int = 0, allow_none: bool = False, *, maximum: Optional[int] = None,
              method: Optional[str] = None) -> None:
    """An integer (not a bool) in [minimum, maximum]; None passes when ``allow_none``."""
    if value is None and allow_none:
        return
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        bound = f"an integer in [{minimum}, {maximum}]" if maximum is not None else f"an integer ≥ {minimum}"
        raise InputError(f"{_subject(name, method)} must be {bound}, got {value!r}")


def check_float(name: str, value, minimum: float = 0.0, strict: bool = True, allow_none: bool = False,
                maximum: Optional[float] = None, *, method: Optional[str] = None) -> None:
    """A finite number (not a bool) > ``minimum`` (≥ when not ``strict``) and ≤ ``maximum``; None passes when
    ``allow_none``."""
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = value > minimum if strict else value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        bound = f"{'>' if strict else '≥'} {minimum}" + (f" and ≤ {maximum}" if maximum is not None else "")
        raise InputError(f"{_subject(name, method)} must be a finite number {bound}, got {value!r}")
