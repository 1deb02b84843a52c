"""Input checks, the protocol's unit-sphere normalisation, kNN and farthest-point sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sbdbench.errors import InputError
from sbdbench.geometry import (bbox_center_and_scale, check_mesh, check_points, denormalize_unit_sphere,
                               farthest_point_sampling, knn, normalize_unit_sphere)


@pytest.fixture()
def cloud():
    return np.random.default_rng(0).normal(size=(500, 3)) * [3.0, 1.0, 0.5] + [10.0, -2.0, 1.0]


def test_check_points_accepts_lists_and_tensors():
    assert check_points([[0, 1, 2]]).dtype == np.float64
    out = check_points(torch.ones(4, 3, dtype=torch.float32))
    assert out.shape == (4, 3) and out.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("bad, fragment", [
    (np.zeros((0, 3)), "empty"),
    (np.zeros((5, 2)), r"expected shape \(N, 3\)"),
    (np.zeros(3), r"expected shape \(N, 3\)"),
    (np.array([[0.0, 0.0, 0.0], [np.nan, 0.0, 0.0]]), "1 point\\(s\\) have NaN/Inf.*row 1"),
    ([["a", "b", "c"]], "not a numeric array"),
])
def test_check_points_errors(bad, fragment):
    with pytest.raises(InputError, match=fragment):
        check_points(bad, name="cloud")


def test_check_mesh_errors():
    v = np.eye(3)
    assert check_mesh(v, [[0, 1, 2]])[1].dtype == np.int64
    with pytest.raises(InputError, match="no faces"):
        check_mesh(v, np.zeros((0, 3)))
    with pytest.raises(InputError, match="out of range"):
        check_mesh(v, [[0, 1, 3]])
    with pytest.raises(InputError, match="triangles"):
        check_mesh(v, [[0, 1, 2, 0]])
    with pytest.raises(InputError, match="integers"):
        check_mesh(v, [[0, 1, 1.5]])
    with pytest.raises(InputError, match="NaN/Inf"):
        check_mesh([[0, 0, 0], [1, 0, np.inf], [0, 1, 0]], [[0, 1, 2]])


def test_normalize_unit_sphere_is_scoredenoise(cloud):
    unit, center, scale = normalize_unit_sphere(cloud)
    # ScoreDenoise NormalizeUnitSphere: bbox centre, max distance to it
    ref_center = (cloud.max(0) + cloud.min(0)) / 2
    ref_scale = np.sqrt(((cloud - ref_center) ** 2).sum(1)).max()
    assert np.allclose(center, ref_center) and scale == pytest.approx(ref_scale)
    assert np.allclose((unit.max(0) + unit.min(0)) / 2, 0.0, atol=1e-12)
    assert np.linalg.norm(unit, axis=1).max() == pytest.approx(1.0)
    assert np.allclose(denormalize_unit_sphere(unit, center, scale), cloud)
    assert bbox_center_and_scale(cloud)[1] == pytest.approx(scale)


def test_normalize_in_a_given_frame_and_degenerate_cloud(cloud):
    unit, center, scale = normalize_unit_sphere(cloud, center=np.zeros(3), scale=2.0)
    assert np.allclose(unit, cloud / 2.0) and scale == 2.0
    same = np.ones((4, 3))
    unit, _, scale = normalize_unit_sphere(same)
    assert scale == 1.0 and np.allclose(unit, 0.0)


def test_knn_matches_brute_force(cloud):
    query = cloud[:50] + 0.01
    dist, idx = knn(query, cloud, k=4)
    full = np.linalg.norm(query[:, None] - cloud[None], axis=2)
    assert np.array_equal(idx, np.argsort(full, axis=1)[:, :4])
    assert np.allclose(dist, np.sort(full, axis=1)[:, :4])
    d1, i1 = knn(query, cloud, k=1)
    assert d1.shape == (50, 1) and np.array_equal(i1[:, 0], idx[:, 0])
    assert knn(query, cloud[:3], k=10)[1].shape == (50, 3)


def _fps_reference(points: np.ndarray, n: int) -> list:
    chosen, dist = [0], np.full(len(points), np.inf)
    for _ in range(n - 1):
        dist = np.minimum(dist, ((points - points[chosen[-1]]) ** 2).sum(1))
        chosen.append(int(np.argmax(dist)))
    return chosen


def test_farthest_point_sampling(cloud):
    pts = torch.as_tensor(cloud)
    idx = farthest_point_sampling(pts, 64)
    assert idx.dtype == torch.long and idx.device == pts.device
    assert idx.tolist() == _fps_reference(cloud, 64)
    assert len(set(idx.tolist())) == 64
    assert torch.equal(idx, farthest_point_sampling(pts, 64))
    assert farthest_point_sampling(pts[:10], 50).shape == (10,)
    assert farthest_point_sampling(pts, 5, start=7)[0].item() == 7
