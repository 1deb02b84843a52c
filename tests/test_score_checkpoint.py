"""Weights resolution and loading: official / project / path, and clear errors for bad files."""

from __future__ import annotations

import pickle

import pytest
import torch

from sbdbench.errors import DataError
from sbdbench.methods.learned import checkpoint as ckpt
from sbdbench.methods.learned.model import ScoreDenoiseModel


def test_official_absent_says_how_to_fetch(sbd_home):
    with pytest.raises(DataError, match="sbdbench fetch score-official"):
        ckpt.resolve_weights("official")


def test_official_path_is_under_home(sbd_home):
    path = sbd_home / "weights" / "score-denoise-official.pt"
    path.parent.mkdir(parents=True)
    ckpt.save_project_weights(path, ScoreDenoiseModel(), {"note": "stand-in"})
    assert ckpt.resolve_weights("official") == path


def test_project_absent_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt, "PACKAGE_WEIGHTS_DIR", tmp_path)
    with pytest.raises(DataError, match="ships no project weights"):
        ckpt.resolve_weights("project")


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="not found"):
        ckpt.resolve_weights(tmp_path / "nope.pt")


def test_corrupt_and_truncated_files(tmp_path, reference_dir):
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(DataError, match="not a readable PyTorch checkpoint"):
        ckpt.load_checkpoint(bad)
    cut = tmp_path / "cut.pt"
    cut.write_bytes((reference_dir / "score-denoise" / "ckpt.pt").read_bytes()[:100_000])
    with pytest.raises(DataError, match="not a readable PyTorch checkpoint"):
        ckpt.load_checkpoint(cut)


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _Evil()}, path, pickle_module=pickle)
    with pytest.raises(DataError, match="unsafe|not a readable"):
        ckpt.load_checkpoint(path)


def test_mismatched_weights_name_the_difference(tmp_path):
    state = ScoreDenoiseModel().state_dict()
    state["score_net.conv_p.weight"] = torch.zeros(64, 63, 1)
    del state["score_net.bn_out.bias"]
    path = tmp_path / "other.pt"
    torch.save({"state_dict": state}, path)
    loaded, _ = ckpt.load_checkpoint(path)
    with pytest.raises(DataError, match=r"1 missing \(e.g. score_net.bn_out.bias\).*another shape \(e.g. score_net.conv_p.weight"):
        ckpt.load_into(ScoreDenoiseModel(), loaded, source=path)


def test_official_checkpoint_loads_strictly(reference_dir):
    state, meta = ckpt.load_checkpoint(reference_dir / "score-denoise" / "ckpt.pt")
    assert len(state) == 105 and meta["args"]["ld_step_size"] == 0.2
    model = ckpt.load_into(ScoreDenoiseModel(), state)
    assert sum(p.numel() for p in model.parameters()) == 187_291  # + 2,313 BatchNorm buffers = 189,604
    assert torch.equal(model.state_dict()["score_net.conv_p.weight"], state["score_net.conv_p.weight"])


def test_project_file_round_trip_needs_no_allow_list(tmp_path):
    model = ScoreDenoiseModel()
    path = tmp_path / "w.pt"
    ckpt.save_project_weights(path, model, {"iterations": 3, "data": "synth", "sigma_range": [0.005, 0.02]})
    raw = torch.load(path, weights_only=True)  # no safe_globals needed
    assert raw["meta"]["iterations"] == 3
    state, meta = ckpt.load_checkpoint(path)
    ckpt.load_into(ScoreDenoiseModel(), state)
    with pytest.raises(Exception, match="plain types"):
        ckpt.save_project_weights(path, model, {"bad": object()})
