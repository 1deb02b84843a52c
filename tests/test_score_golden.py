"""Equivalence with the original ScoreDenoise code (golden outputs in ../shared/reference, official weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sbdbench.geometry import normalize_unit_sphere
from sbdbench.methods import make_method
from sbdbench.methods.learned.knn import knn_gather, knn_points
from sbdbench.methods.learned.score import gradient_ascent


@pytest.fixture(scope="module")
def golden(reference_dir):
    g = reference_dir / "golden"
    return {"patch": dict(np.load(g / "score_patch.npz")), "full": dict(np.load(g / "score_full.npz")),
            "info": json.loads((g / "score.json").read_text()), "ckpt": reference_dir / "score-denoise" / "ckpt.pt"}


@pytest.fixture(scope="module")
def official(golden):
    method = make_method("score", weights=str(golden["ckpt"]))
    return method, *method.load()


def _chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """PyTorch3D-style Chamfer distance (mean squared NN distance, both ways)."""
    ta, tb = (torch.as_tensor(np.asarray(x, np.float32))[None] for x in (a, b))
    return float(knn_points(ta, tb, 1)[0].mean() + knn_points(tb, ta, 1)[0].mean())


def test_patch_features_and_first_scores(official, golden):
    _, model, folded, _ = official
    g = golden["patch"]
    patch = torch.from_numpy(g["patch"])[None]
    with torch.no_grad():
        feat = model.feature_net(patch)[0]
        np.testing.assert_allclose(feat.numpy(), g["feat"], atol=1e-4, rtol=0)
        _, idx = knn_points(patch, patch, 4)  # K=4 including the point itself, as the original
        np.testing.assert_array_equal(idx[0].numpy(), g["knn_idx"])
        offsets = knn_gather(patch, idx)[0] - patch[0].unsqueeze(1)
        reference_style = model.score_net(offsets, feat).reshape(-1, 3)  # the unfolded network
        fast = folded(offsets, folded.condition(feat)).reshape(-1, 3)  # conditioning precomputed, BN folded
    np.testing.assert_allclose(reference_style.numpy(), g["score_step0"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(fast.numpy(), g["score_step0"], atol=1e-4, rtol=0)


def test_thirty_steps_on_one_patch(official, golden):
    _, model, folded, step = official
    g = golden["patch"]
    out = gradient_ascent(model.feature_net, folded, torch.from_numpy(g["patch"])[None], num_steps=30, step_size=step, step_decay=0.95, denoise_knn=4)[0]
    # Float round-off is amplified along 30 steps; the most sensitive point (a near-tied neighbour) moves by
    # ~8e-5 between float32 and float64 runs of the original itself, so 1e-4 is the meaningful bound.
    np.testing.assert_allclose(out.numpy(), g["denoised_30_steps"], atol=1e-4, rtol=0)
    assert np.abs(out.numpy() - g["patch"]).max() > 1e-3  # the steps did move the points


def test_whole_cloud_equals_original_as_a_set(official, golden):
    method = official[0]
    f = golden["full"]
    ours = method.denoise(f["noisy"], noise_level=0.02)  # 2 % noise → one pass, as the golden (niters=1)
    assert ours.shape == f["noisy"].shape
    _, center, scale = normalize_unit_sphere(f["clean"])
    unit = lambda p: (np.asarray(p, np.float64) - center) / scale  # noqa: E731
    cd_ours_orig = _chamfer(unit(ours), unit(f["denoised"]))
    cd_orig_clean = _chamfer(unit(f["denoised"]), unit(f["clean"]))
    assert cd_ours_orig <= 0.01 * cd_orig_clean, (cd_ours_orig, cd_orig_clean)
    assert cd_orig_clean < _chamfer(unit(f["noisy"]), unit(f["clean"]))  # the original did denoise


def test_stitch_variant_is_one_to_one(official, golden):
    method = make_method("score", weights=str(golden["ckpt"]), merge="stitch", niters=1)
    f = golden["full"]
    out = method.denoise(f["noisy"])
    _, center, scale = normalize_unit_sphere(f["clean"])
    unit = lambda p: (np.asarray(p, np.float64) - center) / scale  # noqa: E731
    assert out.shape == f["noisy"].shape
    # row i is point i moved by the denoiser: displacements are of the order of the noise (2 %), never a swap
    moved = np.linalg.norm(unit(out) - unit(f["noisy"]), axis=1)
    assert moved.max() < 0.1 and np.median(moved) > 1e-3
    assert _chamfer(unit(out), unit(f["clean"])) < 0.8 * _chamfer(unit(f["noisy"]), unit(f["clean"]))
