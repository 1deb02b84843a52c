"""`sbdbench fetch` end to end against a loopback server that answers like each real host.

The real dataset cards (datasets/*.toml) are used unchanged; only the host names are rewritten to
127.0.0.1 (``url_map``). The archives served are tiny but have the real member layouts.
"""

from __future__ import annotations

import io
import json
import socket
import tarfile
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from sbdbench.data.dataset import open_dataset
from sbdbench.data.sources import fetch, list_sources
from sbdbench.data.sources.cards import load_card
from sbdbench.data.sources.http import Downloader
from sbdbench.data.sources.lockfile import LockFile
from sbdbench.errors import DataError
from http_fixtures import DriveEmulator, LoopbackServer, sha256, url_map

SCORE_FOLDER = "1--MvLnP7dsBgBZiu46H0S32Y1eBa_j6P"
DATA_ZIP_ID = "1DataZipFileIdAbcdefghijklmnop"
DMR_FOLDER = "1Qw_bYqsUcekeh165kgRODwIuYpsYIzM1"
DMR_GT_ID = "1D7F0QUaMnj31y1EKFuqj5-SRmXTBHp20"


def _cloud(n: int, seed: int) -> bytes:
    pts = np.random.default_rng(seed).normal(size=(n, 3))
    buf = io.StringIO()
    np.savetxt(buf, pts, fmt="%.8f")
    return buf.getvalue().encode()


TETRA_OFF = b"OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 2 1\n3 0 1 3\n3 0 3 2\n3 1 2 3\n"
TETRA_OBJ = b"v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n"


def _zip_bytes(members) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar_bytes(members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


SCORE_MEMBERS = {
    "data/PUNet/meshes/test/cube.off": TETRA_OFF,
    "data/PUNet/meshes/train/sphere.off": TETRA_OFF,
    "data/PUNet/pointclouds/test/10000_poisson/cube.xyz": _cloud(40, 1),
    "data/PUNet/pointclouds/test/50000_poisson/cube.xyz": _cloud(50, 2),
    "data/PUNet/pointclouds/train/10000_poisson/sphere.xyz": _cloud(40, 3),
    "data/examples/PUNet_10000_poisson_0.01/cube.xyz": _cloud(40, 4),
    "data/examples/PUNet_50000_poisson_0.02/cube.xyz": _cloud(50, 5),
    "data/PCNet/pointclouds/test/10000_poisson/boxunion.xyz": _cloud(40, 6),
    "data/examples/PCNet_10000_poisson_0.03/boxunion.xyz": _cloud(40, 7),
}
DATA_ZIP = _zip_bytes(SCORE_MEMBERS)


@pytest.fixture()
def hosts(sbd_home):
    with LoopbackServer() as srv:
        drive = DriveEmulator(srv)
        drive.add_folder(SCORE_FOLDER, "score-denoise", {DATA_ZIP_ID: "data.zip", "1ReadmeIdAbcdefghijklmnopqrst": "README.md"})
        drive.add_file(DATA_ZIP_ID, "data.zip", DATA_ZIP, shape="redirect")  # uc → 303 → usercontent form
        srv.drive = drive
        yield srv


def _fetch(srv, name, **kw):
    kw.setdefault("downloader", Downloader(retries=1, backoff=0.0, timeout=(5, 5), progress=False))
    kw.setdefault("log", lambda msg: None)
    return fetch(name, progress=False, url_map=url_map(srv.base), **kw)


def _data_downloads(srv):
    return [r for r in srv.requests_to("/usercontent/download") if r.method == "GET"]


# --- PUNet / PCNet ---------------------------------------------------------------------------------
def test_punet_from_drive_folder_is_installed_in_benchmark_layout(hosts, sbd_home):
    result = _fetch(hosts, "punet")
    assert result.status == "installed"
    ds = open_dataset("punet")
    assert ds.shapes("test") == ["cube"] and ds.shapes("train") == ["sphere"]
    assert ds.resolutions("test") == [10000, 50000]
    assert ds.noise_levels(10000) == [0.01] and ds.noise_levels(50000) == [0.02]
    # the published bytes, unchanged
    assert ds.noisy_path("cube", 10000, 0.01).read_bytes() == SCORE_MEMBERS["data/examples/PUNet_10000_poisson_0.01/cube.xyz"]
    assert ds.load_mesh("cube")[1].shape == (4, 3)
    manifest = json.loads(ds.manifest_path.read_text())
    assert manifest["provenance"]["card"] == "punet"
    assert manifest["provenance"]["downloads"]["data.zip"] == sha256(DATA_ZIP)
    rel = "examples/punet_10000_poisson_0.01/cube.xyz"
    assert manifest["files"][rel]["sha256"] == sha256(SCORE_MEMBERS["data/examples/PUNet_10000_poisson_0.01/cube.xyz"])
    # no checksum published: recorded on first use
    assert LockFile().sha256("scoredenoise/data.zip") == sha256(DATA_ZIP)
    assert not list((sbd_home / "data").glob(".staging-*")) and not list((sbd_home / "data").glob(".trash-*"))
    assert not (sbd_home / "data" / "examples" / "PCNet_10000_poisson_0.03").exists()
    from sbdbench.data.splits import verify_dataset

    assert verify_dataset("punet").ok  # the project's own verifier accepts a fetched dataset


def test_present_dataset_is_not_downloaded_again(hosts):
    _fetch(hosts, "punet")
    n_requests = len(hosts.log)
    again = _fetch(hosts, "punet")
    assert again.status == "present" and "already present" in again.message
    assert len(hosts.log) == n_requests


def test_pcnet_shares_the_download_and_adds_nextcloud_meshes(hosts):
    meshes = _zip_bytes({"PCNet_meshes/boxunion.obj": TETRA_OBJ, "PCNet_meshes/other.obj": TETRA_OBJ})
    hosts.add_file("/nextcloud/index.php/s/9CrHe259zaJEMb8/download", meshes, send_length=False, range_ok=False,
                   headers={"Content-Disposition": 'attachment; filename="PCNet_meshes.zip"'}, content_type="application/zip")
    _fetch(hosts, "punet")
    n_drive = len(_data_downloads(hosts))
    assert n_drive >= 2  # confirmation + transfer
    _fetch(hosts, "pcnet")
    assert len(_data_downloads(hosts)) == n_drive  # data.zip came from the cache
    ds = open_dataset("pcnet")
    assert ds.shapes("test") == ["boxunion"]
    verts, faces = ds.load_mesh("boxunion")
    assert verts.shape == (4, 3) and faces.shape == (4, 3)
    assert ds.noise_levels(10000) == [0.03]


def test_changed_dataset_needs_force_and_force_restores_it(hosts):
    _fetch(hosts, "punet")
    ds = open_dataset("punet")
    path = ds.clean_path("cube", 10000)
    path.write_text("0 0 0\n")
    with pytest.raises(DataError, match="differs from what was installed.*--force"):
        _fetch(hosts, "punet")
    assert _fetch(hosts, "punet", force=True).status == "installed"
    assert path.read_bytes() == SCORE_MEMBERS["data/PUNet/pointclouds/test/10000_poisson/cube.xyz"]


def test_foreign_folder_with_the_same_name_is_not_overwritten(hosts, sbd_home):
    foreign = sbd_home / "data" / "punet" / "meshes" / "test"
    foreign.mkdir(parents=True)
    (foreign / "mine.off").write_bytes(TETRA_OFF)
    with pytest.raises(DataError, match="already exists .* with different contents.*--force"):
        _fetch(hosts, "punet")
    assert (foreign / "mine.off").exists()
    assert not hosts.log  # refused before any download


def test_changed_upstream_file_fails_the_recorded_checksum_and_keeps_the_old_install(hosts):
    _fetch(hosts, "punet")
    hosts.drive.add_file(DATA_ZIP_ID, "data.zip", _zip_bytes({**SCORE_MEMBERS, "data/PUNet/extra.txt": b"x"}), shape="form")
    with pytest.raises(DataError, match="checksum mismatch.*recorded on the first download"):
        _fetch(hosts, "punet", force=True)
    assert open_dataset("punet").shapes("test") == ["cube"]  # the verified install is untouched


def test_archive_with_parent_members_is_refused_and_nothing_installed(hosts, sbd_home):
    evil = _zip_bytes({**SCORE_MEMBERS, "data/PUNet/../../../evil.txt": b"pwned"})
    hosts.drive.add_file(DATA_ZIP_ID, "data.zip", evil, shape="form")
    with pytest.raises(DataError, match="refused.*'\\.\\.'"):
        _fetch(hosts, "punet")
    data = sbd_home / "data"
    assert not (data / "punet").exists() and not list(data.glob(".staging-*"))
    assert not list(sbd_home.rglob("evil.txt"))


def test_quota_page_then_browser_download_with_from(hosts, tmp_path):
    hosts.drive.add_file(DATA_ZIP_ID, "data.zip", DATA_ZIP, shape="quota")
    with pytest.raises(DataError) as info:
        _fetch(hosts, "punet")
    assert "quota exceeded" in str(info.value) and "--from PATH" in str(info.value)
    local = tmp_path / "data.zip"
    local.write_bytes(DATA_ZIP)
    assert _fetch(hosts, "punet", source_path=local).status == "installed"
    assert open_dataset("punet").shapes() == ["cube"]


def test_mirror_from_environment_variable(hosts, monkeypatch):
    hosts.add_file("/mirror/scoredenoise/data.zip", DATA_ZIP)
    monkeypatch.setenv("SBDBENCH_MIRROR_PUNET", hosts.url("/mirror/scoredenoise"))
    _fetch(hosts, "punet")
    assert hosts.requests_to("/mirror/scoredenoise/data.zip") and not _data_downloads(hosts)


def test_no_network_is_one_clear_line(sbd_home):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError) as info:
        fetch("punet", progress=False, url_map={"https://drive.google.com": f"http://127.0.0.1:{port}"},
              downloader=Downloader(retries=0, backoff=0, progress=False), log=lambda m: None)
    assert str(info.value).startswith(f"cannot reach 127.0.0.1:{port} (no network?)")
    assert not (sbd_home / "data" / "punet").exists()


# --- DMRDenoise ----------------------------------------------------------------------------------
def test_dmr_test_set_and_ground_truth(hosts):
    test_zip = _zip_bytes({
        "dataset_test/input_full_test_50k_0.010/airplane_0016.obj.xyz": _cloud(30, 1),
        "dataset_test/input_full_test_50k_0.025/airplane_0016.obj.xyz": _cloud(30, 2),
    })
    gt_zip = _zip_bytes({"gts_full_test_50k/airplane_0016.obj.xyz": _cloud(30, 3), "gts_full_test_50k/airplane_0016.obj.normal": b"0 0 1\n"})
    hosts.drive.add_folder(DMR_FOLDER, "DMRDenoise", {"1TestZipIdAbcdefghijklmnopqr": "dataset_test.zip", "1TrainZipIdAbcdefghijklmnopq": "dataset_train.zip"})
    hosts.drive.add_file("1TestZipIdAbcdefghijklmnopqr", "dataset_test.zip", test_zip, shape="form")
    hosts.drive.add_file(DMR_GT_ID, "gts_full_test_50k.zip", gt_zip, shape="direct")
    _fetch(hosts, "dmr")
    ds = open_dataset("dmr")
    assert ds.shapes() == ["airplane_0016"]
    assert ds.resolutions() == [30]
    assert ds.noise_levels(30) == [0.01, 0.025]
    assert ds.load_clean("airplane_0016", 30).shape == (30, 3)


# --- PointCleanNet -------------------------------------------------------------------------------
def test_pointcleannet_from_nextcloud(hosts):
    clean = _cloud(25, 1)
    members = {
        "pointCleanNetDataset/testset.txt": b"galera100k_noise_white_1.00e-02\ngalera100k_noise_brown_5.00e-03\n",
        "pointCleanNetDataset/trainingset.txt": b"",
        "pointCleanNetDataset/galera100k_noise_white_1.00e-02.xyz": _cloud(25, 2),
        "pointCleanNetDataset/galera100k_noise_white_1.00e-02.clean_xyz": clean,
        "pointCleanNetDataset/galera100k_noise_brown_5.00e-03.xyz": _cloud(25, 3),
        "pointCleanNetDataset/galera100k_noise_brown_5.00e-03.clean_xyz": clean,
    }
    hosts.add_file("/nextcloud/index.php/s/xSRrTNmtgqgeLGa/download", _tar_bytes(members))
    _fetch(hosts, "pointcleannet")
    ds = open_dataset("pointcleannet")
    assert ds.shapes() == ["galera100k"]
    assert ds.noise_levels(25) == [0.01]
    assert ds.noise_levels(25, noise="brown") == [0.005]
    assert ds.clean_path("galera100k", 25).read_bytes() == clean
    req = hosts.requests_to("/nextcloud/index.php/s/xSRrTNmtgqgeLGa/download")[0]
    assert req.query == {"path": "/", "files": "pointCleanNetDataset.tar.gz"}


def test_second_url_is_tried_when_the_first_is_gone(hosts):
    members = {"pointCleanNetDataset/testset.txt": b"shape_a\n", "pointCleanNetDataset/shape_a.xyz": _cloud(10, 1)}
    hosts.add_file("/ucl/projects/2019/pointcleannet/data/pointCleanNetDataset.tar.gz", _tar_bytes(members))
    _fetch(hosts, "pointcleannet")  # the Nextcloud URL answers 404
    assert open_dataset("pointcleannet").shapes() == ["shape_a"]


# --- the ScoreDenoise checkpoint (GitHub raw) ------------------------------------------------------
def test_score_official_checkpoint(hosts, sbd_home, reference_dir):
    ckpt = (reference_dir / "score-denoise" / "ckpt.pt").read_bytes()
    assert sha256(ckpt) == load_card("score-official").files[0].sha256
    hosts.add_file("/github/luost26/score-denoise/raw/main/pretrained/ckpt.pt", ckpt)
    result = _fetch(hosts, "score-official")
    target = sbd_home / "weights" / "score-denoise-official.pt"
    assert result.path == target and target.read_bytes() == ckpt
    assert _fetch(hosts, "score-official").status == "present"
    target.write_bytes(b"something else")
    with pytest.raises(DataError, match="already exists with different contents.*--force"):
        _fetch(hosts, "score-official")
    assert _fetch(hosts, "score-official", force=True).status == "installed" and target.read_bytes() == ckpt


def test_score_official_wrong_bytes_install_nothing(hosts, sbd_home):
    hosts.add_file("/github/luost26/score-denoise/raw/main/pretrained/ckpt.pt", b"x" * 2304367)
    hosts.add_file("/githubraw/luost26/score-denoise/main/pretrained/ckpt.pt", b"x" * 2304367)
    with pytest.raises(DataError, match="checksum mismatch"):
        _fetch(hosts, "score-official")
    assert not (sbd_home / "weights" / "score-denoise-official.pt").exists()
    assert not list((sbd_home / "weights").glob("*.part"))


# --- gated, listing, CLI -------------------------------------------------------------------------------
def test_shapenet_needs_a_local_path(sbd_home):
    with pytest.raises(DataError, match="ShapeNet is gated.*--from"):
        fetch("shapenet", progress=False, log=lambda m: None)


def test_list_shows_sizes_licences_and_presence(hosts):
    rows = {r.name: r for r in list_sources()}
    assert {"punet", "pcnet", "dmr", "pointcleannet", "stanford", "thingi10k", "modelnet40", "shapenet", "score-official"} <= set(rows)
    assert rows["score-official"].size == "2.2 MB" and rows["pcnet"].licence == "CC BY-NC 4.0"
    assert not rows["punet"].present
    _fetch(hosts, "punet")
    assert {r.name: r for r in list_sources()}["punet"].present


def test_cli_fetch_list_and_one_line_errors(sbd_home):
    from sbdbench.cli import main

    runner = CliRunner()
    out = runner.invoke(main, ["fetch", "--list"])
    assert out.exit_code == 0 and "punet" in out.output and "CC BY-NC 4.0" in out.output
    out = runner.invoke(main, ["fetch", "no-such-source"])
    assert out.exit_code == 1 and out.output.strip().count("\n") == 0 and "unknown source 'no-such-source'" in out.output
    out = runner.invoke(main, ["fetch", "shapenet"])
    assert out.exit_code == 1 and "ShapeNet is gated" in out.output


def test_every_card_parses_and_names_its_licence():
    from sbdbench.data.sources import KINDS
    from sbdbench.data.sources.cards import card_names

    for name in card_names():
        if name == "synth":
            continue
        card = load_card(name)
        assert card.kind in KINDS and card.licence and card.terms and card.citation and card.files, name
        assert card.extract and card.layout and card.homepage.startswith("http"), name


def test_cli_fetch_end_to_end_with_env_url_map(hosts, monkeypatch):
    from sbdbench.cli import main

    monkeypatch.setenv("SBDBENCH_URL_MAP", ";".join(f"{k}={v}" for k, v in url_map(hosts.base).items()))
    out = CliRunner().invoke(main, ["fetch", "punet", "--quiet"])
    assert out.exit_code == 0, out.output
    assert "punet: installed" in out.output
    out = CliRunner().invoke(main, ["fetch", "punet", "--quiet"])
    assert out.exit_code == 0 and "already present" in out.output
    out = CliRunner().invoke(main, ["fetch", "punet", "-o", "nonsense=1"])
    assert out.exit_code == 1 and "unknown option(s) nonsense" in out.output


def test_partial_download_from_an_earlier_run_is_resumed(hosts, sbd_home, monkeypatch):
    hosts.add_file("/mirror/data.zip", DATA_ZIP)
    part = sbd_home / "downloads" / "scoredenoise" / "data.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(DATA_ZIP[:500])
    _fetch(hosts, "punet", mirror=hosts.url("/mirror"))
    assert hosts.requests_to("/mirror/data.zip")[0].headers["range"] == "bytes=500-"
    assert open_dataset("punet").shapes() == ["cube"] and not part.exists()


def test_fetch_synth_delegates_to_the_offline_builder(sbd_home):
    from sbdbench.data.shapes import TEST_SHAPES

    shape = sorted(TEST_SHAPES)[0]
    opts = {"shapes": [shape], "resolutions": [300], "noise_levels": [0.01], "include_train": False, "extra_noises": []}
    result = fetch("synth", progress=False, options=opts, log=lambda m: None)
    assert result.status == "installed" and open_dataset("synth").shapes() == [shape]
    assert fetch("synth", progress=False, options=opts, log=lambda m: None).status == "present"
    with pytest.raises(DataError, match="synth: unknown option"):
        fetch("synth", progress=False, options={"nonsense": 1}, log=lambda m: None)


def test_failed_final_move_rolls_back_to_the_old_install(hosts, sbd_home, monkeypatch):
    import errno
    import os as _os

    _fetch(hosts, "punet")
    real_replace = _os.replace

    def failing_replace(src, dst):
        if str(dst) == str(sbd_home / "data" / "punet") and ".staging-" in str(src):
            raise OSError(errno.EIO, "I/O error")
        return real_replace(src, dst)

    monkeypatch.setattr(_os, "replace", failing_replace)
    with pytest.raises(DataError, match="could not install 'punet'"):
        _fetch(hosts, "punet", force=True)
    monkeypatch.setattr(_os, "replace", real_replace)
    ds = open_dataset("punet")
    assert ds.shapes() == ["cube"] and ds.noise_levels(10000) == [0.01]  # the old install, complete
    assert not list((sbd_home / "data").glob(".staging-*")) and not list((sbd_home / "data").glob(".trash-*"))
    assert _fetch(hosts, "punet").status == "present"
