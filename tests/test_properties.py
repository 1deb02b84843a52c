"""Property-based suites (Hypothesis) for issue #22.

(a) The readers on random bytes, truncations of valid files and header/data count mismatches: a parsed
    value or an InputError/DataError, nothing else.
(b) The metrics on random finite clouds and meshes, degenerate faces and extreme scales included: a
    finite value or an InputError, within a time budget and a memory cap (a child process runs the
    examples under RLIMIT_AS).
Example counts stay small so each suite runs in a few seconds.
"""

from __future__ import annotations

import io as _io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import trimesh

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sbdbench.errors import DataError, InputError  # noqa: E402
from sbdbench.io import read_mesh, read_points  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _valid_files() -> dict:
    mesh = trimesh.creation.icosphere(1)
    pts = mesh.vertices
    off = "OFF\n%d %d 0\n" % (len(pts), len(mesh.faces)) + "".join("%.6f %.6f %.6f\n" % tuple(v) for v in pts)
    off += "".join("3 %d %d %d\n" % tuple(f) for f in mesh.faces)
    npy = _io.BytesIO()
    np.save(npy, pts)
    return {**_attribute_files(pts),
        ".off": off.encode(),
        ".xyz": "".join("%.6f %.6f %.6f\n" % tuple(v) for v in pts).encode(),
        ".ply": mesh.export(file_type="ply", encoding="ascii"),
        ".stl": mesh.export(file_type="stl"),
        ".obj": mesh.export(file_type="obj").encode(),
        ".npy": npy.getvalue(),
    }


def _attribute_files(pts: np.ndarray) -> dict:
    """.csv, .pcd, .las and .laz files of ``pts`` with normals and an intensity, as sbdbench writes them."""
    import tempfile

    from sbdbench.io import write_cloud
    from sbdbench.io_cloud import PointCloudData

    normals = pts / np.linalg.norm(pts, axis=1, keepdims=True)
    attrs = {"nx": normals[:, 0], "ny": normals[:, 1], "nz": normals[:, 2], "intensity": np.arange(len(pts), dtype=np.uint16)}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".csv", ".pcd", ".las", ".laz"):
            out[suffix] = write_cloud(Path(tmp) / f"v{suffix}", PointCloudData(pts, attrs)).read_bytes()
    return out


VALID = _valid_files()
POINT_SUFFIXES = (".xyz", ".ply", ".npy", ".csv", ".pcd", ".las", ".laz")
MESH_SUFFIXES = (".off", ".ply", ".stl", ".obj")


def _read(path: Path, kind: str):
    """Read, accepting only a well-formed result or our one-line errors."""
    try:
        out = read_points(path) if kind == "points" else read_mesh(path)
    except (InputError, DataError) as exc:
        assert "\n" not in str(exc)
        return None
    if kind == "points":
        assert out.ndim == 2 and out.shape[1] == 3 and np.isfinite(out).all()
    else:
        v, f = out
        assert f.min() >= 0 and f.max() < len(v) and np.isfinite(v).all()
    return out


def _write(tmp_path: Path, suffix: str, data: bytes) -> Path:
    path = tmp_path / f"f{suffix}"
    path.write_bytes(data)
    return path


@FAST
@given(data=st.binary(max_size=600), suffix=st.sampled_from(sorted(set(POINT_SUFFIXES + MESH_SUFFIXES))))
def test_readers_on_random_bytes(tmp_path, data, suffix):
    path = _write(tmp_path, suffix, data)
    if suffix in POINT_SUFFIXES:
        _read(path, "points")
    if suffix in MESH_SUFFIXES:
        _read(path, "mesh")


@FAST
@given(suffix=st.sampled_from(sorted(VALID)), frac=st.floats(0.0, 1.0))
def test_readers_on_truncations(tmp_path, suffix, frac):
    data = VALID[suffix]
    cut = data[: int(len(data) * frac)]
    path = _write(tmp_path, suffix, cut)
    kind = "mesh" if suffix in (".off", ".stl", ".obj") else "points"
    out = _read(path, kind)
    if suffix in (".off", ".stl", ".npy", ".pcd", ".las", ".laz") and len(cut) < len(data.rstrip()):
        assert out is None, "a truncated file with counts in its header must be refused"


@FAST
@given(dv=st.integers(-3, 3), df=st.integers(-3, 3), junk=st.sampled_from(["", "1 2 3\n", "3 0 1 2\n", "x\n"]))
def test_off_count_mismatches(tmp_path, dv, df, junk):
    mesh = trimesh.creation.icosphere(0)
    nv, nf = len(mesh.vertices), len(mesh.faces)
    body = "".join("%.6f %.6f %.6f\n" % tuple(v) for v in mesh.vertices) + "".join("3 %d %d %d\n" % tuple(f) for f in mesh.faces)
    path = _write(tmp_path, ".off", f"OFF\n{max(0, nv + dv)} {max(0, nf + df)} 0\n{body}{junk}".encode())
    out = _read(path, "mesh")
    if (dv, df, junk) == (0, 0, ""):
        assert out is not None and out[0].shape == (nv, 3) and out[1].shape == (nf, 3)
    elif (dv, df, junk) == (0, 1, "3 0 1 2\n"):  # the junk line is the one more face the header announces: a valid file
        assert out is not None and out[1].shape == (nf + 1, 3) and out[1][-1].tolist() == [0, 1, 2]
    else:
        assert out is None


@FAST
@given(extra=st.integers(-50, 50))
def test_npy_header_count_mismatches(tmp_path, extra):
    data = VALID[".npy"]
    cut = data[: len(data) + extra] if extra < 0 else data + b"\0" * extra
    out = _read(_write(tmp_path, ".npy", cut), "points")
    assert (out is not None) == (extra == 0)


# --- (b) metrics ------------------------------------------------------------------------------------
METRIC_CHILD = textwrap.dedent("""
    import resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    import numpy as np
    from hypothesis import given, settings, HealthCheck, strategies as st
    from sbdbench.errors import InputError
    from sbdbench.metrics import evaluate_shape

    finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
    scales = st.sampled_from([1e-90, 1e-30, 1e-6, 1.0, 1e6, 1e30, 1e90])

    @st.composite
    def cases(draw):
        nv = draw(st.integers(1, 8))
        verts = np.array(draw(st.lists(st.tuples(finite, finite, finite), min_size=nv, max_size=nv)))
        faces = np.array(draw(st.lists(st.tuples(*[st.integers(0, nv - 1)] * 3), min_size=1, max_size=10)))
        n = draw(st.integers(1, 60))
        pts = np.array(draw(st.lists(st.tuples(finite, finite, finite), min_size=n, max_size=n)))
        gt = np.array(draw(st.lists(st.tuples(finite, finite, finite), min_size=1, max_size=60)))
        s = draw(scales)
        return pts * s, gt * s, verts * s, faces

    @settings(max_examples=int(sys.argv[1]), deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(cases())
    def check(case):
        pts, gt, verts, faces = case
        t0 = time.perf_counter()
        try:
            out = evaluate_shape(pts, gt, verts, faces)
        except InputError as exc:
            assert "\\n" not in str(exc)
            return
        assert all(np.isfinite(v) for v in out.values()), out
        assert time.perf_counter() - t0 < 20, "one small case took over 20 s"

    check()
    print("ok", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def test_metrics_finite_or_input_error_under_a_memory_cap():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", METRIC_CHILD, "25"], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0 and res.stdout.startswith("ok"), (res.stdout[-1000:], res.stderr[-3000:])


@FAST
@given(scale=st.sampled_from([1e-60, 1e-9, 1.0, 1e9, 1e60]), sliver=st.sampled_from([0.0, 1e-300, 1e-12, 1e-6]))
def test_degenerate_faces_at_extreme_scales(scale, sliver):
    """Slivers and zero-area faces at any scale: finite, and the same in every frame scale."""
    from sbdbench.metrics import p2m

    v = np.array([[0, 0, 0], [1, 0, 0], [0.5, sliver, 0], [0, 1, 0]], dtype=float)
    f = np.array([[0, 1, 2], [0, 1, 3], [2, 2, 2]])
    pts = np.random.default_rng(0).random((200, 3))
    base = p2m(pts, v, f)
    for mode in ("exact", "pytorch3d"):
        value = p2m(pts * scale, v * scale, f, mode=mode)
        assert np.isfinite(value)
    assert p2m(pts * scale, v * scale, f) == pytest.approx(base, rel=1e-6)
