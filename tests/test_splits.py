"""Dataset builds: ScoreDenoise layout, determinism, manifest + verify, idempotence, user meshes, bad input."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import trimesh

from sbdbench.data.checks import check_noise
from sbdbench.data.dataset import open_dataset, register_dataset
from sbdbench.data.splits import BUILDING_MARKER, build_dataset, build_dataset_from_folder, derive_seed, verify_dataset
from sbdbench.data.synth import build_synth_dataset
from sbdbench.errors import DataError, InputError, SbdbenchError
from sbdbench.geometry import bbox_center_and_scale

SMALL = dict(resolutions=(300, 600), noise_levels=(0.01, 0.03), shapes=("cube", "torus"), include_train=False,
             progress=False, workers=1)


def _hashes(ds):
    return {k: v["sha256"] for k, v in ds.manifest["files"].items()}


def test_scoredenoise_layout(tiny_synth):
    root = tiny_synth.root
    for shape in ("sphere", "cube", "torus"):
        assert (root / "synth" / "meshes" / "test" / f"{shape}.off").is_file()
        for n in (1000, 2000):
            assert (root / "synth" / "pointclouds" / "test" / f"{n}_poisson" / f"{shape}.xyz").is_file()
            for sigma in ("0.01", "0.02"):
                assert (root / "examples" / f"synth_{n}_poisson_{sigma}" / f"{shape}.xyz").is_file()
        assert (root / "examples" / "synth_1000_poisson_laplace_0.02" / f"{shape}.xyz").is_file()
    assert sorted(p.name for p in (root / "synth").iterdir()) == ["manifest.json", "meshes", "pointclouds"]
    # what ScoreDenoise's loaders read, through our Dataset API
    assert tiny_synth.shapes("test") == ["cube", "sphere", "torus"]
    assert tiny_synth.resolutions("test") == [1000, 2000]
    assert tiny_synth.noise_levels(2000) == [0.01, 0.02]
    assert len(tiny_synth.shapes("train")) == 3 and len(tiny_synth.shapes("val")) == 2
    assert (root / "examples" / "synth_val_1000_poisson_0.02").is_dir()


def test_files_hold_exact_counts_in_the_unit_frame(tiny_synth):
    v, f = tiny_synth.load_mesh("torus")
    center, scale = bbox_center_and_scale(v)
    assert np.allclose(center, 0, atol=1e-7) and scale == pytest.approx(1.0, abs=1e-7)
    for n in (1000, 2000):
        clean = tiny_synth.load_clean("torus", n)
        noisy = tiny_synth.load_noisy("torus", n, 0.02)
        assert clean.shape == noisy.shape == (n, 3)
        assert np.linalg.norm(clean, axis=1).max() <= 1.0 + 1e-7
        # clean points lie on the written mesh
        import igl

        sq = igl.point_mesh_squared_distance(clean, v, f.astype(np.int64))[0]
        assert np.sqrt(sq).max() < 1e-6
    text = tiny_synth.clean_path("cube", 1000).read_text().splitlines()[0].split()
    assert len(text) == 3 and all(len(t.split(".")[1]) == 8 for t in text)


def test_manifest_content(tiny_synth):
    m = tiny_synth.manifest
    assert m["shapes"]["cube"]["category"] == "sharp" and tiny_synth.category("torus") == "genus"
    assert m["shapes"]["torus"]["split"] == "test" and m["shapes"]["torus"]["recipe"] == "torus"
    assert m["shapes"]["torus"]["genus"] == 1 and m["shapes"]["cube"]["genus"] == 0
    assert all(s["closed"] and s["components"] == 1 for s in m["shapes"].values())
    assert {s["split"] for s in m["shapes"].values()} == {"train", "val", "test"}
    assert "examples/synth_1000_poisson_0.01/cube.xyz" in m["files"]
    assert "synth/meshes/test/cube.off" in m["files"]
    on_disk = {p.relative_to(tiny_synth.root).as_posix() for p in tiny_synth.root.rglob("*")
               if p.is_file() and p.name != "manifest.json" and not p.name.startswith(".")}
    assert set(m["files"]) == on_disk
    assert m["libraries"]["numpy"] == np.__version__ and "seeds" in m["shapes"]["cube"]
    assert m["version"] == "synth-v2" and "licence" in m and "citation" in m


def test_two_builds_are_byte_identical(tmp_path):
    a = build_synth_dataset(tmp_path / "a", **SMALL)
    b = build_synth_dataset(tmp_path / "b", **SMALL, )
    assert _hashes(a) == _hashes(b)
    assert a.manifest_path.read_bytes() == b.manifest_path.read_bytes()
    # parallel workers give the same bytes as one process
    c = build_synth_dataset(tmp_path / "c", **{**SMALL, "workers": 2})
    assert _hashes(c) == _hashes(a)


def test_verify_catches_changes_and_interrupted_builds(tmp_path):
    ds = build_synth_dataset(tmp_path, **SMALL)
    assert verify_dataset(ds).ok
    noisy = ds.noisy_path("cube", 300, 0.01)
    noisy.write_text(noisy.read_text().replace("0", "1", 1))
    with pytest.raises(DataError, match="checksum mismatch.*examples/synth_300_poisson_0.01/cube.xyz"):
        verify_dataset(ds)
    ds.clean_path("torus", 600).unlink()
    report = verify_dataset(ds, raise_on_error=False)
    assert not report.ok and report.missing == ["synth/pointclouds/test/600_poisson/torus.xyz"]
    # idempotent build notices the damage and rebuilds
    again = build_synth_dataset(tmp_path, **SMALL)
    assert verify_dataset(again).ok
    # an interrupted build leaves the marker and no manifest: never accepted
    (again.dir / BUILDING_MARKER).write_text("x")
    with pytest.raises(DataError, match="interrupted"):
        verify_dataset(again)
    (again.dir / BUILDING_MARKER).unlink()
    again.manifest_path.unlink()
    with pytest.raises(DataError, match="no manifest"):
        verify_dataset(again)


def test_interrupted_build_is_rebuilt(tmp_path, monkeypatch):
    import sbdbench.data.splits as splits

    calls = {"n": 0}
    real = splits._build_shape

    def dies_on_second_shape(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(splits, "_build_shape", dies_on_second_shape)
    with pytest.raises(KeyboardInterrupt):
        build_synth_dataset(tmp_path, **SMALL)
    ds = open_dataset("synth", tmp_path)
    assert not ds.manifest_path.exists()
    with pytest.raises(DataError, match="interrupted"):
        verify_dataset(ds)
    assert not list(tmp_path.rglob(".*.tmp"))  # no half files
    monkeypatch.setattr(splits, "_build_shape", real)
    assert verify_dataset(build_synth_dataset(tmp_path, **SMALL)).ok


def test_idempotent_and_force(tmp_path):
    ds = build_synth_dataset(tmp_path, **SMALL)
    stamp = ds.manifest_path.stat().st_mtime_ns
    assert build_synth_dataset(tmp_path, **SMALL).manifest_path.stat().st_mtime_ns == stamp
    forced = build_synth_dataset(tmp_path, **SMALL, force=True)
    assert _hashes(forced) == _hashes(ds)
    stamp = forced.manifest_path.stat().st_mtime_ns
    # asking for a subset returns the existing, larger build untouched (its files are the subset's bytes)
    subset = build_synth_dataset(tmp_path, **{**SMALL, "shapes": ("torus",), "resolutions": (600,),
                                              "noise_levels": (0.03,), "extra_noises": ()})
    assert subset.manifest_path.stat().st_mtime_ns == stamp and subset.shapes("test") == ["cube", "torus"]
    alone = build_synth_dataset(tmp_path / "alone", **{**SMALL, "shapes": ("torus",), "resolutions": (600,),
                                                       "noise_levels": (0.03,), "extra_noises": ()})
    assert set(_hashes(alone).items()) <= set(_hashes(forced).items())
    # different parameters rebuild, and the old noisy folders are gone
    other = build_synth_dataset(tmp_path, **{**SMALL, "noise_levels": (0.02,)})
    assert other.noise_levels(300) == [0.02]
    assert not (tmp_path / "examples" / "synth_300_poisson_0.01").exists()


def test_seeds_are_stable_strings():
    assert derive_seed("synth", 0, "cube", "poisson", 10000) == derive_seed("synth", 0, "cube", "poisson", 10000)
    assert derive_seed("a", 1) != derive_seed("a", 2)
    assert derive_seed("synth", 0, "cube", "poisson", 10000) == 2673614858480652183  # pinned: changing the rule changes every file


def test_user_meshes(tmp_path):
    box = trimesh.creation.box(extents=(2.0, 1.0, 1.0))
    sphere = trimesh.creation.icosphere(3)
    folder = tmp_path / "meshes"
    folder.mkdir()
    box.export(folder / "box.off")
    sphere.export(folder / "ball.obj")
    ds = build_dataset_from_folder("mine", folder, root=tmp_path / "data", resolutions=(400,), noise_levels=(0.02,),
                                   noises=("gaussian", "laplace"), progress=False, workers=1)
    assert ds.shapes("test") == ["ball", "box"]
    assert ds.load_clean("box", 400).shape == (400, 3)
    assert ds.noise_levels(400, "laplace") == [0.02]
    v, _ = ds.load_mesh("box")
    assert bbox_center_and_scale(v)[1] == pytest.approx(1.0)
    assert verify_dataset(ds).ok
    rows = {r.noise: r for r in check_noise(ds)}
    assert rows["gaussian"].ok and rows["laplace"].ok and not rows["laplace"].p_value >= 0.001


def test_check_noise_on_tiny_synth(tiny_synth):
    rows = check_noise(tiny_synth)
    by = {(r.split, r.n_points, r.noise, r.sigma): r for r in rows}
    assert by[("test", 2000, "gaussian", 0.02)].p_value >= 0.001 and by[("test", 2000, "gaussian", 0.02)].ok
    assert by[("test", 1000, "laplace", 0.02)].p_value < 1e-6 and by[("test", 1000, "laplace", 0.02)].ok
    assert by[("val", 1000, "gaussian", 0.01)].ok
    assert all(r.ok for r in rows)


def test_check_noise_fails_when_a_gaussian_set_is_not(tmp_path):
    ds = build_synth_dataset(tmp_path, **SMALL)
    rng = np.random.default_rng(0)
    for shape in ("cube", "torus"):
        clean = ds.load_clean(shape, 600)
        from sbdbench.io import write_points

        write_points(ds.noisy_path(shape, 600, 0.03), clean + rng.laplace(0, 0.03 / np.sqrt(2), clean.shape))
    rows = {(r.n_points, r.sigma): r for r in check_noise(ds)}
    assert rows[(600, 0.03)].ok is False and rows[(300, 0.03)].ok is True


@pytest.mark.parametrize("meshes, message", [
    ({"flat": (np.zeros((3, 3)), np.zeros((0, 3), dtype=int))}, "no faces"),
    ({"bad": (np.array([[0, 0, 0], [1, 0, 0], [0, np.nan, 0]]), np.array([[0, 1, 2]]))}, "NaN/Inf"),
    ({"a/b": (np.eye(3), np.array([[0, 1, 2]]))}, "invalid shape name"),
    ({}, "no meshes"),
])
def test_bad_user_meshes(tmp_path, meshes, message):
    with pytest.raises(InputError, match=message):
        build_dataset("mine", meshes, root=tmp_path, progress=False)
    assert not (tmp_path / "mine").exists()


def test_build_errors_name_the_shape(tmp_path):
    line = (np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0]]), np.array([[0, 1, 2]]))
    with pytest.raises(InputError, match="shape 'line'.*zero area"):
        build_dataset("mine", {"line": line}, root=tmp_path, resolutions=(100,), progress=False, workers=1)
    with pytest.raises(DataError, match="interrupted"):
        verify_dataset("mine", root=tmp_path)


@pytest.mark.parametrize("kw, message", [
    ({"resolutions": (0,)}, "must be > 0"),
    ({"resolutions": (-10, 100)}, "must be > 0"),
    ({"resolutions": (10.5,)}, "positive integer"),
    ({"noise_levels": (-0.01,)}, "≥ 0"),
    ({"shapes": ("cube", "blob")}, "unknown shape 'blob'"),
])
def test_bad_build_parameters(tmp_path, kw, message):
    with pytest.raises(InputError, match=message):
        build_synth_dataset(tmp_path, **{**SMALL, **kw})


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_root(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(SbdbenchError, match="not writable"):
            build_synth_dataset(locked, **SMALL)
    finally:
        locked.chmod(0o700)


def test_unwritable_root_as_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SbdbenchError, match="cannot create the data folder"):
        build_synth_dataset(blocker / "data", **SMALL)


def test_foreign_folder_is_not_overwritten(tmp_path):
    (tmp_path / "synth" / "meshes").mkdir(parents=True)
    (tmp_path / "synth" / "meshes" / "precious.off").write_text("OFF\n")
    with pytest.raises(DataError, match="not built by sbdbench"):
        build_synth_dataset(tmp_path, **SMALL)
    assert (tmp_path / "synth" / "meshes" / "precious.off").exists()


def test_register_scoredenoise_folder_reads_in_place(tiny_synth, sbd_home, tmp_path):
    # a copy of the tiny dataset stands in for a ScoreDenoise data/ folder named PUNet
    data = tmp_path / "score-denoise" / "data"
    shutil.copytree(tiny_synth.dir, data / "PUNet", ignore=shutil.ignore_patterns("manifest.json"))
    shutil.copytree(tiny_synth.examples_dir / "synth_1000_poisson_0.01", data / "examples" / "PUNet_1000_poisson_0.01")
    ds = register_dataset("PUNet", data)
    opened = open_dataset("PUNet")
    assert opened.dir == data / "PUNet" and opened.shapes("test") == ["cube", "sphere", "torus"]
    assert opened.noise_levels(1000) == [0.01]
    assert np.array_equal(opened.load_noisy("cube", 1000, 0.01), tiny_synth.load_noisy("cube", 1000, 0.01))
    with pytest.raises(DataError, match="no manifest"):
        verify_dataset(ds)
    assert json.loads((sbd_home / "datasets.json").read_text())["PUNet"] == str(data)


def test_dataset_card_matches_the_builder(tiny_synth):
    import tomllib
    from pathlib import Path

    from sbdbench.data.shapes import TEST_SHAPES

    card = tomllib.loads((Path(__file__).resolve().parents[1] / "datasets" / "synth.toml").read_text())
    assert list(card["shapes"]) == list(TEST_SHAPES)
    assert all(card["shapes"][k]["category"] == s.category and card["shapes"][k]["genus"] == s.genus
               for k, s in TEST_SHAPES.items())
    # mesh bytes do not depend on the resolutions, so the tiny build must reproduce the card's checksums
    for shape in ("sphere", "cube", "torus"):
        assert tiny_synth.manifest["files"][f"synth/meshes/test/{shape}.off"]["sha256"] == card["shapes"][shape]["mesh_sha256"]


def test_paths_as_scoredenoise_builds_them(tiny_synth):
    """The path strings of ScoreDenoise's test.py / utils/evaluate.py, pointed at our data root."""
    import importlib.util

    data_root, dataset, resolution, noise_lvl = str(tiny_synth.root), "synth", "2000_poisson", "0.02"
    input_dir = os.path.join(data_root, "examples", "%s_%s_%s" % (dataset, resolution, noise_lvl))  # test.py
    pcl_dir = os.path.join(data_root, dataset, "pointclouds", "test", resolution)                  # evaluate.py
    mesh_dir = os.path.join(data_root, dataset, "meshes", "test")
    names = sorted(fn[:-4] for fn in os.listdir(input_dir) if fn.endswith(".xyz"))
    assert names == ["cube", "sphere", "torus"]
    for name in names:
        noisy = np.loadtxt(os.path.join(input_dir, name + ".xyz"), dtype=np.float32)  # how ScoreDenoise reads them
        clean = np.loadtxt(os.path.join(pcl_dir, name + ".xyz"), dtype=np.float32)
        assert noisy.shape == clean.shape == (2000, 3)
        if importlib.util.find_spec("point_cloud_utils"):
            import point_cloud_utils as pcu

            v, f = pcu.load_mesh_vf(os.path.join(mesh_dir, name + ".off"))
            assert v.shape[1] == 3 and f.shape[1] == 3 and len(f) == len(tiny_synth.load_mesh(name)[1])
