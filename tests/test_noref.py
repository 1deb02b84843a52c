"""No-reference figures (sbdbench.metrics.noref) and ``evaluate --pred X`` without GT, on small real data."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.spatial.transform import Rotation

from sbdbench.cli import main
from sbdbench.errors import InputError
from sbdbench.io import write_points
from sbdbench.metrics import noref_metrics, plane_distances, plane_residual, spacing_cv


def _plane(n: int, sigma: float, seed: int = 0) -> np.ndarray:
    """n points uniform on the square [-1, 1]² of z = 0, plus Gaussian noise of std sigma along z (world units)."""
    rng = np.random.default_rng(seed)
    return np.c_[rng.uniform(-1, 1, (n, 2)), rng.normal(0.0, sigma, n)]


def test_plane_residual_is_zero_on_a_plane_and_grows_with_sigma():
    values = [plane_residual(_plane(5000, s)) for s in (0.0, 0.0025, 0.005, 0.01, 0.02)]
    assert values[0] < 1e-12
    assert all(a < b for a, b in zip(values, values[1:])), values
    # at low noise (σ far below the 16-NN radius) it tracks the mean |N(0, σ²)| = 0.80 σ, in unit-sphere units
    sigma_frame = 0.0025 / np.sqrt(2.0)  # the square's max radius is √2
    assert 0.6 * sigma_frame < values[1] < 0.85 * sigma_frame


def test_plane_residual_is_invariant_to_translation_scale_and_rotation():
    cloud = _plane(4000, 0.01, seed=3)
    base = plane_residual(cloud)
    assert plane_residual(cloud * 250.0 + [1e3, -7.0, 42.0]) == pytest.approx(base, rel=1e-9)
    # a rotation changes the bounding box, hence the frame's radius, by the ratio of the max radii
    rot = Rotation.from_euler("xyz", [30, 40, 50], degrees=True).as_matrix()
    turned = cloud @ rot.T
    radius = lambda p: np.linalg.norm(p - (p.max(0) + p.min(0)) / 2, axis=1).max()  # noqa: E731
    assert plane_residual(turned) * radius(turned) == pytest.approx(base * radius(cloud), rel=1e-9)
    # in a fixed reference frame (the input's), a rotation changes nothing but that frame
    assert plane_residual(turned, frame=turned) == pytest.approx(plane_residual(turned), rel=1e-12)


def test_frame_option_and_per_point_distances():
    noisy = _plane(3000, 0.02, seed=5)
    smooth = noisy * [1, 1, 0.1]  # a 10x flatter version of the same cloud, same x/y extent
    d = plane_distances(smooth, frame=noisy)
    assert d.shape == (3000,) and (d >= 0).all()
    assert plane_residual(smooth, frame=noisy) < 0.2 * plane_residual(noisy)


def test_spacing_cv_sees_clustering():
    rng = np.random.default_rng(1)
    grid = np.stack(np.meshgrid(np.arange(60), np.arange(60)), -1).reshape(-1, 2) / 60.0
    regular = np.c_[grid, np.zeros(len(grid))]
    clustered = np.r_[regular[: len(regular) // 2], regular[len(regular) // 2:] * 0.1 + 0.5]
    assert spacing_cv(regular) < 0.05  # only the border points differ
    assert spacing_cv(clustered) > 0.5
    jitter = regular + np.c_[rng.normal(0, 0.003, (len(grid), 2)), np.zeros(len(grid))]
    assert 0 < spacing_cv(jitter) < spacing_cv(clustered)


def test_quadric_fit_removes_the_curvature_term():
    rng = np.random.default_rng(2)
    v = rng.normal(size=(6000, 3))
    sphere = v / np.linalg.norm(v, axis=1, keepdims=True)
    assert plane_residual(sphere, k=32, fit="quadric") < 0.2 * plane_residual(sphere, k=32)


@pytest.mark.parametrize("bad, match", [(np.zeros((3, 3)), "at least 4"), (np.full((10, 3), np.nan), "NaN"),
                                        (np.ones((10, 3)), "coincide")])
def test_bad_clouds_are_one_line_errors(bad, match):
    with pytest.raises(InputError, match=match):
        noref_metrics(bad)


def test_bad_k_and_fit():
    with pytest.raises(InputError, match="k must be"):
        plane_residual(_plane(100, 0.01), k=2)
    with pytest.raises(InputError, match="unknown local fit"):
        plane_residual(_plane(100, 0.01), fit="cubic")


def test_evaluate_pred_alone_prints_the_no_reference_figures(tmp_path):
    noisy = write_points(tmp_path / "scan.xyz", _plane(3000, 0.02, seed=9))
    pred = write_points(tmp_path / "out.xyz", _plane(3000, 0.002, seed=9))
    out = CliRunner().invoke(main, ["evaluate", "--pred", str(pred), "--noisy", str(noisy), "--out", str(tmp_path / "t.csv")])
    assert out.exit_code == 0, out.output
    assert "plane_res_1e4" in out.output and "spacing_cv" in out.output and "cd_1e4" not in out.output
    import pandas as pd

    table = pd.read_csv(tmp_path / "t.csv").set_index("category")
    assert table.loc["pred", "plane_res"] < 0.3 * table.loc["noisy", "plane_res"]
    alone = CliRunner().invoke(main, ["evaluate", "--pred", str(pred), "--quiet"])
    assert alone.exit_code == 0 and "plane_res_1e4" in alone.output, alone.output


def test_evaluate_with_partial_gt_is_still_a_usage_error(tmp_path):
    pred = write_points(tmp_path / "out.xyz", _plane(100, 0.01))
    out = CliRunner().invoke(main, ["evaluate", "--pred", str(pred), "--gt-points", str(pred)])
    assert out.exit_code != 0 and "go together" in out.output
