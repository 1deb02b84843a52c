"""Check the devices of a bench run before any cell starts (a bad device would fail every cell)."""

from __future__ import annotations

from typing import Optional

from sbdbench.errors import InputError


def check_device(device: str, option: str = "--device", *, local: bool = True) -> None:
    """Raise a one-line :class:`InputError` unless ``device`` names a torch device usable here.

    ``local=False`` (cells run on a remote Dask cluster, whose workers may have GPUs this machine
    lacks) checks the spelling only. ``cpu`` needs no check, and no torch: a classical bench never imports it.
    """
    if str(device) == "cpu":
        return
    import torch

    try:
        dev = torch.device(str(device))
    except (RuntimeError, TypeError, ValueError) as exc:
        raise InputError(f"{option} {device!r} is not a torch device (use cpu, cuda, cuda:N...)") from None
    if dev.type == "meta":
        raise InputError(f"{option} {device!r}: meta tensors hold no data (use cpu, cuda, cuda:N...)")
    if not local or dev.type == "cpu":
        return
    if dev.type == "cuda":
        _check_cuda(dev, device, option)
        return
    try:
        torch.empty(1, device=dev)
    except Exception as exc:  # any backend: the device cannot hold a tensor here
        raise InputError(f"{option} {device!r} is not usable on this machine ({_first_line(exc)})") from None


def check_devices(device: str, metrics_device: Optional[str], *, local: bool = True) -> None:
    check_device(device, "--device", local=local)
    if metrics_device:
        check_device(metrics_device, "--metrics-device", local=local)


def _check_cuda(dev, device: str, option: str) -> None:
    import torch

    if not torch.cuda.is_available():
        raise InputError(f"{option} {device!r}: CUDA is not available on this machine (use --device cpu)")
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise InputError(f"{option} {device!r}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
