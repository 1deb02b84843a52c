"""Which backend computes a metric: the exact float64 CPU code, or the torch brute force.

``device="cpu"`` (the default) → the CPU backend (scipy cKDTree, libigl, KD pruning; exact in fp64).
A CUDA device → the torch backend on that device. ``backend="torch"`` forces the torch backend on
any device (tests and benchmarks use it on the CPU as an independent oracle).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Tuple

import numpy as np

from sbdbench.errors import InputError

if TYPE_CHECKING:  # torch is imported only by the torch backend (CPU metrics never load it)
    import torch

BACKENDS = ("cpu", "torch")
MODES = ("exact", "pytorch3d")


def resolve_backend(device="cpu", backend: Optional[str] = None) -> Tuple[str, Any]:
    """``(backend name, torch.device)`` for a device string/object and an optional explicit backend
    (``("cpu", None)`` for the default CPU backend, which needs no torch)."""
    if backend in (None, "cpu") and isinstance(device, str) and device == "cpu":
        return "cpu", None
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"invalid device {device!r} ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available")
    if backend is None:
        backend = "cpu" if dev.type == "cpu" else "torch"
    if backend not in BACKENDS:
        raise InputError(f"unknown metric backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if backend == "cpu" and dev.type != "cpu":
        raise InputError(f"backend 'cpu' cannot run on device {device!r}; use backend='torch'")
    return backend, dev


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise InputError(f"unknown P2M mode {mode!r} (choose from {', '.join(MODES)})")


#: how far (in radii of the reference frame) a point may lie from it: squares and products of such
#: distances stay far from overflow, in float32 too (the torch backend's default dtype)
MAX_FRAME_RADIUS = 1e12


def check_in_frame(points: np.ndarray, name: str, frame: str) -> np.ndarray:
    """Refuse normalised points further than ``MAX_FRAME_RADIUS`` from the frame's centre (a metric of
    them would lose all precision or overflow); returns ``points``."""
    far = np.abs(points).max(axis=1) > MAX_FRAME_RADIUS
    if far.any():
        raise InputError(f"{name}: {int(far.sum())} point(s) lie more than {MAX_FRAME_RADIUS:.0e} radii of the {frame} "
                         f"from its centre (first at row {int(np.argmax(far))}); refusing to score them")
    return points


def check_min_area(min_triangle_area: float) -> float:
    try:
        value = float(min_triangle_area)
    except (TypeError, ValueError):
        raise InputError(f"min_triangle_area must be a number, got {min_triangle_area!r}") from None
    if not np.isfinite(value) or value < 0:
        raise InputError(f"min_triangle_area must be finite and ≥ 0, got {min_triangle_area!r}")
    return value


def to_torch(array: np.ndarray, device: "torch.device", dtype: "torch.dtype") -> "torch.Tensor":
    import torch

    return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype, device=device)


def finite_or_raise(value: float, what: str) -> float:
    """Never hand a NaN/Inf metric to a results table (it would mean a bug, not a bad input)."""
    value = float(value)
    if not np.isfinite(value):
        from sbdbench.errors import SbdbenchError

        raise SbdbenchError(f"{what} came out non-finite ({value}); please report this input")
    return value
