"""``straightpcf``: StraightPCF (de Silva Edirimuni et al., CVPR 2024) with its released weights.

Per 1000-point patch (centred on its seed): a distance module predicts once how far the patch is from the
surface (d ∈ (0, 1)), then T iterations move every point along the velocities of M coupled velocity modules
(dynamic EdgeConv features, k = 32), ``x += d·v_m(x)/(T·M)``; patches are stitched back 1:1.

Protocol, as the authors publish it (``ddsediri/StraightPCF``):

* patch_size 1000, seed_k 6, seed_k_alpha 1 (README "Inference only" commands: ``--seed_k=6 --seed_k_alpha=1``;
  test_straightpcf.py ``--patch_size`` default 1000); seed_k_alpha only sets how many patches run at once, not
  the output;
* passes: 1 / 2 / 3 at 1 / 2 / 3 % noise (README: ``--niters=1 … --noise='0.01'``, ``--niters=2 … '0.02'``,
  ``--niters=3 … '0.03'``), the same at 10K and 50K (the 50K commands differ only in ``--resolution``: no
  special 50K protocol); with no noise level given, σ is estimated (the ``score`` estimator) and the threshold
  is half-way (1.5 %, 2.5 %);
* flow iterations T: the checkpoint's ``args.tot_its`` (test_straightpcf.py builds the model from
  ``ckpt['args']``; its ``--tot_its`` flag is not passed on), 2 when absent (train_straightpcf.py default);
  M = the number of ``velocity_nets`` in the file;
* stitching: utils/denoise.py (see :mod:`.flow`); no outlier removal (the original has none).

In spatial blocks (:func:`sbdbench.methods.blocks.denoise_in_blocks`, ``--max-memory``) the stitching is 1:1, so
each core point keeps its own output (``block_merge = "own"``); the pass count is chosen once from the whole
cloud's σ (given, or estimated once on the whole cloud) by the rule above, so no block estimates its own, and
the overlap is two patch radii per pass. The original's own large-cloud route (utils/denoise.py
``denoise_large_pointcloud``: KMeans parts with no overlap, each renormalised to its unit sphere, seed_k 5, one
pass) is not what the blocks do: they keep the protocol above and the whole cloud's frame, and overlap.

``weights`` may also name the released VelocityModule or CoupledVMArch alone (``vm``, ``cvm``: what
``sbdbench fetch straightpcf-vm-official`` / ``straightpcf-cvm-official`` installs) or any such file; they run as
test_vm.py (4 steps of ¼) and test_cvm.py (3 iterations) do, through the same patches. Those are the
authors' intermediate networks, not the StraightPCF results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch

from sbdbench.errors import DataError, InputError, SbdbenchError
from sbdbench.methods.base import Denoiser, register
from sbdbench.methods.learned.checkpoint import (WeightsDigestMixin, load_checkpoint, load_into, register_official,
                                                 resolve_weights, weights_digest)
from sbdbench.methods.learned.patches import PATCH_BYTES_PER_POINT, patch_block_settings
from sbdbench.methods.learned.score import estimate_noise_level
from sbdbench.methods.learned.straightpcf.flow import build_network, denoise_pass
from sbdbench.methods.meter import metered_steps
from sbdbench.methods.param_checks import check_float, check_int
from sbdbench.paths import home

register_official("straightpcf", "straightpcf-official", "straightpcf-official.pt")

#: the authors' intermediate networks: weights name → (fetch card, installed file)
PARTS = {"vm": ("straightpcf-vm-official", "straightpcf-vm-official.pt"),
         "cvm": ("straightpcf-cvm-official", "straightpcf-cvm-official.pt")}

#: working memory of one patch point: ~33 neighbours × 256 channels × 4 bytes × 3 live buffers
_BYTES_PER_PATCH_POINT = 33 * 256 * 4 * 3
#: the graph needs frame_knn + 1 = 33 points
MIN_POINTS = 33


def passes_for_noise(sigma: float) -> int:
    """README: 1 pass at 1 %, 2 at 2 %, 3 at 3 % (thresholds half-way: 1.5 %, 2.5 %)."""
    return 1 if sigma <= 0.015 else (2 if sigma <= 0.025 else 3)


def resolve(weights: str) -> Path:
    """``official`` / ``vm`` / ``cvm`` / a path → an existing file, or a one-line DataError saying what to fetch."""
    if str(weights) in PARTS:
        card, file = PARTS[str(weights)]
        path = home() / "weights" / file
        if not path.is_file():
            raise DataError(f"the official straightpcf {weights} weights are not downloaded ({path} is absent): run `sbdbench fetch {card}`")
        return path
    return resolve_weights(weights, method="straightpcf")


@register
class StraightPCFDenoiser(WeightsDigestMixin, Denoiser):
    """StraightPCF with its released weights (``weights="official"``), its parts (``vm``, ``cvm``) or a path."""

    name = "straightpcf"
    paper = "de Silva Edirimuni et al., StraightPCF: Straight Point Cloud Filtering, CVPR 2024"
    paper_url = "https://openaccess.thecvf.com/content/CVPR2024/html/de_Silva_Edirimuni_StraightPCF_Straight_Point_Cloud_Filtering_CVPR_2024_paper.html"
    code_url = "https://github.com/ddsediri/StraightPCF"
    preserves_count = True
    uses_torch = True
    summary = "coupled velocity modules (dynamic EdgeConv, k=32) scaled by a distance module; 1000-point patches stitched 1:1"
    tuning_grid = {"niters": [1, 2, 3]}

    def __init__(self, weights: str = "official", device: str = "cpu", niters: Optional[int] = None,
                 patch_size: int = 1000, seed_k: float = 6, memory_mb: float = 256):
        self.weights = weights
        self.device = device
        self.niters = niters
        self.patch_size = patch_size
        self.seed_k = seed_k
        self.memory_mb = memory_mb

    def artifact_digest(self) -> str:
        if str(self.weights) in PARTS:
            from sbdbench.paths import sha256_file

            return "weights=sha256:" + sha256_file(resolve(self.weights))[:16]
        return "weights=" + weights_digest(self.weights, method=self.name)

    def unavailable_reason(self) -> Optional[str]:
        try:
            resolve(self.weights)
        except SbdbenchError as exc:
            return str(exc)
        return None

    def _check_params(self) -> None:
        if self.niters is not None:
            check_int("niters", self.niters, 1, method="straightpcf")
        check_int("patch_size", self.patch_size, MIN_POINTS, method="straightpcf")
        for name in ("seed_k", "memory_mb"):
            check_float(name, getattr(self, name), method="straightpcf")

    #: patches are stitched 1:1 (output i is input i moved): each core point of a block keeps its own output
    block_merge = "own"

    def block_settings(self, unit_points: np.ndarray, noise_level: Optional[float]):
        """The passes fixed from the whole cloud's σ (given or estimated once, :func:`passes_for_noise`); overlap
        two patch radii per pass; the patch methods' bytes per point scaled from 3 to ``seed_k`` copies of each
        point (seeds, patches, flows, stitching weights), with no FPS pool to hold."""
        sigma = noise_level if noise_level is not None else estimate_noise_level(unit_points)
        niters = int(self.niters) if self.niters is not None else passes_for_noise(sigma)
        fixed = type(self)(**{**self.get_params(), "niters": niters})
        per_point = PATCH_BYTES_PER_POINT * max(1.0, float(self.seed_k) / 3)
        return patch_block_settings(self, unit_points, sigma, niters, fixed, bytes_per_point=per_point)

    # --- model ------------------------------------------------------------------------------------
    def load(self) -> Tuple[str, torch.nn.Module, int]:
        """(kind, eval network on ``device``, flow iterations) — loaded once per weights/device."""
        key = (str(self.weights), str(self.device))
        cached = getattr(self, "_loaded", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        path = resolve(self.weights)
        state, meta = load_checkpoint(path)
        kind, net, iterations = build_network(state, meta, source=str(path))
        net = load_into(net, state, source=path).eval()
        try:
            net = net.to(torch.device(self.device))
        except (RuntimeError, TypeError, AssertionError) as exc:
            raise InputError(f"straightpcf: cannot use device {self.device!r} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        self._loaded = (key, (kind, net, iterations))
        return self._loaded[1]

    def _denoise_unit(self, points: np.ndarray, noise_level: Optional[float]) -> np.ndarray:
        if len(points) < MIN_POINTS:
            raise InputError(f"straightpcf needs at least {MIN_POINTS} points (its graphs use 32 neighbours), got {len(points)}")
        niters = self.niters
        if niters is None:
            niters = passes_for_noise(noise_level if noise_level is not None else estimate_noise_level(points))
        kind, net, iterations = self.load()
        device = next(net.parameters()).device
        x = torch.as_tensor(points, dtype=torch.float32, device=device)
        patch = min(int(self.patch_size), len(points))
        batch = max(1, int(self.memory_mb * 2**20 // (patch * _BYTES_PER_PATCH_POINT)))
        with torch.no_grad():
            for _ in metered_steps(range(int(niters))):
                x = denoise_pass(kind, net, x, iterations, patch_size=int(self.patch_size), seed_k=float(self.seed_k), batch_size=batch)
        return x.double().cpu().numpy()
