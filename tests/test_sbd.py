"""The ``sbd`` method: registration, weights, the reverse chain on real weights, training loss and recipe pieces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sbdbench.errors import DataError, InputError
from sbdbench.methods.base import make_method
from sbdbench.methods.learned import diffusion as D
from sbdbench.methods.learned.checkpoint import load_checkpoint, project_weights_path, save_project_weights
from sbdbench.methods.learned.data_patches import PatchSampler
from sbdbench.methods.learned.model import ScoreDenoiseModel
from sbdbench.methods.learned.sbd import SBD, denoise_patches, scatter_mean, schedule_from_params
from sbdbench.methods.learned.sbd_training import chamfer_patches, clean_displacement, sample_steps, sbd_batch_loss


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors: one torch thread is faster and avoids oversubscribing a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def torus(n: int, seed: int = 0, r_major: float = 1.0, r_minor: float = 0.35) -> np.ndarray:
    """Area-uniform samples of a torus (rejection on the area element), in the unit sphere."""
    rng = np.random.default_rng(seed)
    out = []
    while sum(len(o) for o in out) < n:
        u, v, w = rng.uniform(0, 2 * np.pi, 4 * n), rng.uniform(0, 2 * np.pi, 4 * n), rng.uniform(0, 1, 4 * n)
        keep = w < (r_major + r_minor * np.cos(v)) / (r_major + r_minor)
        u, v = u[keep], v[keep]
        out.append(np.c_[(r_major + r_minor * np.cos(v)) * np.cos(u), (r_major + r_minor * np.cos(v)) * np.sin(u), r_minor * np.sin(v)])
    pts = np.concatenate(out)[:n]
    return pts / (r_major + r_minor)


def torus_sq_dist(points: np.ndarray, r_major: float = 1.0, r_minor: float = 0.35) -> float:
    """Mean squared distance of points (in :func:`torus`'s frame) to the exact torus surface."""
    p = points * (r_major + r_minor)
    ring = np.hypot(np.hypot(p[:, 0], p[:, 1]) - r_major, p[:, 2])
    return float((((ring - r_minor) / (r_major + r_minor)) ** 2).mean())


def cd(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.spatial import cKDTree

    return float((cKDTree(b).query(a)[0] ** 2).mean() + (cKDTree(a).query(b)[0] ** 2).mean())


def test_sbd_is_registered_with_its_parameters():
    method = make_method("sbd", T=8, schedule="linear")
    assert isinstance(method, SBD)
    params = method.get_params()
    assert params["T"] == 8 and params["schedule"] == "linear" and params["weights"] == "project" and params["device"] == "cpu"
    assert method.make_schedule().T == 8
    with pytest.raises(InputError):
        make_method("sbd", steps=3)
    with pytest.raises(InputError):
        SBD(schedule="quadratic").make_schedule()


def test_schedule_from_params_rejects_unknown_keys():
    assert schedule_from_params({"T": 5, "schedule": "cosine"}).T == 5
    with pytest.raises(InputError):
        schedule_from_params({"betas": 1})


def test_missing_weights_file_is_a_one_line_error(tmp_path):
    with pytest.raises(DataError):
        SBD(weights=str(tmp_path / "nope.pt")).denoise(torus(200), noise_level=0.01)


def test_scatter_mean_averages_over_the_anchors_that_chose_a_point():
    values = torch.tensor([[[[1.0, 0, 0], [3.0, 0, 0]], [[5.0, 0, 0], [7.0, 0, 0]]]])  # (1, 2 anchors, 2, 3)
    idx = torch.tensor([[[0, 1], [1, 1]]])
    out = scatter_mean(values, idx, n=3)
    assert out[0, :, 0].tolist() == [1.0, 5.0, 0.0]  # point 1: (3 + 5 + 7)/3; point 2: nobody → 0


def test_zero_noise_level_returns_the_input_unchanged(tmp_path):
    path = tmp_path / "w.pt"
    torch.manual_seed(0)
    save_project_weights(path, ScoreDenoiseModel(), {"method": "sbd"})
    pts = torus(300)
    out = SBD(weights=str(path)).denoise(pts, noise_level=0.0)
    assert np.allclose(out, pts, atol=1e-6)


def test_untrained_weights_still_keep_the_point_count(tmp_path):
    path = tmp_path / "w.pt"
    torch.manual_seed(0)
    save_project_weights(path, ScoreDenoiseModel(), {"method": "sbd"})
    pts = torus(1500) * 3.0 + 1.0  # any frame
    out = SBD(weights=str(path), patch_size=500).denoise(pts, noise_level=0.005)
    assert out.shape == pts.shape and np.isfinite(out).all()


def test_sbd_chain_with_the_official_networks_denoises_a_torus(reference_dir):
    """The sampler alone (ScoreDenoise's released networks predict the displacement SBD steps along)."""
    ckpt = reference_dir / "score-denoise" / "ckpt.pt"
    clean = torus(2000)
    noisy = clean + 0.02 * np.random.default_rng(1).standard_normal(clean.shape)
    method = SBD(weights=str(ckpt))
    out = method.denoise(noisy, noise_level=0.02)
    assert out.shape == noisy.shape
    assert torus_sq_dist(out) < 0.3 * torus_sq_dist(noisy)
    assert cd(out, clean) < 0.8 * cd(noisy, clean)
    # estimated noise level (no noise_level given) picks a start step near the true one
    sched = method.make_schedule()
    t_est = method.start_step(noisy, None, sched)
    assert abs(t_est - sched.start_step(0.02)) <= 1


def test_denoise_patches_runs_t_star_steps_and_is_deterministic(reference_dir):
    model = ScoreDenoiseModel()
    state, _ = load_checkpoint(reference_dir / "score-denoise" / "ckpt.pt")
    model.load_state_dict(state)
    model.eval()
    clean = torch.as_tensor(torus(1000), dtype=torch.float32).unsqueeze(0)
    noisy = clean + 0.015 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    sched = D.make_schedule()
    t_star = sched.start_step(0.015)
    a = denoise_patches(model, noisy, sched, t_star)
    b = denoise_patches(model, noisy, sched, t_star)
    assert torch.equal(a, b)
    assert torus_sq_dist(a[0].double().numpy()) < 0.5 * torus_sq_dist(noisy[0].double().numpy())  # a whole sparse torus as one patch
    assert torch.equal(denoise_patches(model, noisy, sched, 0), noisy)


def test_sample_steps_stay_in_two_to_the_input_step():
    sched = D.make_schedule(T=10)
    sigma = torch.tensor([0.005, 0.01, 0.02, 0.02, 0.001] * 40)
    t, t_in = sample_steps(sigma, sched, torch.Generator().manual_seed(0))
    assert bool((t >= 2).all()) and bool((t <= t_in).all())
    assert t_in.tolist()[:5] == [max(2, sched.start_step(float(s))) for s in sigma[:5]]
    assert len(set(t[sigma == 0.02].tolist())) > 3  # spread over the steps, not a constant


def test_clean_displacement_points_onto_the_clean_points():
    clean = torch.as_tensor(torus(500), dtype=torch.float32).unsqueeze(0)
    assert float(clean_displacement(clean, clean, 1).abs().max()) == 0.0


def _sampler() -> PatchSampler:
    return PatchSampler([torus(600).astype(np.float32)], patch_size=100, seed=0)


@pytest.mark.parametrize("loss, intermediate", [("sbd", "marginal"), ("score", "nearest")])
def test_training_loss_decreases_when_fitting_one_batch(loss, intermediate):
    torch.manual_seed(0)
    model = ScoreDenoiseModel()
    batch = _sampler().sample(2)
    sched = D.make_schedule()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def value(seed):
        return sbd_batch_loss(batch, model, schedule=sched, loss=loss, intermediate=intermediate, num_train_points=16,
                              frame_knn=8, generator=torch.Generator().manual_seed(seed))

    model.train()  # BatchNorm on batch statistics throughout: the loss being optimised
    with torch.no_grad():
        before = float(value(123))
    for _ in range(15):  # the same draw each time: the gradient must fit it
        opt.zero_grad()
        value(123).backward()
        opt.step()
    with torch.no_grad():
        after = float(value(123))
    assert after < 0.5 * before


def test_bad_loss_or_strategy_is_a_one_line_error():
    batch = _sampler().sample(1)
    with pytest.raises(InputError):
        sbd_batch_loss(batch, ScoreDenoiseModel(), schedule=D.make_schedule(), loss="l2")
    with pytest.raises(InputError):
        sbd_batch_loss(batch, ScoreDenoiseModel(), schedule=D.make_schedule(), intermediate="furthest")


def test_shipped_weights_load_safely_with_plain_metadata():
    path = project_weights_path("sbd")
    if not path.is_file():
        pytest.skip(f"{path} not shipped in this build")
    obj = torch.load(path, map_location="cpu", weights_only=True)  # no allow-list needed
    assert set(obj) == {"state_dict", "meta"}
    meta = obj["meta"]
    assert meta["method"] == "sbd" and meta["loss"] in D.LOSSES and meta["intermediate"] in D.INTERMEDIATES
    model = ScoreDenoiseModel()
    model.load_state_dict(obj["state_dict"], strict=True)
    clean = torus(2000)
    noisy = clean + 0.02 * np.random.default_rng(2).standard_normal(clean.shape)
    out = SBD().denoise(noisy, noise_level=0.02)
    assert torus_sq_dist(out) < 0.7 * torus_sq_dist(noisy)  # shipped weights (6,000 iterations): 0.55× (1,600: 0.67×)


def _random_weights_and_noisy_torus(tmp_path, seed: int) -> tuple:
    """Untrained networks saved as a weights file, and a 300-point torus at σ = 2 % (noise seed ``seed``)."""
    path = tmp_path / "w.pt"
    torch.manual_seed(0)
    save_project_weights(path, ScoreDenoiseModel(), {"method": "sbd"})
    rng = np.random.default_rng(seed)
    return path, torus(300) + rng.normal(0, 0.02, (300, 3))


def test_pass_count_below_one_is_refused_and_every_tuned_count_keeps_the_points(tmp_path):
    """``niters`` is tuned over 1..4 per (N, σ) (``baselines/sbd.toml``); 0 is a clear error, not the input back."""
    path, pts = _random_weights_and_noisy_torus(tmp_path, seed=1)
    with pytest.raises(InputError, match="niters"):
        SBD(weights=str(path), niters=0).denoise(pts, noise_level=0.02)
    for niters in SBD.tuning_grid["niters"]:
        out = SBD(weights=str(path), niters=niters).denoise(pts, noise_level=0.02)
        assert out.shape == pts.shape and np.isfinite(out).all()


def test_anchor_count_below_one_is_refused_and_every_tuned_count_is_used_and_keeps_the_points(tmp_path):
    """``frame_knn`` (current points each anchor scores per step) is tuned over 4/8/16; 0 is a clear error, and each
    tuned count changes the output (the parameter reaches the sampler) without changing the point count."""
    path, pts = _random_weights_and_noisy_torus(tmp_path, seed=3)
    with pytest.raises(InputError, match="frame_knn"):
        SBD(weights=str(path), frame_knn=0).denoise(pts, noise_level=0.02)
    outs = [SBD(weights=str(path), frame_knn=k).denoise(pts, noise_level=0.02) for k in SBD.tuning_grid["frame_knn"]]
    for out in outs:
        assert out.shape == pts.shape and np.isfinite(out).all()
    for a, b in zip(outs, outs[1:]):
        assert not np.allclose(a, b)


def test_subset_passes_denoise_fps_interleaved_subsets_on_their_own_and_keep_the_points(tmp_path):
    """``subset_passes`` (PD-Flow's 50K protocol): the first passes run on m = round(N / subset_size) subsets. It
    reaches the sampler when m ≥ 2, is a no-op when m = 1, and a bad value is a clear error."""
    path, pts = _random_weights_and_noisy_torus(tmp_path, seed=5)
    plain = SBD(weights=str(path), niters=2, patch_size=100).denoise(pts, noise_level=0.02)
    same = SBD(weights=str(path), niters=2, patch_size=100, subset_passes=1, subset_size=250).denoise(pts, noise_level=0.02)
    np.testing.assert_array_equal(plain, same)  # 300 / 250 → one subset: the plain passes
    split = SBD(weights=str(path), niters=2, patch_size=100, subset_passes=1, subset_size=150).denoise(pts, noise_level=0.02)
    assert split.shape == pts.shape and np.isfinite(split).all() and not np.allclose(split, plain)
    for bad in ({"subset_passes": -1}, {"subset_size": 31}):
        with pytest.raises(InputError, match=next(iter(bad))):
            SBD(weights=str(path), **bad).denoise(pts, noise_level=0.02)


def test_subset_passes_with_the_shipped_weights_denoise_a_torus():
    """Two subsets of 2,000 points, each denoised as a cloud of its own, then one pass over all 4,000 points. (At
    this small N the subsets are sparser than anything the networks were trained on, so the bounds are loose:
    plain passes reach 0.45 / 0.80 here, the subset path 0.56 / 0.89; uninitialised rows or a subset written twice
    would not come near.)"""
    clean = torus(4000, seed=4)
    noisy = clean + 0.02 * np.random.default_rng(6).standard_normal(clean.shape)
    out = SBD(niters=2, subset_passes=1, subset_size=2000, frame_knn=8).denoise(noisy, noise_level=0.02)
    assert out.shape == noisy.shape
    assert torus_sq_dist(out) < 0.7 * torus_sq_dist(noisy)
    assert cd(out, clean) < 0.95 * cd(noisy, clean)
