"""Issue #22, the metrics / readers / methods part: every case a hostile probe found, as a test.

Each CLI case asserts exit code 1, one line on stderr and no traceback, and that no input was changed
and nothing was written; each API case asserts the one-line InputError/DataError.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from click.testing import CliRunner

from sbdbench.cli import main
from sbdbench.errors import DataError, InputError, SbdbenchError
from sbdbench.io import read_mesh, read_points, write_mesh, write_points
from sbdbench.metrics import chamfer, evaluate_shape, hausdorff, p2m, point_mesh_terms, point_to_mesh_distances

ROOT = Path(__file__).resolve().parents[1]


# --- helpers ----------------------------------------------------------------------------------------
def _files(folder: Path) -> dict:
    """{relative path: sha256} of everything under ``folder`` (to prove nothing was written or lost)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def _cli_fails(args, folder: Path, fragment: str = ""):
    """Run the CLI; assert the one-line failure, and that ``folder`` is byte-for-byte unchanged."""
    before = _files(folder)
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 1, (res.exit_code, res.output)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
    assert fragment in lines[0], lines[0]
    assert _files(folder) == before
    return lines[0]


@pytest.fixture()
def pgm(tmp_path):
    """A valid prediction P, GT cloud G and GT mesh M in ``tmp_path/in``."""
    mesh = trimesh.creation.icosphere(2)
    gt, _ = trimesh.sample.sample_surface(mesh, 300, seed=0)
    folder = tmp_path / "in"
    p = write_points(folder / "p.xyz", gt + np.random.default_rng(0).normal(0, 0.02, gt.shape))
    g = write_points(folder / "g.xyz", gt)
    m = write_mesh(folder / "m.off", mesh.vertices, mesh.faces)
    return p, g, m


def _evaluate(p, g, m, *extra):
    return ["evaluate", "--pred", p, "--gt-points", g, "--gt-mesh", m, *extra]


# --- S3: memory bounded by construction for degenerate meshes ----------------------------------------
DEGENERATE = {
    "collinear": ([[0, 0, 0], [1, 0, 0], [2, 0, 0]], [[0, 1, 2]]),
    "sliver": ([[0, 0, 0], [1, 0, 0], [0.5, 1e-12, 0]], [[0, 1, 2]]),
    "all_zero_area": ([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 0, 0], [1, 1, 1], [0, 1, 1]]),
    "slivers_and_a_face": ([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0.5, 1e-7, 0], [0.3, 0.3, 1e-9]], [[0, 1, 3], [0, 1, 2], [0, 2, 4], [1, 2, 4]]),
}


def test_degenerate_meshes_score_within_a_memory_cap():
    """The probe's meshes (24 GB RSS before) in a child process capped at 2 GiB of address space, all modes."""
    script = textwrap.dedent(f"""
        import resource, json, numpy as np
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        from sbdbench.metrics import point_mesh_terms
        cases = json.loads({json.dumps(DEGENERATE)!r})
        pts = np.random.default_rng(0).random((3000, 3))
        for name, (v, f) in cases.items():
            for mode, area in [("exact", 0.0), ("pytorch3d", 5e-3), ("pytorch3d", 0.0)]:
                a, b = point_mesh_terms(pts, np.array(v, float), np.array(f), mode=mode, min_triangle_area=area)
                assert np.isfinite(a).all() and np.isfinite(b).all(), name
        print("ok")
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


@pytest.mark.parametrize("name", sorted(DEGENERATE))
@pytest.mark.parametrize("mode,area", [("exact", 0.0), ("pytorch3d", 5e-3), ("pytorch3d", 0.0)])
def test_degenerate_meshes_stay_exact(name, mode, area):
    """The bounded handling is still exact: the CPU backend matches the torch brute force."""
    v, f = (np.array(x) for x in DEGENERATE[name])
    pts = np.random.default_rng(1).random((500, 3))
    a = point_mesh_terms(pts, v.astype(float), f, mode=mode, min_triangle_area=area)
    b = point_mesh_terms(pts, v.astype(float), f, mode=mode, min_triangle_area=area, backend="torch", dtype=torch.float64)
    np.testing.assert_allclose(a[0], b[0], rtol=0, atol=1e-13)
    np.testing.assert_allclose(a[1], b[1], rtol=0, atol=1e-13)


def test_splitting_stops_at_the_piece_budget():
    from sbdbench.metrics.p2m_cpu import _max_piece_radius, _split_large, piece_budget

    tris = np.array([[[0, 0, 0], [1, 0, 0], [0.5, 1e-12, 0]], [[0, 0, 0], [1, 0, 0], [0, 1, 0]]], dtype=float)
    budget = piece_budget(len(tris), 100)
    pieces, parent = _split_large(tris, 1e-9, budget)  # a radius the probe's mesh asked for
    assert len(pieces) <= budget and set(parent) == {0, 1}
    assert _max_piece_radius(tris[:1], 50_000) > 1e-6  # zero area: the floor, not 1e-9


def test_degenerate_mesh_cli_and_boolean_faces(pgm, tmp_path):
    p, g, _ = pgm
    line = tmp_path / "in" / "line.off"
    line.write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n2 0 0\n3 0 1 2\n")
    res = CliRunner().invoke(main, [str(a) for a in _evaluate(p, g, line)])
    assert res.exit_code == 0, res.output  # bounded, documented handling: zero-area faces count as their edges
    v = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    with pytest.raises(InputError, match="integers"):
        p2m(v, v, np.array([[True, False, True]]))


# --- D1: no command overwrites its own inputs ----------------------------------------------------------
@pytest.mark.parametrize("target", ["p", "g", "m", "link_to_p", "hardlink_to_m"])
def test_evaluate_out_never_overwrites_an_input(pgm, tmp_path, target):
    p, g, m = pgm
    folder = tmp_path / "in"
    out = {"p": p, "g": g, "m": m}.get(target)
    if target == "link_to_p":
        out = folder / "alias.csv"
        out.symlink_to(p)
    elif target == "hardlink_to_m":
        out = folder / "hard.csv"
        os.link(m, out)
    _cli_fails(_evaluate(p, g, m, "--out", out), folder)


def test_evaluate_out_into_a_prediction_folder_or_dataset(pgm, tmp_path):
    p, g, m = pgm
    preds = tmp_path / "in"
    alias = preds / "alias.csv"
    alias.symlink_to(p)
    _cli_fails(["evaluate", "--dataset", "nope", "--pred-dir", preds, "--resolutions", 300, "--out", alias], preds, "overwrite")
    _cli_fails(["evaluate", "--dataset", "nope", "--pred-dir", preds, "--resolutions", 300, "--out", p], preds, ".csv")


def test_run_out_inside_the_dataset_is_refused(sbd_home, tmp_path):
    from sbdbench.data.dataset import noisy_dir_name

    data = sbd_home / "data"
    mesh = trimesh.creation.icosphere(1)
    write_mesh(data / "tiny" / "meshes" / "test" / "a.off", mesh.vertices, mesh.faces)
    write_points(data / "tiny" / "pointclouds" / "test" / "42_poisson" / "a.xyz", mesh.vertices)
    write_points(data / "examples" / noisy_dir_name("tiny", 42, 0.01) / "a.xyz", mesh.vertices + 0.01)
    (data / "tiny" / "manifest.json").write_text(json.dumps({"shapes": {"a": {"category": "x"}}}))
    for out in (data / "examples", data / "tiny", data / "tiny" / "pointclouds"):
        _cli_fails(["run", "--method", "noisy", "--dataset", "tiny", "--defaults", "--out", out], data, "inside")


def test_build_meshes_from_inside_its_own_target_is_refused(sbd_home):
    mesh = trimesh.creation.icosphere(1)
    src = sbd_home / "data" / "mine" / "meshes" / "test"
    write_mesh(src / "a.off", mesh.vertices, mesh.faces)
    _cli_fails(["build", "--meshes", src, "--name", "mine", "--resolutions", "100", "--quiet"], sbd_home / "data", "inside")


def test_denoise_refuses_unknown_or_missing_suffix_and_hard_links(pgm, tmp_path):
    p, _, _ = pgm
    folder = tmp_path / "in"
    for out, fragment in [(folder / "out", "no suffix"), (folder / "out.abc", "unknown output format")]:
        _cli_fails(["denoise", p, out, "--method", "noisy"], folder, fragment)
        assert not out.exists() and not out.with_suffix(".xyz").exists()
    os.link(p, folder / "same.xyz")
    _cli_fails(["denoise", p, folder / "same.xyz", "--method", "noisy"], folder, "overwrite")


# --- W1: huge magnitudes never become NaN clouds -----------------------------------------------------
def test_pca_refuses_huge_magnitudes_up_front():
    from sbdbench.methods.base import make_method

    x = np.random.default_rng(0).random((500, 3))
    x[3] = 1e200
    with pytest.raises(InputError, match="exceeds"):
        make_method("pca").denoise(x)


def test_output_is_checked_in_the_callers_frame():
    from sbdbench.methods.base import Denoiser

    class Blowup(Denoiser):
        name = "blowup-test"

        def _denoise_unit(self, points, noise_level):
            return points * 1e250  # finite in the unit sphere, infinite once mapped back

    x = np.random.default_rng(0).random((50, 3)) * 1e80
    with pytest.raises(SbdbenchError, match="NaN/Inf.*input frame"):
        Blowup().denoise(x)


# --- W2 / T1: rows at 1e300 are refused, never scored as 0 ------------------------------------------
@pytest.mark.parametrize("where", ["pred", "gt", "verts"])
def test_rows_at_1e300_are_refused(where):
    mesh = trimesh.creation.icosphere(1)
    v, f = mesh.vertices.copy(), mesh.faces
    gt = v.copy()
    pred = v + 0.01
    {"pred": pred, "gt": gt, "verts": v}[where][0] = 1e300
    with pytest.raises(InputError, match="exceeds"):
        evaluate_shape(pred, gt, v, f)


@pytest.mark.parametrize("which", ["pred", "gt", "mesh"])
def test_cli_rows_at_1e300(pgm, tmp_path, which):
    p, g, m = pgm
    if which == "mesh":
        text = m.read_text().splitlines()
        text[2] = "1e300 0 0"
        m.write_text("\n".join(text) + "\n")
    else:
        target = p if which == "pred" else g
        target.write_text(target.read_text() + "1e300 0 0\n")
    _cli_fails(_evaluate(p, g, m), tmp_path / "in", "exceeds")


def test_prediction_far_outside_the_frame_is_refused():
    mesh = trimesh.creation.icosphere(1)
    pred = mesh.vertices * 1.0
    pred[0] = 1e50
    for fn in (lambda: chamfer(pred, mesh.vertices), lambda: p2m(pred, mesh.vertices, mesh.faces)):
        with pytest.raises(InputError, match="radii"):
            fn()


# --- W3: truncated files and count mismatches ---------------------------------------------------------
def _good_off(tmp_path) -> Path:
    mesh = trimesh.creation.icosphere(3)
    return write_mesh(tmp_path / "good.off", mesh.vertices, mesh.faces)


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95])
def test_truncated_off_is_refused(tmp_path, cut):
    data = _good_off(tmp_path).read_bytes()
    bad = tmp_path / "cut.off"
    bad.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(InputError, match="truncated|malformed|expected 3"):
        read_mesh(bad)


@pytest.mark.parametrize("header,fragment", [("OFF\n5 1 0\n", "truncated"), ("OFF\n3 2 0\n", "truncated"),
                                             ("OFF\n4 0 0\n", "expected 3 vertex"), ("OFF\n3 0 0\n", "more data")])
def test_off_counts_must_match_the_data(tmp_path, header, fragment):
    bad = tmp_path / "m.off"
    bad.write_text(header + "0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    with pytest.raises(InputError, match=fragment):
        read_mesh(bad)


def test_off_quads_and_modelnet_header(tmp_path):
    path = tmp_path / "q.off"
    path.write_text("OFF4 1 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n")
    v, f = read_mesh(path)
    assert v.shape == (4, 3) and f.tolist() == [[0, 1, 2], [0, 2, 3]]


def test_truncated_ascii_ply_binary_stl_and_npy(tmp_path):
    mesh = trimesh.creation.icosphere(2)
    ply = mesh.export(file_type="ply", encoding="ascii")
    stl = mesh.export(file_type="stl")
    for name, data in [("m.ply", ply), ("m.stl", stl)]:
        path = tmp_path / name
        path.write_bytes(data[: int(len(data) * 0.9)])
        with pytest.raises(InputError):
            read_mesh(path)
    npy = tmp_path / "p.npy"
    np.save(npy, np.random.default_rng(0).random((100, 3)))
    npy.write_bytes(npy.read_bytes()[:-40])
    with pytest.raises(InputError, match="truncated"):
        read_points(npy)


def test_build_meshes_refuses_a_truncated_off(sbd_home, tmp_path):
    folder = tmp_path / "meshes"
    folder.mkdir()
    data = _good_off(tmp_path).read_bytes()
    (folder / "cut.off").write_bytes(data[: len(data) // 2])
    _cli_fails(["build", "--meshes", folder, "--name", "cutset", "--resolutions", "100", "--quiet"], tmp_path, "truncated")
    assert not (sbd_home / "data" / "cutset" / "manifest.json").exists()


# --- T2: checkpoints with NaN or huge tensors ---------------------------------------------------------
@pytest.mark.parametrize("method", ["score", "sbd"])
@pytest.mark.parametrize("poison", ["nan", "1e30"])
def test_poisoned_checkpoints_are_refused_at_load(tmp_path, method, poison):
    from sbdbench.methods.learned.checkpoint import load_checkpoint, project_weights_path

    src = project_weights_path(method)
    if not src.is_file():
        pytest.skip(f"no shipped {method} weights")
    obj = torch.load(src, map_location="cpu", weights_only=True)
    key = next(k for k, v in obj["state_dict"].items() if v.is_floating_point())
    t = obj["state_dict"][key]
    obj["state_dict"][key] = torch.full_like(t, float("nan")) if poison == "nan" else t * 1e30 + 1e30
    bad = tmp_path / f"{poison}.pt"
    torch.save(obj, bad)
    with pytest.raises(DataError, match="refusing these weights"):
        load_checkpoint(bad)
    cloud = write_points(tmp_path / "in.xyz", np.random.default_rng(0).random((200, 3)))
    _cli_fails(["denoise", cloud, tmp_path / "out.xyz", "--method", method, "--defaults", "--param", f"weights={bad}"], tmp_path,
               "refusing these weights")


def test_checkpoint_errors_never_quote_torch_advice(tmp_path):
    import pickle

    from sbdbench.methods.learned.checkpoint import load_checkpoint

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": Evil()}, evil, pickle_module=pickle)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x80\x02garbage" * 20)
    for path, fragment in [(evil, "unsafe"), (junk, "not a readable")]:
        with pytest.raises(DataError, match=fragment) as info:
            load_checkpoint(path)
        message = str(info.value)
        assert "weights_only" not in message and "\n" not in message


# --- API leaks, complex input, fallback frames --------------------------------------------------------
@pytest.fixture(scope="module")
def small_case():
    mesh = trimesh.creation.icosphere(1)
    return mesh.vertices, mesh.faces, mesh.vertices + 0.01


@pytest.mark.parametrize("call", [
    lambda v, f, p: p2m(p, v, f, mode="pytorch3d", min_triangle_area="abc"),
    lambda v, f, p: p2m(p, v, f, mode="pytorch3d", min_triangle_area=None),
    lambda v, f, p: point_to_mesh_distances(p, v, f, mode="pytorch3d", min_triangle_area=[1]),
    lambda v, f, p: p2m(p, v, f.astype(str)),
    lambda v, f, p: p2m(p, v, f.astype(object)),
    lambda v, f, p: p2m(p, v, f.astype(bool)),
    lambda v, f, p: p2m(p, v.astype(complex) + 1j, f),
    lambda v, f, p: chamfer(p.astype(complex), v),
    lambda v, f, p: chamfer(p, v[:1]),
    lambda v, f, p: hausdorff(p, np.repeat(v[:1], 20, axis=0)),
    lambda v, f, p: p2m(p, np.repeat(v[:1], len(v), axis=0), f),
])
def test_api_errors_are_input_errors(small_case, call):
    with pytest.raises(InputError) as info:
        call(*small_case)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("noise_level", ["abc", [0.01], 1j, -0.1, float("nan"), True])
def test_bad_noise_level_is_an_input_error(noise_level):
    from sbdbench.methods.base import make_method

    with pytest.raises(InputError, match="noise_level"):
        make_method("noisy").denoise(np.random.default_rng(0).random((20, 3)), noise_level=noise_level)


def test_complex_npy_and_device_paths(tmp_path):
    path = tmp_path / "c.npy"
    np.save(path, np.ones((5, 3), dtype=complex))
    with pytest.raises(InputError, match="complex"):
        read_points(path)
    if Path("/dev/null").exists():
        with pytest.raises(InputError, match="not a regular file"):
            read_points("/dev/null")


def test_cli_one_point_gt_and_coincident_mesh(pgm, tmp_path):
    p, g, m = pgm
    folder = tmp_path / "in"
    one = write_points(folder / "one.xyz", np.array([[0.0, 0.0, 0.0]]))
    _cli_fails(_evaluate(p, one, m), folder, "coincide")
    flat = folder / "flat.off"
    flat.write_text("OFF\n3 1 0\n1 1 1\n1 1 1\n1 1 1\n3 0 1 2\n")
    _cli_fails(_evaluate(p, g, flat), folder, "coincide")
