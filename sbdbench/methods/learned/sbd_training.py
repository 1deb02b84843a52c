"""Training recipe of ``sbd``: the note's loss on diffusion intermediates, with the shared trainer.

One training example (a batch of patch pairs from :class:`PatchSampler`, each with its noise σ):

1. ``F_T = FeatureNet(noisy)`` — features of the noisy patch x^T (as at inference, once per patch).
2. ``t_in = start_step(σ)`` (at least 2) and a step ``t ~ U{2, …, t_in}`` per patch: the note's "t uniform
   in 2..T", where the note's T is the step of the noisy observation itself (p(x^T) = N(x^0, L_noise I)).
3. Intermediates ``x_a^t``: ``marginal`` (default) — the clean patch pushed through q(x^t | x^0), i.e.
   x^0 + σ_t ε; ``nearest`` — the noisy points moved towards their nearest clean point
   (:func:`~sbdbench.methods.learned.diffusion.nearest_intermediate`).
4. As ScoreDenoise: 128 random anchors of the noisy patch (with their F_T), each takes its 32 nearest
   intermediates; the network predicts their displacement from the offsets to the anchor; the target is
   ``(mean of the 4 nearest clean points) − x_a^t``. This is exactly how the sampler scores points
   (anchors = input points, scored points = current points x_a^t).
5. ``loss="sbd"`` (the note's corrected coefficients) or ``loss="score"`` (ScoreDenoise's unweighted
   loss), :func:`~sbdbench.methods.learned.diffusion.displacement_loss`.

Validation (model selection, on the ``val`` split) is the same for both losses, so the two runs are
comparable: fixed val patches at σ = 1.5 %, denoised by the full SBD reverse chain, scored by the
Chamfer distance to the clean patch (×10⁴). ``val=clouds`` selects instead on the whole ``sbd`` method (its
frozen settings, passes and merge) on the val clouds at 1, 2 and 3 % (:func:`cloud_validation`, what
``tune --split val`` scores; about 6 minutes per validation on one core at 10K): patches at one σ did not see the
thin plate the shipped fine-tune collapses at 3 % (docs/sbd-warm-start.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np
import torch

from sbdbench.errors import DataError, InputError
from sbdbench.methods.learned.diffusion import INTERMEDIATES, LOSSES, Schedule, displacement_loss, marginal_intermediate, nearest_intermediate
from sbdbench.methods.learned.knn import knn_gather, knn_points
from sbdbench.methods.learned.model import ScoreDenoiseModel
from sbdbench.methods.learned.patch_recipe import RecipeOptions, install_best, start_model
from sbdbench.methods.learned.training import TrainResult, register_recipe


def sample_steps(sigma: torch.Tensor, schedule: Schedule, generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per patch: the input's step t_in = start_step(σ) (≥ 2, ≤ T) and t ~ U{2..t_in}. Returns (t, t_in), (B,) long."""
    if schedule.T < 2:
        raise InputError("SBD training needs a schedule with T ≥ 2 (the loss sums over t > 1)")
    t_in = torch.tensor([max(2, schedule.start_step(float(s))) for s in sigma], dtype=torch.long)
    u = torch.rand(len(t_in), generator=generator)
    t = 2 + torch.floor(u * (t_in - 1).double()).long()  # uniform on 2..t_in
    return torch.minimum(t, t_in), t_in


def clean_displacement(points: torch.Tensor, clean: torch.Tensor, num_clean_nbs: int = 4) -> torch.Tensor:
    """ScoreDenoise's target: (mean of the ``num_clean_nbs`` nearest clean points) − x. points (B, M, 3), clean (B, C, 3)."""
    _, idx = knn_points(points, clean, num_clean_nbs)
    return knn_gather(clean, idx).mean(dim=2) - points


def sbd_batch_loss(
    batch: Dict[str, torch.Tensor],
    model: ScoreDenoiseModel,
    *,
    schedule: Schedule,
    loss: str = "sbd",
    intermediate: str = "marginal",
    num_train_points: int = 128,
    frame_knn: int = 32,
    num_clean_nbs: int = 4,
    sigma_dsm: float = 0.01,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """SBD's training loss on a batch ``{"noisy": (B, n, 3), "clean": (B, m, 3), "sigma": (B,)}`` (see module doc)."""
    if loss not in LOSSES:
        raise InputError(f"sbd: unknown loss {loss!r} (choose from {', '.join(LOSSES)})")
    if intermediate not in INTERMEDIATES:
        raise InputError(f"sbd: unknown intermediate strategy {intermediate!r} (choose from {', '.join(INTERMEDIATES)})")
    noisy, clean = batch["noisy"], batch["clean"]
    b, n, d = noisy.shape
    t, t_in = sample_steps(batch["sigma"].cpu(), schedule, generator)
    with torch.no_grad():
        if intermediate == "marginal":
            points = marginal_intermediate(clean, t, schedule, generator=generator)
        else:
            points = nearest_intermediate(noisy, clean, t, t_in, schedule)
    pick = torch.randperm(n, generator=generator)[: min(num_train_points, n)].to(noisy.device)
    feat = model.feature_net(noisy)[:, pick]  # F_T at the anchors: (B, A, F)
    anchors = noisy[:, pick]
    a = anchors.shape[1]
    k = min(frame_knn, points.shape[1])
    _, frame_idx = knn_points(anchors, points, k)
    frames = knn_gather(points, frame_idx)  # (B, A, k, 3) intermediates around each anchor
    with torch.no_grad():
        target = clean_displacement(frames.reshape(b, -1, d), clean, num_clean_nbs).reshape(b, a, k, d)
    pred = model.score_net((frames - anchors.unsqueeze(2)).reshape(-1, k, d), feat.reshape(-1, feat.shape[-1])).reshape(b, a, k, d)
    return displacement_loss(pred, target, t.to(noisy.device), schedule, loss=loss, sigma_dsm=sigma_dsm)


def chamfer_patches(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Per-patch Chamfer distance (squared, mean per direction, summed): (B, n, 3), (B, m, 3) → (B,)."""
    d_pg, _ = knn_points(pred, gt, 1)
    d_gp, _ = knn_points(gt, pred, 1)
    return d_pg[..., 0].mean(dim=1) + d_gp[..., 0].mean(dim=1)


def validation_cd(model: ScoreDenoiseModel, val_set, schedule: Schedule, device: str | torch.device = "cpu") -> float:
    """Mean CD ×10⁴ between SBD-denoised val patches and the clean points of the same region."""
    from sbdbench.methods.learned.sbd import denoise_patches

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in val_set:
            noisy = batch["noisy"].to(device)
            clean = batch["clean"].to(device)[:, : noisy.shape[1]]  # the clean 1000-NN of the seed: the noisy patch's region
            t_star = schedule.start_step(float(batch["sigma"][0]))
            out = denoise_patches(model, noisy, schedule, t_star)
            cd = chamfer_patches(out, clean)
            total += float(cd.sum()) * 1e4
            count += cd.numel()
    return total / max(1, count)


#: what model selection scores (``--param val=...``): ``patches`` — fixed val patches at one σ through the reverse
#: chain (:func:`validation_cd`, the default); ``clouds`` — the whole ``sbd`` method, frozen settings, on the val
#: clouds at every σ of the protocol (:func:`cloud_validation`), which is what ``tune --split val`` scores.
VAL_MODES = ("patches", "clouds")


def cloud_validation(datasets, *, n_points: int = 10_000, sigmas=None, max_shapes: int = 8, device="cpu"):
    """A ``validate(model)`` that returns the mean CD ×10⁴ of ``sbd`` (its frozen settings at each σ, run on
    ``model``'s networks) over the val clouds of ``datasets`` at ``n_points`` and each σ of ``sigmas`` (the
    protocol's), averaged over all (shape, σ) pairs. The inputs are exactly ``tune --split val``'s
    (:func:`~sbdbench.methods.tuning.tuning_inputs`: up to ``max_shapes`` shapes per dataset, seeded noise), so the
    selected checkpoint is the one the whole pipeline scores best on val: patches at one σ miss a thin plate that
    the second pass collapses at 3 % (docs/sbd-warm-start.md)."""
    from sbdbench.methods.resolve import resolve_method
    from sbdbench.methods.tuning import tuning_inputs
    from sbdbench.metrics import chamfer
    from sbdbench.protocol import DEFAULT_SIGMAS

    sigmas = tuple(DEFAULT_SIGMAS if sigmas is None else sigmas)
    pairs = [(sigma, pair) for ds in datasets if ds.shapes("val") for sigma in sigmas
             for pair in tuning_inputs(ds, n_points, sigma, max_shapes, split="val").values()]
    if not pairs:
        raise DataError("val=clouds: none of the training datasets has val shapes")
    methods = {sigma: resolve_method("sbd", n_points, sigma, overrides={"device": str(device)}, frozen=True).method for sigma in sigmas}

    def validate(model: ScoreDenoiseModel) -> float:
        for method in methods.values():
            method.use_networks(model)
        return 1e4 * float(np.mean([chamfer(methods[sigma].denoise(noisy, noise_level=sigma), clean)
                                    for sigma, (clean, noisy) in pairs]))

    return validate


@dataclass(frozen=True)
class SBDRecipe:
    """What only SBD's recipe sets: the loss (``sbd``: the note's weighting, ``score``), the intermediate strategy
    (``marginal``, ``nearest``) and the schedule (T, kind, σ range; None: the method's)."""

    loss: str = "sbd"
    intermediate: str = "marginal"
    val: str = "patches"
    T: Optional[int] = None
    schedule: Optional[str] = None
    sigma_min: Optional[float] = None
    sigma_max: Optional[float] = None

    def checked_schedule(self) -> Schedule:
        from sbdbench.methods.learned.sbd import schedule_from_params

        if self.loss not in LOSSES:
            raise InputError(f"sbd: unknown loss {self.loss!r} (choose from {', '.join(LOSSES)})")
        if self.intermediate not in INTERMEDIATES:
            raise InputError(f"sbd: unknown intermediate strategy {self.intermediate!r} (choose from {', '.join(INTERMEDIATES)})")
        if self.val not in VAL_MODES:
            raise InputError(f"sbd: unknown validation {self.val!r} (choose from {', '.join(VAL_MODES)})")
        given = {"T": self.T, "schedule": self.schedule, "sigma_min": self.sigma_min, "sigma_max": self.sigma_max}
        return schedule_from_params({k: v for k, v in given.items() if v is not None})


@register_recipe("sbd", specific=SBDRecipe, noise_keys=("noise_min", "noise_max"))
def train_sbd(options: RecipeOptions, sbd: SBDRecipe = SBDRecipe(), *, log=print) -> TrainResult:
    """Train SBD's networks (the same data, sampler, optimiser and budget options as ``score``'s recipe).

    ``options`` (:class:`~sbdbench.methods.learned.patch_recipe.RecipeOptions`): data, budget, start and optimiser
    (``init`` starts from trained networks with the fine-tuning defaults; ``sbdbench train --method sbd`` names the
    noise range ``noise_min``/``noise_max``, since ``sigma_min``/``sigma_max`` are the schedule's). ``sbd``: the loss,
    the intermediates and the schedule. The best weights (by :func:`validation_cd` on the val split) are
    ``<out_dir>/best.pt``; ``options.install`` copies them to ``sbdbench/weights/sbd_project.pt``.
    """
    from sbdbench.methods.learned.training import train

    sched = sbd.checked_schedule()
    optimiser = options.optimiser()
    model, start = start_model(options.init, "sbd", options.seed, optimiser["zero_output"])
    data = options.data()

    def loss_fn(batch: Dict[str, torch.Tensor], model: ScoreDenoiseModel) -> torch.Tensor:
        # the global torch RNG (saved in the trainer's checkpoints, so a resumed run continues the same draws)
        return sbd_batch_loss(batch, model, schedule=sched, loss=sbd.loss, intermediate=sbd.intermediate)

    config = options.trainer_config(optimiser, start, loss=sbd.loss, intermediate=sbd.intermediate,
                                    **({"val": sbd.val} if sbd.val != "patches" else {}))
    meta = {
        "method": "sbd",
        "loss": sbd.loss,
        "intermediate": sbd.intermediate,
        "schedule": sched.describe(),
        "recipe": "SBD: ScoreDenoise patches/frames on diffusion intermediates x_a^t, t ~ U{2..t*(sigma)}, val = CD of the SBD chain",
        **({"val": sbd.val} if sbd.val != "patches" else {}),
        **data.meta(),
        **start,
    }
    if sbd.val == "clouds":
        validate = cloud_validation(data.datasets, device=options.device)
    else:
        validate = lambda m: validation_cd(m, data.val_set, sched, options.device)  # noqa: E731
    result = train(model, loss_fn, data.sampler, config, validate=validate, meta=meta, log=log)
    if options.install:
        install_best(result, "sbd", log)
    return result
