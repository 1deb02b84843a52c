"""A fixed random state_dict for IterativePFN's golden tests (the released weights are not in ../shared).

Every tensor is a deterministic function of its key and shape only (a generator seeded with crc32(key)),
so the original code (run outside the repository to make the goldens) and sbdbench load the same values.
"""

from __future__ import annotations

import zlib
from typing import Dict, Iterable, Tuple

import torch


def fixed_tensor(key: str, shape: Tuple[int, ...]) -> torch.Tensor:
    """The value of ``key``: Linear weights N(0, 1/fan_in) (``linear3``: × 0.05, small displacements),
    BatchNorm weights 1 + N(0, 0.1²), biases and running means N(0, 0.1²), running variances in [0.5, 1.5),
    ``num_batches_tracked`` 0."""
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.long)
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    if key.endswith("running_var"):
        return 0.5 + torch.rand(shape, generator=g)
    noise = torch.randn(shape, generator=g)
    if len(shape) == 2:
        return noise / shape[1] ** 0.5 * (0.05 if ".linear3." in key else 1.0)
    if key.endswith(".weight"):  # 1-d weight: a BatchNorm scale
        return 1.0 + 0.1 * noise
    return 0.1 * noise


def fixed_state_dict(keys_shapes: Iterable[Tuple[str, Tuple[int, ...]]]) -> Dict[str, torch.Tensor]:
    """{key: fixed_tensor(key, shape)} for the (key, shape) pairs of a model's state_dict."""
    return {k: fixed_tensor(k, tuple(s)) for k, s in keys_shapes}
