"""Denoising in spatial blocks (sbdbench.methods.blocks), the near-linear FPS, and denoise's --max-memory / --drop-invalid."""

import numpy as np
import pytest
import torch
import trimesh
from click.testing import CliRunner

from sbdbench.cli import main
from sbdbench.data.noise import add_noise
from sbdbench.data.sampling import sample_uniform
from sbdbench.errors import InputError
from sbdbench.geometry import _fps_kdtree, _fps_torch, normalize_unit_sphere
from sbdbench.io import read_points
from sbdbench.methods import make_method
from sbdbench.methods.blocks import denoise_in_blocks, parse_memory, plan_blocks


@pytest.fixture(scope="module")
def torus():
    """A noisy 20K-point torus (σ = 2 %) in its unit sphere."""
    mesh = trimesh.creation.torus(0.7, 0.3, 64, 32)
    clean = normalize_unit_sphere(sample_uniform(mesh.vertices, mesh.faces, 20000, 0))[0]
    return add_noise(clean, 0.02, seed=1)


@pytest.mark.parametrize("name", ["pca", "jet"])
def test_blocks_give_the_whole_cloud_result_point_for_point(torus, name):
    method = make_method(name)
    settings = method.block_settings(torus, 0.02)
    blocks = plan_blocks(torus, settings.margin, 8000)
    assert len(blocks) >= 3 and sum(len(b.core) for b in blocks) == len(torus)
    assert sorted(np.concatenate([b.core for b in blocks]).tolist()) == list(range(len(torus)))
    whole = method.denoise(torus * 5 + 1, noise_level=0.02)
    split = denoise_in_blocks(method, torus * 5 + 1, noise_level=0.02, block_points=8000)
    assert split.shape == whole.shape
    np.testing.assert_allclose(split, whole, rtol=0, atol=1e-12)
    assert np.abs(split - (torus * 5 + 1)).max() > 1e-3  # it did denoise


def test_a_smaller_margin_leaves_seams(torus):
    """The overlap is what makes blocks exact: a quarter of it changes points next to the cuts."""
    from dataclasses import replace

    from sbdbench.methods.blocks import _merge_own

    method = make_method("pca")
    settings = method.block_settings(torus, 0.02)
    whole = settings.method._denoise_unit(torus.copy(), 0.02)
    thin = replace(settings, margin=settings.margin / 4)
    out = _merge_own(thin, torus, plan_blocks(torus, thin.margin, 8000))
    assert np.abs(out - whole).max() > 1e-6


def test_memory_cap_too_small_is_one_line_naming_a_cap_that_fits(torus):
    with pytest.raises(InputError, match=r"use --max-memory \d+MB"):
        denoise_in_blocks(make_method("pca"), torus, noise_level=0.02, max_memory_mb=1)
    assert parse_memory("2GB") == 2048 and parse_memory("512 MiB") == 512 and parse_memory("800") == 800
    with pytest.raises(InputError, match="--max-memory"):
        parse_memory("lots")


def test_fps_blocked_maximum_equals_the_plain_loop_with_ties_and_duplicates():
    grid = np.stack(np.meshgrid(*[np.arange(10.0)] * 3), -1).reshape(-1, 3)
    pts = np.concatenate([grid, grid[:50]])
    assert (_fps_kdtree(pts, 900, 3) == _fps_torch(torch.from_numpy(pts), 900, 3).numpy()).all()


def _cap_for_half_the_cloud(name: str, points: np.ndarray, sigma: float) -> float:
    """A --max-memory (MB) under which the method's blocks hold at most half the cloud, so the run really splits."""
    from sbdbench.methods import resolve_method
    from sbdbench.methods.blocks import block_limit, whole_cloud_mb

    settings = resolve_method(name, len(points), sigma).method.block_settings(normalize_unit_sphere(points)[0], sigma)
    cap = whole_cloud_mb(settings, len(points)) - len(points) / 2 * settings.bytes_per_point / 2**20
    assert block_limit(settings, len(points), cap) <= len(points) // 2 + 1
    return cap


def test_denoise_cli_max_memory_drop_invalid(tmp_path, torus):
    src = tmp_path / "in.npy"
    bad = torus.copy()
    bad[[5, 77]] = np.nan
    np.save(src, bad)
    res = CliRunner().invoke(main, ["denoise", str(src), str(tmp_path / "a.xyz"), "--method", "pca"])
    assert res.exit_code != 0 and "2 point(s) have NaN/Inf" in res.output and "--drop-invalid" in res.output
    assert not (tmp_path / "a.xyz").exists()
    cap = _cap_for_half_the_cloud("pca", torus[np.isfinite(torus).all(axis=1)], 0.02)
    res = CliRunner().invoke(main, ["denoise", str(src), str(tmp_path / "b.xyz"), "--method", "pca", "--drop-invalid",
                                    "--sigma", "0.02", "--max-memory", f"{cap:.3f}MB"])
    assert res.exit_code == 0, res.output
    assert "dropped 2 point(s)" in res.output
    out = read_points(tmp_path / "b.xyz")
    assert len(out) == len(torus) - 2
    res = CliRunner().invoke(main, ["denoise", str(src), str(tmp_path / "c.xyz"), "--method", "pca", "--drop-invalid",
                                    "--sigma", "0.02"])
    np.testing.assert_allclose(read_points(tmp_path / "c.xyz"), out, atol=1e-9)
