"""Samplers return exactly N points on the surface, deterministically; noise models have the σ they claim."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from sbdbench.data.noise import NOISE_KINDS, add_noise
from sbdbench.data.sampling import first_dart_throwing, sample, sample_poisson, sample_poisson_pcu, sample_uniform
from sbdbench.errors import InputError

import importlib.util

needs_pcu = pytest.mark.skipif(importlib.util.find_spec("point_cloud_utils") is None, reason="point_cloud_utils not installed")


@pytest.fixture(scope="module")
def sphere():
    m = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    return np.asarray(m.vertices), np.asarray(m.faces)


@pytest.fixture(scope="module")
def box():
    m = trimesh.creation.box(extents=(1.0, 0.5, 0.2))
    return np.asarray(m.vertices), np.asarray(m.faces)


@pytest.mark.parametrize("method", ["poisson", "uniform", pytest.param("poisson_pcu", marks=needs_pcu)])
@pytest.mark.parametrize("n", [1, 7, 1000, 2501])
def test_exact_n_and_deterministic(box, method, n):
    a = sample(*box, n, seed=3, method=method)
    b = sample(*box, n, seed=3, method=method)
    assert a.shape == (n, 3)
    assert np.array_equal(a, b)
    if n > 1:
        assert not np.array_equal(a, sample(*box, n, seed=4, method=method))


@pytest.mark.parametrize("sampler", [sample_poisson, sample_uniform, pytest.param(sample_poisson_pcu, marks=needs_pcu)])
def test_points_lie_on_the_surface(box, sampler):
    pts = sampler(*box, 3000, 1)
    half = np.array([0.5, 0.25, 0.1])
    # on a box surface, at least one coordinate sits on its face and none is outside
    assert (np.abs(pts) <= half + 1e-9).all()
    assert np.isclose(np.abs(pts), half, atol=1e-9).any(axis=1).all()


def test_uniform_is_area_weighted(box):
    pts = sample_uniform(*box, 60000, 0)
    on_big_faces = np.isclose(np.abs(pts[:, 2]), 0.1, atol=1e-9).mean()
    assert on_big_faces == pytest.approx(0.5 / 0.8, abs=0.01)  # face areas 0.5 (z), 0.2 (y), 0.1 (x), each twice


def test_poisson_is_blue_noise(sphere):
    n = 4000
    poisson, uniform = sample_poisson(*sphere, n, 2), sample_uniform(*sphere, n, 2)
    nn = lambda p: cKDTree(p).query(p, k=2)[0][:, 1]
    dp, du = nn(poisson), nn(uniform)
    assert dp.min() > 0.8 * dp.mean()             # a true minimum distance
    assert du.min() < 0.2 * du.mean()             # uniform clumps
    assert dp.std() / dp.mean() < 0.5 * du.std() / du.mean()


def test_dart_throwing_matches_the_sequential_definition():
    pts = np.random.default_rng(5).random((400, 3))
    r = 0.12
    kept = []
    for i, p in enumerate(pts):
        if all(np.linalg.norm(p - pts[j]) > r for j in kept):
            kept.append(i)
    assert first_dart_throwing(pts, r).tolist() == kept


@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
def test_bad_n(box, bad):
    with pytest.raises(InputError, match="positive integer"):
        sample_poisson(*box, bad, 0)


def test_bad_meshes_for_sampling():
    with pytest.raises(InputError, match="no faces"):
        sample_uniform(np.zeros((3, 3)), np.zeros((0, 3), dtype=int), 10, 0)
    with pytest.raises(InputError, match="NaN/Inf"):
        sample_poisson(np.array([[0, 0, 0], [1, 0, 0], [np.nan, 1, 0]]), np.array([[0, 1, 2]]), 10, 0)
    with pytest.raises(InputError, match="unknown sampler"):
        sample(np.eye(3), np.array([[0, 1, 2]]), 10, 0, method="grid")


# --- noise ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clean():
    pts = np.random.default_rng(1).normal(size=(50000, 3))
    return pts / np.linalg.norm(pts, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", ["gaussian", "laplace"])
@pytest.mark.parametrize("sigma", [0.01, 0.03])
def test_sigma_recovered_within_3_percent(clean, kind, sigma):
    res = add_noise(clean, sigma, kind, seed=11) - clean
    assert res.std() == pytest.approx(sigma, rel=0.03)
    assert np.abs(res.mean(axis=0)).max() < 0.05 * sigma


def test_kurtosis_tells_the_models_apart(clean):
    from scipy.stats import kurtosis

    gauss = (add_noise(clean, 0.02, "gaussian", seed=1) - clean).ravel()
    lap = (add_noise(clean, 0.02, "laplace", seed=1) - clean).ravel()
    assert abs(kurtosis(gauss)) < 0.1
    assert kurtosis(lap) == pytest.approx(3.0, abs=0.3)


def test_uniform_ball(clean):
    res = add_noise(clean, 0.02, "uniform-ball", seed=2) - clean
    r = np.linalg.norm(res, axis=1)
    assert r.max() <= 0.02 + 1e-12
    assert np.median(r) == pytest.approx(0.02 * 0.5 ** (1 / 3), rel=0.03)  # uniform in the ball: P(r < t) = (t/σ)³


def test_anisotropic_covariance(clean):
    cov = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    res = add_noise(clean, 0.02, "anisotropic", seed=3, cov=cov) - clean
    expected = 0.02 ** 2 * cov * 3.0 / np.trace(cov)
    assert np.allclose(np.cov(res.T), expected, atol=0.04 * expected.max())
    with pytest.raises(InputError, match="positive-definite"):
        add_noise(clean, 0.02, "anisotropic", cov=-np.eye(3))


def test_outliers(clean):
    noisy = add_noise(clean, 0.01, "outliers", seed=4, fraction=0.05, extent=1.5)
    far = np.linalg.norm(noisy - clean, axis=1) > 0.1
    assert far.mean() == pytest.approx(0.05, abs=0.01)
    assert (np.abs(noisy) <= 1.5 + 0.1).all()
    with pytest.raises(InputError, match="fraction"):
        add_noise(clean, 0.01, "outliers", fraction=1.5)


def test_scanner_ray_moves_points_along_the_ray(clean):
    scanner = np.array([0.0, 0.0, 3.0])
    res = add_noise(clean, 0.02, "scanner_ray", seed=5, scanner=scanner) - clean
    ray = clean - scanner
    cross = np.linalg.norm(np.cross(res, ray), axis=1) / np.linalg.norm(ray, axis=1)
    assert cross.max() < 1e-12
    assert res.std() * np.sqrt(3) == pytest.approx(0.02, rel=0.03)


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_every_model_is_seeded_and_keeps_rows(clean, kind):
    a = add_noise(clean[:500], 0.02, kind, seed=9)
    assert a.shape == (500, 3)
    assert np.array_equal(a, add_noise(clean[:500], 0.02, kind, seed=9))
    assert not np.array_equal(a, add_noise(clean[:500], 0.02, kind, seed=10))
    assert np.array_equal(add_noise(clean[:500], 0.0, "gaussian", seed=9), clean[:500])


def test_noise_errors(clean):
    with pytest.raises(InputError, match="≥ 0"):
        add_noise(clean, -0.01)
    with pytest.raises(InputError, match="≥ 0"):
        add_noise(clean, float("nan"))
    with pytest.raises(InputError, match="unknown noise kind"):
        add_noise(clean, 0.01, "pink")
    with pytest.raises(InputError, match="no option"):
        add_noise(clean, 0.01, "gaussian", fraction=0.1)
    with pytest.raises(InputError, match="NaN/Inf"):
        add_noise(np.array([[0.0, np.inf, 0.0]]), 0.01)
