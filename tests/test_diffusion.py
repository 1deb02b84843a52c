"""SBD's diffusion maths: schedules, forward marginal, the reverse step (checked with an oracle score), losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sbdbench.errors import InputError
from sbdbench.methods.learned import diffusion as D


def fibonacci_sphere(n: int, radius: float = 1.0) -> torch.Tensor:
    i = torch.arange(n, dtype=torch.float64) + 0.5
    phi = torch.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i
    return radius * torch.stack([torch.cos(theta) * torch.sin(phi), torch.sin(theta) * torch.sin(phi), torch.cos(phi)], dim=1)


@pytest.mark.parametrize("kind", D.SCHEDULE_KINDS)
def test_schedule_is_consistent_and_pinned_to_sigma_max(kind):
    s = D.make_schedule(T=12, kind=kind, sigma_min=0.002, sigma_max=0.04)
    assert s.T == 12
    assert torch.allclose(s.alphas, 1 - s.betas)
    assert torch.allclose(s.alpha_bars, torch.cumprod(s.alphas, 0))
    assert bool((s.betas[1:] > 0).all()) and bool((s.betas[1:] < 1).all())
    assert torch.allclose(s.sigmas, torch.sqrt((1 - s.alpha_bars) / s.alpha_bars))
    assert float(s.sigmas[-1]) == pytest.approx(0.04, rel=1e-6)
    assert bool((s.sigmas[1:] > s.sigmas[:-1]).all())
    assert float(s.step_fraction(1)) == pytest.approx(1.0)


def test_geometric_schedule_spans_sigma_range_with_equal_ratios():
    s = D.make_schedule(T=8, kind="geometric", sigma_min=0.004, sigma_max=0.032)
    assert float(s.sigmas[1]) == pytest.approx(0.004, rel=1e-9)
    ratios = (s.sigmas[2:] / s.sigmas[1:-1]).numpy()
    assert np.allclose(ratios, 2 ** (1 / 7 * 3))


def test_bad_schedule_arguments_are_one_line_errors():
    with pytest.raises(InputError):
        D.make_schedule(T=0)
    with pytest.raises(InputError):
        D.make_schedule(kind="sigmoidish")
    with pytest.raises(InputError):
        D.make_schedule(sigma_min=0.05, sigma_max=0.01)
    with pytest.raises(InputError):
        D.make_schedule().start_step(float("nan"))


def test_start_step_matches_the_closest_sigma():
    s = D.make_schedule(T=10, kind="geometric", sigma_min=0.003, sigma_max=0.035)
    assert s.start_step(0.0) == 0
    for sigma in (0.005, 0.01, 0.02, 0.03):
        t = s.start_step(sigma)
        assert abs(float(s.sigmas[t]) - sigma) == pytest.approx(float((s.sigmas - sigma).abs().min()))
    assert s.start_step(1.0) == s.T  # above the range: clamp to T


def test_forward_marginal_has_the_schedule_statistics():
    s = D.make_schedule(T=10)
    x0 = fibonacci_sphere(20000)
    gen = torch.Generator().manual_seed(0)
    t = 7
    x_t = D.q_sample(x0, t, s, generator=gen)
    resid = (x_t - torch.sqrt(s.alpha_bars[t]) * x0) / torch.sqrt(1 - s.alpha_bars[t])
    assert float(resid.mean()) == pytest.approx(0.0, abs=0.02)
    assert float(resid.std()) == pytest.approx(1.0, rel=0.02)
    x_a = D.marginal_intermediate(x0, t, s, generator=gen)
    assert float((x_a - x0).std()) == pytest.approx(float(s.sigmas[t]), rel=0.02)
    assert torch.allclose(D.from_data_scale(D.to_data_scale(x_t, t, s), t, s), x_t)


def test_reverse_step_scaled_and_data_scale_forms_agree():
    s = D.make_schedule(T=10, kind="linear")
    gen = torch.Generator().manual_seed(1)
    x_a = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    d_hat = 0.01 * torch.randn(50, 3, generator=gen, dtype=torch.float64)
    for t in (1, 4, 10):
        x_t = D.from_data_scale(x_a, t, s)
        prev = D.reverse_step(x_t, D.score_from_displacement(d_hat, t, s), t, s)
        prev_a = D.to_data_scale(prev, t - 1, s)
        assert torch.allclose(prev_a, D.reverse_step_data(x_a, d_hat, t, s), atol=1e-12)


def test_per_step_coefficients_broadcast_over_a_batch_of_steps():
    s = D.make_schedule(T=10)
    x_a = torch.randn(3, 5, 3, dtype=torch.float64)
    d = torch.randn(3, 5, 3, dtype=torch.float64)
    t = torch.tensor([2, 5, 9])
    batched = D.reverse_step_data(x_a, d, t, s)
    for b in range(3):
        assert torch.allclose(batched[b], D.reverse_step_data(x_a[b], d[b], int(t[b]), s))


@pytest.mark.parametrize("kind", D.SCHEDULE_KINDS)
@pytest.mark.parametrize("sigma", [0.01, 0.02, 0.03])
def test_reverse_chain_with_an_oracle_score_lands_on_the_clean_sphere(kind, sigma):
    """The oracle ŝ = exact displacement to the unit sphere; the chain from t* must end on the sphere,
    and after each step the distance must shrink by (1 − f_t), the posterior-mean contraction."""
    s = D.make_schedule(T=10, kind=kind)
    gen = torch.Generator().manual_seed(2)
    x0 = fibonacci_sphere(3000)
    y = x0 + sigma * torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    t_star = s.start_step(sigma)
    assert t_star >= 1

    def oracle(x_a):  # displacement to the nearest point of the unit sphere (data scale)
        r = x_a.norm(dim=1, keepdim=True)
        return x_a / r - x_a

    x_t = D.from_data_scale(y, t_star, s)
    radial = (y.norm(dim=1) - 1).abs()
    for t in range(t_star, 0, -1):
        x_a = D.to_data_scale(x_t, t, s)
        x_t = D.reverse_step(x_t, D.score_from_displacement(oracle(x_a), t, s), t, s)
        new_radial = (D.to_data_scale(x_t, t - 1, s).norm(dim=1) - 1).abs()
        assert torch.allclose(new_radial, (1 - s.step_fraction(t)) * radial, atol=1e-9)
        radial = new_radial
    out = x_t  # ᾱ_0 = 1: scaled and data scale coincide
    assert float((out.norm(dim=1) - 1).abs().max()) < 1e-9
    assert float((y.norm(dim=1) - 1).abs().mean()) > 0.5 * sigma  # the input was noisy


def test_reverse_chain_with_the_training_target_as_oracle_denoises_a_sphere():
    """The realistic oracle (mean of the 4 nearest clean samples − x, ScoreDenoise's target)
    must bring a noisy sphere much closer to the surface than the input."""
    s = D.make_schedule()
    gen = torch.Generator().manual_seed(3)
    clean = fibonacci_sphere(4000)
    y = clean + 0.02 * torch.randn(clean.shape, generator=gen, dtype=torch.float64)
    from scipy.spatial import cKDTree

    tree = cKDTree(clean.numpy())
    x_a = y.clone()
    t_star = s.start_step(0.02)
    for t in range(t_star, 0, -1):
        _, idx = tree.query(x_a.numpy(), k=4)
        d = clean[torch.as_tensor(idx)].mean(dim=1) - x_a
        x_a = D.reverse_step_data(x_a, d, t, s)
    before = float((y.norm(dim=1) - 1).pow(2).mean())
    after = float((x_a.norm(dim=1) - 1).pow(2).mean())
    assert after < 0.05 * before


def test_sbd_loss_equals_weighted_displacement_regression():
    s = D.make_schedule(T=10)
    gen = torch.Generator().manual_seed(4)
    d_hat = 0.01 * torch.randn(4, 32, 3, generator=gen, dtype=torch.float64)
    d = 0.01 * torch.randn(4, 32, 3, generator=gen, dtype=torch.float64)
    t = torch.tensor([2, 3, 7, 10])
    loss = D.displacement_loss(d_hat, d, t, s, loss="sbd")
    w = D.sbd_weight(t, s).reshape(4, 1)
    expected = 0.5 * (w * ((d_hat - d) ** 2).sum(-1)).mean()
    assert float(loss) == pytest.approx(float(expected) / (0.01 * D.sbd_loss_scale(s)), rel=1e-10)
    assert D.sbd_loss_scale(s) == pytest.approx(float(D.sbd_weight(torch.arange(2, 11), s).mean()))
    # literal formula of the note, coefficient by coefficient
    b, ab, a = s.betas[t].reshape(4, 1, 1), s.alpha_bars[t].reshape(4, 1, 1), s.alphas[t].reshape(4, 1, 1)
    s_hat, s_star = D.score_from_displacement(d_hat, t, s), D.target_score_from_displacement(d, t, s)
    literal = 0.5 * ((b * ab.sqrt() / (1 - ab).sqrt() * s_hat - (1 - a).sqrt() * s_star) ** 2).sum(-1).mean()
    assert float(D.sbd_loss(s_hat, s_star, t, s)) == pytest.approx(float(literal), rel=1e-12)
    assert float(D.displacement_loss(d, d, t, s, loss="sbd")) == pytest.approx(0.0, abs=1e-30)


def test_losses_differ_only_in_step_weighting():
    """Geometric schedule (w_t constant to 3e-5): loss=sbd is loss=score. Linear: it re-weights the steps, mean 1."""
    gen = torch.Generator().manual_seed(5)
    d_hat = 0.01 * torch.randn(9, 16, 3, generator=gen, dtype=torch.float64)
    d = 0.01 * torch.randn(9, 16, 3, generator=gen, dtype=torch.float64)
    t = torch.arange(2, 11)
    geo = D.make_schedule(T=10, kind="geometric")
    assert float(D.displacement_loss(d_hat, d, t, geo, loss="sbd")) == pytest.approx(float(D.displacement_loss(d_hat, d, t, geo, loss="score")), rel=1e-4)  # w_t constant up to O(σ²)
    lin = D.make_schedule(T=10, kind="linear")
    per_step = [float(D.displacement_loss(d_hat[i : i + 1], d[i : i + 1], int(t[i]), lin, loss="sbd"))
                / float(D.displacement_loss(d_hat[i : i + 1], d[i : i + 1], int(t[i]), lin, loss="score")) for i in range(9)]
    assert per_step[0] > 5 * per_step[-1]  # small t weighted up, large t down
    assert sum(per_step) / 9 == pytest.approx(1.0, rel=1e-9)


def test_score_loss_is_scoredenoise_unweighted_loss():
    d_hat = torch.tensor([[[0.01, 0.0, 0.0]]])
    d = torch.zeros(1, 1, 3)
    assert float(D.score_loss(d_hat, d)) == pytest.approx(0.5 * 1e-4 / 0.01)
    assert float(D.displacement_loss(d_hat, d, 5, D.make_schedule(), loss="score")) == pytest.approx(0.5 * 1e-4 / 0.01)
    with pytest.raises(InputError):
        D.displacement_loss(d_hat, d, 5, D.make_schedule(), loss="l1")


def test_sbd_target_score_is_the_conditional_mean_of_the_step_noise():
    """s* = E[−z | x^t, x^0]: simulate x^{t−1} ~ q(·|x^0), x^t = √α x^{t−1} + √β z, regress −z on d = x^0 − x_a^t."""
    s = D.make_schedule(T=10)
    t = 6
    gen = torch.Generator().manual_seed(5)
    n = 200000
    x0 = torch.zeros(n, 1, dtype=torch.float64)
    x_prev = D.q_sample(x0, t - 1, s, generator=gen)
    z = torch.randn(n, 1, generator=gen, dtype=torch.float64)
    x_t = torch.sqrt(s.alphas[t]) * x_prev + torch.sqrt(s.betas[t]) * z
    d = x0 - D.to_data_scale(x_t, t, s)
    slope = float((d * -z).sum() / (d * d).sum())  # least squares −z ≈ k·d
    k = float(torch.sqrt(s.betas[t] * s.alpha_bars[t]) / (1 - s.alpha_bars[t]))
    assert slope == pytest.approx(k, rel=0.03)
    assert float(D.target_score_from_displacement(torch.ones(1, 3, dtype=torch.float64), t, s)[0, 0]) == pytest.approx(k)


def test_nearest_intermediate_interpolates_between_nearest_clean_point_and_input():
    s = D.make_schedule(T=10)
    clean = fibonacci_sphere(2000)
    gen = torch.Generator().manual_seed(6)
    t_in = s.start_step(0.02)
    y = clean + s.sigmas[t_in] * torch.randn(clean.shape, generator=gen, dtype=torch.float64)
    assert torch.allclose(D.nearest_intermediate(y, clean, t_in, t_in, s), y)
    x1 = D.nearest_intermediate(y, clean, 1, t_in, s)
    from scipy.spatial import cKDTree

    _, idx = cKDTree(clean.numpy()).query(y.numpy(), k=1)
    n = clean[torch.as_tensor(idx)]
    ratio = float(s.sigmas[1] / s.sigmas[t_in])
    assert torch.allclose(x1, n + ratio * (y - n))
    batched = D.nearest_intermediate(y.unsqueeze(0).repeat(2, 1, 1), clean.unsqueeze(0).repeat(2, 1, 1), torch.tensor([1, t_in]), t_in, s)
    assert torch.allclose(batched[0], x1) and torch.allclose(batched[1], y)
