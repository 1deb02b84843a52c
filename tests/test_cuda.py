"""The CUDA path of every torch component: the same code with ``device="cuda"`` gives the CPU's answer.

Every test here skips (with the reason) on a machine without a CUDA device, which is where CI runs; they
are run on a GPU machine when one is lent (docs/development.md, "GPU checks"). The CPU-only checks of the same parts live in
their own modules (``test_score_method``, ``test_sbd``, ``test_training``, ``test_metrics``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from sbdbench.bench.cell import denoise_measured
from sbdbench.geometry import _fps_torch
from sbdbench.methods import make_method
from sbdbench.methods.learned.checkpoint import load_checkpoint
from sbdbench.methods.learned.knn import knn_points
from sbdbench.methods.learned.training import run_recipe

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on a GPU machine)")


def _torus(n: int, sigma: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    u, v = rng.uniform(0, 2 * np.pi, (2, n))
    clean = np.c_[(1 + 0.35 * np.cos(v)) * np.cos(u), (1 + 0.35 * np.cos(v)) * np.sin(u), 0.35 * np.sin(v)] / 1.35
    return clean, clean + rng.normal(0, sigma, clean.shape)


def _cd(a: np.ndarray, b: np.ndarray) -> float:
    return float(cKDTree(b).query(a)[0].__pow__(2).mean() + cKDTree(a).query(b)[0].__pow__(2).mean())


def test_knn_and_fps_on_cuda_match_cpu():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 300, 3, generator=g), torch.rand(2, 500, 3, generator=g)
    d_cpu, i_cpu = knn_points(x, y, 8)
    d_gpu, i_gpu = knn_points(x.cuda(), y.cuda(), 8)
    torch.testing.assert_close(d_gpu.cpu(), d_cpu, atol=1e-5, rtol=1e-5)
    assert (i_gpu.cpu() == i_cpu).float().mean() > 0.999  # ties aside, the same neighbours
    pts = torch.rand(1000, 3, generator=g, dtype=torch.float64)
    assert torch.equal(_fps_torch(pts.cuda(), 100, start=0).cpu(), _fps_torch(pts, 100, start=0))


@pytest.mark.parametrize("method", ["score", "sbd"])
def test_learned_methods_give_the_cpu_cloud_on_cuda(method):
    """Shipped weights, FPS merge, frozen passes: GPU and CPU outputs are the same cloud (float noise only)."""
    clean, noisy = _torus(3000, 0.02)
    cpu = make_method(method, patch_size=500).denoise(noisy, noise_level=0.02)
    gpu = make_method(method, patch_size=500, device="cuda").denoise(noisy, noise_level=0.02)
    assert gpu.shape == cpu.shape == noisy.shape and np.isfinite(gpu).all()
    assert _cd(gpu, cpu) < 0.01 * _cd(cpu, clean)


def test_cuda_peak_memory_is_measured():
    _, noisy = _torus(2000, 0.02)
    out, seconds, peak_mb = denoise_measured(make_method("sbd", patch_size=500, device="cuda"), noisy, 0.02, device="cuda")
    assert out.shape == noisy.shape and seconds > 0 and peak_mb > 0


@pytest.mark.parametrize("method, params", [("score", {}), ("sbd", {"loss": "sbd"})])
def test_training_runs_on_cuda_and_saves_cpu_weights(tmp_path, monkeypatch, method, params):
    """Two iterations on the GPU; the saved weights load on a CPU-only machine (CPU tensors)."""
    from test_training import _tiny_dataset
    from sbdbench.data import dataset as dataset_mod

    ds_root = tmp_path / "data"
    _tiny_dataset(ds_root)
    monkeypatch.setenv("SBDBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(dataset_mod, "data_root", lambda: ds_root)
    result = run_recipe(method, dataset="tiny", out_dir=tmp_path / "run", iterations=2, batch_size=2, patches_per_cloud=2,
                        patch_size=200, val_every=2, val_batches=1, device="cuda", log=lambda s: None, **params)
    assert result.iterations == 2 and all(np.isfinite(r["loss"]) for r in result.history)
    state, _ = load_checkpoint(tmp_path / "run" / "best.pt")
    assert all(v.device.type == "cpu" for v in state.values())
    raw = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=True)
    assert raw["iteration"] == 2
