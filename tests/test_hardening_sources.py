"""Issue #22 (hardening), the download side: hostile archives, bad downloads and misleading options.

Each case ends in a one-line error (CLI: exit code 1, one line on stderr, no traceback) and writes
or loses nothing outside its target. Archives are built in ``tmp_path``; the only server is a
loopback one; nothing is downloaded from the internet.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from sbdbench.cli import main
from sbdbench.data.sources import archives, fetch
from sbdbench.data.sources.cards import FileSpec
from sbdbench.data.sources.http import Downloader
from sbdbench.data.sources.lockfile import LockFile
from sbdbench.errors import DataError
from http_fixtures import LoopbackServer, sha256

CLOUD = b"".join(b"%d 0.5 0.25\n" % i for i in range(20))
TETRA_OFF = b"OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 2 1\n3 0 1 3\n3 0 3 2\n3 1 2 3\n"
PUNET_MEMBERS = {
    "data/PUNet/meshes/test/cube.off": TETRA_OFF,
    "data/PUNet/pointclouds/test/20_poisson/cube.xyz": CLOUD,
    "data/examples/PUNet_20_poisson_0.01/cube.xyz": CLOUD,
}
HTML_PAGE = b"<!DOCTYPE html><html><head><title>Google Drive - Sign-in</title></head><body>log in</body></html>"


# --- helpers ---------------------------------------------------------------------------------------------
def _zip(path: Path, members) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tar(path: Path, members) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _files(root: Path) -> dict:
    """Every file under ``root`` with its bytes (what a refused command must leave unchanged)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _fetch(name, **kw):
    kw.setdefault("downloader", Downloader(retries=0, backoff=0.0, timeout=(5, 5), progress=False))
    kw.setdefault("log", lambda msg: None)
    return fetch(name, progress=False, **kw)


def _cli_error(*args) -> str:
    """Run the CLI; assert exit code 1 and one ``error:`` line on stderr, no traceback; return it."""
    result = CliRunner().invoke(main, list(args))
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output and (result.exception is None or isinstance(result.exception, SystemExit))
    return lines[0]


def _assert_nothing_installed(home: Path) -> None:
    assert not (home / "downloads.lock.json").exists(), "no checksum may be pinned by a refused fetch"
    data = home / "data"
    if data.exists():
        assert not [p for p in data.iterdir() if p.name != "examples"], list(data.iterdir())
        assert not _files(data)


# --- S1: names read from inside an archive -------------------------------------------------------------
def _pcn_archive(tmp_path: Path, entry: str, list_name: str = "testset.txt") -> Path:
    members = {"pointCleanNetDataset/testset.txt": b"ok\n", "pointCleanNetDataset/ok.xyz": CLOUD}
    members[f"pointCleanNetDataset/{list_name}"] = entry.encode() + b"\n"
    return _tar(tmp_path / "p.tgz", members)


def _victims(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "leak.clean_xyz").write_bytes(b"1 2 3\n")
    (victim / "old.xyz").write_bytes(b"precious\n")
    (victim / "old.clean_xyz").write_bytes(b"9 9 9\n")
    return victim


@pytest.mark.parametrize("entry", ["{victim}/leak", "../victim/leak", "../../victim/old", "..", "sub/../../x",
                                   "..\\..\\victim\\leak", "C:leak", "ok\x00x"])
def test_s1_pointcleannet_list_entries_cannot_leave_the_dataset(tmp_path, sbd_home, entry):
    victim = _victims(tmp_path)
    entry = entry.format(victim=victim)
    archive = _pcn_archive(tmp_path, entry)
    before = _files(tmp_path)
    with pytest.raises(DataError, match=r"refused: entry .* not a plain file name") as info:
        _fetch("pointcleannet", source_path=archive)
    assert "\n" not in str(info.value)
    assert _files(tmp_path) == before  # no leak.xyz created, old.xyz untouched, nothing installed
    _assert_nothing_installed(sbd_home)


def test_s1_the_other_lists_are_checked_too_and_splits_is_honoured(tmp_path, sbd_home):
    victim = _victims(tmp_path)
    archive = _pcn_archive(tmp_path, f"{victim}/leak", list_name="trainingset.txt")
    assert _fetch("pointcleannet", source_path=archive).status == "installed"  # default: test split only
    with pytest.raises(DataError, match="trainingset.txt: refused: entry"):
        _fetch("pointcleannet", source_path=archive, options={"splits": ["test", "train"]}, force=True)
    assert not (victim / "leak.xyz").exists()
    with pytest.raises(DataError, match="unknown split"):
        _fetch("pointcleannet", source_path=archive, options={"splits": ["bogus"]}, force=True)


def test_s1_cli_reproduction_from_the_issue(tmp_path, sbd_home):
    victim = _victims(tmp_path)
    archive = _pcn_archive(tmp_path, str(victim / "leak"))
    line = _cli_error("fetch", "pointcleannet", "--from", str(archive), "--quiet")
    assert "refused" in line and "not a plain file name" in line
    assert not (victim / "leak.xyz").exists()
    _assert_nothing_installed(sbd_home)


def test_s1_safe_entry_name_accepts_real_names():
    for name in ("galera100k_noise_white_1.00e-02", "Boxunion2100k", "a..b", "x-y+z"):
        assert archives.safe_entry_name(name, "list") == name


# --- S2: compression ratio and size of the whole archive -------------------------------------------------
ZEROS_15M = b"\0" * (15 << 20)


def test_s2_zip_of_many_members_each_below_the_member_limit_is_refused(tmp_path):
    bomb = _zip(tmp_path / "bomb.zip", {f"z{i}.bin": ZEROS_15M for i in range(3)})  # 45 MiB from ≈ 45 KB
    with pytest.raises(DataError, match=r"refused: .*:1, over 200:1; archive bomb"):
        archives.extract(bomb, tmp_path / "out")
    assert not _files(tmp_path / "out")


@pytest.mark.parametrize("members", [{"z.bin": b"\0" * (40 << 20)}, {f"z{i}.bin": ZEROS_15M for i in range(3)}])
def test_s2_tar_gz_bombs_are_refused(tmp_path, members):
    bomb = _tar(tmp_path / "bomb.tar.gz", members)
    with pytest.raises(DataError, match="archive bomb"):
        archives.extract(bomb, tmp_path / "out")
    assert not _files(tmp_path / "out")


def test_s2_single_gz_bomb_is_refused(tmp_path):
    import gzip

    path = tmp_path / "Armadillo.ply.gz"
    path.write_bytes(gzip.compress(b"ply " * (10 << 20)))  # not zeros: those read as an empty tar
    with pytest.raises(DataError, match="archive bomb"):
        archives.extract(path, tmp_path / "out")


def test_s2_the_cap_follows_the_cards_extracted_size(tmp_path):
    data = os.urandom(64 << 10)  # incompressible: the ratio check cannot fire
    arch = _tar(tmp_path / "a.tar.gz", {"a.bin": data, "b.bin": data})
    small = FileSpec("a.tar.gz", "http", {"extracted_size": 50 << 10})
    assert archives.limit_for(small) < 2 * len(data) + (1 << 20) + 1
    with pytest.raises(DataError, match="refused: it would extract to more than"):
        archives.extract(arch, tmp_path / "out", max_bytes=archives.limit_for(FileSpec("a", "http", {"extracted_size": 1})) - (1 << 20))
    right = FileSpec("a.tar.gz", "http", {"extracted_size": 2 * len(data)})
    assert sorted(archives.extract(arch, tmp_path / "ok", max_bytes=archives.limit_for(right))) == ["a.bin", "b.bin"]
    with pytest.raises(DataError, match="extracted_size must be a positive integer"):
        archives.limit_for(FileSpec("a", "http", {"extracted_size": "big"}))


def test_s2_fetch_with_a_bomb_installs_and_pins_nothing(tmp_path, sbd_home):
    members = {**PUNET_MEMBERS, **{f"data/PUNet/pointclouds/test/20_poisson/z{i}.xyz": ZEROS_15M for i in range(3)}}
    bomb = _zip(tmp_path / "data.zip", members)
    with pytest.raises(DataError, match="archive bomb") as info:
        _fetch("punet", source_path=bomb)
    assert "\n" not in str(info.value)
    _assert_nothing_installed(sbd_home)


# --- W4: a bad download's checksum is never pinned ------------------------------------------------------
def test_w4_from_a_web_page_pins_nothing_and_the_right_file_then_installs(tmp_path, sbd_home):
    page = tmp_path / "page.html"
    page.write_bytes(HTML_PAGE)
    line = _cli_error("fetch", "punet", "--from", str(page), "--quiet")
    assert "a web page" in line and "nothing was recorded" in line
    assert page.read_bytes() == HTML_PAGE  # the user's file is not deleted
    _assert_nothing_installed(sbd_home)
    good = _zip(tmp_path / "data.zip", PUNET_MEMBERS)
    assert _fetch("punet", source_path=good).status == "installed"  # no --force, no hand edit needed
    entry = LockFile().get("scoredenoise/data.zip")
    assert entry["sha256"] == sha256(good.read_bytes()) and entry["validated"] is True


@pytest.mark.parametrize("body", [HTML_PAGE, b"", b"PK\x03\x04 not really a zip"])
def test_w4_a_mirror_answering_200_with_junk_pins_nothing(tmp_path, sbd_home, body):
    good = _zip(tmp_path / "good.zip", PUNET_MEMBERS).read_bytes()
    with LoopbackServer() as srv:
        srv.add_file("/mirror/data.zip", body)  # served as application/octet-stream, status 200
        with pytest.raises(DataError, match="so it cannot be data.zip; the download was deleted; nothing was recorded") as info:
            _fetch("punet", mirror=srv.url("/mirror"))
        assert "\n" not in str(info.value)
        _assert_nothing_installed(sbd_home)
        assert not (sbd_home / "downloads" / "scoredenoise" / "data.zip").exists()
        srv.add_file("/mirror/data.zip", good)
        assert _fetch("punet", mirror=srv.url("/mirror")).status == "installed"
    assert LockFile().sha256("scoredenoise/data.zip") == sha256(good)


def test_w4_a_valid_archive_with_the_wrong_layout_pins_nothing(tmp_path, sbd_home):
    other = _zip(tmp_path / "data.zip", {"something/else.txt": b"x"})
    with pytest.raises(DataError, match="holds no PUNet"):
        _fetch("punet", source_path=other)
    _assert_nothing_installed(sbd_home)


def test_w4_force_re_pins_an_unvalidated_entry_and_says_so(tmp_path, sbd_home):
    LockFile().record("scoredenoise/data.zip", sha256(HTML_PAGE), len(HTML_PAGE), "file:///tmp/page.html")  # an old sbdbench's pin
    good = _zip(tmp_path / "data.zip", PUNET_MEMBERS)
    with pytest.raises(DataError, match="does not match"):
        _fetch("punet", source_path=good)  # without --force the pin is enforced
    messages = []
    assert _fetch("punet", source_path=good, force=True, log=messages.append).status == "installed"
    assert any("--force re-pinned sha256" in m for m in messages), messages
    entry = LockFile().get("scoredenoise/data.zip")
    assert entry["sha256"] == sha256(good.read_bytes()) and entry["validated"] is True
    (tmp_path / "new").mkdir()
    changed = _zip(tmp_path / "new" / "data.zip", {**PUNET_MEMBERS, "data/PUNet/extra.txt": b"x"})
    with pytest.raises(DataError, match="does not match"):  # a validated pin is not replaced, even with --force
        _fetch("punet", source_path=changed, force=True)


# --- T3: a manifest that is valid JSON but not an object -------------------------------------------------
@pytest.mark.parametrize("text", ["[]", "null", "1", '"x"', '{"format": 1, "files": []}'])
def test_t3_verify_with_a_non_object_manifest_is_one_line(sbd_home, text):
    ds = sbd_home / "data" / "synth"
    ds.mkdir(parents=True)
    (ds / "manifest.json").write_text(text + "\n")
    line = _cli_error("verify", "synth")
    assert "not an sbdbench manifest" in line
    assert (ds / "manifest.json").read_text() == text + "\n"


@pytest.mark.parametrize("text", ["[]", "null"])
def test_t3_manifest_property_and_fetch_over_a_non_object_manifest(sbd_home, tmp_path, text):
    from sbdbench.data.dataset import open_dataset

    ds = sbd_home / "data" / "punet"
    ds.mkdir(parents=True)
    (ds / "manifest.json").write_text(text)
    with pytest.raises(DataError, match="not an sbdbench manifest"):
        open_dataset("punet").manifest
    good = _zip(tmp_path / "data.zip", PUNET_MEMBERS)
    with pytest.raises(DataError, match="already exists .* with different contents"):
        _fetch("punet", source_path=good)
    assert (ds / "manifest.json").read_text() == text


# --- options that would be accepted and then ignored -------------------------------------------------------
@pytest.mark.parametrize("name, option, message", [
    ("punet", "dataset=mine", "option(s) dataset are fixed by the card"),
    ("stanford", "dataset=mine", "option(s) dataset are fixed by the card"),
    ("pcnet", "mesh_split=train", "option(s) mesh_split are fixed by the card"),
    ("score-official", "target=/tmp/x.pt", "option(s) target are fixed by the card"),
    ("punet", "resolutions=1000", "unknown option(s) resolutions"),
    ("dmr", "noise_levels=0.01", "unknown option(s) noise_levels"),
])
def test_ignored_options_are_refused_before_anything_runs(sbd_home, name, option, message):
    line = _cli_error("fetch", name, "-o", option, "--quiet")
    assert message in line
    assert not sbd_home.exists() or not _files(sbd_home)


# --- --from PATH ---------------------------------------------------------------------------------------
def test_from_a_single_file_on_a_multi_file_card_is_refused_before_the_network(tmp_path, sbd_home):
    some = _zip(tmp_path / "downloaded.zip", {"x.txt": b"x"})
    line = _cli_error("fetch", "dmr", "--from", str(some), "--quiet")
    assert "dmr needs 2 files (dataset_test.zip, gts_full_test_50k.archive)" in line and "folder" in line
    (tmp_path / "empty").mkdir()
    line = _cli_error("fetch", "dmr", "--from", str(tmp_path / "empty"), "--quiet")
    assert "holds none of dmr's files" in line
    assert not sbd_home.exists() or not _files(sbd_home)


def test_from_a_folder_holding_the_cards_files_by_name(tmp_path, sbd_home):
    folder = tmp_path / "dl"
    folder.mkdir()
    cloud = b"".join(b"%d 1 2\n" % i for i in range(30))
    _zip(folder / "dataset_test.zip", {"dataset_test/input_full_test_50k_0.010/plane.obj.xyz": cloud})
    _zip(folder / "gts_full_test_50k.archive", {"gts_full_test_50k/plane.obj.xyz": cloud})
    with LoopbackServer() as srv:  # every host points here: no request may arrive
        from http_fixtures import url_map

        assert _fetch("dmr", source_path=folder, url_map=url_map(srv.base)).status == "installed"
        assert not srv.log


@pytest.mark.parametrize("kind", ["devnull", "fifo"])
def test_from_a_device_or_pipe_says_so(tmp_path, sbd_home, kind):
    if kind == "devnull":
        path = Path(os.devnull)
    else:
        path = tmp_path / "pipe"
        os.mkfifo(path)
    line = _cli_error("fetch", "punet", "--from", str(path), "--quiet")
    assert f"--from {path}: not a regular file or a folder" in line and "no such file" not in line
    _assert_nothing_installed(sbd_home)


def test_from_on_the_offline_synth_is_refused(tmp_path, sbd_home):
    line = _cli_error("fetch", "synth", "--from", str(tmp_path))
    assert "built offline" in line
    assert not (sbd_home / "data" / "synth").exists()


def test_from_a_missing_path_still_says_no_such_file(tmp_path, sbd_home):
    assert "no such file or folder" in _cli_error("fetch", "punet", "--from", str(tmp_path / "nope.zip"))


# --- metadata read from inside a download ---------------------------------------------------------------
@pytest.mark.parametrize("faces, options", [("many", {}), ("2000", {"max_shapes": "abc"})])
def test_malformed_thingi10k_metadata_is_one_line(tmp_path, sbd_home, faces, options):
    folder = tmp_path / "thingi"
    folder.mkdir()
    _tar(folder / "Thingi10K_npz.tar.gz", {"npz/1.npz": b"x"})
    (folder / "geometry_data.csv").write_text(
        f"file_id,num_boundary_edges,edge_manifold,num_connected_components,num_faces\n1,0,1,1,{faces}\n")
    (folder / "input_summary.csv").write_text("ID,Thing ID\n1,7\n")
    (folder / "contextual_data.csv").write_text("Thing ID,License\n7,Creative Commons - Attribution\n")
    with pytest.raises(DataError, match="thingi10k: cannot select models from the metadata CSVs") as info:
        _fetch("thingi10k", source_path=folder, options=options)
    assert "\n" not in str(info.value)
    _assert_nothing_installed(sbd_home)
