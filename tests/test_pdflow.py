"""``pdflow``: equality with the ORIGINAL PD-Flow code (goldens in tests/golden/pdflow, made from its released
weights), strict loading, the README protocol, conformance, fetch and the CLI."""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from scipy.spatial import cKDTree

from sbdbench.errors import DataError, InputError
from sbdbench.methods import available_methods, make_method
from sbdbench.methods.learned.checkpoint import load_checkpoint, load_into
from sbdbench.methods.learned.pdflow import PDFlow, pdflow_denoise, remove_outliers, schedule
from sbdbench.methods.learned.pdflow.network import PDFlowNet

GOLDEN = Path(__file__).parent / "golden" / "pdflow"
RELEASED_SHA256 = "a28d8a624f1d88fa49f2d0b8429466f0087cb22e912c7c1180496f8fdbd356fa"


def _released(reference_dir) -> Path:
    path = reference_dir / "pdflow" / "pdflow-score-LCC.pt"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def _cd(a, b) -> float:
    return float((cKDTree(b).query(a)[0] ** 2).mean() + (cKDTree(a).query(b)[0] ** 2).mean())


def fixed_random_state() -> dict:
    """A deterministic state_dict for PDFlowNet from (key, shape) only: invertible maps orthogonal, small log-scales."""
    state = {}
    for key, value in PDFlowNet().state_dict().items():
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        if not value.is_floating_point():
            state[key] = value.clone()  # the channel reversal, num_batches_tracked
        elif key.endswith("permutater.W"):
            state[key] = torch.linalg.qr(torch.randn(value.shape, generator=g))[0]
        elif key == "channel_mask":  # near the identity, so that the output stays near the input
            state[key] = torch.eye(value.shape[0]) + 0.01 * torch.randn(value.shape, generator=g)
        elif key.endswith(("linear3.weight", "linears.6.weight")):  # small coupling outputs: a tame random flow
            state[key] = 0.1 * torch.randn(value.shape, generator=g) / value[0].numel() ** 0.5
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=g)
        elif key.endswith(("logs", "running_mean")) or value.dim() < 2:
            state[key] = 0.05 * torch.randn(value.shape, generator=g)
        else:
            fan_in = value[0].numel()
            state[key] = torch.randn(value.shape, generator=g) / fan_in ** 0.5
    return state


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pdflow") / "random.pt"
    torch.save(fixed_random_state(), path)
    return path


@pytest.fixture(scope="module")
def released_net(reference_dir):
    state, _ = load_checkpoint(_released(reference_dir))
    return load_into(PDFlowNet(), state).eval()


# --- equality with the original code ---------------------------------------------------------------------------
def test_first_module_and_network_equal_the_original(released_net):
    g = np.load(GOLDEN / "pdflow_patch.npz")
    eps = torch.randn((1, 32, 1024), generator=torch.Generator().manual_seed(7))
    assert np.array_equal(eps[0, :, :8].numpy(), g["eps_head"])  # the same random stream as the original's
    x = torch.from_numpy(g["patch"])[None]
    with torch.no_grad():
        aug = released_net.argument(x, released_net.graphs(x)[0], eps)[0].numpy()
        out = released_net(x, eps)[0].numpy()
    assert np.abs(aug - g["aug"]).max() < 1e-4  # seen: 1.2e-7
    assert np.abs(out - g["out"]).max() < 1e-4  # seen: 1.8e-6 (the inverse flow included)


@pytest.mark.parametrize("niters", [1, 2])
def test_full_protocol_equals_the_original_as_a_set(reference_dir, niters):
    g = np.load(GOLDEN / "pdflow_full.npz")
    ours = make_method("pdflow", weights=str(_released(reference_dir)), seed=11, niters=niters).denoise(g["noisy"])
    ref = g[f"out_{niters}"]
    assert ours.shape == ref.shape
    ratio = _cd(ours, ref) / _cd(ref, g["clean"])
    assert ratio <= 0.01, ratio  # seen: 4e-10 (1 pass), 1.6e-4 (2 passes)


def test_the_originals_own_spread_and_float64():
    """What the 1 % bound is measured against: another ε moves the original's output by ~12 % of its CD, float64
    by ~1e-9 of it, so the flow's inverse is not sensitive to float32 and the seed is what decides equality."""
    g = np.load(GOLDEN / "pdflow_full.npz")
    base = _cd(g["out_1"], g["clean"])
    assert _cd(g["out_1_seed12"], g["out_1"]) / base > 0.05
    assert _cd(g["out_1_float64"], g["out_1"]) / base < 1e-4
    assert json.loads((GOLDEN / "pdflow_meta.json").read_text())["patch_float64_vs_float32_max_abs"] < 1e-4


# --- weights ---------------------------------------------------------------------------------------------------
def test_released_file_loads_strict_with_weights_only(reference_dir):
    path = _released(reference_dir)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == RELEASED_SHA256
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert len(state) == 333
    PDFlowNet().load_state_dict(state, strict=True)


def test_checkpoint_of_another_method_names_the_first_mismatched_key(reference_dir):
    other = reference_dir / "score-denoise" / "ckpt.pt"
    if not other.is_file():
        pytest.skip(f"{other} is absent")
    with pytest.raises(DataError) as info:
        make_method("pdflow", weights=str(other)).denoise(np.random.default_rng(0).normal(size=(200, 3)))
    message = str(info.value)
    assert "\n" not in message and "PDFlowNet" in message and "missing (e.g. argument.shallow.convs.0.bias)" in message


def test_missing_official_weights_say_what_to_fetch(sbd_home):
    method = make_method("pdflow")
    assert "sbdbench fetch pdflow-official" in method.unavailable_reason()
    with pytest.raises(DataError, match="run `sbdbench fetch pdflow-official`"):
        method.denoise(np.random.default_rng(0).normal(size=(200, 3)))


def test_fetch_card_installs_through_the_loopback_server(sbd_home, reference_dir):
    from http_fixtures import LoopbackServer, url_map

    from sbdbench.data.sources.http import Downloader
    from sbdbench.data.sources import fetch

    body = _released(reference_dir).read_bytes()
    with LoopbackServer() as srv:
        srv.add_file("/github/unknownue/pdflow/raw/main/pretrain/pdflow-score-LCC.pt", body)
        result = fetch("pdflow-official", progress=False, url_map=url_map(srv.base), log=lambda m: None,
                       downloader=Downloader(retries=1, backoff=0.0, timeout=(5, 5), progress=False))
    target = sbd_home / "weights" / "pdflow-score-LCC.pt"
    assert result.path == target and target.read_bytes() == body
    assert make_method("pdflow").unavailable_reason() is None


def test_fetch_of_wrong_bytes_installs_nothing(sbd_home):
    from http_fixtures import LoopbackServer, url_map

    from sbdbench.data.sources.http import Downloader
    from sbdbench.data.sources import fetch

    with LoopbackServer() as srv:
        for path in ("/github/unknownue/pdflow/raw/main/pretrain/pdflow-score-LCC.pt",
                     "/githubraw/unknownue/pdflow/main/pretrain/pdflow-score-LCC.pt"):
            srv.add_file(path, b"x" * 2029556)
        with pytest.raises(DataError, match="checksum mismatch"):
            fetch("pdflow-official", progress=False, url_map=url_map(srv.base), log=lambda m: None,
                  downloader=Downloader(retries=1, backoff=0.0, timeout=(5, 5), progress=False))
    assert not (sbd_home / "weights" / "pdflow-score-LCC.pt").exists()


# --- protocol --------------------------------------------------------------------------------------------------
def test_schedule_is_the_readme_table():
    assert [schedule(10000, s) for s in (0.01, 0.02, 0.03)] == [(1, False), (1, False), (2, False)]
    assert [schedule(50000, s) for s in (0.01, 0.02, 0.03)] == [(1, False), (2, True), (2, True)]


def test_partition_runs_the_first_pass_on_interleaved_subsets():
    calls = []

    def net(patches, eps):
        calls.append(patches.shape)
        return patches

    rng = np.random.default_rng(3)
    x = rng.normal(size=(20500, 3))
    x = torch.as_tensor(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=torch.float32)
    out = pdflow_denoise(net, x, niters=2, first_iter_partition=True, batch_size=64)
    # two subsets of 10,250 points (int(3·10250/1024) = 30 patches each), then one pass on all (60 patches)
    assert out.shape == x.shape and [c[0] for c in calls] == [30, 30, 60]
    assert cKDTree(x.numpy()).query(out.numpy())[0].max() < 1e-5  # the identity net returns input points


def test_outlier_removal_drops_the_farthest_and_keeps_the_order():
    ref = torch.zeros(5, 3)
    merged = torch.tensor([[0.0, 0, 0], [5, 0, 0], [0.1, 0, 0], [3, 0, 0], [0.2, 0, 0]])
    assert torch.equal(remove_outliers(merged, ref, 2), merged[[0, 2, 4]])


# --- the method ------------------------------------------------------------------------------------------------
def test_registered_with_its_paper():
    assert "pdflow" in available_methods()
    assert PDFlow.uses_torch and PDFlow.preserves_count and "ECCV 2022" in PDFlow.paper
    assert make_method("pdflow").get_params() == {"weights": "official", "device": "cpu", "niters": None,
                                                  "first_iter_partition": None, "patch_size": 1024, "seed_k": 3,
                                                  "seed": 0, "memory_mb": 256}


def test_conformance_with_fixed_random_weights(random_weights):
    from sbdbench.methods.conformance import CHECKS, check_denoiser

    assert set(CHECKS) <= set(check_denoiser(make_method("pdflow", weights=str(random_weights))))


def test_released_weights_denoise_a_sphere(reference_dir):
    rng = np.random.default_rng(4)
    clean = rng.normal(size=(3000, 3))
    clean /= np.linalg.norm(clean, axis=1, keepdims=True)
    noisy = clean + rng.normal(0, 0.02, clean.shape)
    out = make_method("pdflow", weights=str(_released(reference_dir))).denoise(noisy * 4 + 1, noise_level=0.02)
    err = lambda p: np.abs(np.linalg.norm(p, axis=1) - 1).mean()  # noqa: E731
    assert err((out - 1) / 4) < 0.6 * err(noisy)


@pytest.mark.parametrize("params, fragment", [
    ({"niters": 0}, "niters must be an integer"), ({"patch_size": 16}, "patch_size must be"),
    ({"seed_k": -1}, "seed_k must be"), ({"first_iter_partition": "yes"}, "first_iter_partition must be"),
    ({"first_iter_partition": True}, "needs more than 10000 points"), ({"device": "nowhere"}, "cannot use device"),
])
def test_bad_parameters_are_one_line_errors(random_weights, params, fragment):
    with pytest.raises(InputError, match=fragment) as info:
        make_method("pdflow", weights=str(random_weights), **params).denoise(np.random.default_rng(0).normal(size=(500, 3)))
    assert "\n" not in str(info.value)


def test_tiny_input_is_a_clear_error(random_weights):
    with pytest.raises(InputError, match="at least 33 points"):
        make_method("pdflow", weights=str(random_weights)).denoise(np.random.default_rng(0).normal(size=(20, 3)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(random_weights):  # pragma: no cover - runs on GPU machines only
    x = np.random.default_rng(5).normal(size=(2000, 3))
    cpu = make_method("pdflow", weights=str(random_weights)).denoise(x, noise_level=0.02)
    gpu = make_method("pdflow", weights=str(random_weights), device="cuda").denoise(x, noise_level=0.02)
    assert _cd(cpu, gpu) < 1e-3 * _cd(cpu, x)


# --- CLI -------------------------------------------------------------------------------------------------------
def _invoke(*args):
    from sbdbench.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture()
def synth_home(tiny_synth, monkeypatch):
    monkeypatch.setenv("SBDBENCH_HOME", str(tiny_synth.root.parent))
    return tiny_synth


def test_cli_run_denoise_bench_tune_and_methods(synth_home, random_weights, tmp_path):
    ds = synth_home
    w = f"weights={random_weights}"
    res = _invoke("run", "--method", "pdflow", "--dataset", ds.name, "--resolutions", 1000, "--sigmas", 0.02,
                  "--param", w, "--defaults", "--shapes", "sphere", "--out", tmp_path / "run", "-q")
    assert res.exit_code == 0, res.output
    assert "cd_1e4" in res.output
    src = next((ds.root / "synth" / "examples").glob("synth_1000_poisson_0.02/*.xyz"), None) or next(ds.root.rglob("*.xyz"))
    res = _invoke("denoise", "--method", "pdflow", "--param", w, src, tmp_path / "out.xyz")
    assert res.exit_code == 0, res.output
    assert np.loadtxt(tmp_path / "out.xyz").shape == np.loadtxt(src).shape
    res = _invoke("bench", "--methods", f"pdflow:{w}", "--datasets", ds.name, "--resolutions", 1000, "--sigmas", 0.02,
                  "--db", tmp_path / "r.db", "-q")
    assert res.exit_code == 0, res.output
    res = _invoke("tune", "--method", "pdflow", "--dataset", ds.name, "--split", "val", "--resolutions", 1000,
                  "--sigmas", 0.02, "--max-shapes", 1, "--param", w, "--out", tmp_path / "baselines" / "pdflow.toml")
    assert res.exit_code == 0, res.output
    res = _invoke("methods")
    assert res.exit_code == 0 and "pdflow" in res.output and "Mao, Du" in res.output
