"""Point clouds with attributes (.pcd, .las/.laz, .ply, .npy, text with commas and headers): round trips,
precision, pass-through by ``denoise``, and the header checks of the new readers."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from click.testing import CliRunner

from sbdbench.cli import main
from sbdbench.errors import InputError
from sbdbench.io import read_cloud, read_points, write_cloud
from sbdbench.io_cloud import PointCloudData
from sbdbench.methods import base
from sbdbench.methods.files import denoise_file

CENTRE, RADIUS = np.array([5.0, -2.0, 1.0]), 3.0
ATTRIBUTE_FORMATS = (".xyz", ".txt", ".csv", ".ply", ".pcd", ".las", ".laz")


def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    polar, azimuth = np.arccos(1 - 2 * i / n), np.pi * (1 + 5 ** 0.5) * i
    return np.column_stack([np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)])


@pytest.fixture()
def sphere() -> PointCloudData:
    """A noisy sampled sphere (σ = 2 % of the radius) with exact normals, colours from the position and an intensity."""
    rng = np.random.default_rng(7)
    normals = _fibonacci_sphere(600)
    xyz = CENTRE + normals * (RADIUS + rng.normal(0, 0.02 * RADIUS, (600, 1)))
    colours = np.round((normals + 1) * 127.5).astype(np.uint8)
    attrs = {"nx": normals[:, 0], "ny": normals[:, 1], "nz": normals[:, 2],
             "red": colours[:, 0], "green": colours[:, 1], "blue": colours[:, 2],
             "intensity": rng.integers(0, 65535, 600).astype(np.uint16)}
    return PointCloudData(xyz, attrs)


def _radial_error(xyz: np.ndarray) -> float:
    return float(np.abs(np.linalg.norm(xyz - CENTRE, axis=1) - RADIUS).mean())


@pytest.mark.parametrize("suffix", ATTRIBUTE_FORMATS)
def test_round_trip_keeps_positions_and_every_attribute(tmp_path, sphere, suffix):
    back = read_cloud(write_cloud(tmp_path / f"s{suffix}", sphere))
    assert back.xyz.dtype == np.float64 and back.xyz_dtype == np.float64
    if suffix in (".las", ".laz"):  # 32-bit integers on a power-of-ten grid: extent 6.2 → scale 1e-8
        assert 0 < np.abs(back.xyz - sphere.xyz).max() <= 0.5e-8
    else:
        assert np.array_equal(back.xyz, sphere.xyz)  # float64 kept bit for bit (text: shortest round-trip digits)
    assert sorted(back.attributes) == sorted(sphere.attributes)
    for name, values in sphere.attributes.items():
        assert np.array_equal(back.attributes[name], values), name
    if suffix in (".ply", ".pcd"):
        assert {n: str(v.dtype) for n, v in back.attributes.items()} == {n: str(v.dtype) for n, v in sphere.attributes.items()}


def test_float64_stays_float64_and_float32_stays_float32(tmp_path, sphere):
    ply = write_cloud(tmp_path / "d.ply", sphere)
    assert b"property double x" in ply.read_bytes()[:400]
    single = PointCloudData(sphere.xyz, {}, np.dtype(np.float32))
    for suffix in (".ply", ".pcd", ".npy"):
        back = read_cloud(write_cloud(tmp_path / f"f{suffix}", single))
        assert back.xyz_dtype == np.float32
        assert np.array_equal(back.xyz, sphere.xyz.astype(np.float32).astype(np.float64))
    npy = tmp_path / "in.npy"
    np.save(npy, sphere.xyz)
    out = tmp_path / "out.npy"
    denoise_file(npy, out, "pca", use_frozen=False)
    assert np.load(out).dtype == np.float64


def test_npy_columns_follow_the_headerless_layout(tmp_path, sphere):
    cols = ("nx", "ny", "nz", "red", "green", "blue")
    cloud = PointCloudData(sphere.xyz, {n: sphere.attributes[n] for n in cols})
    back = read_cloud(write_cloud(tmp_path / "n.npy", cloud))
    assert tuple(back.attributes) == cols
    assert np.array_equal(back.attributes["red"], sphere.attributes["red"])


def test_text_with_commas_headers_and_intensity(tmp_path):
    cc = tmp_path / "cc.txt"
    cc.write_text("//X,Y,Z,R,G,B\n1.5,2,3,255,0,7\n4,5,6.25,1,2,3\n")
    cloud = read_cloud(cc)
    assert np.array_equal(cloud.xyz, [[1.5, 2, 3], [4, 5, 6.25]])
    assert list(cloud.attributes) == ["red", "green", "blue"] and cloud.attributes["red"].tolist() == [255, 1]
    xyzi = tmp_path / "scan.xyz"
    xyzi.write_text("# x y z intensity\n0 0 0 0.25\n1 2 3 0.5\n")
    assert read_cloud(xyzi).attributes["intensity"].tolist() == [0.25, 0.5]
    named = tmp_path / "named.csv"
    named.write_text("x, y, z, label\n0, 0, 0, 3\n1, 1, 1, 4\n")
    back = read_cloud(write_cloud(tmp_path / "again.csv", read_cloud(named)))
    assert back.attributes["label"].tolist() == [3, 4]
    assert (tmp_path / "again.csv").read_text().splitlines()[:2] == ["x,y,z,label", "0.0,0.0,0.0,3"]


def test_text_round_trips_random_float64(tmp_path):
    xyz = np.random.default_rng(3).normal(size=(300, 3)) * 1e3
    assert np.array_equal(read_points(write_cloud(tmp_path / "r.xyz", PointCloudData(xyz))), xyz)


@pytest.mark.parametrize("suffix", (".ply", ".pcd", ".laz", ".csv"))
def test_denoise_carries_attributes_point_by_point(tmp_path, sphere, suffix):
    src = write_cloud(tmp_path / f"in{suffix}", sphere)
    dst = tmp_path / f"out{suffix}"
    info = denoise_file(src, dst, "jet", use_frozen=False)
    assert info["attributes_note"] is None and sorted(info["attributes"]) == sorted(sphere.attributes)
    inp, out = read_cloud(src), read_cloud(dst)
    for name, values in inp.attributes.items():
        assert np.array_equal(out.attributes[name], values), name
    assert _radial_error(out.xyz) < 0.6 * _radial_error(inp.xyz)  # denoised, in the input's frame
    # point i is still point i: its position moved by about the noise, far less than the spacing
    assert np.linalg.norm(out.xyz - inp.xyz, axis=1).max() < 0.25


def test_denoise_cli_reports_the_carried_attributes(tmp_path, sphere):
    src = write_cloud(tmp_path / "in.ply", sphere)
    res = CliRunner().invoke(main, ["denoise", str(src), str(tmp_path / "out.pcd"), "--method", "pca"])
    assert res.exit_code == 0, res.output
    assert "attributes carried: nx ny nz red green blue intensity" in res.output
    assert np.array_equal(read_cloud(tmp_path / "out.pcd").attributes["blue"], sphere.attributes["blue"])


class _EveryOtherPoint(base.Denoiser):
    """A test double that drops every other point (not count-preserving)."""

    name = "t_every_other"
    paper = "test double"
    preserves_count = False

    def __init__(self) -> None:
        pass

    def _denoise_unit(self, points, noise_level):
        return points[::2]


def test_count_changing_method_writes_xyz_only_and_says_so(tmp_path, sphere, monkeypatch):
    monkeypatch.setitem(base._REGISTRY, _EveryOtherPoint.name, _EveryOtherPoint)
    src = write_cloud(tmp_path / "in.ply", sphere)
    res = CliRunner().invoke(main, ["denoise", str(src), str(tmp_path / "out.ply"), "--method", "t_every_other", "--defaults"])
    assert res.exit_code == 0, res.output
    assert "attributes cannot be carried" in res.output and "writing x y z only" in res.output
    out = read_cloud(tmp_path / "out.ply")
    assert len(out) == 300 and out.attributes == {} and out.xyz_dtype == np.float64


def test_every_count_preserving_classical_method_keeps_point_order(sphere):
    """What the pass-through relies on: output point i is input point i moved (never a reordering)."""
    from scipy.spatial import cKDTree

    from sbdbench.methods import make_method

    base._import_builtin(base.BUILTIN_MODULES[0])
    spacing = cKDTree(sphere.xyz).query(sphere.xyz, k=2)[0][:, 1].mean()
    classical = [n for n, cls in base._REGISTRY.items() if cls.__module__.startswith("sbdbench.methods.classical")]
    assert len(classical) >= 6
    for name in classical:
        method = make_method(name)
        assert method.preserves_count, name
        out = method.denoise(sphere.xyz, noise_level=0.02)
        assert np.linalg.norm(out - sphere.xyz, axis=1).mean() < 0.5 * spacing, name


def test_las_output_keeps_the_input_header_and_records(tmp_path, sphere):
    laspy = pytest.importorskip("laspy")
    las = laspy.create(point_format=3, file_version="1.2")
    las.header.offsets, las.header.scales = np.array([5.0, -2.0, 1.0]), np.array([0.001, 0.001, 0.001])
    las.x, las.y, las.z = sphere.xyz.T
    las.classification = np.arange(600) % 7
    las.red = sphere.attributes["red"].astype(np.uint16) * 257
    src = tmp_path / "survey.las"
    las.write(str(src))
    denoise_file(src, tmp_path / "out.las", "pca", use_frozen=False)
    out = laspy.read(str(tmp_path / "out.las"))
    assert out.header.point_format.id == 3 and np.allclose(out.header.scales, 0.001)
    assert np.allclose(out.header.offsets, [5.0, -2.0, 1.0])
    assert np.array_equal(out.classification, las.classification) and np.array_equal(out.red, las.red)
    assert not np.array_equal(out.X, las.X)


def test_attributes_las_cannot_hold_are_refused_before_the_work(tmp_path):
    src = tmp_path / "in.xyz"
    src.write_text("".join(f"{x} {x * 2} {x * 3} {x / 7}\n" for x in range(1, 30)))  # fractional intensity
    with pytest.raises(InputError, match="does not fit LAS's uint16 intensity"):
        denoise_file(src, tmp_path / "out.las", "pca", use_frozen=False)
    assert not (tmp_path / "out.las").exists()


def _pcd_header(points: int, width: int, data: str) -> bytes:
    return (f"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH {width}\nHEIGHT 1\n"
            f"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {points}\nDATA {data}\n").encode()


@pytest.mark.parametrize("content, fragment", [
    (_pcd_header(10, 10, "binary") + np.zeros(27, np.float32).tobytes(), "announces 10 points"),
    (_pcd_header(10, 5, "binary") + np.zeros(30, np.float32).tobytes(), "WIDTH × HEIGHT"),
    (_pcd_header(10 ** 9, 10 ** 9, "binary_compressed") + struct.pack("<II", 40, 12 * 10 ** 9 % 2 ** 32) + bytes(40), "forged"),
    (_pcd_header(2, 2, "ascii") + b"0 0 0\n", "announces 2 points"),
    (b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 1\nHEIGHT 1\nPOINTS 1\nDATA ascii\n0 0 0\n", "malformed PCD header"),
    (b"hello\n", "no header ending with a DATA line"),
])
def test_pcd_header_counts_are_checked(tmp_path, content, fragment):
    path = tmp_path / "bad.pcd"
    path.write_bytes(content)
    with pytest.raises(InputError, match=fragment) as err:
        read_points(path)
    assert "\n" not in str(err.value)


def test_las_point_count_is_checked_before_reading(tmp_path, sphere):
    good = write_cloud(tmp_path / "g.las", PointCloudData(sphere.xyz)).read_bytes()
    forged = bytearray(good)
    forged[247:255] = struct.pack("<Q", 10 ** 9)  # LAS 1.4: 64-bit number of point records
    (tmp_path / "forged.las").write_bytes(bytes(forged))
    with pytest.raises(InputError, match="announces 1000000000 points"):
        read_points(tmp_path / "forged.las")
    (tmp_path / "cut.las").write_bytes(good[: len(good) - 100])
    with pytest.raises(InputError, match="truncated"):
        read_points(tmp_path / "cut.las")


def test_binary_ply_with_a_forged_vertex_count_is_refused(tmp_path, sphere):
    data = write_cloud(tmp_path / "g.ply", PointCloudData(sphere.xyz)).read_bytes()
    forged = data.replace(b"element vertex 600", b"element vertex 900000000", 1)
    (tmp_path / "forged.ply").write_bytes(forged)
    with pytest.raises(InputError, match="at least 21600000000 bytes"):
        read_points(tmp_path / "forged.ply")


def test_a_missing_library_is_named_with_its_pip_install(tmp_path, sphere, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pypcd4", None)
    with pytest.raises(InputError, match=r"pip install 'pypcd4"):
        write_cloud(tmp_path / "x.pcd", sphere)
    monkeypatch.setitem(sys.modules, "plyfile", None)
    with pytest.raises(InputError, match=r"pip install 'plyfile"):
        write_cloud(tmp_path / "x.ply", sphere)
    monkeypatch.setitem(sys.modules, "laspy", None)
    with pytest.raises(InputError, match=r"pip install 'laspy\[lazrs\]"):
        write_cloud(tmp_path / "x.laz", sphere)
