"""Reading and writing clouds and meshes: round trips for every format, and errors that name file and line."""

from __future__ import annotations

import io

import numpy as np
import pytest
import trimesh

from sbdbench.errors import InputError
from sbdbench.io import format_xyz, read_mesh, read_points, write_mesh, write_points


@pytest.fixture()
def cloud():
    return np.random.default_rng(0).normal(size=(257, 3))


@pytest.mark.parametrize("suffix", [".xyz", ".txt", ".ply", ".npy"])
def test_points_round_trip(tmp_path, cloud, suffix):
    path = write_points(tmp_path / f"c{suffix}", cloud)
    back = read_points(path)
    assert back.shape == cloud.shape and back.dtype == np.float64
    tol = {".xyz": 5e-9, ".txt": 5e-9, ".ply": 1e-6, ".npy": 0.0}[suffix]
    assert np.abs(back - cloud).max() <= tol


def test_xyz_bytes_match_scoredenoise_savetxt(tmp_path, cloud):
    buf = io.StringIO()
    np.savetxt(buf, cloud, fmt="%.8f")
    assert format_xyz(cloud) == buf.getvalue()
    path = write_points(tmp_path / "c.xyz", cloud)
    assert path.read_text() == buf.getvalue()


def test_xyz_with_normals_keeps_xyz(tmp_path):
    data = np.arange(12, dtype=float).reshape(2, 6)
    path = tmp_path / "n.xyz"
    np.savetxt(path, data)
    assert np.array_equal(read_points(path), data[:, :3])


@pytest.mark.parametrize("suffix", [".off", ".ply", ".obj", ".stl"])
def test_mesh_round_trip(tmp_path, suffix):
    box = trimesh.creation.box(extents=(1.0, 2.0, 3.0))
    path = write_mesh(tmp_path / f"m{suffix}", box.vertices, box.faces)
    v, f = read_mesh(path)
    back = trimesh.Trimesh(v, f, process=True)  # .stl stores triangle soups: merge before comparing
    assert len(back.faces) == 12
    assert back.is_watertight
    assert np.isclose(back.volume, 6.0, atol=1e-5)
    assert np.allclose(back.bounds, box.bounds, atol=1e-6)


def test_off_is_scoredenoise_readable_text(tmp_path):
    box = trimesh.creation.box()
    path = write_mesh(tmp_path / "b.off", box.vertices, box.faces)
    lines = path.read_text().splitlines()
    assert lines[0] == "OFF" and lines[1] == "8 12 0"
    assert lines[2].count(".") == 3 and len(lines[2].split()[0].split(".")[1]) == 8
    assert lines[-1].startswith("3 ")


@pytest.mark.parametrize("content, fragment", [
    ("0 0 0\n1 2\n", ":2: expected at least 3 columns"),
    ("0 0 0\n1 x 3\n", ":2: not a number"),
    ("0 0 0\n0 0 0\nnan 1 2\n", ":3: non-finite"),
    ("0 0 0\n1 1 inf\n", ":2: non-finite"),
    ("x y z intensity\n5 6 7\n", ":1: the header names 4 columns, the rows have 3"),
    ("a b c\n5 6 7\n", ":1: a header line must start with x y z"),
    ("0,0,0\n1,,3\n", ":2: not a number"),
    ("0 0 0\n1 1 1\n2 2 2 2\n", ":3: 4 columns where the first row has 3"),
])
def test_malformed_cloud_names_file_and_line(tmp_path, content, fragment):
    path = tmp_path / "bad.xyz"
    path.write_text(content)
    with pytest.raises(InputError) as err:
        read_points(path)
    msg = str(err.value)
    assert str(path) in msg and fragment in msg and "\n" not in msg


def test_empty_and_missing_and_unknown_files(tmp_path):
    empty = tmp_path / "e.xyz"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        read_points(empty)
    comments = tmp_path / "c.xyz"
    comments.write_text("# only a comment\n")
    with pytest.raises(InputError, match="no points|empty"):
        read_points(comments)
    with pytest.raises(InputError, match="no such file"):
        read_points(tmp_path / "missing.xyz")
    with pytest.raises(InputError, match="unknown point-cloud format"):
        write_points(tmp_path / "x.abc", np.zeros((2, 3)))
    odd = tmp_path / "m.abc"
    odd.write_text("x")
    with pytest.raises(InputError, match="unknown mesh format"):
        read_mesh(odd)


def test_bad_points_are_refused_on_write(tmp_path):
    with pytest.raises(InputError, match="NaN/Inf"):
        write_points(tmp_path / "n.xyz", np.array([[0.0, 0.0, np.nan]]))
    with pytest.raises(InputError, match=r"shape \(N, 3\)"):
        write_points(tmp_path / "n.xyz", np.zeros((4, 2)))
    assert not (tmp_path / "n.xyz").exists()


def test_bad_meshes(tmp_path):
    no_faces = tmp_path / "nofaces.off"
    no_faces.write_text("OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n")
    with pytest.raises(InputError, match="no faces"):
        read_mesh(no_faces)
    nan_verts = tmp_path / "nan.off"
    nan_verts.write_text("OFF\n3 1 0\n0 0 0\nnan 0 0\n0 1 0\n3 0 1 2\n")
    with pytest.raises(InputError, match="NaN/Inf"):
        read_mesh(nan_verts)
    with pytest.raises(InputError, match="no faces"):
        write_mesh(tmp_path / "w.off", np.zeros((3, 3)), np.zeros((0, 3), dtype=int))
    with pytest.raises(InputError, match="out of range"):
        write_mesh(tmp_path / "w.off", np.zeros((3, 3)), np.array([[0, 1, 5]]))


def test_atomic_write_leaves_no_temp_files(tmp_path, cloud):
    write_points(tmp_path / "a.xyz", cloud)
    with pytest.raises(InputError):
        write_points(tmp_path / "a.xyz", np.full((3, 3), np.nan))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.xyz"]
    assert np.allclose(read_points(tmp_path / "a.xyz"), cloud, atol=5e-9)
