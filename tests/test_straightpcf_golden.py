"""Equality with the original StraightPCF code (goldens in tests/golden/straightpcf/, made as its README says).

A: the released VelocityModule (../shared/reference/straightpcf/ckpt_vm.pt; skips without it).
B: the full StraightPCF (2 velocity modules + the distance module) with fixed random weights (always runs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sbdbench.methods import make_method
from sbdbench.methods.learned.checkpoint import load_checkpoint, load_into
from sbdbench.methods.learned.knn import knn_points
from sbdbench.methods.learned.straightpcf.flow import build_network, denoise_pass, flow
from sbdbench.methods.learned.straightpcf.network import StraightPCF

from straightpcf_helpers import fixed_random_state

GOLDEN = Path(__file__).resolve().parent / "golden" / "straightpcf"


def _chamfer(a, b) -> float:
    ta, tb = (torch.as_tensor(np.asarray(x, np.float32))[None] for x in (a, b))
    return float(knn_points(ta, tb, 1)[0].mean() + knn_points(tb, ta, 1)[0].mean())


def _assert_same_set(ours, orig, clean, noisy):
    cd_ours_orig, cd_orig_clean = _chamfer(ours, orig), _chamfer(orig, clean)
    assert cd_ours_orig <= 0.01 * cd_orig_clean, (cd_ours_orig, cd_orig_clean)
    return cd_ours_orig / cd_orig_clean


@pytest.fixture(scope="module")
def vm_golden():
    return dict(np.load(GOLDEN / "vm_released.npz"))


@pytest.fixture(scope="module")
def vm(reference_dir):
    path = reference_dir / "straightpcf" / "ckpt_vm.pt"
    state, meta = load_checkpoint(path)
    kind, net, its = build_network(state, meta)
    assert (kind, its) == ("vm", 4)
    return path, load_into(net, state, source=path).eval()


def test_released_vm_features_and_velocity(vm, vm_golden):
    _, net = vm
    patch = torch.from_numpy(vm_golden["patch"])[None]
    with torch.no_grad():
        feat = net.encoder(patch)[0]
        np.testing.assert_allclose(feat[:64].numpy(), vm_golden["feat_rows"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(net.velocity(patch)[0].numpy(), vm_golden["pred_dir"], atol=1e-4, rtol=0)
    out = flow("vm", net, patch, 4)[0]
    np.testing.assert_allclose(out.numpy(), vm_golden["patch_4_steps"], atol=1e-4, rtol=0)


def test_released_vm_full_pass_equals_original(vm, vm_golden):
    g = vm_golden
    ours = denoise_pass("vm", vm[1], torch.from_numpy(g["noisy"]), 4).numpy()
    assert ours.shape == g["noisy"].shape
    ratio = _assert_same_set(ours, g["full_pass"], g["clean"], g["noisy"])
    assert ratio < 0.01
    # 1:1 stitching: same point for the same index, up to float round-off
    assert np.abs(ours - g["full_pass"]).max() < 1e-3


@pytest.fixture(scope="module")
def full_random():
    g = dict(np.load(GOLDEN / "full_random.npz"))
    net = StraightPCF(num_modules=2)
    state = fixed_random_state({k: tuple(v.shape) for k, v in net.state_dict().items()})
    return g, load_into(net, state).eval(), state


def test_full_model_features_distance_and_patch(full_random, vm_golden):
    g, net, _ = full_random
    patch = torch.from_numpy(vm_golden["patch"])[None]
    with torch.no_grad():
        np.testing.assert_allclose(net.encoder(patch)[0, :64].numpy(), g["feat_d_rows"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(net.velocity_nets[0].encoder(patch)[0, :64].numpy(), g["feat_vm0_rows"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(net.distance(patch).reshape(1).numpy(), g["pred_d"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(flow("straightpcf", net, patch, 2)[0].numpy(), g["patch_out"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(flow("cvm", net, patch, 3)[0].numpy(), g["cvm_patch_out"], atol=1e-4, rtol=0)


def test_full_model_pass_equals_original_as_a_set(full_random, vm_golden, tmp_path):
    g, _, state = full_random
    path = tmp_path / "spcf_random.pt"
    torch.save({"state_dict": state}, path)
    noisy, clean = vm_golden["noisy"], vm_golden["clean"]
    ours = make_method("straightpcf", weights=str(path), niters=1).denoise(noisy)
    assert ours.shape == noisy.shape
    _assert_same_set(ours, g["full_pass"], clean, noisy)
    assert np.abs(ours - g["full_pass"]).max() < 1e-3
