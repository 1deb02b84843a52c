"""The ``iterativepfn`` method: conformance, checkpoints (strict, wrong method, missing), parameters, CLI (run,
denoise, bench, tune --split val, methods), and the CUDA path when a GPU is present."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli_checks import check_bench_and_tune_on_val, check_run_and_denoise
from iterativepfn_weights import fixed_state_dict
from sbdbench.cli import main
from sbdbench.errors import DataError, InputError
from sbdbench.methods import available_methods, make_method
from sbdbench.methods.conformance import check_denoiser, noisy_sphere
from sbdbench.methods.learned.checkpoint import load_checkpoint, load_into
from sbdbench.methods.learned.iterativepfn.network import IterativePFNNet

#: small patches keep the CPU tests short (the protocol is patch_size=1000, seed_k=6)
SMALL = dict(patch_size=40, seed_k=1)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """The fixed random state_dict in a Lightning-like checkpoint (state_dict + hyper_parameters.args)."""
    state = fixed_state_dict((k, v.shape) for k, v in IterativePFNNet().state_dict().items())
    path = tmp_path_factory.mktemp("ipfn") / "fixed.ckpt"
    torch.save({"epoch": 99, "state_dict": state, "hyper_parameters": {"args": argparse.Namespace(frame_knn=32, num_modules=4)}}, path)
    return path


def test_listed_with_its_paper():
    assert "iterativepfn" in available_methods()
    cls = type(make_method("iterativepfn"))
    assert cls.uses_torch and cls.preserves_count and "CVPR 2023" in cls.paper and cls.code_url.endswith("ddsediri/IterativePFN")
    out = CliRunner().invoke(main, ["methods"])
    assert out.exit_code == 0 and "iterativepfn" in out.output


def test_defaults_are_the_authors_protocol():
    params = make_method("iterativepfn").get_params()
    assert params["weights"] == "official" and params["patch_size"] == 1000 and params["seed_k"] == 6
    assert params["niters"] is None and params["modules"] is None and params["device"] == "cpu"


@pytest.fixture(scope="module")
def tame_weights(tmp_path_factory):
    """The fixed weights with the output layers scaled by 0.1: displacements of a denoiser's size (the
    conformance suite checks that the output stays near the input)."""
    state = fixed_state_dict((k, v.shape) for k, v in IterativePFNNet().state_dict().items())
    state = {k: v * 0.1 if ".linear3." in k else v for k, v in state.items()}
    path = tmp_path_factory.mktemp("ipfn") / "tame.ckpt"
    torch.save({"state_dict": state}, path)
    return path


def test_conformance(tame_weights):
    check_denoiser(make_method("iterativepfn", weights=str(tame_weights), **SMALL), n_points=200)


def test_weights_file_loads_strict_with_weights_only(weights):
    state, _ = load_checkpoint(weights)
    load_into(IterativePFNNet(), state, source=weights)


def test_released_checkpoint_loads_strict(reference_dir):
    candidates = sorted((reference_dir / "iterativepfn").glob("*.ckpt")) if (reference_dir / "iterativepfn").is_dir() else []
    if not candidates:
        pytest.skip("the released IterativePFN checkpoint is not in ../shared/reference (it cannot be downloaded from here)")
    state, _ = load_checkpoint(candidates[0])
    load_into(IterativePFNNet(), state, source=candidates[0])


def test_another_methods_checkpoint_is_a_one_line_error(reference_dir):
    method = make_method("iterativepfn", weights=str(reference_dir / "score-denoise" / "ckpt.pt"), **SMALL)
    with pytest.raises(DataError, match=r"do not fit the IterativePFNNet architecture: 356 missing \(e\.g\. feature_nets\.0\.") as err:
        method.denoise(noisy_sphere(200))
    assert "\n" not in str(err.value)


def test_another_version_names_the_first_mismatched_key(tmp_path):
    three = IterativePFNNet(num_modules=3)
    torch.save({"state_dict": fixed_state_dict((k, v.shape) for k, v in three.state_dict().items())}, tmp_path / "v3.ckpt")
    with pytest.raises(DataError, match=r"89 missing \(e\.g\. feature_nets\.3\.conv1\.lin\.0\.bias\)"):
        make_method("iterativepfn", weights=str(tmp_path / "v3.ckpt")).denoise(noisy_sphere(200))


def test_missing_official_weights_say_what_to_fetch(sbd_home):
    method = make_method("iterativepfn")
    assert "sbdbench fetch iterativepfn-official" in method.unavailable_reason()
    with pytest.raises(DataError, match=r"sbdbench fetch iterativepfn-official"):
        method.denoise(noisy_sphere(200))


@pytest.mark.parametrize("params, match", [
    ({"niters": 0}, "niters must be an integer ≥ 1"),
    ({"modules": 5}, r"modules must be an integer in \[1, 4\]"),
    ({"patch_size": 16}, "patch_size must be an integer ≥ 33"),
    ({"seed_k": -1}, "seed_k must be a finite number > 0"),
    ({"device": "nope"}, "cannot use device 'nope'"),
])
def test_bad_parameters_are_one_line_input_errors(weights, params, match):
    with pytest.raises(InputError, match=match):
        make_method("iterativepfn", weights=str(weights), **{**SMALL, **params}).denoise(noisy_sphere(200))


def test_too_few_points(weights):
    with pytest.raises(InputError, match="needs more than 32 points"):
        make_method("iterativepfn", weights=str(weights)).denoise(noisy_sphere(32))


def test_fewer_modules_and_more_passes_change_the_output(weights):
    x = noisy_sphere(200)
    base = make_method("iterativepfn", weights=str(weights), **SMALL).denoise(x)
    assert not np.allclose(base, make_method("iterativepfn", weights=str(weights), modules=1, **SMALL).denoise(x))
    assert not np.allclose(base, make_method("iterativepfn", weights=str(weights), niters=2, **SMALL).denoise(x))
    np.testing.assert_allclose(base, make_method("iterativepfn", weights=str(weights), memory_mb=1, **SMALL).denoise(x), atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu(weights):
    x = noisy_sphere(400)
    cpu = make_method("iterativepfn", weights=str(weights), patch_size=100, seed_k=2).denoise(x)
    gpu = make_method("iterativepfn", weights=str(weights), patch_size=100, seed_k=2, device="cuda").denoise(x)
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)


# --- CLI on the tiny synth dataset ----------------------------------------------------------------
SMALL_PATCHES = {"patch_size": 40, "seed_k": 1}


def test_cli_run_and_denoise(registered_synth, weights, tmp_path):
    check_run_and_denoise("iterativepfn", registered_synth, {"weights": weights, **SMALL_PATCHES}, tmp_path)


def test_cli_bench_and_tune_on_val(registered_synth, weights, tmp_path):
    check_bench_and_tune_on_val("iterativepfn", registered_synth, {"weights": weights, **SMALL_PATCHES}, tmp_path)
