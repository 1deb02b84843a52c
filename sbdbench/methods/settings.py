"""Frozen method settings: ``baselines/<method>.toml``, chosen by ``sbdbench tune`` on training shapes.

A TOML holds one ``[[cell]]`` per tuned (resolution, noise level) with the chosen ``params``;
:func:`frozen_params` returns the params of the nearest cell (resolution first, on a log scale, then
σ), so a 30K cloud at 1.5 % gets sensible settings too. A method without a TOML runs with its
constructor defaults, and :func:`missing_settings_note` says so in one line. The folder is
``$SBDBENCH_BASELINES``, else the source checkout's ``baselines/`` (where ``tune`` writes), else the
copy shipped inside the installed package (:mod:`sbdbench.resources`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Optional

from sbdbench import resources
from sbdbench.errors import DataError
from sbdbench.protocol import TunedCell

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

BASELINES_ENV = resources.ENV_VARS["baselines"]


def baselines_dir() -> Path:
    """Where the frozen settings are read from (see the module docstring)."""
    return resources.protocol_dir("baselines")


def settings_path(method_name: str, folder: Optional[Path] = None) -> Path:
    """The TOML read for ``method_name``."""
    return Path(folder or baselines_dir()) / f"{method_name}.toml"


def settings_out_path(method_name: str) -> Path:
    """Where ``sbdbench tune`` writes by default: ``$SBDBENCH_BASELINES`` or the checkout's ``baselines/``."""
    return resources.writable_dir("baselines") / f"{method_name}.toml"


def load_settings(method_name: str, folder: Optional[Path] = None) -> Optional[Dict[str, Any]]:
    """The parsed TOML of a method, or None when it has none."""
    path = settings_path(method_name, folder)
    if not path.is_file():
        return None
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DataError(f"{path}: unreadable frozen settings ({exc}); re-run `sbdbench tune --method {method_name}`") from None


def nearest_cell(cells: List[TunedCell], n_points: int, sigma: Optional[float]) -> Optional[TunedCell]:
    """The cell nearest to (n_points, σ): nearest resolution on a log scale, then nearest σ
    (σ None → the median tuned σ at that resolution)."""
    if not cells:
        return None
    dist_n = [abs(math.log(max(int(c.n_points), 1) / max(int(n_points), 1))) for c in cells]
    best = min(dist_n)
    same_n = [c for c, d in zip(cells, dist_n) if d <= best + 1e-12]
    if sigma is None:
        sigmas = sorted(float(c.sigma) for c in same_n)
        sigma = sigmas[len(sigmas) // 2]
    return min(same_n, key=lambda c: (abs(float(c.sigma) - float(sigma)), float(c.sigma)))


def frozen_params(method_name: str, n_points: int, sigma: Optional[float], folder: Optional[Path] = None) -> Dict[str, Any]:
    """The frozen parameters of ``method_name`` for a cloud of ``n_points`` at noise ``sigma``.

    Returns ``{}`` (the constructor defaults) when the method has no TOML or the TOML no cells.
    """
    cell = frozen_cell(method_name, n_points, sigma, folder)
    return dict(cell.params or {}) if cell else {}


def frozen_cell(method_name: str, n_points: int, sigma: Optional[float], folder: Optional[Path] = None) -> Optional[TunedCell]:
    """The tuned cell (``n_points``, ``sigma``, ``params``...) whose settings :func:`frozen_params` returns, or None."""
    data = load_settings(method_name, folder)
    if not data:
        return None
    try:
        cells = [TunedCell.from_dict(c) for c in data.get("cell", [])]
    except DataError as exc:
        raise DataError(f"{settings_path(method_name, folder)}: {exc}; re-run `sbdbench tune --method {method_name}`") from None
    return nearest_cell(cells, n_points, sigma)


def missing_settings_note(method_name: str, folder: Optional[Path] = None) -> Optional[str]:
    """One warning line when ``method_name`` has parameters but no frozen cell (it then runs with its
    constructor defaults); None when it has frozen settings or nothing to set."""
    from sbdbench.methods.base import get_method_class

    if not [p for p in get_method_class(method_name)._param_names() if p != "device"]:
        return None
    data = load_settings(method_name, folder)
    if data and data.get("cell"):
        return None
    path = settings_path(method_name, folder)
    why = "has no cells" if data else "not found"
    return (f"warning: {method_name} has no frozen settings ({path} {why}); "
            f"running with its constructor defaults (freeze them with `sbdbench tune --method {method_name}`)")
