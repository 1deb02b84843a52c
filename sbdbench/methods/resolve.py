"""One method resolver: what ``run``, ``denoise``, ``bench`` and ``tune`` run for a cloud of N points at noise σ.

:func:`resolve_method` merges, in this order (later wins):

1. the frozen settings of the nearest tuned cell (``baselines/<method>.toml``, :mod:`sbdbench.methods.settings`),
   unless ``frozen=False``;
2. the parameters a variant spec fixes (``"score:weights=official"``);
3. ``device``, for a method that takes one;
4. ``overrides`` (``--param k=v`` on the command line, keyword arguments in Python).

Text values are parsed with the types of the method's constructor (:mod:`sbdbench.methods.params`), so the
command line and Python build the same method. ``make_method("sbd", tuned_for=(10000, 0.02))`` is the same
resolver seen from the Python API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

from sbdbench.methods.base import Denoiser, get_method_class
from sbdbench.methods.params import split_spec, typed_params
from sbdbench.methods.settings import frozen_cell, missing_settings_note


@dataclass(frozen=True)
class ResolvedMethod:
    """A method ready to run, and where its parameters came from."""

    method: Denoiser
    #: the parameters that were set (frozen, variant, overrides, device), typed; the rest are constructor defaults
    settings: Dict[str, Any]
    #: the frozen cell (N, σ) whose settings were used, or None (no frozen settings, or ``frozen=False``)
    cell: Optional[Tuple[int, float]]
    #: one warning line when the method has parameters but no frozen settings, else None
    note: Optional[str]


def resolve_method(spec: str, n_points: int, sigma: Optional[float], *, device: Optional[str] = None,
                   overrides: Optional[Mapping[str, Any]] = None, frozen: bool = True) -> ResolvedMethod:
    """The method ``spec`` (a name or a variant ``name:key=value...``) as the CLI runs it on an N-point cloud at σ.

    Args:
        spec: ``"jet"``, ``"score:weights=official"``...
        n_points, sigma: the cloud the settings are chosen for (σ None: the median tuned σ at that N).
        device: set on a method that has a ``device`` parameter (ignored by the others); None keeps its own.
        overrides: parameters set last (a ``device`` here wins); text values are parsed with the constructor's types.
        frozen: use the frozen settings (False: the constructor defaults, as ``--defaults``).

    Raises:
        InputError: an unknown method or parameter, or a value of the wrong type (one line).
    """
    name, raw_variant = split_spec(spec)
    cls = get_method_class(name)
    variant = typed_params(cls, raw_variant, f"method variant {spec!r}")
    extra = typed_params(cls, dict(overrides or {}), "parameters" if not raw_variant else f"parameters of {spec!r}")
    cell = frozen_cell(name, n_points, sigma) if frozen else None
    params = {**(dict(cell.params or {}) if cell else {}), **variant}
    if device is not None and "device" in cls._param_names():
        params["device"] = device
    params.update(extra)
    settings = typed_params(cls, params, f"frozen settings of {name!r}")
    where = (int(cell.n_points), float(cell.sigma)) if cell else None
    return ResolvedMethod(cls(**settings), settings, where, missing_settings_note(name) if frozen else None)
