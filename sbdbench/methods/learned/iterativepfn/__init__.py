"""``iterativepfn``: IterativePFN (de Silva Edirimuni, Lu, Shao, Li, Robles-Kelly & He, CVPR 2023) with its released weights.

Four IterationModules inside one network, each a dynamic-graph EdgeConv network that predicts a displacement
(x ← x + module(x)); test-time patches are stitched back 1:1. Inference as the authors publish it
(ddsediri/IterativePFN @ 8737f91):

* ``patch_size = 1000`` — test.py ``--patch_size`` default 1000.
* ``seed_k = 6`` (60 patches at 10K, 300 at 50K) — test.py ``--seed_k`` default 6 ("6 for small PCL").
* ``niters = 1`` at every noise level and resolution — test.py ``--niters`` default 1; the paper's point is
  that the iterations happen inside the network (the README gives no other setting; its
  ``launcher_test.sh`` is not in the repository).
* all 4 modules — test.py ``--num_modules_to_use`` default None = ``args.num_modules`` (train.py default 4);
  ``modules`` here.
* stitching, no FPS merge, no outlier removal — test.py ``--patch_stitching`` default True →
  ``patch_based_denoise`` (see :mod:`.stitching` for the exact rule).
* the input normalised to the unit sphere by its bbox centre and max radius — test.py ``input_iter`` →
  ``NormalizeUnitSphere.normalize`` (what :meth:`Denoiser.denoise` does).
* ``seed_k_alpha`` (test.py default 10) only sets how many patches go through the network at once, which does
  not change the output; here ``memory_mb`` does.

In spatial blocks (:func:`sbdbench.methods.blocks.denoise_in_blocks`, ``--max-memory``) the stitching is 1:1, so
each core point keeps its own output (``block_merge = "own"``); the pass count is ``niters`` (1 when unset, as
above: it never depends on the cloud) and the overlap two patch radii per pass; every block keeps the protocol
above in the whole cloud's frame.

The released checkpoint (``pretrained/denoisenet-ep-99.ckpt``, test.py ``--ckpt`` default, inside the authors'
``data_and_ckpt.zip``) is a PyTorch Lightning file; its ``state_dict`` loads into
:class:`~.network.IterativePFNNet` with ``strict=True`` (same parameter names). ``sbdbench fetch
iterativepfn-official`` installs it.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

from sbdbench.errors import InputError
from sbdbench.methods.base import Denoiser, register
from sbdbench.methods.learned.checkpoint import WeightsDigestMixin, load_checkpoint, load_into, register_official, resolve_weights
from sbdbench.methods.learned.iterativepfn.folded import FoldedIterativePFN
from sbdbench.methods.learned.iterativepfn.network import FRAME_KNN, NUM_MODULES, IterativePFNNet
from sbdbench.methods.learned.iterativepfn.stitching import denoise_pass
from sbdbench.methods.learned.patches import PATCH_BYTES_PER_POINT, patch_block_settings, patches_per_batch
from sbdbench.methods.meter import metered_steps
from sbdbench.methods.param_checks import check_float, check_int

#: where ``weights=official`` is installed by ``sbdbench fetch iterativepfn-official``.
OFFICIAL_FILE = "iterativepfn-denoisenet-ep-99.ckpt"
register_official("iterativepfn", "iterativepfn-official", OFFICIAL_FILE)

#: working memory of one patch point in the widest layer (32 edges × 512 channels × 3 float buffers).
_BYTES_PER_PATCH_POINT = FRAME_KNN * 512 * 4 * 3


@register
class IterativePFN(WeightsDigestMixin, Denoiser):
    """IterativePFN with its released weights (``weights="official"``) or any compatible checkpoint (a path)."""

    name = "iterativepfn"
    paper = "de Silva Edirimuni et al., IterativePFN: True Iterative Point Cloud Filtering, CVPR 2023"
    paper_url = "https://arxiv.org/abs/2304.01529"
    code_url = "https://github.com/ddsediri/IterativePFN"
    preserves_count = True
    uses_torch = True
    summary = "4 displacement-predicting IterationModules (dynamic EdgeConv, k=32) in one network; 1000-point patches stitched 1:1"
    tuning_grid = {"niters": [1, 2]}

    def __init__(
        self,
        weights: str = "official",
        device: str = "cpu",
        niters: Optional[int] = None,
        modules: Optional[int] = None,
        patch_size: int = 1000,
        seed_k: float = 6,
        memory_mb: float = 256,
    ):
        self.weights = weights
        self.device = device
        self.niters = niters
        self.modules = modules
        self.patch_size = patch_size
        self.seed_k = seed_k
        self.memory_mb = memory_mb

    def _check_params(self) -> None:
        if self.niters is not None:
            check_int("niters", self.niters, 1, method="iterativepfn")
        if self.modules is not None:
            check_int("modules", self.modules, 1, maximum=NUM_MODULES, method="iterativepfn")
        check_int("patch_size", self.patch_size, FRAME_KNN + 1, method="iterativepfn")
        for name in ("seed_k", "memory_mb"):
            check_float(name, getattr(self, name), method="iterativepfn")

    #: patches are stitched 1:1 (output i is input i moved): each core point of a block keeps its own output
    block_merge = "own"

    def block_settings(self, unit_points: np.ndarray, noise_level: Optional[float]):
        """The passes fixed (``niters``, 1 when unset: no σ is involved); overlap two patch radii per pass; the
        patch methods' bytes per point scaled from 3 to ``seed_k`` copies of each point (seeds, patches, outputs,
        stitching weights), with no FPS pool to hold."""
        niters = int(self.niters or 1)
        fixed = type(self)(**{**self.get_params(), "niters": niters})
        per_point = PATCH_BYTES_PER_POINT * max(1.0, float(self.seed_k) / 3)
        return patch_block_settings(self, unit_points, noise_level, niters, fixed, bytes_per_point=per_point)

    # --- model ------------------------------------------------------------------------------------
    def load(self) -> Tuple[IterativePFNNet, FoldedIterativePFN]:
        """(eval network, its folded form) on ``device``, loaded once per weights/device."""
        key = (str(self.weights), str(self.device))
        cached = getattr(self, "_loaded", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        path = resolve_weights(self.weights, method=self.name)
        state, _ = load_checkpoint(path)
        net = load_into(IterativePFNNet(), state, source=path).eval()
        try:
            net = net.to(torch.device(self.device))
        except (RuntimeError, TypeError, AssertionError) as exc:
            raise InputError(f"iterativepfn: cannot use device {self.device!r} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        loaded = (net, FoldedIterativePFN(net).eval())
        self._loaded = (key, loaded)
        return loaded

    def _denoise_unit(self, points: np.ndarray, noise_level: Optional[float]) -> np.ndarray:
        if len(points) <= FRAME_KNN:
            raise InputError(f"iterativepfn needs more than {FRAME_KNN} points (its graphs use {FRAME_KNN} neighbours), got {len(points)}")
        _, folded = self.load()
        device = next(folded.buffers()).device
        x = torch.as_tensor(points, dtype=torch.float32, device=device)
        patch = min(int(self.patch_size), len(points))
        batch = patches_per_batch(patch, _BYTES_PER_PATCH_POINT, self.memory_mb)

        def net(patches: torch.Tensor) -> torch.Tensor:
            return folded(patches, num_modules=self.modules)

        with torch.no_grad():
            for _ in metered_steps(range(int(self.niters or 1))):
                x = denoise_pass(x, net, patch_size=patch, seed_k=self.seed_k, batch_size=batch)
        return x.double().cpu().numpy()
