"""IterativePFN equals the original code: goldens from ddsediri/IterativePFN run with a fixed random state_dict
(tests/golden/iterativepfn/README.md says how they were made; the released weights are not in ../shared)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from iterativepfn_weights import fixed_state_dict
from sbdbench.methods import make_method
from sbdbench.methods.learned.iterativepfn.folded import FoldedIterativePFN
from sbdbench.methods.learned.iterativepfn.network import IterativePFNNet
from sbdbench.methods.learned.knn import knn_points

GOLDEN = Path(__file__).parent / "golden" / "iterativepfn"


@pytest.fixture(scope="module")
def nets():
    net = IterativePFNNet()
    net.load_state_dict(fixed_state_dict((k, v.shape) for k, v in net.state_dict().items()), strict=True)
    net.eval()
    return net, FoldedIterativePFN(net).eval()


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory, nets):
    path = tmp_path_factory.mktemp("ipfn") / "fixed.ckpt"
    torch.save({"state_dict": nets[0].state_dict(), "epoch": 0}, path)  # a Lightning-like layout
    return path


def _chamfer(a: np.ndarray, b: np.ndarray) -> float:
    ta, tb = (torch.as_tensor(np.asarray(x, np.float32))[None] for x in (a, b))
    return float(knn_points(ta, tb, 1)[0].mean() + knn_points(tb, ta, 1)[0].mean())


def test_first_module_features_match_the_original(nets):
    g = dict(np.load(GOLDEN / "patch.npz"))
    patches = torch.from_numpy(g["patches"])
    with torch.no_grad():
        for net in (nets[0].feature_nets[0], nets[1].modules_[0]):  # the original's structure, then the folded form
            feats = net.features(patches)
            for j, feat in enumerate(feats, start=1):
                np.testing.assert_allclose(feat.numpy()[:, ::2], g[f"conv{j}"], atol=1e-4, rtol=0)
            np.testing.assert_allclose(net(patches).numpy(), g["disp0"], atol=1e-4, rtol=0)


def test_four_modules_on_two_patches_match_the_original(nets):
    g = dict(np.load(GOLDEN / "patch.npz"))
    patches = torch.from_numpy(g["patches"])
    with torch.no_grad():
        for net in nets:
            out = net(patches).numpy()
            np.testing.assert_allclose(out, g["out4"], atol=1e-4, rtol=0)
    assert np.abs(g["out4"] - g["patches"]).max() > 1e-2  # the modules did move the points


def test_one_full_pass_equals_the_original(weights_file):
    f = dict(np.load(GOLDEN / "full.npz"))
    method = make_method("iterativepfn", weights=str(weights_file), patch_size=200, seed_k=6)
    ours = method._denoise_unit(f["noisy"].astype(np.float64), None)  # the golden input is already in the unit sphere
    assert ours.shape == f["denoised"].shape
    cd_ours_orig, cd_orig_clean = _chamfer(ours, f["denoised"]), _chamfer(f["denoised"], f["clean"])
    assert cd_ours_orig <= 0.01 * cd_orig_clean, (cd_ours_orig, cd_orig_clean)
    # stitching is 1:1, so the correspondence is per point: the same point of the same patch
    np.testing.assert_allclose(ours, f["denoised"], atol=1e-4, rtol=0)
