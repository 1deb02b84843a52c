"""The diffusion side of SBD: variance schedule, forward marginal, deterministic reverse step, losses.

Notation of the design note (``shared/design/sbd-model.md``): ``β_t``, ``α_t = 1 − β_t``,
``ᾱ_t = ∏_{s≤t} α_s``; ``x^t`` lives in the *scaled* space of the diffusion, ``x_a^t = x^t / √ᾱ_t``
in the *data* scale (the unit sphere of the protocol), where the forward marginal is

    x_a^t = x^0 + σ_t · ε,   σ_t = √((1 − ᾱ_t) / ᾱ_t),   ε ~ N(0, I).

Units of the score (the one choice the note leaves open, made explicit here)
----------------------------------------------------------------------------
The networks (ScoreDenoise's FeatureNet + ScoreNet, no time input) predict a **displacement**
``d̂(x_a^t) ≈ d = (clean surface point) − x_a^t`` in the data scale: a function of position only,
which is why no time embedding is needed. The note's score ``ŝ`` in the reverse step

    x^{t−1} = (1/√α_t) · ( x^t + (β_t √ᾱ_t / √(1−ᾱ_t)) · ŝ )                         (note, eq. Sampling)

is that displacement over the noise std of ``x^t``: ``ŝ = d̂ / √(1−ᾱ_t)`` (:func:`score_from_displacement`).
With this reading the step is *exactly* the DDPM posterior mean when ``d̂`` is the true ``x^0 − x_a^t``,
and in the data scale it reads

    x_a^{t−1} = x_a^t + (β_t / (1 − ᾱ_t)) · d̂,                                          (data-scale step)

a move by the fraction ``f_t = β_t/(1−ᾱ_t) ∈ (0, 1]`` of the displacement, with ``f_1 = 1``: with an
oracle displacement the chain lands on the clean surface (``tests/test_diffusion.py`` checks this on a
sphere). Any other unit for ``ŝ`` makes the step dimensionally inconsistent (it would move by a
fraction proportional to σ, i.e. almost not at all).

Loss. The note's KL term matches the step noise ``√(1−α_t)·z`` of ``x^t = √α_t x^{t−1} + √(1−α_t) z``
with the model's move ``(β_t √ᾱ_t/√(1−ᾱ_t)) ŝ``; its target score ``s* = ∇q(x^t)`` stands for ``−z``.
``z`` is not observed from ``(x^0, x^t)``, so the regression target is its conditional mean
``s* = E[−z | x^t, x^0] = √(β_t ᾱ_t) / (1 − ᾱ_t) · d`` (:func:`target_score_from_displacement`), which has the
same minimiser and lower variance. Then

    loss="sbd":   ½ ‖(β_t √ᾱ_t/√(1−ᾱ_t)) ŝ − √(1−α_t) s*‖² = ½ w_t ‖d̂ − d‖²,  w_t = (β_t √ᾱ_t/(1−ᾱ_t))²
    loss="score": ½ ‖d̂ − d‖² / σ_dsm                                 (ScoreDenoise, σ_dsm = 0.01)

— "the same form with different coefficients", as the note says: both have the same minimiser and
differ in how they weight the steps ``t``. Which trains better is the question sbdbench answers.

Start step. An input of noise level σ starts at ``t* = argmin_t |σ_t − σ|`` (``σ_0 = 0``, so σ = 0 means
no step) with ``x_a^{t*} = y``.

Everything here is a small pure function on tensors of shape ``(..., 3)``; schedules are float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from scipy.spatial import cKDTree

from sbdbench.errors import InputError

SCHEDULE_KINDS = ("geometric", "linear", "cosine")
INTERMEDIATES = ("marginal", "nearest")
LOSSES = ("sbd", "score")


# --- schedule --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    """A variance schedule, indexed 0..T (index 0 is the clean data: β_0 = 0, ᾱ_0 = 1, σ_0 = 0).

    Attributes (all float64 tensors of shape (T + 1,)):
        betas: β_t; alphas: α_t = 1 − β_t; alpha_bars: ᾱ_t; sigmas: σ_t = √((1−ᾱ_t)/ᾱ_t) (data scale).
    """

    kind: str
    betas: torch.Tensor
    alphas: torch.Tensor
    alpha_bars: torch.Tensor
    sigmas: torch.Tensor

    @property
    def T(self) -> int:
        return int(self.betas.shape[0]) - 1

    @classmethod
    def from_alpha_bars(cls, kind: str, alpha_bars: torch.Tensor) -> "Schedule":
        """Build from ᾱ_1..ᾱ_T (strictly decreasing, in (0, 1))."""
        ab = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars.to(torch.float64)])
        if not bool((ab[1:] < ab[:-1]).all()) or not bool((ab[1:] > 0).all()):
            raise InputError("a schedule needs strictly decreasing ᾱ_t in (0, 1)")
        alphas = ab[1:] / ab[:-1]
        alphas = torch.cat([torch.ones(1, dtype=torch.float64), alphas])
        betas = 1.0 - alphas
        sigmas = torch.sqrt((1.0 - ab) / ab)
        return cls(kind=kind, betas=betas, alphas=alphas, alpha_bars=ab, sigmas=sigmas)

    def step_fraction(self, t) -> torch.Tensor:
        """f_t = β_t / (1 − ᾱ_t): the share of the displacement one data-scale reverse step applies (f_1 = 1)."""
        t = torch.as_tensor(t)
        return self.betas[t] / (1.0 - self.alpha_bars[t])

    def start_step(self, noise_level: float) -> int:
        """t* whose σ_t is closest to ``noise_level`` (0 for σ = 0; T if σ is above the schedule's range)."""
        sigma = float(noise_level)
        if not math.isfinite(sigma) or sigma < 0:
            raise InputError(f"noise level must be finite and ≥ 0, got {noise_level}")
        return int(torch.argmin((self.sigmas - sigma).abs()).item())

    def describe(self) -> dict:
        """Plain-type summary (stored in weight metadata)."""
        return {"kind": self.kind, "T": self.T, "sigma_1": float(self.sigmas[1]), "sigma_T": float(self.sigmas[-1])}


def make_schedule(T: int = 10, kind: str = "geometric", sigma_min: float = 0.003, sigma_max: float = 0.035) -> Schedule:
    """A schedule of ``T`` steps whose data-scale noise runs from about ``sigma_min`` (t = 1) to ``sigma_max`` (t = T).

    The point-cloud noise levels of interest (0.5 %–3 % of the unit sphere) are tiny next to image
    diffusion (DDPM's linear 1e-4…0.02 over 1000 steps has σ_1 ≈ 1 % already), so every kind is
    pinned to the data-scale range ``[sigma_min, sigma_max]``:

    * ``geometric``: σ_t geometric from σ_min to σ_max (as ScoreDenoise's step decay; equal ratios ⇒ equal f_t);
    * ``linear``: β_t linear in t (DDPM's shape, β_T/β_1 fixed by σ_min/σ_max), scaled so σ_T = σ_max;
    * ``cosine``: Nichol & Dhariwal's ᾱ(u) = cos²((u + s)/(1 + s)·π/2)/cos²(s/(1+s)·π/2), with u ∈ (0, u_max]
      evaluated at u = t/T·u_max and u_max chosen so that σ_T = σ_max (σ_1 follows from the shape).
    """
    T = int(T)
    if T < 1:
        raise InputError(f"T must be ≥ 1, got {T}")
    if not (0 < sigma_min < sigma_max):
        raise InputError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    ab_max = 1.0 / (1.0 + sigma_max**2)  # ᾱ_T
    t = torch.arange(1, T + 1, dtype=torch.float64)
    if kind == "geometric":
        if T == 1:
            sig = torch.tensor([sigma_max], dtype=torch.float64)
        else:
            sig = sigma_min * (sigma_max / sigma_min) ** ((t - 1) / (T - 1))
        return Schedule.from_alpha_bars(kind, 1.0 / (1.0 + sig**2))
    if kind == "linear":
        # β_t = c·(r + (1 − r)(t−1)/(T−1)); r sets σ_1/σ_T like σ_min/σ_max for small β: β_1 ≈ σ_1², Σβ ≈ σ_T²
        shape = torch.ones(T, dtype=torch.float64) if T == 1 else torch.linspace(1.0, 0.0, T, dtype=torch.float64).flip(0)
        r = min(1.0, T * (sigma_min / sigma_max) ** 2)
        shape = r + (1 - r) * shape
        c = _bisect(lambda c: float(torch.prod(1 - c * shape)) - ab_max, 0.0, 1.0 / float(shape.max()))
        return Schedule.from_alpha_bars(kind, torch.cumprod(1 - c * shape, 0))
    if kind == "cosine":
        s = 0.008
        f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2

        def ab(u):
            return torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2 / f0

        u_max = _bisect(lambda u: float(ab(torch.tensor(u, dtype=torch.float64))) - ab_max, 0.0, 1.0)
        return Schedule.from_alpha_bars(kind, ab(t / T * u_max))
    raise InputError(f"unknown schedule kind {kind!r} (choose from {', '.join(SCHEDULE_KINDS)})")


def _bisect(fn, lo: float, hi: float, iters: int = 200) -> float:
    """Root of a decreasing function on [lo, hi] (fn(lo) > 0 > fn(hi))."""
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if fn(mid) > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _coef(values: torch.Tensor, t, like: torch.Tensor) -> torch.Tensor:
    """Gather schedule values at t (int or (B,) tensor) and shape them to broadcast against ``like`` (B, ..., 3)."""
    t = torch.as_tensor(t, device=values.device)
    c = values[t].to(device=like.device, dtype=like.dtype)
    return c.reshape(c.shape + (1,) * (like.dim() - c.dim()))


# --- forward process and scales --------------------------------------------------------------------
def to_data_scale(x_t: torch.Tensor, t, schedule: Schedule) -> torch.Tensor:
    """x_a^t = x^t / √ᾱ_t.  x_t: (..., 3); t an int or a (B,) tensor matching the leading axis."""
    return x_t / torch.sqrt(_coef(schedule.alpha_bars, t, x_t))


def from_data_scale(x_a: torch.Tensor, t, schedule: Schedule) -> torch.Tensor:
    """x^t = √ᾱ_t · x_a^t."""
    return x_a * torch.sqrt(_coef(schedule.alpha_bars, t, x_a))


def q_sample(x0: torch.Tensor, t, schedule: Schedule, *, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Draw x^t ~ q(x^t | x^0) = N(√ᾱ_t x^0, (1 − ᾱ_t) I) (scaled space). x0: (..., 3)."""
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device="cpu").to(x0.device)
    ab = _coef(schedule.alpha_bars, t, x0)
    return torch.sqrt(ab) * x0 + torch.sqrt(1.0 - ab) * noise


def score_from_displacement(d: torch.Tensor, t, schedule: Schedule) -> torch.Tensor:
    """The note's score ŝ from a data-scale displacement d: ŝ = d / √(1 − ᾱ_t)."""
    return d / torch.sqrt(1.0 - _coef(schedule.alpha_bars, t, d))


def target_score_from_displacement(d: torch.Tensor, t, schedule: Schedule) -> torch.Tensor:
    """The note's target s* = E[−z | x^t, x^0] = √(β_t ᾱ_t) / (1 − ᾱ_t) · d (see the module docstring)."""
    b, ab = _coef(schedule.betas, t, d), _coef(schedule.alpha_bars, t, d)
    return torch.sqrt(b * ab) / (1.0 - ab) * d


def reverse_step(x_t: torch.Tensor, s_hat: torch.Tensor, t, schedule: Schedule) -> torch.Tensor:
    """The note's deterministic step: x^{t−1} = (x^t + (β_t √ᾱ_t / √(1−ᾱ_t)) · ŝ) / √α_t (scaled space)."""
    b, a, ab = (_coef(v, t, x_t) for v in (schedule.betas, schedule.alphas, schedule.alpha_bars))
    return (x_t + b * torch.sqrt(ab) / torch.sqrt(1.0 - ab) * s_hat) / torch.sqrt(a)


def reverse_step_data(x_a: torch.Tensor, d_hat: torch.Tensor, t, schedule: Schedule) -> torch.Tensor:
    """The same step in the data scale: x_a^{t−1} = x_a^t + β_t/(1−ᾱ_t) · d̂ (equal to :func:`reverse_step`
    with ŝ = d̂/√(1−ᾱ_t), mapped through x_a = x/√ᾱ)."""
    return x_a + _coef(schedule.betas, t, x_a) / (1.0 - _coef(schedule.alpha_bars, t, x_a)) * d_hat


# --- intermediates (training inputs x_a^t) -----------------------------------------------------------
def marginal_intermediate(x0: torch.Tensor, t, schedule: Schedule, *, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Strategy ``marginal`` (the note's, the default): x_a^t = x^t/√ᾱ_t with x^t ~ q(x^t | x^0),
    i.e. x_a^t = x^0 + σ_t ε. x_a^t − x^0 is Gaussian by construction."""
    return to_data_scale(q_sample(x0, t, schedule, generator=generator), t, schedule)


def nearest_intermediate(noisy: torch.Tensor, clean: torch.Tensor, t, t_input, schedule: Schedule) -> torch.Tensor:
    """Strategy ``nearest`` (the note's rejected alternative), built from nearest-clean-point assignment.

    Exact construction used here: every noisy input point ``y_i`` (noise level σ_{t_in}) is assigned
    its nearest clean point ``n_i``; its intermediate at step ``t ≤ t_in`` keeps the direction of its own
    noisy offset and shrinks it to the noise scale of step t,

        x_a^t_i = n_i + (σ_t / σ_{t_in}) · (y_i − n_i),

    so ``x_a^{t_in} = y`` and ``x_a^t → n`` as t → 0. Unlike the marginal it needs no point-wise
    correspondence between noisy and clean patches, and it is *not* a draw from q(x^t | x^0):
    ``x_a^t − x^0 = (n_i − x^0_i) + (σ_t/σ_{t_in})(y_i − n_i)`` mixes the discrete snapping error
    ``n_i − x^0_i`` (often exactly 0) with the residual to the nearest sample, whose tangential part
    is truncated at the sampling spacing — a peaked, heavy-tailed law that the Jarque–Bera test rejects.

    Args:
        noisy: (N, 3) or (B, N, 3) noisy points y in the data scale.
        clean: (M, 3) or (B, M, 3) clean points.
        t, t_input: target step and the input's step (ints, or (B,) tensors).
    """
    squeeze = noisy.dim() == 2
    y = noisy.unsqueeze(0) if squeeze else noisy
    c = clean.unsqueeze(0) if squeeze else clean
    nearest = torch.empty_like(y)
    for b in range(y.shape[0]):  # cKDTree: exact, O(N log M) memory-light; no (N, M) matrix
        _, idx = cKDTree(c[b].detach().cpu().numpy()).query(y[b].detach().cpu().numpy(), k=1)
        nearest[b] = c[b][torch.as_tensor(idx, device=c.device)]
    ratio = _coef(schedule.sigmas, t, y) / _coef(schedule.sigmas, t_input, y)
    out = nearest + ratio * (y - nearest)
    return out[0] if squeeze else out


# --- losses ---------------------------------------------------------------------------------------
def sbd_loss(s_hat: torch.Tensor, s_star: torch.Tensor, t, schedule: Schedule) -> torch.Tensor:
    """The note's corrected loss, ½ ‖(β_t √ᾱ_t/√(1−ᾱ_t)) ŝ − √(1−α_t) s*‖², summed over xyz, mean over points.

    s_hat, s_star: (B, ..., 3) in the note's units (:func:`score_from_displacement`,
    :func:`target_score_from_displacement`); t: int or (B,) steps.
    """
    b, ab = _coef(schedule.betas, t, s_hat), _coef(schedule.alpha_bars, t, s_hat)
    model_move = b * torch.sqrt(ab) / torch.sqrt(1.0 - ab) * s_hat
    target_move = torch.sqrt(1.0 - _coef(schedule.alphas, t, s_hat)) * s_star
    return 0.5 * ((model_move - target_move) ** 2).sum(dim=-1).mean()


def score_loss(s_hat: torch.Tensor, s_star: torch.Tensor, sigma_dsm: float = 0.01) -> torch.Tensor:
    """ScoreDenoise's unweighted loss ½ ‖ŝ − s*‖² / σ_dsm (ŝ, s* displacements, (..., 3); sum xyz, mean points)."""
    return 0.5 * ((s_hat - s_star) ** 2).sum(dim=-1).mean() / sigma_dsm


def displacement_loss(d_hat: torch.Tensor, d: torch.Tensor, t, schedule: Schedule, loss: str = "sbd", sigma_dsm: float = 0.01) -> torch.Tensor:
    """Either training loss from the network's displacement d̂ and the target d (both (B, ..., 3), data scale).

    ``loss="sbd"`` is the note's loss divided by the constant ``σ_dsm · mean_{t=2..T} w_t``
    (:func:`sbd_loss_scale`): the same minimiser and the same relative weighting of the steps, on the
    scale of ``loss="score"``. Un-normalised, its gradients are ~400× smaller and fall to the size of
    Adam's ε, which then stalls training (measured: validation flat for 500 iterations while the
    ``score`` loss improved); normalised, the two losses differ only in how they weight the steps, and
    with a geometric schedule (constant w_t) they are identical.
    """
    if loss == "sbd":
        note = sbd_loss(score_from_displacement(d_hat, t, schedule), target_score_from_displacement(d, t, schedule), t, schedule)
        return note / (sigma_dsm * sbd_loss_scale(schedule))
    if loss == "score":
        return score_loss(d_hat, d, sigma_dsm)
    raise InputError(f"unknown loss {loss!r} (choose from {', '.join(LOSSES)})")


def sbd_loss_scale(schedule: Schedule) -> float:
    """Mean of the note's step weight w_t over the trained steps t = 2..T (the normaliser of ``loss="sbd"``)."""
    return float(sbd_weight(torch.arange(2, schedule.T + 1), schedule).mean()) if schedule.T >= 2 else 1.0


def sbd_weight(t, schedule: Schedule) -> torch.Tensor:
    """w_t = (β_t √ᾱ_t / (1 − ᾱ_t))²: loss="sbd" equals ½ w_t ‖d̂ − d‖²."""
    t = torch.as_tensor(t)
    return (schedule.betas[t] * torch.sqrt(schedule.alpha_bars[t]) / (1.0 - schedule.alpha_bars[t])) ** 2
