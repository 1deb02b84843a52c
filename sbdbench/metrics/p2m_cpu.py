"""Exact point↔mesh distances on the CPU, in float64, with spatial indexes instead of brute force.

* point → face (P2F), exact mode: libigl's AABB tree (``igl.point_mesh_squared_distance``).
* face → point (F2P): no library answers "nearest point of a cloud to each triangle", so we use a
  KD-tree on the points with exact candidate pruning. For a triangle with bounding ball (c, r),
  every point p satisfies ``dist(p, T) ≥ |p − c| − r``. The distance U of the point nearest to c
  is an upper bound, so only points within ``√U + r`` of c can do better; those candidates are
  evaluated exactly and the minimum is the exact answer.
* PyTorch3D mode: its "distance" equals ``min(t² if the projection is inside a big face, the
  face's edge distances)``, and ``t²`` never exceeds an edge distance. So P2F is the exact distance
  to the union of all edges (libigl, with edges given as degenerate triangles ``[i, j, j]``),
  lowered where a big face's inside test applies (KD candidates on the big faces only). F2P uses
  the same KD pruning with PyTorch3D's formula, bounding balls taken around the triangle enlarged
  the way PyTorch3D's ``+1e-8`` enlarges its inside test.

Memory stays bounded for every mesh, degenerate ones included: candidates are evaluated in blocks of at
most ``PAIR_BLOCK`` pairs, ball queries fetch at most ``CANDIDATE_BLOCK`` candidate indices at once (their
sizes are counted first), and cutting faces into pieces stops at a budget of ``4 (F + P) + 4096`` pieces
(zero-area faces and slivers would otherwise be bisected without end; an uncut piece is still exact, only
slower to search).
Inputs are assumed validated and already in the metric's frame (see :mod:`sbdbench.metrics.p2m`).
"""

from __future__ import annotations

import itertools
from typing import Callable, Tuple

import numpy as np
from scipy.spatial import cKDTree

from sbdbench.metrics.triangle import (
    PT3D_EPS,
    ericson_sqdist,
    pytorch3d_edges_sqdist,
    pytorch3d_inside_scale,
    pytorch3d_plane_term,
    segment_sqdist,
)

PAIR_BLOCK = 1 << 18  # (point, triangle) pairs evaluated at once: ~90 MB of float64 temporaries at most
KNN_FIRST = 8  # neighbours of each ball centre tried before any ball query
QUERY_BLOCK = 1 << 13  # balls queried at once (bounds the candidate lists held in memory)
CANDIDATE_BLOCK = 1 << 21  # candidate indices fetched by ball queries at once (~80 MB as Python lists)
HUGE_BALL = 0.25  # unit-sphere radius above which a ball would catch most of the cloud: brute force instead


def _igl_sqdist(points: np.ndarray, verts: np.ndarray, elements: np.ndarray) -> np.ndarray:
    import igl

    sq, _, _ = igl.point_mesh_squared_distance(
        np.ascontiguousarray(points, dtype=np.float64),
        np.ascontiguousarray(verts, dtype=np.float64),
        np.ascontiguousarray(elements, dtype=np.int64),
    )
    return np.maximum(np.asarray(sq, dtype=np.float64), 0.0)


def _bounding_balls(tris: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Centroid (F, 3) and radius (F,) of a ball holding each triangle of ``tris`` (F, 3, 3)."""
    cen = tris.mean(axis=1)
    rad = np.sqrt(((tris - cen[:, None, :]) ** 2).sum(-1).max(axis=1))
    return cen, rad


def _min_over_candidates(lists, first: int, out: np.ndarray, pair_fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
    """For query ``i = first + j`` and its candidate list ``lists[j]``, lower ``out[i]`` to the smallest
    ``pair_fn(query_indices, candidate_indices)``, evaluating at most PAIR_BLOCK pairs at once."""
    lens = np.fromiter(map(len, lists), np.int64, len(lists))
    if lens.sum() == 0:
        return
    flat = np.fromiter(itertools.chain.from_iterable(lists), np.int64, int(lens.sum()))
    owner = np.repeat(np.arange(first, first + len(lists)), lens)
    for s in range(0, len(flat), PAIR_BLOCK):
        q, o = owner[s : s + PAIR_BLOCK], flat[s : s + PAIR_BLOCK]
        d = pair_fn(q, o)
        np.minimum.at(out, q, d)


def _runs(counts: np.ndarray, budget: int):
    """Consecutive ``(start, stop)`` runs of ``counts`` whose sums stay ≤ ``budget`` (a single larger item is its own run)."""
    cum = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
    start = 0
    while start < len(counts):
        stop = max(start + 1, int(np.searchsorted(cum, cum[start] + budget, side="right")) - 1)
        yield start, stop
        start = stop


def _ball_query_min(tree: cKDTree, centres: np.ndarray, radii: np.ndarray, first: int, out: np.ndarray, pair_fn) -> None:
    """``_min_over_candidates`` for the balls (centres, radii) queried in ``tree``; query ``first + j`` is ball j.

    The candidate lists are counted before they are fetched, so at most ``CANDIDATE_BLOCK`` indices (or one
    ball's worth) are held at a time, however many points the balls catch."""
    for s in range(0, len(centres), QUERY_BLOCK):
        c, r = centres[s : s + QUERY_BLOCK], radii[s : s + QUERY_BLOCK]
        counts = np.asarray(tree.query_ball_point(c, r, workers=-1, return_length=True), dtype=np.int64)
        for a, b in _runs(counts, CANDIDATE_BLOCK):
            lists = tree.query_ball_point(c[a:b], r[a:b], workers=-1, return_sorted=False)
            _min_over_candidates(lists, first + s + a, out, pair_fn)


def _brute_min(n_rows: int, n_cols: int, pair_fn, reduce_rows: bool) -> np.ndarray:
    """min of ``pair_fn(rows, cols)`` over all (row, col) pairs, blockwise (≤ PAIR_BLOCK pairs alive).

    Returns the per-row minimum (``reduce_rows=False`` → (n_rows,)) or per-column (→ (n_cols,))."""
    out = np.full(n_cols if reduce_rows else n_rows, np.inf)
    rows_per_block = max(1, PAIR_BLOCK // max(1, n_cols))
    for s in range(0, n_rows, rows_per_block):
        r = np.arange(s, min(n_rows, s + rows_per_block))
        d = pair_fn(np.repeat(r, n_cols), np.tile(np.arange(n_cols), len(r))).reshape(len(r), n_cols)
        if reduce_rows:
            np.minimum(out, d.min(axis=0), out=out)
        else:
            out[r] = d.min(axis=1)
    return out


def _face_to_point(points: np.ndarray, tris: np.ndarray, ball_c: np.ndarray, ball_r: np.ndarray, tri_fn, shrink=1.0) -> np.ndarray:
    """Exact min over points of ``tri_fn(p, a, b, c)`` for every triangle, by KD pruning.

    ``tri_fn(p, v0, v1, v2) ≥ shrink² · (|p − ball_c| − ball_r)²`` must hold for the pruning to be exact
    (``shrink`` (F,) or a scalar in (0, 1]).

    Two passes. (1) The ``KNN_FIRST`` points nearest to each ball centre come from one array-valued
    k-NN query; only those whose lower bound beats the current best are evaluated. A triangle is
    settled when the bound of the k-th neighbour (hence of every point further out) cannot beat its
    best. (2) The few unsettled triangles get a ball query of the exact pruning radius.
    """
    tree = cKDTree(points)
    n_tri = len(tris)
    k = min(KNN_FIRST, len(points))
    shrink = np.broadcast_to(np.asarray(shrink, dtype=np.float64), (n_tri,))
    a, b, c = tris[:, 0], tris[:, 1], tris[:, 2]

    def pair(t, i):
        return tri_fn(points[i], a[t], b[t], c[t])

    out = np.full(n_tri, np.inf)
    settled = np.zeros(n_tri, dtype=bool)
    rows_per_block = max(1, PAIR_BLOCK // k)
    for s in range(0, n_tri, rows_per_block):
        rows = np.arange(s, min(n_tri, s + rows_per_block))
        dist, idx = tree.query(ball_c[rows], k=k, workers=-1)
        dist, idx = dist.reshape(len(rows), k), idx.reshape(len(rows), k)
        best = pair(rows, idx[:, 0])
        lower = (shrink[rows, None] * np.maximum(dist - ball_r[rows, None], 0.0)) ** 2
        r_, c_ = np.nonzero(lower[:, 1:] < best[:, None])  # candidates that might beat the nearest one
        if len(r_):
            cand = np.full((len(rows), k - 1), np.inf)
            cand[r_, c_] = pair(rows[r_], idx[r_, c_ + 1])
            np.minimum(best, cand.min(axis=1), out=best)
        out[rows] = best
        settled[rows] = lower[:, -1] * (1 - 1e-12) >= best  # nothing beyond the k-th neighbour can do better
    rest = np.flatnonzero(~settled)
    if not len(rest):
        return out
    radius = np.sqrt(out) / shrink * (1 + 1e-9) + ball_r + 1e-12
    huge = rest[ball_r[rest] > HUGE_BALL]  # e.g. PyTorch3D's enlarged tiny faces: every point is a candidate
    if len(huge):
        out[huge] = np.minimum(out[huge], _brute_min(len(points), len(huge), lambda i, j: pair(huge[j], i), reduce_rows=True))
    small = rest[ball_r[rest] <= HUGE_BALL]
    if len(small):
        sub = out[small]
        _ball_query_min(tree, ball_c[small], radius[small], 0, sub, lambda j, i: pair(small[j], i))
        out[small] = sub
    return out


# --- exact -----------------------------------------------------------------------------------------
def exact_point_to_face(points: np.ndarray, verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(P,) exact squared distance of each point to the mesh (libigl AABB tree)."""
    return _igl_sqdist(points, verts, faces)


def piece_budget(n_faces: int, n_points: int) -> int:
    """The most pieces faces are cut into (memory stays O(F + P) for every mesh)."""
    return 4 * (int(n_faces) + int(n_points)) + 4096


def _split_large(tris: np.ndarray, max_radius: float, max_pieces: int) -> Tuple[np.ndarray, np.ndarray]:
    """Split triangles (T, 3, 3) by longest-edge bisection until every bounding ball has radius
    ≤ ``max_radius``, or until the next round would make more than ``max_pieces`` pieces (the rest stay
    as they are). Returns (pieces (S, 3, 3), parent index (S,)), S ≤ max(T, max_pieces). The pieces cover
    each triangle exactly, so a triangle's distance to a point set is the minimum over its pieces."""
    pieces, parents = [tris[:0]], [np.zeros(0, dtype=np.int64)]
    cur, cur_parent = tris, np.arange(len(tris))
    n_done = 0
    while len(cur):
        ok = _bounding_balls(cur)[1] <= max_radius
        pieces.append(cur[ok])
        parents.append(cur_parent[ok])
        n_done += int(ok.sum())
        cur, cur_parent = cur[~ok], cur_parent[~ok]
        if not len(cur):
            break
        if n_done + 2 * len(cur) > max_pieces:  # budget spent: keep these whole (exact, only slower to search)
            pieces.append(cur)
            parents.append(cur_parent)
            break
        opposite = np.stack([np.linalg.norm(cur[:, (i + 1) % 3] - cur[:, (i + 2) % 3], axis=1) for i in range(3)], axis=1)
        order = (opposite.argmax(axis=1)[:, None] + np.arange(3)) % 3  # apex first: the vertex facing the longest edge
        r = np.take_along_axis(cur, order[:, :, None], axis=1)
        mid = (r[:, 1] + r[:, 2]) / 2
        cur = np.concatenate([np.stack([r[:, 0], r[:, 1], mid], 1), np.stack([r[:, 0], mid, r[:, 2]], 1)])
        cur_parent = np.concatenate([cur_parent, cur_parent])
    return np.concatenate(pieces), np.concatenate(parents)


def _max_piece_radius(tris: np.ndarray, n_points: int) -> float:
    """Piece size for cutting large faces: about two point spacings on the mesh surface, but never so
    small that the cuts would exceed :func:`piece_budget` (bisection makes ≲ 2 (R/r)² pieces of a face of
    radius R, ≲ 2R/r of a sliver; zero-area meshes have no spacing at all)."""
    area = 0.5 * np.linalg.norm(np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]), axis=1).sum()
    rad = _bounding_balls(tris)[1]
    budget = piece_budget(len(tris), n_points)
    floor = max(float(np.sqrt(2.0 * (rad**2).sum() / budget)), 2.0 * float(rad.sum()) / budget)
    return max(2.0 * float(np.sqrt(area / max(1, n_points))), floor, 1e-9)


def exact_face_to_point(points: np.ndarray, verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F,) exact squared distance of each triangle to its nearest point of the cloud.

    Large faces (coarse CAD-like meshes) would put many points in their bounding balls, so they are
    first split into pieces about the size of the point spacing (exact: min over the pieces)."""
    tris = verts[faces]
    rad = _bounding_balls(tris)[1]
    max_radius = _max_piece_radius(tris, len(points))
    budget = piece_budget(len(tris), len(points))
    pieces, parent = _split_large(tris, max_radius, budget) if rad.max() > max_radius else (tris, None)
    cen, rad = _bounding_balls(pieces)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = _face_to_point(points, pieces, cen, rad, ericson_sqdist)
    if parent is None:
        return d
    out = np.full(len(faces), np.inf)
    np.minimum.at(out, parent, d)
    return out


# --- PyTorch3D semantics ----------------------------------------------------------------------------
def _pt3d_edge_elements(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """libigl elements for PyTorch3D's edge distances: segments ``[i, j, j]``; edges shorter than
    1e-4 (|e|² < 1e-8) become the point of their first vertex ``[i, i, i]`` as in PyTorch3D."""
    pairs = np.concatenate([faces[:, [0, 1]], faces[:, [0, 2]], faces[:, [1, 2]]])
    e = verts[pairs[:, 1]] - verts[pairs[:, 0]]
    tiny = (e * e).sum(1) < PT3D_EPS
    seg = np.unique(np.sort(pairs[~tiny], axis=1), axis=0)
    pts = np.unique(pairs[tiny, 0])
    return np.concatenate([seg[:, [0, 1, 1]], np.repeat(pts[:, None], 3, axis=1)]).astype(np.int64)


def _pt3d_can_be_inside(verts: np.ndarray, faces: np.ndarray, min_triangle_area: float) -> np.ndarray:
    """(F,) faces whose PyTorch3D inside test can succeed (area ≥ threshold and |normal| > 1e-8)."""
    v0, v1, v2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    n = np.cross(v2 - v0, v1 - v0)
    nn = np.sqrt((n * n).sum(1))
    return (nn / 2.0 >= min_triangle_area) & (nn > PT3D_EPS)


def _pt3d_plane_pieces(verts: np.ndarray, faces: np.ndarray, min_triangle_area: float, max_radius: float, max_pieces: int):
    """Where PyTorch3D's "inside" branch (``t²``) can apply, cut into pieces for KD pruning.

    PyTorch3D's inside test accepts the triangle enlarged about v0 by ``(4a² + 1e-8) / 4a²``, and
    its ``t²`` is ``k²`` times the squared distance to that plane, ``k = |n| / (|n| + 1e-8)``. So for
    a point whose projection falls in piece j: ``t² ≥ k² (|p − c_j| − r_j)²``.

    Returns (pieces (S, 3, 3), parent face (S,), k (S,), huge faces (H,)); regions that the epsilon
    enlarged hugely (tiny faces with a threshold near 0) are not cut: they are checked against every point.
    """
    ci = np.flatnonzero(_pt3d_can_be_inside(verts, faces, min_triangle_area))
    v0, v1, v2 = verts[faces[ci, 0]], verts[faces[ci, 1]], verts[faces[ci, 2]]
    s = pytorch3d_inside_scale(v0, v1, v2)[:, None]
    enlarged = np.stack([v0, v0 + s * (v1 - v0), v0 + s * (v2 - v0)], axis=1)
    nn = np.linalg.norm(np.cross(v2 - v0, v1 - v0), axis=1)
    k = nn / (nn + PT3D_EPS) * (1 - 1e-12)
    # regions blown up by the epsilon (not plain big faces, which are cut) are checked against every point
    huge = (_bounding_balls(enlarged)[1] > HUGE_BALL) & (s[:, 0] > 1.5) if len(ci) else np.zeros(0, dtype=bool)
    pieces, parent = _split_large(enlarged[~huge], max_radius, max_pieces)
    return pieces, ci[~huge][parent], k[~huge][parent], ci[huge]


def _pt3d_plane_fn(points, verts, faces, min_triangle_area):
    """pair function (point indices, face indices) → PyTorch3D's ``t²`` where inside, else +inf."""
    v0, v1, v2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]

    def plane(pi, fi):
        inside, t2 = pytorch3d_plane_term(points[pi], v0[fi], v1[fi], v2[fi], min_triangle_area)
        return np.where(inside, t2, np.inf)

    return plane


def pytorch3d_point_to_face(points: np.ndarray, verts: np.ndarray, faces: np.ndarray, min_triangle_area: float) -> np.ndarray:
    """(P,) PyTorch3D's point→face distance (``point_face_distance``) in float64.

    Its value is ``min(edge distances of all faces, t² of faces whose inside test holds)`` (``t²``
    never exceeds that face's edge distances): the edges are one libigl query; the ``t²`` branch
    is searched by KD pruning over pieces of the faces' inside regions."""
    out = _igl_sqdist(points, verts, _pt3d_edge_elements(verts, faces))
    budget = piece_budget(len(faces), len(points))
    pieces, parent, k, huge = _pt3d_plane_pieces(verts, faces, min_triangle_area, _max_piece_radius(verts[faces], len(points)), budget)
    plane = _pt3d_plane_fn(points, verts, faces, min_triangle_area)
    with np.errstate(divide="ignore", invalid="ignore"):
        if len(huge):
            np.minimum(out, _brute_min(len(points), len(huge), lambda i, j: plane(i, huge[j]), reduce_rows=False), out=out)
        if len(pieces):
            # tighter start: the t² of the face nearest in the exact sense, where its inside test holds
            import igl

            nearest = igl.point_mesh_squared_distance(points, verts, faces)[1]
            np.minimum(out, plane(np.arange(len(points)), nearest), out=out)
            cen, rad = _bounding_balls(pieces)
            tree = cKDTree(cen)
            radius = np.sqrt(out) / k.min() * (1 + 1e-9) + rad.max() + 1e-12
            _ball_query_min(tree, points, radius, 0, out, lambda i, j: plane(i, parent[j]))
    return out


def _edge_cuts(lengths: np.ndarray, max_radius: float, max_pieces: int) -> np.ndarray:
    """Pieces per edge: segments of radius ≤ ``max_radius``, scaled down to ``max_pieces`` in all."""
    n_cut = np.maximum(1, np.ceil(lengths / (2 * max_radius)))
    if n_cut.sum() > max_pieces:
        n_cut = np.maximum(1, np.floor(n_cut * (max_pieces / n_cut.sum())))
    return n_cut.astype(np.int64)


def pytorch3d_face_to_point(points: np.ndarray, verts: np.ndarray, faces: np.ndarray, min_triangle_area: float) -> np.ndarray:
    """(F,) PyTorch3D's face→point distance (``face_point_distance``) in float64.

    ``min over points of min(edge distances, t² where inside)``: the edge part is exact KD pruning
    over the faces' edges cut into pieces (an edge shorter than 1e-4 is its first vertex, as in
    PyTorch3D); the ``t²`` part searches pieces of the inside regions within the bound that the
    edge part gives."""
    n_faces = len(faces)
    tris = verts[faces]
    max_radius = _max_piece_radius(tris, len(points))
    cen, rad = _bounding_balls(tris)
    out = np.full(n_faces, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        # edge part, small faces: a face's ball holds its edges, so prune per face
        small = np.flatnonzero(rad <= max_radius)
        if len(small):
            out[small] = _face_to_point(points, tris[small], cen[small], rad[small], pytorch3d_edges_sqdist)
        # edge part, large faces: cut their edges into pieces first (exact: min over the pieces)
        large = np.flatnonzero(rad > max_radius)
        if len(large):
            lf = faces[large]
            a = verts[np.concatenate([lf[:, 0], lf[:, 0], lf[:, 1]])]
            b = verts[np.concatenate([lf[:, 1], lf[:, 2], lf[:, 2]])]
            owner = np.tile(large, 3)
            tiny = ((b - a) ** 2).sum(1) < PT3D_EPS
            b[tiny] = a[tiny]  # PyTorch3D: an edge shorter than 1e-4 is its first vertex
            n_cut = _edge_cuts(np.linalg.norm(b - a, axis=1), max_radius, piece_budget(n_faces, len(points)))
            seg = np.repeat(np.arange(len(a)), n_cut)
            j = np.arange(len(seg)) - np.repeat(np.cumsum(n_cut) - n_cut, n_cut)
            pa = a[seg] + (j / n_cut[seg])[:, None] * (b - a)[seg]
            pb = a[seg] + ((j + 1) / n_cut[seg])[:, None] * (b - a)[seg]
            d = _face_to_point(points, np.stack([pa, pb, pb], axis=1), (pa + pb) / 2, np.linalg.norm(pb - pa, axis=1) / 2,
                               lambda p, x, y, z: segment_sqdist(p, x, y))
            np.minimum.at(out, owner[seg], d)

        pieces, parent, k, huge = _pt3d_plane_pieces(verts, faces, min_triangle_area, max_radius, piece_budget(n_faces, len(points)))
        plane = _pt3d_plane_fn(points, verts, faces, min_triangle_area)
        if len(huge):
            out[huge] = np.minimum(out[huge], _brute_min(len(points), len(huge), lambda i, jj: plane(i, huge[jj]), reduce_rows=True))
        if len(pieces):
            cen, rad = _bounding_balls(pieces)
            radius = np.sqrt(out[parent]) / k * (1 + 1e-9) + rad + 1e-12
            tree = cKDTree(points)
            best = np.full(len(pieces), np.inf)
            _ball_query_min(tree, cen, radius, 0, best, lambda jj, i: plane(i, parent[jj]))
            np.minimum.at(out, parent, best)
    return out


def point_mesh_terms(points: np.ndarray, verts: np.ndarray, faces: np.ndarray, mode: str = "exact", min_triangle_area: float = 5e-3):
    """Per-point P2F (P,) and per-face F2P (F,) squared distances on the CPU in float64."""
    if mode == "exact":
        return exact_point_to_face(points, verts, faces), exact_face_to_point(points, verts, faces)
    return (
        pytorch3d_point_to_face(points, verts, faces, min_triangle_area),
        pytorch3d_face_to_point(points, verts, faces, min_triangle_area),
    )
