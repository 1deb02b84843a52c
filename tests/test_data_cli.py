"""The data commands: build, verify, check-noise, datasets — help texts, outputs, one-line errors and exit codes."""

from __future__ import annotations

import shutil

import pytest
import trimesh
from click.testing import CliRunner

from sbdbench.cli import main

SMALL = ["build", "--shapes", "cube,torus", "--resolutions", "300", "--sigmas", "1%,3%", "--no-train",
         "--workers", "1", "--quiet"]


def run(*args):
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def one_line_error(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


@pytest.mark.parametrize("command", ["build", "verify", "check-noise", "datasets"])
def test_help(command):
    code, out = run(command, "--help")
    assert code == 0 and "Usage: main " + command in out.replace("sbdbench", "main")
    assert len(out.splitlines()) > 3


def test_build_verify_check_noise_datasets(sbd_home):
    code, out = run(*SMALL)
    assert code == 0, out
    assert "dataset 'synth' ready" in out
    assert (sbd_home / "data" / "examples" / "synth_300_poisson_0.03" / "torus.xyz").is_file()
    code, out = run("verify")
    assert code == 0 and "synth: OK" in out
    code, out = run("check-noise")
    assert code == 0, out
    assert "laplace" in out and "FAIL" not in out and out.count("PASS") == 3
    code, out = run("datasets")
    assert code == 0 and "synth" in out and "300" in out and "0.01,0.03" in out


def test_verify_fails_with_one_line_after_tampering(sbd_home):
    assert run(*SMALL)[0] == 0
    (sbd_home / "data" / "synth" / "meshes" / "test" / "cube.off").write_text("OFF\n")
    code, out = run("verify")
    assert code != 0
    assert "checksum mismatch" in one_line_error(out) and "synth/meshes/test/cube.off" in out


@pytest.mark.parametrize("args, fragment", [
    (["build", "--shapes", "cube,blob", "--no-train"], "unknown shape 'blob'"),
    (["build", "--resolutions", "0"], "must be > 0"),
    (["build", "--resolutions", "ten"], "must be integers"),
    (["build", "--sigmas", "-0.01"], "≥ 0"),
    (["build", "--name", "other"], "only 'synth'"),
    (["verify", "nope"], "dataset 'nope' is not present"),
    (["check-noise", "nope"], "dataset 'nope' is not present"),
    (["build", "--meshes", "/nonexistent/dir", "--name", "mine"], "no such folder"),
    (["build", "--register", "/nonexistent/dir", "--name", "PUNet"], "not a ScoreDenoise data folder"),
])
def test_bad_input_one_line_errors(sbd_home, args, fragment):
    code, out = run(*args)
    assert code != 0
    assert fragment in one_line_error(out)


def test_unwritable_home(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("SBDBENCH_HOME", str(blocker / "home"))
    code, out = run(*SMALL)
    assert code != 0 and "cannot create" in one_line_error(out)


def test_build_from_meshes_and_bad_mesh(sbd_home, tmp_path):
    folder = tmp_path / "meshes"
    folder.mkdir()
    trimesh.creation.box().export(folder / "box.off")
    code, out = run("build", "--meshes", str(folder), "--name", "mine", "--resolutions", "200",
                    "--sigmas", "0.02", "--noise-kind", "gaussian,laplace", "--quiet", "--workers", "1")
    assert code == 0, out
    assert run("verify", "mine")[0] == 0
    assert "mine" in run("datasets")[1]
    (folder / "empty.off").write_text("OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n")
    code, out = run("build", "--meshes", str(folder), "--name", "mine2", "--quiet")
    assert code != 0 and "empty.off: the mesh has no faces" in one_line_error(out)
    (folder / "empty.off").write_text("OFF\n3 1 0\n0 0 0\nnan 0 0\n0 1 0\n3 0 1 2\n")
    code, out = run("build", "--meshes", str(folder), "--name", "mine2", "--quiet")
    assert code != 0 and "NaN/Inf" in one_line_error(out)


def test_register_existing_folder(sbd_home, tiny_synth, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_synth.dir, data / "PUNet", ignore=shutil.ignore_patterns("manifest.json"))
    code, out = run("build", "--register", str(data), "--name", "PUNet")
    assert code == 0, out
    assert "registered 'PUNet'" in out and "3 test shapes" in out
    code, out = run("datasets")
    assert "PUNet" in out and "(no manifest)" in out
    code, out = run("verify", "PUNet")
    assert code != 0 and "no manifest" in one_line_error(out)


def test_debug_shows_traceback(sbd_home):
    result = CliRunner().invoke(main, ["--debug", "verify", "nope"])
    assert result.exit_code != 0 and result.exception is not None
