"""Helpers of the StraightPCF tests: a fixed random state_dict (a function of each key and shape only), the
architecture shapes of the released files, and the golden input.

The same functions made the golden arrays in ``tests/golden/straightpcf/`` with the original code (see the
README there), so the weights here are exactly the weights the original ran with.
"""

from __future__ import annotations

import zlib
from typing import Dict, Tuple

import numpy as np
import torch


def fixed_random_state(shapes: Dict[str, Tuple[int, ...]]) -> Dict[str, torch.Tensor]:
    """{key: tensor} drawn from a torch.Generator seeded with crc32(key): weights N(0, 1/fan_in), biases and
    BatchNorm shifts N(0, 0.1²), BatchNorm scales 1 + N(0, 0.1²), running_var in [0.5, 1.5), the last linear
    layer of every decoder (``lin_3``) scaled by 0.05 so that the random displacements stay small."""
    state = {}
    for key, shape in shapes.items():
        gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0, dtype=torch.long)
            continue
        draw = torch.randn(shape, generator=gen, dtype=torch.float32)
        if key.endswith("running_var"):
            value = 0.5 + torch.rand(shape, generator=gen, dtype=torch.float32)
        elif key.endswith("running_mean") or key.endswith("bias"):
            value = 0.1 * draw
        elif len(shape) == 1:  # BatchNorm weight
            value = 1.0 + 0.1 * draw
        else:
            value = draw / float(np.sqrt(shape[-1]))
        if "lin_3" in key:
            value = 0.05 * value
        state[key] = value
    return state


def golden_input(n: int = 2000, sigma: float = 0.02, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """(noisy, clean) float32 (n, 3): a torus with Gaussian σ noise, both in the noisy cloud's unit-sphere frame
    (bounding-box centre, largest norm 1: the frame the original's ``NormalizeUnitSphere`` and ours use)."""
    rng = np.random.default_rng(seed)
    u, v = rng.uniform(0, 2 * np.pi, (2, n))
    clean = np.stack([(1 + 0.4 * np.cos(v)) * np.cos(u), (1 + 0.4 * np.cos(v)) * np.sin(u), 0.4 * np.sin(v)], 1)
    clean = clean / np.linalg.norm(clean, axis=1).max()
    noisy = clean + rng.normal(0, sigma, clean.shape)
    center = (noisy.max(0) + noisy.min(0)) / 2
    scale = np.linalg.norm(noisy - center, axis=1).max()
    noisy, clean = (noisy - center) / scale, (clean - center) / scale
    return noisy.astype(np.float32), clean.astype(np.float32)
