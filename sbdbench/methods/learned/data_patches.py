"""Training patches for patch-based denoisers, drawn from a dataset's ``train`` (or ``val``) split.

ScoreDenoise's recipe (``datasets/patch.py``, ``utils/transforms.py``): a clean cloud normalised to the
unit sphere gets Gaussian noise with σ ~ U(0.5 %, 2 %), a random scale in [0.8, 1.2] and a random
rotation about x, y and z; a seed is drawn among the noisy points, the noisy patch is its 1000-NN in the
noisy cloud and the clean patch its 1200-NN in the clean cloud. To save time, ``patches_per_cloud``
patches are cut from each noisy draw (the original cut one); everything else is the same.

All randomness comes from one ``numpy.random.Generator`` whose state is saved in training
checkpoints, so a resumed run draws the same patches as an uninterrupted one.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from scipy.spatial import cKDTree

from sbdbench.data.dataset import Dataset
from sbdbench.errors import DataError
from sbdbench.geometry import normalize_unit_sphere


def load_split_clouds(dataset: Dataset, split: str = "train", resolutions: Optional[Sequence[int]] = None) -> List[np.ndarray]:
    """Every clean cloud of ``split`` at the given resolutions (default: all), normalised to the unit sphere, float32."""
    res = list(resolutions) if resolutions else dataset.resolutions(split)
    shapes = dataset.shapes(split)
    if not res or not shapes:
        raise DataError(f"dataset {dataset.name!r} has no clean clouds in split {split!r} (build it with its training split)")
    clouds = []
    for n in res:
        for shape in shapes:
            if dataset.clean_path(shape, n, split).is_file():
                clouds.append(normalize_unit_sphere(dataset.load_clean(shape, n, split))[0].astype(np.float32))
    if not clouds:
        raise DataError(f"dataset {dataset.name!r}: no clean clouds in split {split!r} at resolutions {res}")
    return clouds


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """ScoreDenoise's augmentation: rotations by U(−180°, 180°) about x, then y, then z (row-vector convention)."""
    out = np.eye(3)
    for axis in range(3):
        a = np.deg2rad(rng.uniform(-180.0, 180.0))
        c, s = np.cos(a), np.sin(a)
        if axis == 0:
            m = [[1, 0, 0], [0, c, s], [0, -s, c]]
        elif axis == 1:
            m = [[c, 0, -s], [0, 1, 0], [s, 0, c]]
        else:
            m = [[c, s, 0], [-s, c, 0], [0, 0, 1]]
        out = out @ np.asarray(m)
    return out


class PatchSampler:
    """Draws batches of (noisy patch, clean patch) pairs.

    Args:
        clouds: clean clouds in the unit sphere (from :func:`load_split_clouds`).
        patch_size: points per noisy patch (1000).
        clean_ratio: clean patch = ``clean_ratio · patch_size`` points (1.2).
        sigma_range: σ ~ U(sigma_range) per noisy draw (0.5 %–2 %).
        scale_range: random scale (0.8–1.2); ``None`` for none.
        rotate: random rotation about the three axes.
        patches_per_cloud: patches cut from each noisy draw.
        seed: seed of the generator.
    """

    def __init__(
        self,
        clouds: Sequence[np.ndarray],
        *,
        patch_size: int = 1000,
        clean_ratio: float = 1.2,
        sigma_range: Tuple[float, float] = (0.005, 0.02),
        scale_range: Optional[Tuple[float, float]] = (0.8, 1.2),
        rotate: bool = True,
        patches_per_cloud: int = 4,
        seed: int = 2020,
    ):
        if not clouds:
            raise DataError("PatchSampler needs at least one clean cloud")
        smallest = min(len(c) for c in clouds)
        self.clean_size = int(clean_ratio * patch_size)
        if smallest < self.clean_size:
            raise DataError(f"clouds must have at least {self.clean_size} points for {patch_size}-point patches (smallest: {smallest})")
        self.clouds = list(clouds)
        self.patch_size = int(patch_size)
        self.sigma_range = tuple(sigma_range)
        self.scale_range = tuple(scale_range) if scale_range else None
        self.rotate = rotate
        self.patches_per_cloud = max(1, int(patches_per_cloud))
        self.rng = np.random.default_rng(seed)
        self._trees = [None] * len(self.clouds)

    def _clean_tree(self, i: int) -> cKDTree:
        if self._trees[i] is None:
            self._trees[i] = cKDTree(self.clouds[i])
        return self._trees[i]

    def _draw(self, n: int, sigma: Optional[float] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """n patch pairs from one noisy draw of a random cloud → noisy (n, P, 3), clean (n, M, 3), σ (n,)."""
        rng = self.rng
        i = int(rng.integers(len(self.clouds)))
        clean = self.clouds[i]
        s = float(rng.uniform(*self.sigma_range)) if sigma is None else float(sigma)
        noisy = clean + rng.standard_normal(clean.shape).astype(np.float32) * s
        seeds = rng.choice(len(noisy), size=n, replace=len(noisy) < n)
        _, noisy_idx = cKDTree(noisy).query(noisy[seeds], k=self.patch_size)
        _, clean_idx = self._clean_tree(i).query(noisy[seeds], k=self.clean_size)
        scale = float(rng.uniform(*self.scale_range)) if self.scale_range else 1.0
        rot = _rotation(rng) if self.rotate else np.eye(3)
        transform = (rot * scale).astype(np.float32)  # scale and rotation commute with patch extraction
        return noisy[noisy_idx] @ transform, clean[clean_idx] @ transform, np.full(n, s, dtype=np.float32)

    def sample(self, batch_size: int, sigma: Optional[float] = None) -> Dict[str, torch.Tensor]:
        """A batch: ``noisy`` (B, P, 3), ``clean`` (B, M, 3), ``sigma`` (B,) float32 CPU tensors."""
        parts = []
        left = int(batch_size)
        while left > 0:
            n = min(left, self.patches_per_cloud)
            parts.append(self._draw(n, sigma))
            left -= n
        noisy, clean, sig = (np.concatenate(p) for p in zip(*parts))
        return {"noisy": torch.from_numpy(noisy), "clean": torch.from_numpy(clean), "sigma": torch.from_numpy(sig)}

    # --- resumability -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The generator state (plain types: loads with ``weights_only=True``)."""
        return {"bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["bit_generator"]


def fixed_batches(clouds: Sequence[np.ndarray], *, n_batches: int, batch_size: int, sigma: float, patch_size: int = 1000, seed: int = 0) -> List[Dict[str, torch.Tensor]]:
    """A fixed, reproducible validation set of patch batches at one σ (no scale, no rotation)."""
    sampler = PatchSampler(clouds, patch_size=patch_size, sigma_range=(sigma, sigma), scale_range=None, rotate=False, patches_per_cloud=batch_size, seed=seed)
    return [sampler.sample(batch_size) for _ in range(n_batches)]
