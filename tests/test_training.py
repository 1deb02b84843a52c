"""The generic trainer with ScoreDenoise's loss: a tiny run on a tiny dataset, resumed from its checkpoint."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import trimesh

from sbdbench.data.dataset import Dataset
from sbdbench.io import write_points
from sbdbench.methods.learned.checkpoint import load_checkpoint
from sbdbench.methods.learned.data_patches import PatchSampler, load_split_clouds
from sbdbench.methods.learned.training import RECIPES, run_recipe


def _tiny_dataset(root, n_points=700):
    """Train: sphere + capsule, val: box; clean clouds only, in the on-disk layout."""
    shapes = {"train": {"sphere": trimesh.creation.icosphere(3), "capsule": trimesh.creation.capsule(1.0, 0.5)},
              "val": {"box": trimesh.creation.box((1, 0.7, 0.5))}}
    for split, meshes in shapes.items():
        for i, (name, mesh) in enumerate(meshes.items()):
            rng = np.random.default_rng(i)
            pts = trimesh.sample.sample_surface(mesh, n_points, seed=i)[0] + rng.normal(0, 1e-4, (n_points, 3))
            write_points(root / "tiny" / "pointclouds" / split / f"{n_points}_poisson" / f"{name}.xyz", pts)
    return Dataset("tiny", root)


def test_sampler_shapes_and_reproducible(tmp_path):
    ds = _tiny_dataset(tmp_path)
    clouds = load_split_clouds(ds, "train")
    a = PatchSampler(clouds, patch_size=200, patches_per_cloud=3, seed=1).sample(5)
    b = PatchSampler(clouds, patch_size=200, patches_per_cloud=3, seed=1).sample(5)
    assert a["noisy"].shape == (5, 200, 3) and a["clean"].shape == (5, 240, 3)
    assert torch.equal(a["noisy"], b["noisy"])
    assert ((a["sigma"] >= 0.005) & (a["sigma"] <= 0.02)).all()
    # the noisy patch lies around the clean one: noise is small compared with the patch extent
    assert (a["noisy"].mean(1) - a["clean"].mean(1)).norm(dim=-1).max() < 0.2


def test_tiny_training_resumes(tmp_path, monkeypatch):
    import sbdbench.methods.learned  # noqa: F401  (registers the training recipes)

    assert "score" in RECIPES
    ds_root = tmp_path / "data"
    _tiny_dataset(ds_root)
    monkeypatch.setenv("SBDBENCH_HOME", str(tmp_path / "home"))
    from sbdbench.data import dataset as dataset_mod

    monkeypatch.setattr(dataset_mod, "data_root", lambda: ds_root)
    out = tmp_path / "run"
    opts = dict(dataset="tiny", out_dir=out, batch_size=2, patches_per_cloud=2, patch_size=200, val_every=2, val_batches=1, threads=1,
                lr_final=None, log=lambda s: None)  # a constant rate: the 2-iteration run and its 4-iteration continuation share it
    first = run_recipe("score", iterations=2, **opts)
    assert first.iterations == 2 and (out / "last.pt").is_file() and (out / "best.pt").is_file()
    resumed = run_recipe("score", iterations=4, **opts)
    assert resumed.iterations == 4
    rows = list(csv.DictReader(open(out / "loss.csv")))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    assert (out / "loss.png").stat().st_size > 0
    # a fresh uninterrupted run draws the same batches: same losses as the resumed one
    straight = run_recipe("score", iterations=4, **{**opts, "out_dir": tmp_path / "straight"})
    assert [r["loss"] for r in straight.history] == pytest.approx([float(r["loss"]) for r in rows], rel=1e-4)
    state, meta = load_checkpoint(out / "best.pt")
    assert meta["method"] == "score" and meta["config"]["batch_size"] == 2
    assert all(v.dtype != torch.float64 for v in state.values())
    # the project file loads with weights_only=True and no allow-list
    raw = torch.load(out / "best.pt", weights_only=True)
    assert set(raw) == {"state_dict", "meta"}
    # extending a run is recorded (the LR history of the weights), an uninterrupted one is one segment
    assert torch.load(out / "last.pt", weights_only=True)["segments"] == [[0, 2], [2, 4]]
    assert torch.load(tmp_path / "straight" / "last.pt", weights_only=True)["segments"] == [[0, 4]]
    lines = []
    cosine = {**opts, "lr_final": 1e-5, "out_dir": tmp_path / "cosine", "log": lines.append}
    run_recipe("score", iterations=2, **cosine)
    run_recipe("score", iterations=3, **cosine)
    assert any("warm restart" in line for line in lines)
    lines.clear()
    run_recipe("score", iterations=5, **{**opts, "log": lines.append})
    again = run_recipe("score", iterations=4, **{**opts, "log": lines.append})  # a finished run is left as it is
    assert again.iterations == 5 and any("nothing to do" in line for line in lines)
    assert torch.load(out / "last.pt", weights_only=True)["segments"] == [[0, 2], [2, 4], [4, 5]]
    assert load_checkpoint(out / "best.pt")[1]["segments"][0] == [0, 2]  # the best weights say how they were trained


def test_cosine_learning_rate_is_a_function_of_the_iteration():
    from sbdbench.methods.learned.training import TrainConfig, learning_rate

    cfg = TrainConfig(iterations=11, lr=1e-3, lr_final=1e-5)
    assert learning_rate(cfg, 1) == pytest.approx(1e-3)
    assert learning_rate(cfg, 6) == pytest.approx((1e-3 + 1e-5) / 2)
    assert learning_rate(cfg, 11) == pytest.approx(1e-5)
    rates = [learning_rate(cfg, i) for i in range(1, 12)]
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert learning_rate(TrainConfig(iterations=11, lr=1e-3), 7) == 1e-3


def test_zero_output_start_and_scaled_output_rate(tmp_path, monkeypatch):
    """A zeroed output layer predicts no displacement; the head trains at ``output_lr_scale`` × the rate."""
    import sbdbench.methods.learned  # noqa: F401
    from sbdbench.methods.learned.model import ScoreDenoiseModel

    model = ScoreDenoiseModel().zero_output().eval()
    with torch.no_grad():
        assert torch.equal(model.score_net(torch.randn(4, 8, 3), torch.randn(4, 60)), torch.zeros(4, 8, 3))
    ds_root = tmp_path / "data"
    _tiny_dataset(ds_root)
    monkeypatch.setenv("SBDBENCH_HOME", str(tmp_path / "home"))
    from sbdbench.data import dataset as dataset_mod

    monkeypatch.setattr(dataset_mod, "data_root", lambda: ds_root)
    result = run_recipe("score", dataset="tiny", out_dir=tmp_path / "run", iterations=3, batch_size=2, patches_per_cloud=2, patch_size=200,
                        val_every=3, val_batches=1, threads=1, lr=1e-3, lr_final=1e-4, output_lr_scale=0.1, zero_output=True, log=lambda s: None)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    body, head = state["optimizer"]["param_groups"]
    assert body["lr"] == pytest.approx(1e-4) and head["lr"] == pytest.approx(1e-5)  # the last iteration's rates
    assert len(head["params"]) == 2  # conv_out weight and bias
    weights, meta = load_checkpoint(result.best_path)
    assert weights["score_net.conv_out.weight"].abs().sum() > 0  # it trained away from zero
    assert meta["config"]["extra"]["zero_output"] is True and meta["config"]["output_lr_scale"] == 0.1


def test_recipe_options_are_one_value_and_unknown_ones_are_refused():
    from sbdbench.errors import InputError
    from sbdbench.methods.learned.training import RECIPES, recipe_options, run_recipe

    shared, own = recipe_options("sbd", RECIPES["sbd"], {"iterations": 3, "noise_max": 0.03, "loss": "score", "sigma_min": 0.004})
    assert (shared.iterations, shared.noise_range, shared.out_dir) == (3, (0.005, 0.03), "train_sbd")
    assert (own.loss, own.sigma_min) == ("score", 0.004)  # sigma_min is the schedule's for sbd ...
    shared, own = recipe_options("score", RECIPES["score"], {"sigma_min": 0.01})
    assert shared.noise_range == (0.01, 0.02) and own is None  # ... and the training noise for score
    with pytest.raises(InputError, match="unknown option.*loss"):
        run_recipe("score", loss="sbd")
