"""``sbdbench fetch iterativepfn-official``: the checkpoint taken out of the authors' data_and_ckpt.zip (Google Drive),
tested against the loopback Drive emulator (the real archive cannot be downloaded from here)."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import torch

from http_fixtures import DriveEmulator, LoopbackServer, sha256, url_map
from iterativepfn_weights import fixed_state_dict
from sbdbench.data.sources import fetch, load_card
from sbdbench.data.sources.http import Downloader
from sbdbench.data.sources.lockfile import LockFile
from sbdbench.errors import DataError
from sbdbench.methods import make_method
from sbdbench.methods.learned.iterativepfn.network import IterativePFNNet

ARCHIVE_ID = "1-TvHy3bvq8X1vI0ztwmmubDqhngRLQDu"
MEMBER = "data_and_ckpt/pretrained/denoisenet-ep-99.ckpt"


def _lightning_ckpt() -> bytes:
    """A file shaped like a PyTorch Lightning checkpoint (state_dict + hyper_parameters with an argparse.Namespace)."""
    import argparse

    state = fixed_state_dict((k, v.shape) for k, v in IterativePFNNet().state_dict().items())
    buf = io.BytesIO()
    torch.save({"epoch": 99, "global_step": 1, "pytorch-lightning_version": "1.7.6", "state_dict": state,
                "hyper_parameters": {"args": argparse.Namespace(frame_knn=32, num_modules=4)}}, buf)
    return buf.getvalue()


CKPT = _lightning_ckpt()


def _zip(members) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in members.items():
            zf.writestr(name, body)
    return buf.getvalue()


ARCHIVE = _zip({"data_and_ckpt/data/PUNet/pointclouds/test/10000_poisson/cube.xyz": b"0 0 0\n" * 50, MEMBER: CKPT})


@pytest.fixture()
def drive(sbd_home):
    with LoopbackServer() as srv:
        emu = DriveEmulator(srv)
        emu.add_file(ARCHIVE_ID, "data_and_ckpt.zip", ARCHIVE, shape="redirect")
        yield srv


def _fetch(srv, **kw):
    kw.setdefault("downloader", Downloader(retries=1, backoff=0.0, timeout=(5, 5), progress=False))
    kw.setdefault("log", lambda msg: None)
    return fetch("iterativepfn-official", progress=False, url_map=url_map(srv.base), **kw)


def test_card_names_the_authors_download_and_the_member():
    card = load_card("iterativepfn-official")
    assert card.kind == "weights-archive" and card.files[0].host == "gdrive" and card.files[0].get("id") == ARCHIVE_ID
    assert card.files[0].sha256 is None  # unknown here: pinned at the first validated install
    assert card.options["member"] == "pretrained/denoisenet-ep-99.ckpt"
    assert "GB" in card.size_note and "only the checkpoint" in card.size_note


def test_fetch_installs_only_the_checkpoint_and_official_weights_load(drive, sbd_home):
    result = _fetch(drive)
    assert result.status == "installed"
    target = sbd_home / "weights" / "iterativepfn-denoisenet-ep-99.ckpt"
    assert target.read_bytes() == CKPT
    info = json.loads((target.parent / (target.name + ".source.json")).read_text())
    assert info["archive_sha256"] == sha256(ARCHIVE) and info["sha256"] == sha256(CKPT) and info["member"] == MEMBER
    assert LockFile().sha256("iterativepfn-official/data_and_ckpt.zip") == sha256(ARCHIVE)  # pinned on first install
    assert not (sbd_home / "downloads" / "iterativepfn-official" / "data_and_ckpt.zip").exists()  # the big archive is not kept
    assert not (sbd_home / "data" / "punet").exists()  # the data sets are other cards' business
    method = make_method("iterativepfn")  # weights="official"
    assert method.unavailable_reason() is None
    net, _ = method.load()
    assert torch.equal(net.state_dict()["feature_nets.3.linear3.bias"], fixed_state_dict([("feature_nets.3.linear3.bias", (3,))])["feature_nets.3.linear3.bias"])
    n_requests = len(drive.log)
    again = _fetch(drive)
    assert again.status == "present" and len(drive.log) == n_requests


def test_fetch_from_a_local_archive_keeps_it(drive, sbd_home, tmp_path):
    local = tmp_path / "data_and_ckpt.zip"
    local.write_bytes(ARCHIVE)
    assert _fetch(drive, source_path=local).status == "installed"
    assert local.read_bytes() == ARCHIVE and not drive.log
    assert (sbd_home / "weights" / "iterativepfn-denoisenet-ep-99.ckpt").read_bytes() == CKPT


def test_keep_archive_option(drive, sbd_home):
    _fetch(drive, options={"keep_archive": "true"})
    assert (sbd_home / "downloads" / "iterativepfn-official" / "data_and_ckpt.zip").is_file()


def test_a_changed_archive_layout_is_a_one_line_error(drive, sbd_home, tmp_path):
    other = tmp_path / "data_and_ckpt.zip"
    other.write_bytes(_zip({"data_and_ckpt/pretrained/other.ckpt": CKPT}))
    with pytest.raises(DataError, match="no member named 'pretrained/denoisenet-ep-99.ckpt'.*other.ckpt"):
        _fetch(drive, source_path=other)
    assert not (sbd_home / "weights" / "iterativepfn-denoisenet-ep-99.ckpt").exists()
    assert LockFile().sha256("iterativepfn-official/data_and_ckpt.zip") is None  # nothing pinned from a failed install


def test_missing_official_weights_say_what_to_fetch(sbd_home):
    method = make_method("iterativepfn")
    assert "sbdbench fetch iterativepfn-official" in method.unavailable_reason()
    with pytest.raises(DataError, match=r"run `sbdbench fetch iterativepfn-official`"):
        method.denoise(np.random.default_rng(0).normal(size=(100, 3)))
