"""The kNN kernels of the classical methods: per-chunk queries on threads and kd-tree leaf order change no result."""

import numpy as np
import pytest
import trimesh

from sbdbench.data.sampling import sample_uniform
from sbdbench.methods import make_method
from sbdbench.methods.classical import _common


@pytest.fixture(scope="module")
def noisy_torus():
    mesh = trimesh.creation.torus(0.7, 0.3, 48, 24)
    clean = sample_uniform(mesh.vertices, mesh.faces, 6000, 0)
    return clean + np.random.default_rng(1).normal(0, 0.01, clean.shape)


@pytest.mark.parametrize("threads", [1, 2])
def test_knn_pass_chunks_see_the_whole_query_rows(noisy_torus, threads, monkeypatch):
    monkeypatch.setattr(_common, "worker_threads", lambda: threads)
    dist, idx = _common.knn_self(noisy_torus, 24)
    seen = {}

    def move(x, rows, d, nb):
        seen[rows.start] = (rows, d, nb)
        return x[rows] + 1.0

    out = _common.knn_pass(noisy_torus, 24, move, size=1000)
    np.testing.assert_array_equal(out, noisy_torus + 1.0)
    assert sorted(seen) == list(range(0, len(noisy_torus), 1000))
    for rows, d, nb in seen.values():
        np.testing.assert_array_equal(d, dist[rows])
        np.testing.assert_array_equal(nb, _common.with_self(idx, rows))


def test_knn_pass_raises_a_chunks_error():
    def move(x, rows, d, nb):
        raise ValueError(f"chunk at {rows.start}")

    with pytest.raises(ValueError, match="chunk at"):
        _common.knn_pass(np.random.default_rng(0).normal(size=(3000, 3)), 8, move, size=1000)


def test_in_spatial_order_puts_rows_back_and_orders_by_space(noisy_torus):
    order_seen = []

    def passes(x):
        order_seen.append(x.copy())
        return x * 2.0

    out = _common.in_spatial_order(passes, noisy_torus)
    np.testing.assert_array_equal(out, noisy_torus * 2.0)  # output row i belongs to input row i
    sorted_rows = order_seen[0]
    step = np.linalg.norm(np.diff(sorted_rows, axis=0), axis=1).mean()
    assert step < 0.2 * np.linalg.norm(np.diff(noisy_torus, axis=0), axis=1).mean()  # neighbours in memory


@pytest.mark.parametrize("name", ["pca", "bilateral", "jet", "mls"])
def test_tree_order_gives_the_input_order_result(name, noisy_torus):
    method = make_method(name)
    k, _, _ = _common.neighbourhood(noisy_torus, 0.01, method.radius_scale, method.k)
    if name == "bilateral":
        def passes(x):
            return method._passes(x, k, method.sigma_n_scale * 0.01)
    else:
        k = max(k, 6)

        def passes(x):
            return method._passes(x, k)
    in_order = passes(noisy_torus)
    assert np.abs(in_order - noisy_torus).max() > 1e-3  # the method moved points
    np.testing.assert_allclose(_common.in_spatial_order(passes, noisy_torus), in_order, rtol=0, atol=1e-12)
