"""Progress from inside one denoise (sbdbench.methods.meter): a whole-cloud run reports as it goes (issue #21, item 2)."""

import numpy as np
import pytest
import trimesh

from sbdbench.data.noise import add_noise
from sbdbench.data.sampling import sample_uniform
from sbdbench.geometry import normalize_unit_sphere
from sbdbench.methods import make_method
from sbdbench.methods.blocks import denoise_in_blocks
from sbdbench.methods.meter import batch_done, metered, metered_span, metered_steps


def test_nested_loops_report_one_growing_fraction():
    seen = []
    with metered(lambda done, total: seen.append((done, total)), 1000):
        for _ in metered_steps(range(2)):  # passes
            for _ in metered_steps(range(2)):  # subsets
                for b in (1, 2, 3, 4):  # batches
                    batch_done(b, 4)
    dones = [d for d, _ in seen]
    assert dones == sorted(set(dones)) and all(t == 1000 for _, t in seen)
    assert dones[:4] == [62, 125, 187, 250]  # a quarter of the work per subset of a pass
    assert dones[-1] == 1000 and len(dones) == 16


def test_a_span_covers_its_share_and_a_step_left_early_restores_the_span():
    seen = []
    with metered(lambda done, total: seen.append(done), 100):
        with metered_span(0.0, 0.25):
            batch_done(1, 2)
        for i in metered_steps(range(3)):
            if i == 1:
                break
        batch_done(1, 1)  # the loop left early: the outer span is whole again
    assert seen == [12, 25, 33, 100]  # the span's end, the first of three steps, then the whole span


def test_without_a_meter_every_call_is_a_no_op():
    batch_done(1, 2)
    with metered_span(0, 0.5):
        assert list(metered_steps("ab")) == ["a", "b"]
    with metered(None, 10):
        batch_done(1, 2)


@pytest.fixture(scope="module")
def torus():
    mesh = trimesh.creation.torus(0.7, 0.3, 64, 32)
    clean = normalize_unit_sphere(sample_uniform(mesh.vertices, mesh.faces, 20000, 0))[0]
    return add_noise(clean, 0.02, seed=1)


def _reports(method, points, **kw):
    seen = []
    out = denoise_in_blocks(method, points, noise_level=0.02, progress=lambda d, t: seen.append((d, t)), **kw)
    return out, seen


@pytest.mark.parametrize("name, params", [("pca", {"iterations": 2}), ("sbd", {"niters": 2})])
def test_a_whole_cloud_run_reports_before_it_ends(torus, name, params):
    """Chunks of a classical kNN pass and patch batches of a learned pass move the bar; the result is unchanged."""
    method = make_method(name, **params)
    out, seen = _reports(method, torus[:12000] if name == "sbd" else torus)
    n = len(out)
    dones = [d for d, _ in seen]
    assert all(t == n for _, t in seen) and dones[-1] == n
    assert dones == sorted(dones) and len([d for d in dones if 0 < d < n]) >= 3, seen
    assert any(d <= n // 2 for d in dones)  # the first pass reported on its own
    np.testing.assert_array_equal(out, method.denoise(torus[:n], noise_level=0.02))


def test_blocks_report_inside_each_block(torus):
    method = make_method("pca", iterations=2)
    _, seen = _reports(method, torus, block_points=8000)
    dones = [d for d, _ in seen]
    assert dones == sorted(set(dones)) and dones[-1] == len(torus)
    assert len(dones) > 6  # more lines than blocks: the passes inside each block report too


def test_run_on_scans_measures_with_the_same_reports(torus):
    """``run`` on real scans denoises through denoise_measured, which opens a meter around the whole-cloud run too."""
    from sbdbench.bench.cell import denoise_measured

    seen = []
    method = make_method("pca", iterations=2)
    out, seconds, _ = denoise_measured(method, torus, 0.02, progress=lambda d, t: seen.append(d))
    assert seen[-1] == len(torus) and len([d for d in seen if d < len(torus)]) >= 3 and seconds > 0
    np.testing.assert_array_equal(out, method.denoise(torus, noise_level=0.02))


def test_batch_slices_cover_the_range_and_report_each_batch_after_it_is_done():
    from sbdbench.methods.learned.patches import batch_slices

    seen, reported = [], []
    for batch in batch_slices(7, 3, progress=lambda done, total: reported.append((done, total))):
        assert len(reported) == len(seen)  # nothing reported before the caller finished this batch
        seen.append((batch.start, batch.stop))
    assert seen == [(0, 3), (3, 6), (6, 7)] and reported == [(3, 7), (6, 7), (7, 7)]
    assert [(b.start, b.stop) for b in batch_slices(2, 0)] == [(0, 1), (1, 2)]  # a batch size below 1 means 1
