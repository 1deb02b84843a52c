"""WiSE-FT weight interpolation of a fine-tune with its start (sbdbench.methods.learned.interpolation)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sbdbench.errors import DataError, InputError
from sbdbench.methods.learned.checkpoint import load_checkpoint, load_into, save_project_weights
from sbdbench.methods.learned.interpolation import interpolate_checkpoints, interpolate_states
from sbdbench.methods.learned.model import ScoreDenoiseModel
from sbdbench.paths import sha256_file

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "interpolate_weights.py"


def _two_models():
    torch.manual_seed(0)
    start = ScoreDenoiseModel()
    tuned = ScoreDenoiseModel()
    with torch.no_grad():  # a fine-tune: the start plus a change in every tensor
        for p_start, p_tuned in zip(start.parameters(), tuned.parameters()):
            p_tuned.copy_(p_start + 0.1 * torch.randn_like(p_start))
    for (_, buf), (_, buf_start) in zip(tuned.named_buffers(), start.named_buffers()):
        if buf.dtype == torch.long:
            buf.fill_(7)  # batch-norm step counters
        else:
            buf.copy_(buf_start * 1.5 + 0.1)  # batch-norm statistics
    return tuned, start


def test_the_ends_and_a_point_between_are_exact():
    tuned, start = _two_models()
    ft, st = tuned.state_dict(), start.state_dict()
    for alpha, expect in ((1.0, ft), (0.0, st)):
        mixed = interpolate_states(ft, st, alpha)
        floats = [k for k in ft if ft[k].is_floating_point()]
        assert all(torch.equal(mixed[k], expect[k].float()) for k in floats)
    mixed = interpolate_states(ft, st, 0.25)
    key = next(k for k in ft if k.endswith("weight") and ft[k].dim() > 1)
    torch.testing.assert_close(mixed[key], 0.25 * ft[key] + 0.75 * st[key], rtol=0, atol=1e-7)
    counters = [k for k in ft if not ft[k].is_floating_point()]
    assert counters and all(int(mixed[k].max()) == 7 for k in counters)  # integers come from the fine-tune
    model = ScoreDenoiseModel()
    load_into(model, mixed)  # the result is a strict-loadable state of the same architecture


def test_bad_alpha_and_mismatched_checkpoints_are_refused():
    tuned, start = _two_models()
    ft, st = tuned.state_dict(), start.state_dict()
    with pytest.raises(InputError, match=r"alpha must be in \[0, 1\]"):
        interpolate_states(ft, st, 1.5)
    missing = dict(st)
    dropped = sorted(missing)[0]
    del missing[dropped]
    with pytest.raises(DataError, match=dropped.replace(".", r"\.")):
        interpolate_states(ft, missing, 0.5)
    reshaped = dict(st)
    key = next(k for k in st if st[k].dim() == 2)
    reshaped[key] = st[key].t().contiguous()
    with pytest.raises(DataError, match="has shape"):
        interpolate_states(ft, reshaped, 0.5)


def test_the_written_file_loads_safely_and_records_both_ends(tmp_path):
    tuned, start = _two_models()
    ft_file, start_file, out = tmp_path / "ft.pt", tmp_path / "start.pt", tmp_path / "soup.pt"
    save_project_weights(ft_file, tuned, {"method": "sbd", "init": "official", "init_provenance": "from X (MIT licence)"})
    save_project_weights(start_file, start, {"method": "sbd"})
    interpolate_checkpoints(ft_file, start_file, 0.5, out)
    state, meta = load_checkpoint(out)  # weights_only=True, no allow-list
    assert meta["init_provenance"] == "from X (MIT licence)"  # the fine-tune's provenance is kept
    mix = meta["interpolation"]
    assert mix["alpha"] == 0.5 and mix["finetuned_sha256"] == sha256_file(ft_file) and mix["start_sha256"] == sha256_file(start_file)
    for key in ("feature_net.transforms.0.linear.weight", "score_net.blocks.0.bn_0.running_var"):
        torch.testing.assert_close(state[key], 0.5 * (tuned.state_dict()[key] + start.state_dict()[key]))


def test_the_script_reports_bad_input_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--finetuned", str(tmp_path / "absent.pt"), "--start",
                           str(tmp_path / "absent.pt"), "--alpha", "0.5", "--out", str(tmp_path / "o.pt")],
                          capture_output=True, text=True)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("error:") and "not found" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.pt").exists()
