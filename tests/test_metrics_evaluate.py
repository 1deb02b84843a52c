"""Scoring prediction folders and files: matching by shape name, the CSV, and `sbdbench evaluate`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import trimesh
from click.testing import CliRunner

from sbdbench.cli import main
from sbdbench.data.dataset import Dataset
from sbdbench.errors import DataError, InputError
from sbdbench.io import write_mesh, write_points
from sbdbench.metrics import evaluate_folder, evaluate_shape, mean_table, to_report_units

N = 300
SHAPES = {"ball": ("smooth", trimesh.creation.icosphere(2)), "cube": ("sharp", trimesh.creation.box((1.0, 2.0, 0.5))),
          "ring": ("genus", trimesh.creation.torus(1.0, 0.3, major_sections=24, minor_sections=12))}


@pytest.fixture()
def dataset(sbd_home):
    """A three-shape dataset in the on-disk layout under the private $SBDBENCH_HOME, plus noisy predictions."""
    root = sbd_home / "data"
    name = "tiny"
    manifest = {"shapes": {}}
    preds = {}
    for i, (shape, (category, mesh)) in enumerate(SHAPES.items()):
        write_mesh(root / name / "meshes" / "test" / f"{shape}.off", mesh.vertices, mesh.faces)
        clean, _ = trimesh.sample.sample_surface(mesh, N, seed=i)
        write_points(root / name / "pointclouds" / "test" / f"{N}_poisson" / f"{shape}.xyz", clean)
        manifest["shapes"][shape] = {"category": category}
        preds[shape] = clean + np.random.default_rng(i).normal(0, 0.02, clean.shape)
    (root / name / "manifest.json").write_text(json.dumps(manifest))
    return Dataset(name, root), preds


def _write_preds(folder, preds):
    folder.mkdir(parents=True, exist_ok=True)
    for shape, pts in preds.items():
        write_points(folder / f"{shape}.xyz", pts)
    return folder


def test_evaluate_folder_scores_every_shape_by_name(dataset, tmp_path):
    ds, preds = dataset
    pred_dir = _write_preds(tmp_path / "pred", preds)
    (pred_dir / "log.txt").write_text("not a prediction")  # other files are ignored
    frame = evaluate_folder(ds, pred_dir, N)
    assert list(frame.columns) == ["shape", "category", "n_points", "n_out", "cd", "p2m", "p2m_pt3d", "hd"]
    assert list(frame["shape"]) == sorted(SHAPES)
    assert list(frame["category"]) == [SHAPES[s][0] for s in sorted(SHAPES)]
    for row in frame.itertuples():
        verts, faces = ds.load_mesh(row.shape)
        # the written file has %.8f precision, so compare with the values of what was read back
        from sbdbench.io import read_points

        ref = evaluate_shape(read_points(pred_dir / f"{row.shape}.xyz"), ds.load_clean(row.shape, N), verts, faces)
        assert row.cd == pytest.approx(ref["cd"]) and row.p2m == pytest.approx(ref["p2m"]) and row.hd == pytest.approx(ref["hd"])
        assert row.n_out == N
    assert np.isfinite(frame[["cd", "p2m", "p2m_pt3d", "hd"]].to_numpy()).all()


def test_a_swapped_file_changes_that_shape_only(dataset, tmp_path):
    ds, preds = dataset
    good = evaluate_folder(ds, _write_preds(tmp_path / "a", preds), N).set_index("shape")
    swapped = dict(preds, ball=preds["cube"])
    bad = evaluate_folder(ds, _write_preds(tmp_path / "b", swapped), N).set_index("shape")
    assert bad.loc["ball", "cd"] > 10 * good.loc["ball", "cd"]
    assert bad.loc["ring", "cd"] == good.loc["ring", "cd"]


def test_missing_and_extra_files_are_named(dataset, tmp_path):
    ds, preds = dataset
    missing = _write_preds(tmp_path / "missing", {k: v for k, v in preds.items() if k != "cube"})
    with pytest.raises(InputError, match="cube"):
        evaluate_folder(ds, missing, N)
    extra = _write_preds(tmp_path / "extra", dict(preds, chair=preds["ball"]))
    with pytest.raises(InputError, match=r"chair\.xyz"):
        evaluate_folder(ds, extra, N)
    with pytest.raises(DataError, match="500"):
        evaluate_folder(ds, _write_preds(tmp_path / "ok", preds), 500)
    with pytest.raises(InputError, match="does not exist"):
        evaluate_folder(ds, tmp_path / "nowhere", N)


def test_bad_prediction_names_the_shape(dataset, tmp_path):
    ds, preds = dataset
    pred_dir = _write_preds(tmp_path / "p", preds)
    (pred_dir / "ring.xyz").write_text("1 2 3\n4 nan 6\n")
    with pytest.raises(InputError, match="ring"):
        evaluate_folder(ds, pred_dir, N)


def test_report_units_are_scaled_and_labelled():
    frame = pd.DataFrame([{"shape": "a", "category": "smooth", "cd": 2e-4, "p2m": 1e-4, "p2m_pt3d": 3e-4, "hd": 0.01},
                          {"shape": "b", "category": "sharp", "cd": 4e-4, "p2m": 3e-4, "p2m_pt3d": 5e-4, "hd": 0.03}])
    rep = to_report_units(frame)
    assert rep["cd_1e4"].tolist() == pytest.approx([2.0, 4.0]) and rep["hd"].tolist() == [0.01, 0.03]
    table = mean_table(frame)
    assert table.loc["all", "cd_1e4"] == pytest.approx(3.0) and table.loc["all", "p2m_1e4"] == pytest.approx(2.0)
    assert table.loc["smooth", "n_shapes"] == 1 and table.loc["all", "n_shapes"] == 2


def test_cli_folder_and_files(dataset, tmp_path):
    ds, preds = dataset
    pred_dir = _write_preds(tmp_path / "pred", preds)
    out = tmp_path / "per_shape.csv"
    runner = CliRunner()
    res = runner.invoke(main, ["evaluate", "--dataset", ds.name, "--pred-dir", str(pred_dir), "--resolutions", str(N), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "cd_1e4" in res.output and "p2m_pt3d_1e4" in res.output and "genus" in res.output
    csv = pd.read_csv(out)
    assert list(csv["shape"]) == sorted(SHAPES) and {"cd", "p2m", "p2m_pt3d", "hd", "category", "n_points"} <= set(csv.columns)

    res = runner.invoke(main, ["evaluate", "--pred", str(pred_dir / "ball.xyz"), "--gt-points", str(ds.clean_path("ball", N)),
                               "--gt-mesh", str(ds.mesh_path("ball"))])
    assert res.exit_code == 0, res.output
    expected = csv.set_index("shape").loc["ball", "cd"] * 1e4
    assert f"{expected:.5g}" in res.output

    res = runner.invoke(main, ["evaluate", "--dataset", ds.name, "--pred-dir", str(tmp_path / "nothing"), "--resolutions", str(N)])
    assert res.exit_code == 1 and res.output.startswith("error:") and "Traceback" not in res.output
    res = runner.invoke(main, ["evaluate", "--pred", str(pred_dir / "ball.xyz"), "--gt-points", str(pred_dir / "ball.xyz")])
    assert res.exit_code == 2 and "go together" in res.output  # half a GT is a usage error
    res = runner.invoke(main, ["evaluate", "--pred", str(pred_dir / "ball.xyz")])  # no GT at all: the no-reference figures
    assert res.exit_code == 0 and "plane_res" in res.output and "cd_1e4" not in res.output
