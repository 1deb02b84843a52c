"""Metrics: golden PyTorch3D values, hand-computed cases, properties, CPU ↔ torch agreement, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh

from sbdbench.errors import InputError
from sbdbench.metrics import chamfer, evaluate_shape, hausdorff, nearest_sqdists, p2m, point_mesh_terms, point_to_mesh_distances
from sbdbench.metrics.p2m_torch import point_mesh_terms_torch

F64 = torch.float64


def _deformed_sphere(subdiv=2, seed=0):
    """A closed mesh with uneven face sizes in a frame far from the unit sphere."""
    m = trimesh.creation.icosphere(subdiv)
    v = m.vertices * np.array([1.6, 1.0, 0.7])
    v = v * (1 + 0.15 * np.sin(3 * v[:, :1]))
    return v * 3.0 + np.array([5.0, -2.0, 1.0]), np.asarray(m.faces)


def _surface_points(verts, faces, n, seed=0):
    """Exact convex combinations of triangle corners (points on the mesh, up to rounding)."""
    rng = np.random.default_rng(seed)
    f = faces[rng.integers(0, len(faces), n)]
    w = rng.dirichlet([1, 1, 1], n)
    return (w[:, :, None] * verts[f]).sum(1)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The torch brute force is the oracle here; one thread avoids spin contention on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def case():
    """1,280 faces whose unit-sphere areas straddle PyTorch3D's 5e-3 threshold (57 % below it)."""
    verts, faces = _deformed_sphere(3)
    clean = _surface_points(verts, faces, 400, seed=1)
    noisy = clean + np.random.default_rng(2).normal(0, 0.05, clean.shape)
    return verts, faces, clean, noisy


# --- golden values from PyTorch3D 0.7.9 ------------------------------------------------------------
def _golden(reference_dir):
    spec = json.loads((reference_dir / "golden" / "metrics.json").read_text())
    for item in spec["cases"]:
        yield item, np.load(reference_dir / "golden" / item["file"])


def test_golden_pytorch3d_values(reference_dir):
    n = 0
    for item, d in _golden(reference_dir):
        assert chamfer(d["pred"], d["gt"]) == pytest.approx(item["cd"], rel=1e-5), item["file"]
        assert p2m(d["pred"], d["verts"], d["faces"]) == pytest.approx(item["p2m"], rel=1e-5), item["file"]
        got = p2m(d["pred"], d["verts"], d["faces"], mode="pytorch3d")
        assert got == pytest.approx(item["p2m_pt3d_default"], rel=1e-5), item["file"]
        # the port with threshold 0 is PyTorch3D's call behind "p2m" itself, epsilons included: tighter
        got0 = p2m(d["pred"], d["verts"], d["faces"], mode="pytorch3d", min_triangle_area=0.0)
        assert got0 == pytest.approx(item["p2m"], rel=1e-6), item["file"]
        n += 1
    assert n == 6


def test_golden_torch_backend(reference_dir):
    item, d = [(i, d) for i, d in _golden(reference_dir) if i["file"] == "metric_icosphere_2000_0.01.npz"][0]
    for dtype in (torch.float32,):  # what a GPU runs; fp64 agreement with the CPU backend is tested below
        assert chamfer(d["pred"], d["gt"], backend="torch", dtype=dtype) == pytest.approx(item["cd"], rel=1e-5)
        assert p2m(d["pred"], d["verts"], d["faces"], backend="torch", dtype=dtype) == pytest.approx(item["p2m"], rel=1e-5)
        got = p2m(d["pred"], d["verts"], d["faces"], mode="pytorch3d", backend="torch", dtype=dtype)
        assert got == pytest.approx(item["p2m_pt3d_default"], rel=1e-5)


# --- hand-computed values --------------------------------------------------------------------------
def test_chamfer_and_hausdorff_by_hand():
    gt = np.array([[0.0, 0, 0], [1.0, 0, 0]])  # frame: centre (0.5, 0, 0), radius 0.5 → gt at x = ±1
    pred = np.array([[0.0, 0, 0]])  # → x = -1
    assert chamfer(pred, gt) == pytest.approx(0.0 + (0.0 + 4.0) / 2)
    assert hausdorff(pred, gt) == pytest.approx(4.0)


def test_p2m_single_triangle_by_hand():
    verts = np.array([[0.0, 0, 0], [2.0, 0, 0], [0.0, 2, 0]])  # frame: centre (1, 1, 0), radius √2; area 1 there
    faces = np.array([[0, 1, 2]])
    pred = np.array([[0.5, 0.5, 0.3]])
    # inside: squared height 0.09/2 per direction, two directions
    assert p2m(pred, verts, faces) == pytest.approx(0.09)
    assert p2m(pred, verts, faces, mode="pytorch3d") == pytest.approx(0.09, rel=1e-7)
    # threshold above the face's area: PyTorch3D uses the edges; the nearest legs are at 0.5² + 0.3²
    assert p2m(pred, verts, faces, mode="pytorch3d", min_triangle_area=2.0) == pytest.approx(0.34)
    assert p2m(pred, verts, faces, mode="pytorch3d", min_triangle_area=2.0, backend="torch", dtype=F64) == pytest.approx(0.34)
    # outside the triangle, beyond the hypotenuse: the exact distance is to that edge
    far = np.array([[1.5, 1.5, 0.0]])  # distance to x + y = 2 is 1/√2 → ½, normalised ¼, two directions
    assert p2m(far, verts, faces) == pytest.approx(0.5)


# --- properties -------------------------------------------------------------------------------------
def test_identical_clouds_score_zero(case):
    _, _, clean, _ = case
    assert chamfer(clean, clean) == 0.0
    assert hausdorff(clean, clean) == 0.0


def test_chamfer_symmetric_when_frames_agree(case):
    _, _, clean, noisy = case
    corners = np.array([[x, y, z] for x in (-50, 50) for y in (-50, 50) for z in (-50, 50)], dtype=float)
    a, b = np.vstack([clean, corners]), np.vstack([noisy, corners])  # same bbox frame for both
    assert chamfer(a, b) == pytest.approx(chamfer(b, a), rel=1e-12)
    assert hausdorff(a, b) == pytest.approx(hausdorff(b, a), rel=1e-12)


def test_invariant_to_common_frame(case):
    """Scaling and shifting prediction and GT together leaves every metric unchanged."""
    verts, faces, clean, noisy = case

    def move(x):
        return x * 37.5 + np.array([100.0, -3.0, 8.0])

    assert chamfer(move(noisy), move(clean)) == pytest.approx(chamfer(noisy, clean), rel=1e-9)
    assert hausdorff(move(noisy), move(clean)) == pytest.approx(hausdorff(noisy, clean), rel=1e-9)
    for mode in ("exact", "pytorch3d"):
        ref = p2m(noisy, verts, faces, mode=mode, min_triangle_area=1e-3)
        assert p2m(move(noisy), move(verts), faces, mode=mode, min_triangle_area=1e-3) == pytest.approx(ref, rel=1e-9)
    # the frame is the GT's: moving only the prediction changes the score
    assert chamfer(noisy + 0.5, clean) > 10 * chamfer(noisy, clean)


def test_points_on_mesh_have_zero_point_to_face(case):
    verts, faces, clean, _ = case
    assert point_to_mesh_distances(clean, verts, faces).max() < 1e-24
    # the vertices themselves: both directions vanish, so P2M is 0
    assert p2m(verts, verts, faces) < 1e-24
    assert p2m(verts, verts, faces, backend="torch", dtype=F64) < 1e-24


# --- CPU backend ↔ torch brute force (the fp64 oracle) ------------------------------------------------
@pytest.mark.parametrize("mode,area", [("exact", 0.0), ("pytorch3d", 5e-3), ("pytorch3d", 1e-5), ("pytorch3d", 0.0), ("pytorch3d", 10.0)])
def test_cpu_backend_matches_torch_brute_force(case, mode, area):
    verts, faces, _, noisy = case
    p2f, f2p = point_mesh_terms(noisy, verts, faces, mode=mode, min_triangle_area=area)
    q2f, f2q = point_mesh_terms(noisy, verts, faces, mode=mode, min_triangle_area=area, backend="torch", dtype=F64)
    np.testing.assert_allclose(p2f, q2f, rtol=0, atol=1e-14)
    np.testing.assert_allclose(f2p, f2q, rtol=0, atol=1e-14)


def test_torch_chunking_does_not_change_results(case):
    verts, faces, _, noisy = case
    args = [torch.as_tensor(noisy[:100], dtype=F64), torch.as_tensor(verts, dtype=F64), torch.as_tensor(faces)]
    for mode in ("exact", "pytorch3d"):
        a = point_mesh_terms_torch(*args, mode=mode, max_chunk_elems=40000)
        b = point_mesh_terms_torch(*args, mode=mode, max_chunk_elems=1 << 22)
        torch.testing.assert_close(a[0], b[0], rtol=0, atol=1e-15)
        torch.testing.assert_close(a[1], b[1], rtol=0, atol=1e-15)


def test_chamfer_cpu_matches_torch(case):
    _, _, clean, noisy = case
    a = nearest_sqdists(noisy, clean)
    b = nearest_sqdists(noisy, clean, backend="torch", dtype=F64)
    np.testing.assert_allclose(a[0], b[0], atol=1e-14)
    np.testing.assert_allclose(a[1], b[1], atol=1e-14)


def test_evaluate_shape_backends_agree(case):
    verts, faces, clean, noisy = case
    cpu = evaluate_shape(noisy, clean, verts, faces)
    tch = evaluate_shape(noisy, clean, verts, faces, backend="torch")  # float32, like PyTorch3D
    assert set(cpu) == {"cd", "p2m", "p2m_pt3d", "hd"}
    for key in cpu:
        assert tch[key] == pytest.approx(cpu[key], rel=1e-5), key
    assert cpu["p2m_pt3d"] != pytest.approx(cpu["p2m"], rel=1e-3)  # small faces → the modes differ


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(case):  # pragma: no cover - only where CUDA exists
    verts, faces, clean, noisy = case
    cpu = evaluate_shape(noisy, clean, verts, faces)
    gpu = evaluate_shape(noisy, clean, verts, faces, device="cuda")
    for key in cpu:
        assert gpu[key] == pytest.approx(cpu[key], rel=1e-5), key


def test_matches_pytorch3d_when_installed(case):
    pytorch3d = pytest.importorskip("pytorch3d")  # never required; compared when present
    from pytorch3d.loss import chamfer_distance, point_mesh_face_distance
    from pytorch3d.structures import Meshes, Pointclouds

    from sbdbench.geometry import normalize_unit_sphere

    verts, faces, clean, noisy = case
    y, c, s = normalize_unit_sphere(clean)
    x, _, _ = normalize_unit_sphere(noisy, c, s)
    cd = chamfer_distance(torch.tensor(x[None], dtype=torch.float32), torch.tensor(y[None], dtype=torch.float32))[0]
    assert chamfer(noisy, clean) == pytest.approx(float(cd), rel=1e-5)
    v, c, s = normalize_unit_sphere(verts)
    p, _, _ = normalize_unit_sphere(noisy, c, s)
    mesh = Meshes([torch.tensor(v, dtype=torch.float32)], [torch.tensor(faces)])
    pcl = Pointclouds([torch.tensor(p, dtype=torch.float32)])
    import inspect

    if "min_triangle_area" not in inspect.signature(point_mesh_face_distance).parameters:
        pytest.skip(f"PyTorch3D {pytorch3d.__version__} predates min_triangle_area (0.6.2)")
    for area in (5e-3, 1e-5):
        ref = float(point_mesh_face_distance(mesh, pcl, min_triangle_area=area))
        assert p2m(noisy, verts, faces, mode="pytorch3d", min_triangle_area=area) == pytest.approx(ref, rel=1e-5), area
    ref = float(point_mesh_face_distance(mesh, pcl, min_triangle_area=0.0))
    assert p2m(noisy, verts, faces) == pytest.approx(ref, rel=1e-5)


# --- bad input ----------------------------------------------------------------------------------------
def test_zero_area_faces_are_finite_and_consistent(case):
    verts, faces, _, noisy = case
    mid = (verts[0] + verts[1]) / 2
    # a tiny well-shaped triangle (area ~2e-8 in unit-sphere units): PyTorch3D's +1e-8 in the barycentric
    # denominator enlarges its "inside" region ~10⁶-fold, so with threshold 0 it captures far points
    tiny = verts[5] + 1e-3 * np.array([[0.0, 0, 0], [1, 0, 0], [0.5, 0.8, 0.3]])
    v = np.vstack([verts, verts[:1], mid, tiny])
    n = len(verts)
    bad = np.array([[0, 0, 1], [0, 1, n + 1], [2, n, 2], [3, 3, 3], [n + 2, n + 3, n + 4]])  # repeated, collinear, coincident, point, tiny
    f = np.vstack([faces, bad])
    settings = [("exact", 0.0), ("pytorch3d", 5e-3), ("pytorch3d", 0.0)]
    with np.errstate(all="raise"):  # no division by zero or invalid operation on the CPU path
        for mode, area in settings:
            a = point_mesh_terms(noisy, v, f, mode=mode, min_triangle_area=area)
            assert np.isfinite(a[0]).all() and np.isfinite(a[1]).all()
    for mode, area in settings:
        a = point_mesh_terms(noisy, v, f, mode=mode, min_triangle_area=area)
        b = point_mesh_terms(noisy, v, f, mode=mode, min_triangle_area=area, backend="torch", dtype=F64)
        np.testing.assert_allclose(a[0], b[0], atol=1e-14)
        np.testing.assert_allclose(a[1], b[1], atol=1e-14)
    # zero-area faces are measured as their edges (Ericson's regions alone would snap to a vertex)
    from sbdbench.geometry import normalize_unit_sphere
    from sbdbench.metrics.triangle import edges_sqdist

    vn, c, s = normalize_unit_sphere(v)
    pn = (noisy - c) / s
    f2p = point_mesh_terms(noisy, v, f)[1]
    for row, face in enumerate(bad[:4]):
        assert f2p[len(faces) + row] == pytest.approx(edges_sqdist(pn, *vn[face]).min(), rel=1e-9)
    # with threshold 0 the tiny face's enlarged "inside" region pulls points onto its plane (PyTorch3D's behaviour)
    exact = point_mesh_terms(noisy, v, f)[0]
    port0 = point_mesh_terms(noisy, v, f, mode="pytorch3d", min_triangle_area=0.0)[0]
    assert (port0 < 0.5 * exact).any() and (port0 <= exact * (1 + 1e-6)).all()


@pytest.mark.parametrize(
    "pred,verts,faces,msg",
    [
        (np.zeros((0, 3)), None, None, "empty"),
        (np.array([[0.0, np.nan, 0]]), None, None, "NaN"),
        (np.array([[0.0, np.inf, 0]]), None, None, "NaN/Inf"),
        (np.zeros((5, 2)), None, None, "shape"),
        (None, None, np.array([[0, 1, 10**6]]), "out of range"),
        (None, None, np.array([[0, 1]]), "faces must have shape"),
        (None, np.array([[0.0, 0, np.nan]]), None, "NaN"),
    ],
)
def test_bad_input_is_a_clear_error(case, pred, verts, faces, msg):
    v0, f0, clean, noisy = case
    pred = noisy if pred is None else pred
    verts = v0 if verts is None else np.vstack([v0, verts])
    faces = f0 if faces is None else faces
    with pytest.raises(InputError, match=msg):
        evaluate_shape(pred, clean, verts, faces)


def test_bad_options(case):
    verts, faces, clean, noisy = case
    with pytest.raises(InputError, match="mode"):
        p2m(noisy, verts, faces, mode="approx")
    with pytest.raises(InputError, match="min_triangle_area"):
        p2m(noisy, verts, faces, mode="pytorch3d", min_triangle_area=-1)
    with pytest.raises(InputError, match="backend"):
        chamfer(noisy, clean, backend="faiss")
    with pytest.raises(InputError, match="empty"):
        chamfer(noisy, np.zeros((0, 3)))


def test_accepts_tensors(case):
    verts, faces, clean, noisy = case
    t = lambda x: torch.as_tensor(x)  # noqa: E731
    assert p2m(t(noisy), t(verts), t(faces)) == p2m(noisy, verts, faces)
    assert chamfer(t(noisy), t(clean)) == chamfer(noisy, clean)


@pytest.mark.parametrize("mode,area", [("exact", 0.0), ("pytorch3d", 5e-3), ("pytorch3d", 10.0)])
def test_coarse_meshes_cut_into_pieces_stay_exact(mode, area):
    """Faces much larger than the point spacing are cut before KD pruning; the result must not change."""
    rng = np.random.default_rng(5)
    for mesh in (trimesh.creation.cylinder(0.5, 2.0, sections=16), trimesh.creation.box((1.0, 2.0, 0.3))):
        pts = mesh.sample(2000, seed=3) + rng.normal(0, 0.03, (2000, 3))
        a = point_mesh_terms(pts, mesh.vertices, mesh.faces, mode=mode, min_triangle_area=area)
        b = point_mesh_terms(pts, mesh.vertices, mesh.faces, mode=mode, min_triangle_area=area, backend="torch", dtype=F64)
        np.testing.assert_allclose(a[0], b[0], rtol=0, atol=1e-14)
        np.testing.assert_allclose(a[1], b[1], rtol=0, atol=1e-14)


@pytest.mark.parametrize("mode,area", [("exact", 0.0), ("pytorch3d", 5e-3)])
def test_face_to_point_exact_when_the_nearest_neighbours_do_not_settle_it(mode, area, monkeypatch):
    """F2P first tries each face's nearest points, then ball queries for faces that bound leaves open.

    A cloud clustered on one side of the mesh leaves most faces unsettled after the first pass, and
    ``KNN_FIRST`` = 1 or 2 forces the second pass everywhere; both must give the brute-force answer."""
    from sbdbench.metrics import p2m_cpu

    verts, faces = _deformed_sphere(3)
    rng = np.random.default_rng(9)
    pts = verts[faces[:40]].mean(1).repeat(10, axis=0) + rng.normal(0, 0.3, (400, 3))  # one side only, off the surface
    oracle = point_mesh_terms(pts, verts, faces, mode=mode, min_triangle_area=area, backend="torch", dtype=F64)[1]
    for k in (1, 2, 8):
        monkeypatch.setattr(p2m_cpu, "KNN_FIRST", k)
        got = point_mesh_terms(pts, verts, faces, mode=mode, min_triangle_area=area)[1]
        np.testing.assert_allclose(got, oracle, rtol=0, atol=1e-14)
