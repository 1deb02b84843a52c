"""``noisy``: the identity, the reference row of every table (what the input scores before denoising)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from sbdbench.methods.base import Denoiser, register


@register
class Noisy(Denoiser):
    """Returns the input unchanged. Every method must beat this row."""

    name = "noisy"
    paper = "identity (reference row: the noisy input itself)"
    summary = "no denoising; the score of the input"
    tuning_grid: dict = {}
    block_merge = "own"

    def block_settings(self, unit_points: np.ndarray, noise_level: Optional[float]):
        from sbdbench.methods.base import BlockSettings

        return BlockSettings(self, 0.0, 24.0, noise_level)

    def __init__(self) -> None:
        pass

    def _denoise_unit(self, points: np.ndarray, noise_level: Optional[float]) -> np.ndarray:
        return points
