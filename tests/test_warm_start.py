"""Warm starts: ``sbdbench train --init official|project|scratch|PATH`` fine-tunes trained networks."""

from __future__ import annotations

import hashlib

import pytest
import torch
from click.testing import CliRunner

from sbdbench.errors import DataError, InputError
from sbdbench.methods.learned.checkpoint import load_checkpoint, save_project_weights
from sbdbench.methods.learned.model import ScoreDenoiseModel
from sbdbench.methods.learned.patch_recipe import FINE_TUNE_OPTIMISER, optimiser_options, patch_data, start_model
from sbdbench.methods.learned.training import TrainConfig, learning_rate, run_recipe
from test_training import _tiny_dataset


@pytest.fixture()
def tiny_home(tmp_path, monkeypatch):
    """A private home whose data root holds the tiny train/val dataset ``tiny``."""
    import sbdbench.methods.learned  # noqa: F401  (registers the recipes)
    from sbdbench.data import dataset as dataset_mod

    root = tmp_path / "data"
    _tiny_dataset(root)
    monkeypatch.setenv("SBDBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(dataset_mod, "data_root", lambda: root)
    return tmp_path


def _trained_file(path, seed=7):
    torch.manual_seed(seed)
    model = ScoreDenoiseModel()
    save_project_weights(path, model, {"method": "score"})
    return model


OPTS = dict(dataset="tiny", batch_size=2, patches_per_cloud=2, patch_size=200, val_every=1, val_batches=1, threads=1, log=lambda s: None)


@pytest.mark.parametrize("method", ["score", "sbd"])
def test_init_starts_from_the_file_and_records_it(tiny_home, method):
    init = tiny_home / "init.pt"
    start = _trained_file(init)
    result = run_recipe(method, init=str(init), out_dir=tiny_home / "run", iterations=1, **OPTS)
    state, meta = load_checkpoint(result.best_path)
    assert meta["init_sha256"] == hashlib.sha256(init.read_bytes()).hexdigest() and meta["init"] == str(init)
    config = meta["config"]
    assert (config["lr"], config["lr_final"], config["warmup"], config["freeze_norm"]) == (2e-5, 1e-7, 50, True)
    assert config["extra"]["zero_output"] is False and config["extra"]["start"]["init_sha256"] == meta["init_sha256"]
    # one warm-up step (rate 1e-6) leaves the network at the file's weights, far from a random start
    own = dict(start.named_parameters())  # (BatchNorm's running statistics move in training mode)
    assert max((state[k] - own[k].detach()).abs().max().item() for k in own) < 1e-4
    assert state["score_net.conv_out.weight"].abs().sum() > 0  # the output layer was not zeroed
    # the starting network is validated first (iteration 0): the baseline a fine-tune must beat
    assert [r["iteration"] for r in result.history][:2] == [0, 1] and result.history[0]["val"] != ""
    assert result.best_val == min(float(r["val"]) for r in result.history)


def test_warm_up_then_cosine():
    cfg = TrainConfig(iterations=110, lr=1e-4, lr_final=1e-6, warmup=10)
    assert learning_rate(cfg, 1) == pytest.approx(1e-5) and learning_rate(cfg, 10) == pytest.approx(1e-4)
    assert learning_rate(cfg, 11) == pytest.approx(1e-4) and learning_rate(cfg, 110) == pytest.approx(1e-6)
    rates = [learning_rate(cfg, i) for i in range(10, 111)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def test_fine_tune_defaults_and_overrides():
    assert optimiser_options("official", {"lr": "default"}) == FINE_TUNE_OPTIMISER
    assert optimiser_options("official", {"lr": 3e-5, "lr_final": None})["lr_final"] is None  # None = a constant rate
    assert optimiser_options(None, {})["zero_output"] is True  # from scratch: as the shipped scratch weights
    with pytest.raises(InputError, match="zero_output"):
        optimiser_options("official", {"zero_output": True})


def test_bad_init_files_are_one_line_errors(tiny_home):
    missing = tiny_home / "nope.pt"
    with pytest.raises(DataError, match="not found"):
        start_model(str(missing), "score", 0, False)
    other = tiny_home / "other.pt"
    state = ScoreDenoiseModel().state_dict()
    state["score_net.conv_out.weight"] = torch.zeros(5, 128, 1)
    torch.save({"state_dict": state}, other)
    with pytest.raises(DataError, match=r"another shape \(e.g. score_net.conv_out.weight"):
        start_model(str(other), "score", 0, False)
    renamed = tiny_home / "renamed.pt"
    torch.save({"state_dict": {("module." + k): v for k, v in ScoreDenoiseModel().state_dict().items()}}, renamed)
    with pytest.raises(DataError, match="missing"):
        start_model(str(renamed), "sbd", 0, False)
    unsafe = tiny_home / "unsafe.pt"
    torch.save({"state_dict": {}, "hook": hashlib.sha256}, unsafe)
    with pytest.raises(DataError, match="unsafe"):
        start_model(str(unsafe), "score", 0, False)


def test_init_official_before_fetch_says_what_to_run(tiny_home):
    from sbdbench.cli import main

    res = CliRunner().invoke(main, ["train", "--method", "sbd", "--dataset", "tiny", "--init", "official", "--out", str(tiny_home / "r"),
                                    "--iterations", "1", "--param", "patch_size=200"])
    assert res.exit_code == 1
    lines = [line for line in res.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "sbdbench fetch score-official" in lines[0]
    assert not (tiny_home / "r" / "last.pt").exists()


def test_a_folder_holding_another_run_is_refused_and_kept(tiny_home):
    init = tiny_home / "init.pt"
    _trained_file(init)
    out = tiny_home / "run"
    run_recipe("score", out_dir=out, iterations=1, **OPTS)  # from scratch
    before = (out / "last.pt").read_bytes()
    with pytest.raises(InputError, match="holds another training run"):
        run_recipe("score", init=str(init), out_dir=out, iterations=2, **OPTS)
    with pytest.raises(InputError, match="holds another training run"):
        run_recipe("sbd", out_dir=out, iterations=2, **{**OPTS, "loss": "score"})
    assert (out / "last.pt").read_bytes() == before
    run_recipe("score", out_dir=out, iterations=2, **OPTS)  # the same run extends


def test_train_splits_of_several_datasets_are_pooled(tiny_home):
    from test_training import _tiny_dataset as build

    root = tiny_home / "data"
    second = build(root / "second_tmp")  # a second dataset, renamed: only its train split is kept
    (root / "second_tmp" / "tiny").rename(root / "tiny2")
    import shutil

    shutil.rmtree(root / "tiny2" / "pointclouds" / "val")
    del second
    one = patch_data("tiny", None, patch_size=200, noise_range=(0.01, 0.01), patches_per_cloud=1, batch_size=1, val_batches=1,
                     val_sigma=0.01, seed=0)
    both = patch_data("tiny,tiny2", None, patch_size=200, noise_range=(0.01, 0.01), patches_per_cloud=1, batch_size=1, val_batches=1,
                      val_sigma=0.01, seed=0)
    assert len(both.train_clouds) == 2 * len(one.train_clouds) and both.meta()["dataset"] == "tiny,tiny2"
    with pytest.raises(DataError, match="val split"):
        patch_data("tiny2", None, patch_size=200, noise_range=(0.01, 0.01), patches_per_cloud=1, batch_size=1, val_batches=1,
                   val_sigma=0.01, seed=0)


def test_official_checkpoint_loads_strictly_as_a_start(reference_dir):
    path = reference_dir / "score-denoise" / "ckpt.pt"
    model, record = start_model(str(path), "sbd", 0, False)
    state, _ = load_checkpoint(path)
    assert all(torch.equal(model.state_dict()[k], state[k]) for k in state)
    assert record["init_sha256"] == "d8aa53cfc92161581199170bce6e326b29f70208cc0c4dfe929f87aeeef365bc"
    assert "MIT" in record["init_provenance"]


def test_fine_tuning_keeps_the_batch_norm_statistics_of_the_start(tiny_home):
    init = tiny_home / "init.pt"
    start = _trained_file(init)
    with torch.no_grad():  # statistics unlike any a tiny batch would give
        start.score_net.blocks[0].bn_0.running_mean.fill_(0.01)
        start.score_net.blocks[0].bn_0.running_var.fill_(1.5)
    save_project_weights(init, start, {"method": "score"})
    run_recipe("score", init=str(init), out_dir=tiny_home / "frozen", iterations=2, lr=1e-3, warmup=0, **OPTS)
    frozen = torch.load(tiny_home / "frozen" / "last.pt", weights_only=True)["model"]
    assert torch.equal(frozen["score_net.blocks.0.bn_0.running_mean"], start.score_net.blocks[0].bn_0.running_mean)
    assert torch.equal(frozen["score_net.blocks.0.bn_0.running_var"], start.score_net.blocks[0].bn_0.running_var)
    affine = [k for k in frozen if ".bn_" in k and k.endswith(".weight")]
    assert max((frozen[k] - start.state_dict()[k]).abs().max().item() for k in affine) > 1e-4  # the affine part trains
    run_recipe("score", init=str(init), out_dir=tiny_home / "free", iterations=2, freeze_norm=False, **OPTS)
    free = torch.load(tiny_home / "free" / "last.pt", weights_only=True)["model"]
    assert not torch.equal(free["score_net.blocks.0.bn_0.running_mean"], start.score_net.blocks[0].bn_0.running_mean)


RELEASE_SHA256 = "d8aa53cfc92161581199170bce6e326b29f70208cc0c4dfe929f87aeeef365bc"


def test_shipped_sbd_weights_state_their_provenance_and_licence():
    from sbdbench.methods.learned.checkpoint import PACKAGE_WEIGHTS_DIR, resolve_weights
    from sbdbench.methods.learned.sbd import SBD
    from sbdbench.paths import sha256_file

    _, meta = load_checkpoint(resolve_weights("project", method="sbd"))
    mix = meta["interpolation"]  # the default: 0.25 × the fine-tune + 0.75 × the release
    assert mix["alpha"] == 0.25 and mix["start_sha256"] == RELEASE_SHA256
    assert mix["finetuned_sha256"] == sha256_file(resolve_weights("finetune", method="sbd"))
    _, tuned = load_checkpoint(resolve_weights("finetune", method="sbd"))
    assert tuned["init"] == "official" and tuned["init_sha256"] == RELEASE_SHA256
    assert tuned["config"]["freeze_norm"] is True and tuned["val"] < 1.48198  # better on val than the start (iteration 0)
    assert meta["init_sha256"] == RELEASE_SHA256  # the interpolation keeps the fine-tune's provenance
    notice = (PACKAGE_WEIGHTS_DIR / "LICENSE-score-denoise").read_text(encoding="utf-8")
    assert "MIT License" in notice and "Shitong Luo" in notice
    assert "sbd_project.pt" in notice and "sbd_finetune.pt" in notice
    _, scratch = load_checkpoint(resolve_weights("scratch", method="sbd"))
    assert "init" not in scratch and scratch["iteration"] == 5300  # the from-scratch weights stay reachable
    lines = SBD.shipped_weights()
    assert "WiSE-FT" in lines["project"] and "MIT licence" in lines["project"]
    assert "MIT licence" in lines["finetune"] and "random weights" in lines["scratch"]


def test_shipped_default_is_the_stated_interpolation_of_the_release(reference_dir):
    from sbdbench.methods.learned.checkpoint import resolve_weights
    from sbdbench.methods.learned.interpolation import interpolate_states

    shipped, meta = load_checkpoint(resolve_weights("project", method="sbd"))
    tuned, _ = load_checkpoint(resolve_weights("finetune", method="sbd"))
    release, _ = load_checkpoint(reference_dir / "score-denoise" / "ckpt.pt")
    again = interpolate_states(tuned, release, meta["interpolation"]["alpha"])
    assert set(again) == set(shipped) and all(torch.equal(again[k], shipped[k]) for k in shipped)


def test_cloud_validation_scores_the_whole_method_on_the_val_clouds(tiny_synth, monkeypatch):
    """``--param val=clouds``: the in-memory networks run through ``sbd`` exactly as the same file loaded by name."""
    import numpy as np

    from sbdbench.methods.learned.sbd import load_sbd_model
    from sbdbench.methods.learned.sbd_training import cloud_validation
    from sbdbench.methods.resolve import resolve_method
    from sbdbench.methods.tuning import pick_shapes, training_pair
    from sbdbench.metrics import chamfer

    monkeypatch.setenv("SBDBENCH_HOME", str(tiny_synth.root.parent))
    model, _ = load_sbd_model("project")
    got = cloud_validation([tiny_synth], n_points=1000, sigmas=(0.02,))(model)
    method = resolve_method("sbd", 1000, 0.02, frozen=True).method  # loads sbdbench/weights/sbd_project.pt (the default) itself
    pairs = [training_pair(tiny_synth, s, 1000, 0.02, 0, "val") for s in pick_shapes(tiny_synth, 8, "val")]
    expected = 1e4 * np.mean([chamfer(method.denoise(noisy, noise_level=0.02), clean) for clean, noisy in pairs])
    noisy_cd = 1e4 * np.mean([chamfer(noisy, clean) for clean, noisy in pairs])
    assert abs(got - expected) < 1e-6 * expected and got < noisy_cd
    torch.manual_seed(0)
    assert cloud_validation([tiny_synth], n_points=1000, sigmas=(0.02,))(ScoreDenoiseModel().eval()) != pytest.approx(got)


def test_an_unknown_validation_mode_is_a_one_line_error(tiny_home):
    with pytest.raises(InputError, match="unknown validation 'bogus'"):
        run_recipe("sbd", out_dir=tiny_home / "run", iterations=1, val="bogus", **OPTS)
