"""The download machinery against a loopback server: resume, retries, verification, Drive, archives."""

from __future__ import annotations

import errno
import io
import socket
import tarfile
import zipfile

import pytest

from sbdbench.data.sources import archives
from sbdbench.data.sources.gdrive import DriveClient, confirmation_url, parse_folder_listing
from sbdbench.data.sources.http import Downloader
from sbdbench.paths import sha256_file
from sbdbench.data.sources.huggingface import etag_sha256
from sbdbench.data.sources.lockfile import LockFile
from sbdbench.errors import DataError
from http_fixtures import DriveEmulator, LoopbackServer, sha256

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, not compressible to nothing, distinct bytes per offset


@pytest.fixture()
def server():
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture()
def dl():
    return Downloader(retries=2, backoff=0.0, timeout=(5, 5), progress=False)


# --- plain HTTP ----------------------------------------------------------------------------------
def test_download_verifies_and_renames_atomically(server, dl, tmp_path):
    server.add_file("/f.bin", PAYLOAD)
    target = tmp_path / "f.bin"
    digest = dl.download(server.url("/f.bin"), target, expected_size=len(PAYLOAD), expected_sha256=sha256(PAYLOAD))
    assert digest == sha256(PAYLOAD)
    assert target.read_bytes() == PAYLOAD
    assert not (tmp_path / "f.bin.part").exists()


def test_connection_cut_halfway_is_resumed_with_range(server, dl, tmp_path):
    half = len(PAYLOAD) // 2
    server.add_file("/cut.bin", PAYLOAD, cut_after=half, cuts_left=1)
    target = tmp_path / "cut.bin"
    dl.download(server.url("/cut.bin"), target, expected_sha256=sha256(PAYLOAD))
    assert target.read_bytes() == PAYLOAD
    reqs = server.requests_to("/cut.bin")
    assert len(reqs) == 2
    assert "range" not in reqs[0].headers
    resumed_at = int(reqs[1].headers["range"][len("bytes="):].rstrip("-"))
    assert 0 < resumed_at <= half  # only the missing tail was asked for


def test_partial_previous_download_resumes(server, dl, tmp_path):
    server.add_file("/p.bin", PAYLOAD)
    target = tmp_path / "p.bin"
    (tmp_path / "p.bin.part").write_bytes(PAYLOAD[:1000])
    dl.download(server.url("/p.bin"), target, expected_sha256=sha256(PAYLOAD))
    assert target.read_bytes() == PAYLOAD
    assert server.requests_to("/p.bin")[0].headers["range"] == "bytes=1000-"


def test_stale_part_of_another_version_is_discarded_once(server, dl, tmp_path):
    server.add_file("/v2.bin", PAYLOAD)
    (tmp_path / "v2.bin.part").write_bytes(b"\xff" * 5000)  # a prefix of some older version
    dl.download(server.url("/v2.bin"), tmp_path / "v2.bin", expected_sha256=sha256(PAYLOAD))
    assert (tmp_path / "v2.bin").read_bytes() == PAYLOAD
    assert [r.headers.get("range") for r in server.requests_to("/v2.bin")] == ["bytes=5000-", None]


def test_server_ignoring_range_restarts_cleanly(server, dl, tmp_path):
    server.add_file("/norange.bin", PAYLOAD, range_ok=False)
    (tmp_path / "n.bin.part").write_bytes(b"garbage that must not stay in front")
    dl.download(server.url("/norange.bin"), tmp_path / "n.bin", expected_sha256=sha256(PAYLOAD))
    assert (tmp_path / "n.bin").read_bytes() == PAYLOAD


def test_wrong_bytes_raise_checksum_error_and_install_nothing(server, dl, tmp_path):
    server.add_file("/bad.bin", b"not the file you want" * 100)
    target = tmp_path / "bad.bin"
    with pytest.raises(DataError, match="checksum mismatch.*nothing was installed"):
        dl.download(server.url("/bad.bin"), target, expected_sha256=sha256(PAYLOAD))
    assert not target.exists() and not (tmp_path / "bad.bin.part").exists()


def test_size_mismatch_is_an_error(server, dl, tmp_path):
    server.add_file("/short.bin", PAYLOAD[:100])
    with pytest.raises(DataError, match="expects 999"):
        dl.download(server.url("/short.bin"), tmp_path / "s.bin", expected_size=999)
    assert not (tmp_path / "s.bin").exists()


def test_http_404_is_a_clear_error(server, dl, tmp_path):
    with pytest.raises(DataError, match=r"HTTP 404 .*moved.*--mirror"):
        dl.download(server.url("/missing.bin"), tmp_path / "m.bin")
    assert len(server.requests_to("/missing.bin")) == 1  # a 404 is not retried


def test_http_500_is_retried_then_reported(server, dl, tmp_path):
    server.add_file("/flaky.bin", PAYLOAD, fail_first=1)
    dl.download(server.url("/flaky.bin"), tmp_path / "flaky.bin", expected_sha256=sha256(PAYLOAD))
    assert (tmp_path / "flaky.bin").read_bytes() == PAYLOAD
    server.add_file("/down.bin", PAYLOAD, fail_first=100)
    with pytest.raises(DataError, match="HTTP 500.*gave up"):
        dl.download(server.url("/down.bin"), tmp_path / "down.bin")
    assert len(server.requests_to("/down.bin")) == 3  # 1 + 2 retries
    assert not (tmp_path / "down.bin").exists()


def test_no_network_is_one_line(dl, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError) as info:
        dl.download(f"http://127.0.0.1:{port}/x.bin", tmp_path / "x.bin")
    msg = str(info.value)
    assert msg.startswith(f"cannot reach 127.0.0.1:{port} (no network?)") and "\n" not in msg


def test_html_instead_of_file_is_reported(server, dl, tmp_path):
    server.add_file("/moved.zip", b"<html>this page has moved</html>", content_type="text/html")
    with pytest.raises(DataError, match="web page instead of the file"):
        dl.download(server.url("/moved.zip"), tmp_path / "moved.zip")


def test_stream_without_content_length(server, dl, tmp_path):
    # Nextcloud streams folder zips without a Content-Length.
    server.add_file("/nextcloud/index.php/s/TOKEN/download", PAYLOAD, send_length=False, range_ok=False)
    dl.download(server.url("/nextcloud/index.php/s/TOKEN/download"), tmp_path / "share.zip", expected_sha256=sha256(PAYLOAD))
    assert sha256_file(tmp_path / "share.zip") == sha256(PAYLOAD)


class _FullDisk(io.BufferedWriter):
    def write(self, data):  # noqa: D401 - a file on a full disk
        raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_is_one_line_and_keeps_nothing_final(server, dl, tmp_path, monkeypatch):
    server.add_file("/big.bin", PAYLOAD)
    import builtins

    real_open = builtins.open

    def full_open(path, mode="r", *a, **k):
        if str(path).endswith(".part") and "b" in mode and ("w" in mode or "a" in mode):
            return _FullDisk(real_open(path, mode.replace("b", "") + "b", buffering=0))
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", full_open)
    with pytest.raises(DataError, match="disk full while writing .*resumes"):
        dl.download(server.url("/big.bin"), tmp_path / "big.bin")
    assert not (tmp_path / "big.bin").exists()


# --- Hugging Face ETag -------------------------------------------------------------------------
def test_huggingface_etag_gives_the_sha256(server, dl):
    digest = sha256(PAYLOAD)
    server.add_file("/hf/datasets/o/r/resolve/v1/f.bin", PAYLOAD, headers={"X-Linked-Etag": f'"{digest}"', "ETag": '"abc-not-a-sha"'})
    assert etag_sha256(dl, server.url("/hf/datasets/o/r/resolve/v1/f.bin")) == digest
    server.add_file("/hf/datasets/o/r/resolve/v1/small.txt", b"x", headers={"ETag": 'W/"1-abc"'})
    assert etag_sha256(dl, server.url("/hf/datasets/o/r/resolve/v1/small.txt")) is None


# --- Google Drive ----------------------------------------------------------------------------------
@pytest.fixture()
def drive(server, dl):
    emu = DriveEmulator(server)
    client = DriveClient(dl, drive_base=server.url("/gdrive"), usercontent_base=server.url("/usercontent"), docs_base=server.url("/docs"))
    return emu, client


@pytest.mark.parametrize("shape", ["direct", "redirect", "form", "legacy", "json"])
def test_drive_file_shapes(drive, tmp_path, shape):
    emu, client = drive
    emu.add_file("FILEID_" + shape + "_0123456789", "data.zip", PAYLOAD, shape=shape)
    target = tmp_path / "data.zip"
    digest = client.download("FILEID_" + shape + "_0123456789", target)
    assert digest == sha256(PAYLOAD) and target.read_bytes() == PAYLOAD


def test_drive_confirm_download_resumes_after_cut(drive, server, tmp_path):
    emu, client = drive
    emu.add_file("BIGFILE_0123456789abcdef", "data.zip", PAYLOAD, shape="form")
    # cut the transfer of the real bytes (the 2nd request: the 1st only resolves the URL)
    original = emu._send_file
    calls = []

    def cutting(handler, req, f):
        from http_fixtures import FileRoute

        calls.append(req)
        route = FileRoute(body=f.body, headers={"Content-Disposition": f'attachment; filename="{f.name}"'}, cut_after=len(f.body) // 3, cuts_left=1 if len(calls) == 2 else 0)
        handler.serve_route(route, req)

    emu._send_file = cutting
    client.download("BIGFILE_0123456789abcdef", tmp_path / "data.zip", expected_sha256=sha256(PAYLOAD))
    assert (tmp_path / "data.zip").read_bytes() == PAYLOAD
    assert any("range" in r.headers for r in server.requests_to("/usercontent/download"))
    emu._send_file = original


def test_drive_quota_page_gives_instructions(drive, tmp_path):
    emu, client = drive
    emu.add_file("QUOTA_0123456789abcdef", "data.zip", PAYLOAD, shape="quota")
    with pytest.raises(DataError) as info:
        client.download("QUOTA_0123456789abcdef", tmp_path / "data.zip", what="data.zip")
    msg = str(info.value)
    assert "quota exceeded" in msg and "Too many users" in msg and "--from PATH" in msg and "24 h" in msg
    assert not (tmp_path / "data.zip").exists()


def test_drive_private_file(drive, tmp_path):
    emu, client = drive
    emu.add_file("PRIVATE_0123456789abcdef", "x.zip", PAYLOAD, shape="private")
    with pytest.raises(DataError, match="private, removed"):
        client.download("PRIVATE_0123456789abcdef", tmp_path / "x.zip")


def test_drive_folder_listing(drive):
    emu, client = drive
    emu.add_folder("FOLDER_0123456789abcdef", "score-denoise data", {"1AbCdEfGhIjKlMnOpQrStUvWxYz012": "data.zip", "1ZyXwVuTsRqPoNmLkJiHgFeDcBa98": "README.txt"})
    entries = client.list_folder("FOLDER_0123456789abcdef")
    assert [(e.id, e.name) for e in entries] == [("1AbCdEfGhIjKlMnOpQrStUvWxYz012", "data.zip"), ("1ZyXwVuTsRqPoNmLkJiHgFeDcBa98", "README.txt")]
    assert client.find_in_folder("FOLDER_0123456789abcdef", "data.zip").id == "1AbCdEfGhIjKlMnOpQrStUvWxYz012"
    with pytest.raises(DataError, match="has no file 'other.zip' .*data.zip, README.txt"):
        client.find_in_folder("FOLDER_0123456789abcdef", "other.zip")
    with pytest.raises(DataError, match="404"):
        client.list_folder("NOFOLDER_0123456789abcdef")


def test_confirmation_parsers_on_literal_pages():
    page = '<form id="download-form" action="https://drive.usercontent.google.com/download" method="get"><input type="hidden" name="id" value="X1"><input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="u-1"></form>'
    assert confirmation_url(page, base_url="https://drive.google.com/uc") == "https://drive.usercontent.google.com/download?id=X1&confirm=t&uuid=u-1"
    legacy = '<a href="/uc?export=download&amp;confirm=Tok&amp;id=X1">Download anyway</a>'
    assert confirmation_url(legacy, base_url="https://drive.google.com/uc") == "https://docs.google.com/uc?export=download&confirm=Tok&id=X1"
    assert confirmation_url("<html>sign in</html>", base_url="https://drive.google.com/uc") is None
    listing = '<a href="https://drive.google.com/drive/folders/1SubFolderIdAbcdefghijklmn">sub</a><a href="https://drive.google.com/file/d/1FileIdAbcdefghijklmnopqrst/view">a &amp; b.zip</a>'
    assert [(e.name, e.is_folder) for e in parse_folder_listing(listing)] == [("sub", True), ("a & b.zip", False)]


# --- archives ----------------------------------------------------------------------------------------
def _zip(path, members):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tar(path, members, links=()):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return path


def test_extracts_good_archives(tmp_path):
    z = _zip(tmp_path / "ok.zip", {"data/a.txt": b"a", "data/sub/b.txt": b"b"})
    assert sorted(archives.extract(z, tmp_path / "z")) == ["data/a.txt", "data/sub/b.txt"]
    assert (tmp_path / "z/data/sub/b.txt").read_bytes() == b"b"
    t = _tar(tmp_path / "ok.tar.gz", {"m/x.ply": b"ply"}, links=[("m/y.ply", "x.ply")])
    archives.extract(t, tmp_path / "t")
    assert (tmp_path / "t/m/y.ply").read_bytes() == b"ply"
    assert archives.extract(z, tmp_path / "f", members=lambda n: n.endswith("b.txt")) == ["data/sub/b.txt"]


@pytest.mark.parametrize("bad", ["../evil.txt", "data/../../evil.txt", "/etc/evil.txt"])
def test_refuses_traversal_in_zip_and_tar(tmp_path, bad):
    for maker, suffix in ((_zip, ".zip"), (_tar, ".tar.gz")):
        arch = maker(tmp_path / f"bad{suffix}", {"data/ok.txt": b"ok", bad: b"evil"})
        dest = tmp_path / f"out{suffix}"
        with pytest.raises(DataError, match="refused"):
            archives.extract(arch, dest)
        assert not any(dest.rglob("*")), "nothing may be written from a refused archive"
    assert not (tmp_path.parent / "evil.txt").exists()


def test_refuses_links_escaping(tmp_path):
    arch = _tar(tmp_path / "link.tar.gz", {"a.txt": b"a"}, links=[("data/passwd", "../../etc/passwd")])
    with pytest.raises(DataError, match="points outside"):
        archives.extract(arch, tmp_path / "out")
    arch = _tar(tmp_path / "abs.tar.gz", {"a.txt": b"a"}, links=[("data/passwd", "/etc/passwd")])
    with pytest.raises(DataError, match="points outside"):
        archives.extract(arch, tmp_path / "out2")


def test_refuses_archive_bombs(tmp_path):
    bomb = _zip(tmp_path / "bomb.zip", {"zeros.bin": b"\0" * (8 << 20)})  # 8 MiB of zeros: ratio ≈ 1000:1
    with pytest.raises(DataError, match="refused"):
        archives.extract(bomb, tmp_path / "out", max_bytes=1 << 20)
    assert not (tmp_path / "out/zeros.bin").exists()
    very = _zip(tmp_path / "very.zip", {"z.bin": b"\0" * (20 << 20)})  # ≈ 1000:1, above the 200:1 limit
    with pytest.raises(DataError, match="archive bomb"):
        archives.extract(very, tmp_path / "out2")


def test_not_an_archive(tmp_path):
    (tmp_path / "x.zip").write_text("<html>error page</html>")
    with pytest.raises(DataError, match="not a zip, tar or gzip archive"):
        archives.extract(tmp_path / "x.zip", tmp_path / "out")


# --- lock file -----------------------------------------------------------------------------------------
def test_lockfile_round_trip(tmp_path):
    lock = LockFile(tmp_path / "lock.json")
    assert lock.sha256("a/b") is None
    lock.record("a/b", "0" * 64, 12, "http://x")
    assert LockFile(tmp_path / "lock.json").get("a/b")["size"] == 12
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="unreadable download lock file"):
        LockFile(tmp_path / "bad.json").sha256("x")


def test_not_enough_disk_space_is_refused_before_transfer(server, dl, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    server.add_file("/huge.bin", PAYLOAD)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(DataError, match="not enough disk space for huge.bin: 1.0 MB to download, 1000 B free"):
        dl.download(server.url("/huge.bin"), tmp_path / "huge.bin")
    assert not (tmp_path / "huge.bin").exists()


def test_gdown_backend_is_optional(monkeypatch, dl):
    import importlib.util

    if importlib.util.find_spec("gdown") is not None:
        pytest.skip("gdown is installed here")
    client = DriveClient(dl, backend="gdown")
    with pytest.raises(DataError, match="gdown is not installed"):
        client.download("X" * 20, "/nonexistent/x.zip")
    with pytest.raises(DataError, match="unknown Google Drive backend"):
        DriveClient(dl, backend="other")
