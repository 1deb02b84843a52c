"""One method through the whole CLI (``run``, ``denoise``, ``bench``, ``tune --split val``) on the tiny synth set:
the checks every learned method's tests make, written once."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from sbdbench.cli import main
from sbdbench.methods.conformance import noisy_sphere


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def as_cli_params(params: dict) -> list:
    return [arg for key, value in params.items() for arg in ("--param", f"{key}={value}")]


def check_run_and_denoise(method: str, dataset, params: dict, tmp_path) -> None:
    """``run`` writes one cloud per test shape; ``denoise`` keeps a file's point count."""
    res = invoke("run", "--method", method, "--dataset", dataset.name, "--resolutions", 1000, "--sigmas", 0.02,
                 *as_cli_params(params), "--out", tmp_path / "run")
    assert res.exit_code == 0, res.output
    assert sorted(p.stem for p in (tmp_path / "run").rglob("*.xyz")) == dataset.shapes("test")
    src, dst = tmp_path / "in.xyz", tmp_path / "out.xyz"
    np.savetxt(src, noisy_sphere(300))
    res = invoke("denoise", src, dst, "--method", method, *as_cli_params(params))
    assert res.exit_code == 0, res.output
    assert np.loadtxt(dst).shape == (300, 3)


def check_bench_and_tune_on_val(method: str, dataset, params: dict, tmp_path) -> None:
    """``bench`` runs the method's cell; ``tune --split val`` writes its settings file with the searched ``niters``."""
    spec = ":".join([method] + [f"{key}={value}" for key, value in params.items()])
    res = invoke("bench", "--methods", spec, "--datasets", dataset.name, "--resolutions", 1000, "--sigmas", "2%")
    assert res.exit_code == 0, res.output
    out = tmp_path / "baselines" / f"{method}.toml"
    res = invoke("tune", "--method", method, "--dataset", dataset.name, "--split", "val", "--resolutions", 1000,
                 "--sigmas", 0.02, "--max-shapes", 1, *as_cli_params(params), "--out", out)
    assert res.exit_code == 0, res.output
    assert out.is_file() and "niters" in out.read_text()
