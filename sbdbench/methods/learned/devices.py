"""The torch device a learned method runs on, checked once with a one-line error (never a torch traceback)."""

from __future__ import annotations

import torch

from sbdbench.errors import InputError


def torch_device(spec, method: str) -> torch.device:
    """``torch.device(spec)``, refusing an unknown device, a CUDA device without CUDA, or an index past the last GPU.

    Args:
        spec: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, a ``torch.device``...
        method: the method's name, for the message.
    """
    try:
        dev = torch.device(spec)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"{method}: cannot use device {spec!r} (not a torch device: use cpu, cuda, cuda:N...)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"{method}: cannot use device {spec!r} (CUDA is not available on this machine)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"{method}: cannot use device {spec!r} (this machine has {torch.cuda.device_count()} CUDA device(s))")
    elif dev.type == "meta":
        raise InputError(f"{method}: cannot use device {spec!r} (meta tensors hold no data: use cpu, cuda, cuda:N...)")
    return dev
