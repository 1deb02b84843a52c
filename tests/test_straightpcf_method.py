"""The ``straightpcf`` method: conformance, checkpoints (released VM strict + weights_only, wrong method, another
version, missing official files), parameters, fetch cards (loopback HTTP), CLI (run, denoise, bench, tune --split
val, methods), and the CUDA path when a GPU is present."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli_checks import check_bench_and_tune_on_val, check_run_and_denoise
from http_fixtures import LoopbackServer, sha256, url_map
from sbdbench.cli import main
from sbdbench.data.sources import fetch
from sbdbench.data.sources.cards import load_card
from sbdbench.data.sources.http import Downloader
from sbdbench.errors import DataError, InputError
from sbdbench.methods import available_methods, make_method
from sbdbench.methods.conformance import check_denoiser, noisy_sphere
from sbdbench.methods.learned.checkpoint import load_checkpoint, load_into
from sbdbench.methods.learned.straightpcf import passes_for_noise
from sbdbench.methods.learned.straightpcf.network import StraightPCF
from straightpcf_helpers import fixed_random_state

#: small patches keep the CPU tests short (the protocol is patch_size=1000, seed_k=6)
SMALL = dict(patch_size=40, seed_k=1)


def _random_full_state(num_modules=2):
    return fixed_random_state({k: tuple(v.shape) for k, v in StraightPCF(num_modules).state_dict().items()})


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """The fixed random full model, saved as the original's checkpoints are ({args, state_dict})."""
    path = tmp_path_factory.mktemp("spcf") / "fixed.pt"
    torch.save({"args": argparse.Namespace(frame_knn=32, tot_its=2, distance_estimation=True), "state_dict": _random_full_state()}, path)
    return path


def test_listed_with_its_paper():
    assert "straightpcf" in available_methods()
    cls = type(make_method("straightpcf"))
    assert cls.uses_torch and cls.preserves_count and "CVPR 2024" in cls.paper and cls.code_url.endswith("ddsediri/StraightPCF")
    out = CliRunner().invoke(main, ["methods"])
    assert out.exit_code == 0 and "straightpcf" in out.output


def test_defaults_are_the_authors_protocol():
    params = make_method("straightpcf").get_params()
    assert params["weights"] == "official" and params["patch_size"] == 1000 and params["seed_k"] == 6
    assert params["niters"] is None and params["device"] == "cpu"
    assert [passes_for_noise(s) for s in (0.01, 0.02, 0.03)] == [1, 2, 3]


def test_conformance(weights):
    check_denoiser(make_method("straightpcf", weights=str(weights), **SMALL), n_points=200)


def test_released_vm_loads_strict_with_weights_only(reference_dir):
    path = reference_dir / "straightpcf" / "ckpt_vm.pt"
    state, meta = load_checkpoint(path)  # torch.load(weights_only=True), argparse.Namespace allow-listed
    assert len(state) == 34 and meta["args"]["feat_embedding_dim"] == 256
    out = make_method("straightpcf", weights=str(path), **SMALL).denoise(noisy_sphere(200), noise_level=0.01)
    assert out.shape == (200, 3) and np.isfinite(out).all()


def test_another_methods_checkpoint_is_a_one_line_error(reference_dir):
    method = make_method("straightpcf", weights=str(reference_dir / "score-denoise" / "ckpt.pt"), **SMALL)
    with pytest.raises(DataError, match=r"not a StraightPCF checkpoint.*first unexpected key: 'feature_net\.") as err:
        method.denoise(noisy_sphere(200))
    assert "\n" not in str(err.value)


def test_another_version_names_the_first_mismatched_key(tmp_path):
    state = _random_full_state()
    state["velocity_nets.1.decoder.lin_2.weight"] = torch.zeros(32, 256)
    del state["velocity_nets.1.decoder.lin_3.bias"]
    torch.save({"state_dict": state}, tmp_path / "other.pt")
    with pytest.raises(DataError, match=r"1 missing \(e\.g\. velocity_nets\.1\.decoder\.lin_3\.bias\); 1 with another shape "
                                        r"\(e\.g\. velocity_nets\.1\.decoder\.lin_2\.weight: \(32, 256\) vs \(64, 256\)\)") as err:
        make_method("straightpcf", weights=str(tmp_path / "other.pt")).denoise(noisy_sphere(200))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("weights, card", [("official", "straightpcf-official"), ("vm", "straightpcf-vm-official"),
                                           ("cvm", "straightpcf-cvm-official")])
def test_missing_official_weights_say_what_to_fetch(sbd_home, weights, card):
    method = make_method("straightpcf", weights=weights)
    assert f"sbdbench fetch {card}" in method.unavailable_reason()
    with pytest.raises(DataError, match=f"sbdbench fetch {card}"):
        method.denoise(noisy_sphere(200))


@pytest.mark.parametrize("params, match", [
    ({"niters": 0}, "niters must be an integer ≥ 1"),
    ({"patch_size": 16}, "patch_size must be an integer ≥ 33"),
    ({"seed_k": -1}, "seed_k must be a finite number > 0"),
    ({"memory_mb": "x"}, "memory_mb must be a finite number"),
    ({"device": "nope"}, "cannot use device 'nope'"),
])
def test_bad_parameters_are_one_line_input_errors(weights, params, match):
    with pytest.raises(InputError, match=match):
        make_method("straightpcf", weights=str(weights), **{**SMALL, **params}).denoise(noisy_sphere(200))


def test_too_few_points(weights):
    with pytest.raises(InputError, match="needs at least 33 points"):
        make_method("straightpcf", weights=str(weights)).denoise(noisy_sphere(32))


def test_passes_and_batching(weights):
    x = noisy_sphere(200)
    base = make_method("straightpcf", weights=str(weights), **SMALL).denoise(x, noise_level=0.01)
    assert not np.allclose(base, make_method("straightpcf", weights=str(weights), **SMALL).denoise(x, noise_level=0.03))
    np.testing.assert_allclose(base, make_method("straightpcf", weights=str(weights), memory_mb=0.5, **SMALL).denoise(x, noise_level=0.01), atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu(weights):
    x = noisy_sphere(1200)
    cpu = make_method("straightpcf", weights=str(weights)).denoise(x, noise_level=0.02)
    gpu = make_method("straightpcf", weights=str(weights), device="cuda").denoise(x, noise_level=0.02)
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)


# --- fetch cards through the loopback server --------------------------------------------------------
def _fetch(srv, name, **kw):
    return fetch(name, progress=False, url_map=url_map(srv.base), log=lambda m: None,
                 downloader=Downloader(retries=1, backoff=0.0, timeout=(5, 5), progress=False), **kw)


def test_fetch_released_vm_then_weights_vm_runs(sbd_home, reference_dir):
    ckpt = (reference_dir / "straightpcf" / "ckpt_vm.pt").read_bytes()
    assert sha256(ckpt) == load_card("straightpcf-vm-official").files[0].sha256
    with LoopbackServer() as srv:
        srv.add_file("/github/ddsediri/StraightPCF/raw/main/pretrained_vm/ckpt_vm.pt", ckpt)
        result = _fetch(srv, "straightpcf-vm-official")
        assert result.status == "installed" and result.path == sbd_home / "weights" / "straightpcf-vm-official.pt"
        assert result.path.read_bytes() == ckpt
        assert _fetch(srv, "straightpcf-vm-official").status == "present"
    method = make_method("straightpcf", weights="vm", **SMALL)
    assert method.unavailable_reason() is None and method.artifact_digest().startswith("weights=sha256:892a405f1a3b")
    assert method.denoise(noisy_sphere(200), noise_level=0.01).shape == (200, 3)


def test_fetch_full_model_unpinned_then_official_runs(sbd_home, weights):
    """No sha256 is known for ckpt_straightpcf.pt: the first validated install pins it; a changed file is refused."""
    body = weights.read_bytes()
    with LoopbackServer() as srv:
        srv.add_file("/githubraw/ddsediri/StraightPCF/main/pretrained_straightpcf/ckpt_straightpcf.pt", body)  # the mirror
        result = _fetch(srv, "straightpcf-official")
        assert result.status == "installed" and result.path.read_bytes() == body
    lock = (sbd_home / "downloads.lock.json").read_text()
    assert sha256(body) in lock
    out = make_method("straightpcf", **SMALL).denoise(noisy_sphere(200), noise_level=0.01)
    assert out.shape == (200, 3)
    with LoopbackServer() as srv:
        srv.add_file("/github/ddsediri/StraightPCF/raw/main/pretrained_straightpcf/ckpt_straightpcf.pt", body[:-1] + b"x")
        with pytest.raises(DataError):
            _fetch(srv, "straightpcf-official", force=True)


def test_fetch_cvm_card_from_a_local_file(sbd_home, tmp_path):
    cvm = {k: v for k, v in _random_full_state().items() if k.startswith("velocity_nets.")}
    src = tmp_path / "ckpt_cvm.pt"
    torch.save({"args": argparse.Namespace(num_modules=2, frame_knn=32), "state_dict": cvm}, src)
    res = CliRunner().invoke(main, ["fetch", "straightpcf-cvm-official", "--from", str(src)])
    assert res.exit_code == 0, res.output
    assert (sbd_home / "weights" / "straightpcf-cvm-official.pt").read_bytes() == src.read_bytes()
    assert make_method("straightpcf", weights="cvm", **SMALL).denoise(noisy_sphere(200), noise_level=0.01).shape == (200, 3)


# --- CLI on the tiny synth dataset ----------------------------------------------------------------
SMALL_PATCHES = {"patch_size": 40, "seed_k": 1}


def test_cli_run_and_denoise(registered_synth, weights, tmp_path):
    check_run_and_denoise("straightpcf", registered_synth, {"weights": weights, **SMALL_PATCHES}, tmp_path)


def test_cli_bench_and_tune_on_val(registered_synth, weights, tmp_path):
    check_bench_and_tune_on_val("straightpcf", registered_synth, {"weights": weights, **SMALL_PATCHES}, tmp_path)
