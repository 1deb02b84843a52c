"""Classical denoisers: each one really removes noise (sphere and cube), honours its parameters,
and the frozen-settings / tuning helpers behave."""

from __future__ import annotations

import numpy as np
import pytest

from sbdbench.errors import InputError
from sbdbench.methods import make_method
from sbdbench.methods.classical._common import estimate_noise, mean_spacing, neighbourhood
from sbdbench.methods.settings import frozen_params, nearest_cell
from sbdbench.protocol import TunedCell
from sbdbench.methods.tuning import grid_points, settings_toml

CLASSICAL = ["pca", "jet", "bilateral", "mls", "wlop", "laplacian", "taubin", "graph_lap"]
SIGMA = 0.02


def _sphere(n: int, rng) -> np.ndarray:
    p = rng.normal(size=(n, 3))
    return p / np.linalg.norm(p, axis=1, keepdims=True)


def _sphere_error(x: np.ndarray) -> float:
    return float(np.abs(np.linalg.norm(x, axis=1) - 1.0).mean())


HALF = 1.0 / np.sqrt(3.0)  # cube inscribed in the unit sphere


def _cube(n: int, rng) -> np.ndarray:
    face = rng.integers(0, 6, size=n)
    uv = rng.uniform(-HALF, HALF, size=(n, 2))
    p = np.empty((n, 3))
    axis, sign = face // 2, np.where(face % 2 == 0, 1.0, -1.0)
    for a in range(3):
        rows = axis == a
        others = [b for b in range(3) if b != a]
        p[rows, a] = sign[rows] * HALF
        p[rows, others[0]] = uv[rows, 0]
        p[rows, others[1]] = uv[rows, 1]
    return p


def _cube_error(x: np.ndarray) -> float:
    q = np.abs(x) - HALF
    outside = np.linalg.norm(np.maximum(q, 0.0), axis=1)
    inside = np.minimum(q.max(axis=1), 0.0)
    return float(np.abs(outside + inside).mean())


@pytest.fixture(scope="module")
def noisy_sphere():
    rng = np.random.default_rng(0)
    return _sphere(4000, rng) + SIGMA * rng.normal(size=(4000, 3))


@pytest.fixture(scope="module")
def noisy_cube():
    rng = np.random.default_rng(1)
    return _cube(4000, rng) + SIGMA * rng.normal(size=(4000, 3))


@pytest.mark.parametrize("name", CLASSICAL)
def test_reduces_error_on_noisy_sphere(name, noisy_sphere):
    out = make_method(name).denoise(noisy_sphere, noise_level=SIGMA)
    before, after = _sphere_error(noisy_sphere), _sphere_error(out)
    assert out.shape == noisy_sphere.shape
    assert after < 0.7 * before, f"{name}: sphere error {before:.4f} -> {after:.4f}"


@pytest.mark.parametrize("name", CLASSICAL)
def test_reduces_error_on_noisy_cube(name, noisy_cube):
    out = make_method(name).denoise(noisy_cube, noise_level=SIGMA)
    before, after = _cube_error(noisy_cube), _cube_error(out)
    assert after < 0.8 * before, f"{name}: cube error {before:.4f} -> {after:.4f}"


def test_noisy_is_the_identity(noisy_sphere):
    out = make_method("noisy").denoise(noisy_sphere)
    np.testing.assert_allclose(out, noisy_sphere, atol=1e-12)


def test_surface_fitters_keep_points_on_a_plane_and_nearly_on_a_quadric():
    rng = np.random.default_rng(2)
    xy = rng.uniform(-1, 1, size=(2000, 2))
    plane = np.column_stack([xy, 0.4 * xy[:, 0] - 0.3 * xy[:, 1] + 0.2])
    quadric = np.column_stack([xy, 0.3 * xy[:, 0] ** 2 - 0.2 * xy[:, 1] ** 2 + 0.1 * xy[:, 0] * xy[:, 1]])
    for name in ("jet", "mls", "pca", "bilateral"):
        out = make_method(name).denoise(plane, noise_level=0.0)
        assert np.abs(out - plane).max() < 1e-8, name
    for name in ("jet", "mls"):  # degree-2 fits: exact up to the tilt of the local frame
        out = make_method(name, k=20).denoise(quadric, noise_level=0.0)
        assert np.abs(out - quadric).max() < 1e-4, name


def test_more_iterations_smooth_more():
    rng = np.random.default_rng(5)
    plane = np.column_stack([rng.uniform(-1, 1, size=(3000, 2)), 0.02 * rng.normal(size=3000)])
    for name in ("pca", "bilateral", "laplacian"):
        one = np.abs(make_method(name, iterations=1).denoise(plane, noise_level=0.02)[:, 2]).mean()
        three = np.abs(make_method(name, iterations=3).denoise(plane, noise_level=0.02)[:, 2]).mean()
        assert three < one, name


def test_explicit_k_overrides_radius_scale(noisy_sphere):
    a = make_method("pca", k=12, radius_scale=1.0).denoise(noisy_sphere, noise_level=SIGMA)
    b = make_method("pca", k=12, radius_scale=5.0).denoise(noisy_sphere, noise_level=SIGMA)
    np.testing.assert_array_equal(a, b)


def test_neighbourhood_grows_with_resolution_and_noise():
    rng = np.random.default_rng(3)
    small = _sphere(2000, rng)
    large = _sphere(16000, rng)
    k_small, _, s_small = neighbourhood(small, 0.02, radius_scale=3.0)
    k_large, _, s_large = neighbourhood(large, 0.02, radius_scale=3.0)
    k_quiet, _, _ = neighbourhood(large, 0.005, radius_scale=3.0)
    assert s_large < s_small
    assert k_large > k_small
    assert k_quiet < k_large
    # mean spacing of a sphere of area 4π: sqrt(4π / N)
    assert mean_spacing(large) == pytest.approx(np.sqrt(4 * np.pi / 16000), rel=0.25)


def test_noise_estimate_tracks_sigma():
    rng = np.random.default_rng(4)
    clean = _sphere(20000, rng)
    for sigma in (0.01, 0.03):
        est = estimate_noise(clean + sigma * rng.normal(size=clean.shape))
        assert 0.6 * sigma < est < 1.6 * sigma


@pytest.mark.parametrize("name,params,fragment", [
    ("jet", {"k": 3}, "k"),
    ("jet", {"degree": 7}, "degree"),
    ("pca", {"iterations": 0}, "iterations"),
    ("bilateral", {"radius_scale": -1.0}, "radius_scale"),
    ("taubin", {"lam": 0.5, "mu": -0.4}, "mu"),
    ("wlop", {"mu": 0.9}, "mu"),
    ("graph_lap", {"gamma": float("nan")}, "gamma"),
])
def test_bad_parameters_are_clear_errors(name, params, fragment, noisy_sphere):
    with pytest.raises(InputError, match=fragment):
        make_method(name, **params).denoise(noisy_sphere)


def test_unknown_parameter_is_rejected():
    with pytest.raises(InputError, match="no parameter"):
        make_method("jet", kk=3)


# --- frozen settings and tuning helpers ------------------------------------------------------------
CELLS = [
    {"n_points": 10000, "sigma": 0.01, "params": {"radius_scale": 2.0}},
    {"n_points": 10000, "sigma": 0.03, "params": {"radius_scale": 4.0}},
    {"n_points": 50000, "sigma": 0.02, "params": {"radius_scale": 5.0}},
]


def test_nearest_cell_prefers_resolution_then_sigma():
    cells = [TunedCell.from_dict(c) for c in CELLS]
    assert nearest_cell(cells, 10000, 0.012).params == {"radius_scale": 2.0}
    assert nearest_cell(cells, 12000, 0.025).params == {"radius_scale": 4.0}
    assert nearest_cell(cells, 40000, 0.01).params == {"radius_scale": 5.0}
    assert nearest_cell([], 10000, 0.01) is None


def test_frozen_params_reads_the_toml_written_by_tuning(tmp_path):
    doc = {"method": "jet", "paper": "p", "sbdbench_version": "0", "date": "2026-11-25", "dataset": "synth", "split": "train",
           "score": "cd", "seed": 0, "fixed_params": {}, "grid": {"radius_scale": [2.0, 4.0], "iterations": [1, 2]},
           "cell": [{**c, "shapes": ["a", "b"], "cd": 1e-4, "noisy_cd": 3e-4, "seconds_per_shape": 0.1,
                     "trials": [{"radius_scale": 2.0, "iterations": 1, "cd": 1e-4}]} for c in CELLS]}
    (tmp_path / "jet.toml").write_text(settings_toml(doc))
    assert frozen_params("jet", 10000, 0.03, folder=tmp_path) == {"radius_scale": 4.0}
    assert frozen_params("jet", 50000, None, folder=tmp_path) == {"radius_scale": 5.0}
    assert frozen_params("pca", 10000, 0.01, folder=tmp_path) == {}  # no TOML: constructor defaults


def test_grid_points_is_the_full_product():
    pts = grid_points({"a": [1, 2], "b": [3, 4, 5]})
    assert len(pts) == 6 and pts[0] == {"a": 1, "b": 3} and pts[-1] == {"a": 2, "b": 5}
    assert grid_points({}) == [{}]


def test_committed_baselines_name_real_parameters():
    from sbdbench.methods.base import get_method_class
    from sbdbench.methods.settings import baselines_dir, load_settings

    for path in sorted(baselines_dir().glob("*.toml")):
        data = load_settings(path.stem)
        cls = get_method_class(data["method"])
        for cell in data.get("cell", []):
            assert set(cell["params"]) <= set(cls._param_names()), path
            cls(**cell["params"])._check_params()


def test_height_fit_smoother_needs_a_move():
    """jet and MLS share the k-NN passes; a subclass without ``_move`` cannot be built."""
    from sbdbench.methods.classical.jet import HeightFitSmoother

    class NoMove(HeightFitSmoother):
        pass

    with pytest.raises(TypeError, match="_move"):
        NoMove()
