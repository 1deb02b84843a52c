"""Real scans without GT (cards kinect-v1, rue-madame, rue-madame-mines) against a loopback Drive, and what
run / bench / evaluate do with a dataset that has no ground truth."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from sbdbench.data.dataset import open_dataset
from sbdbench.data.sources import fetch
from sbdbench.data.sources.http import Downloader
from sbdbench.data.sources.scans import split_by_bbox
from sbdbench.errors import DataError
from http_fixtures import DriveEmulator, LoopbackServer, url_map

ARCHIVE_ID = "1-TvHy3bvq8X1vI0ztwmmubDqhngRLQDu"  # IterativePFN's data_and_ckpt.zip, as the cards name it


def _scan(n: int, seed: int, sigma: float = 0.01) -> np.ndarray:
    """A noisy patch of a wavy surface in metres, far from the origin (as a georeferenced scan is)."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 4, (n, 2))
    z = 0.2 * np.sin(xy[:, 0]) + rng.normal(0, sigma, n)
    return np.c_[xy, z] + [651000.0, 6862000.0, 35.0]


def _xyz(points: np.ndarray) -> bytes:
    buf = io.StringIO()
    np.savetxt(buf, points, fmt="%.6f")
    return buf.getvalue().encode()


def _archive(members) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


ARCHIVE = _archive({
    "data_and_ckpt/data/examples/Kinect_v1_unknown_res_unknown_noise/boy.xyz": _xyz(_scan(400, 1)),
    "data_and_ckpt/data/examples/Kinect_v1_unknown_res_unknown_noise/cone.xyz": _xyz(_scan(300, 2)),
    "data_and_ckpt/data/examples/RueMadame/RueMadame_0.xyz": _xyz(_scan(500, 3)),
    "data_and_ckpt/data/examples/PUNet_10000_poisson_0.01/cube.xyz": _xyz(_scan(50, 4)),
    "data_and_ckpt/pretrained/denoisenet-ep-99.ckpt": b"not a cloud",
})


@pytest.fixture()
def drive(sbd_home):
    with LoopbackServer() as srv:
        emulator = DriveEmulator(srv)
        emulator.add_file(ARCHIVE_ID, "data_and_ckpt.zip", ARCHIVE, shape="form")
        srv.drive = emulator
        yield srv


def _fetch(srv, name, **kw):
    kw.setdefault("downloader", Downloader(retries=1, backoff=0.0, timeout=(5, 5), progress=False))
    return fetch(name, progress=False, url_map=url_map(srv.base), log=lambda m: None, **kw)


def test_kinect_and_rue_madame_install_noisy_scans_only_from_one_download(drive):
    assert _fetch(drive, "kinect-v1").status == "installed"
    kinect = open_dataset("kinect-v1")
    assert kinect.scans() == ["boy", "cone"] and kinect.shapes() == ["boy", "cone"]
    assert not kinect.has_reference and kinect.resolutions() == []
    np.testing.assert_allclose(kinect.load_scan("boy"), _scan(400, 1), atol=1e-6)  # coordinates as published
    prov = kinect.manifest["provenance"]
    assert prov["card"] == "kinect-v1" and "unstated" in prov["licence"] and prov["scan_points"] == {"boy": 400, "cone": 300}
    assert _fetch(drive, "rue-madame").status == "installed"
    assert open_dataset("rue-madame").scans() == ["RueMadame_0"]
    gets = [r for r in drive.requests_to("/usercontent/download") if r.method == "GET"]
    assert len(gets) == 1  # the two cards share the cached archive (cache = iterativepfn-official)
    assert _fetch(drive, "kinect-v1").status == "present"


def test_an_archive_without_the_expected_members_is_a_one_line_error(sbd_home):
    with LoopbackServer() as srv:
        DriveEmulator(srv).add_file(ARCHIVE_ID, "data_and_ckpt.zip", _archive({"data/other/x.xyz": _xyz(_scan(20, 1))}), shape="direct")
        with pytest.raises(DataError, match=r"no scan matching \*/examples/Kinect_v1\*/\*\.xyz") as err:
            _fetch(srv, "kinect-v1")
    assert "\n" not in str(err.value)
    assert not (sbd_home / "data" / "kinect-v1").exists()


def test_rue_madame_mines_takes_the_publisher_ply_files_and_cuts_them(sbd_home, tmp_path):
    plyfile = pytest.importorskip("plyfile")
    folder = tmp_path / "rueMadame_database"
    folder.mkdir()
    scans = {"GT_Madame1_2": _scan(1000, 5), "GT_Madame1_3": _scan(700, 6)}
    for name, pts in scans.items():
        rec = np.zeros(len(pts), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("reflectance", "f4"), ("label", "u4"), ("class", "u4")])
        rec["x"], rec["y"], rec["z"] = (pts - [651000.0, 6862000.0, 0.0]).T  # float32 coordinates: local offsets
        plyfile.PlyData([plyfile.PlyElement.describe(rec, "vertex")]).write(str(folder / f"{name}.ply"))
    with pytest.raises(DataError, match="rerun with --from FOLDER"):
        fetch("rue-madame-mines", progress=False, log=lambda m: None)
    fetch("rue-madame-mines", source_path=folder, options={"max_points": 300}, progress=False, log=lambda m: None)
    ds = open_dataset("rue-madame-mines")
    pieces = ds.scans()
    assert pieces and all(p.startswith(("GT_Madame1_2_", "GT_Madame1_3_")) for p in pieces)
    sizes = [len(ds.load_scan(p)) for p in pieces]
    assert max(sizes) <= 300 and sum(sizes) == 1700


def test_split_by_bbox_follows_hermosillas_rule():
    pts = np.c_[np.linspace(0, 10, 1000), np.zeros(1000), np.zeros(1000)]
    pieces = split_by_bbox(pts, 300)
    assert [len(p) for p in pieces] == [250, 250, 250, 250]  # midpoint cuts of the longest axis, left first
    assert pieces[0][:, 0].max() < pieces[1][:, 0].min()
    same = np.zeros((50, 3))  # cannot be cut: kept whole rather than looping
    assert [len(p) for p in split_by_bbox(same, 10)] == [50]


def test_bench_refuses_and_run_reports_no_reference_figures(drive, tmp_path):
    from sbdbench.bench.cell import run_method
    from sbdbench.bench.grid import build_grid
    from sbdbench.metrics.evaluate import evaluate_folder

    _fetch(drive, "kinect-v1")
    with pytest.raises(DataError, match="real scan.*without ground truth") as err:
        build_grid(["pca"], ["kinect-v1"], [10000], [0.01])
    assert "\n" not in str(err.value) and "sbdbench run" in str(err.value)
    with pytest.raises(DataError, match="real scan"):
        evaluate_folder("kinect-v1", tmp_path, 400)
    with pytest.raises(DataError, match="drop --resolutions"):
        run_method("pca", "kinect-v1", [10000], log=lambda m: None)
    frame, summary = run_method("pca", "kinect-v1", out=tmp_path / "run", log=lambda m: None, progress=False)
    assert list(frame["scan"]) == ["boy", "cone"] and (frame["n_out"] == frame["n_points"]).all()
    assert (frame["plane_res"] < frame["plane_res_in"]).all()  # pca smooths the noisy surface
    assert (tmp_path / "run" / "kinect-v1_scans" / "boy.xyz").is_file() and (tmp_path / "run" / "per_scan.csv").is_file()
    assert summary.loc[0, "n_scans"] == 2 and "plane_res_1e4" in summary
