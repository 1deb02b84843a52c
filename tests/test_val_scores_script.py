"""scripts/val_scores.py scores a method on the val shapes exactly as `tune --split val` does, plus P2M."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

from sbdbench.metrics import chamfer
from sbdbench.methods.tuning import pick_shapes, training_pair

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "val_scores.py"


def load_script():
    spec = importlib.util.spec_from_file_location("val_scores", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_val_scores_are_the_tuning_inputs_scored(tiny_synth, monkeypatch):
    monkeypatch.setenv("SBDBENCH_HOME", str(tiny_synth.root.parent))
    result = load_script().val_scores("noisy", 0.02, {}, n_points=1000)
    shapes = pick_shapes(tiny_synth, 8, "val")
    assert list(result["per_shape"]) == shapes and len(shapes) == 2
    # "noisy" returns its input, so its CD is the tuning's noisy CD of each val pair
    expected = np.mean([chamfer(noisy, clean) for clean, noisy in (training_pair(tiny_synth, s, 1000, 0.02, 0, "val") for s in shapes)])
    assert abs(result["cd_1e4"] - expected * 1e4) < 1e-3
    assert result["p2m_1e4"] > 0 and all(len(v) == 2 for v in result["per_shape"].values())
    pca = load_script().val_scores("pca", 0.02, {}, n_points=1000)
    assert pca["cd_1e4"] < result["cd_1e4"]  # a denoiser beats its noisy input on the same pairs


def test_bad_sigma_is_one_line(tiny_synth, monkeypatch):
    monkeypatch.setenv("SBDBENCH_HOME", str(tiny_synth.root.parent))
    run = subprocess.run([sys.executable, str(SCRIPT), "--method", "pca", "--sigma", "5x"], capture_output=True, text=True)
    assert run.returncode != 0 and run.stderr.strip().startswith("error:") and "Traceback" not in run.stderr


def test_tuning_inputs_put_the_mesh_in_the_clouds_frame(tiny_synth):
    from sbdbench.methods.tuning import tuning_inputs
    from sbdbench.metrics import point_to_mesh_distances

    pairs = tuning_inputs(tiny_synth, 1000, 0.02, 8, split="val")
    cases = tuning_inputs(tiny_synth, 1000, 0.02, 8, split="val", meshes=True)
    assert list(pairs) == list(cases) == pick_shapes(tiny_synth, 8, "val")
    for shape, (clean, noisy, verts, faces) in cases.items():
        np.testing.assert_array_equal(noisy, pairs[shape][1])
        on_mesh = np.sqrt(point_to_mesh_distances(clean, verts, faces))  # the clean cloud lies on its mesh ...
        off_mesh = np.sqrt(point_to_mesh_distances(noisy, verts, faces))  # ... the noisy one ~σ off it
        assert on_mesh.max() < 1e-4 and 0.5 * 0.02 < np.median(off_mesh) < 2 * 0.02
