"""Procedural meshes of the offline default dataset ``synth`` (datasets.md §C1), deterministic and watertight.

Every shape is a *recipe* (a function of a small parameter dict) plus the parameters. The 18 test
shapes use the fixed parameters of :data:`TEST_SHAPES`; the training family (:func:`family_specs`)
reuses the same recipes with parameters drawn from a seeded RNG and is guaranteed never to repeat a
test parameter set. Each shape carries a category tag (smooth / sharp / thin / genus) used for
per-category reporting.

Meshes are returned as ``(verts (V, 3) float64, faces (F, 3) int64)`` in the recipe's own frame;
:mod:`sbdbench.data.splits` normalises them to the unit sphere before sampling. The same parameters
give the same bytes on every run (fixed grids, no RNG inside a recipe).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Tuple

import numpy as np

from sbdbench.errors import InputError

CATEGORIES = ("smooth", "sharp", "thin", "genus")
Mesh = Tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class ShapeSpec:
    """One shape: its name, category tag, recipe name, recipe parameters and topological genus."""

    name: str
    category: str
    recipe: str
    params: Dict = field(default_factory=dict)
    genus: int = 0

    def build(self) -> Mesh:
        """The mesh (verts, faces) of this spec (deterministic)."""
        return build_recipe(self.recipe, self.params)

    def to_dict(self) -> Dict:
        return {"category": self.category, "recipe": self.recipe, "params": self.params, "genus": self.genus}


# --- small mesh helpers ---------------------------------------------------------------------------
def _trimesh(verts, faces):
    import trimesh

    mesh = trimesh.Trimesh(np.asarray(verts, dtype=np.float64), np.asarray(faces, dtype=np.int64), process=True)
    if mesh.volume < 0:
        mesh.invert()
    return mesh


def _out(mesh) -> Mesh:
    return np.ascontiguousarray(mesh.vertices, dtype=np.float64), np.ascontiguousarray(mesh.faces, dtype=np.int64)


def _from_manifold(man) -> Mesh:
    m = man.to_mesh()
    return _out(_trimesh(np.asarray(m.vert_properties)[:, :3], np.asarray(m.tri_verts)))


def sdf_mesh(sdf: Callable[[np.ndarray], np.ndarray], bound: float, res: int) -> Mesh:
    """Marching cubes of a vectorised implicit ``sdf`` ((..., 3) → (...), < 0 inside) on a res³ grid over [-bound, bound]³."""
    from skimage.measure import marching_cubes

    g = np.linspace(-bound, bound, res)
    grid = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1)
    values = sdf(grid)
    if not (values.min() < 0 < values.max()):
        raise InputError("procedural shape: the implicit surface does not cross the sampling grid")
    verts, faces, _, _ = marching_cubes(values, 0.0, spacing=(g[1] - g[0],) * 3)
    return _out(_trimesh(verts - bound, faces[:, ::-1]))


def torus_knot_curve(p: int, q: int, R: float = 0.7, r: float = 0.3, n: int = 600) -> np.ndarray:
    """(n, 3) samples of the (p, q) torus knot on a torus of radii (R, r)."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    rr = R + r * np.cos(q * t)
    return np.stack([rr * np.cos(p * t), rr * np.sin(p * t), r * np.sin(q * t)], axis=1)


def tube_mesh(curve: np.ndarray, radius: float, sides: int) -> Mesh:
    """A closed tube of ``radius`` around a closed (n, 3) curve, with parallel-transport frames.

    Tangents by central differences; the normal is transported by projection and the closing twist
    is spread linearly over the loop, so the tube closes without a seam.
    """
    n = len(curve)
    tangent = np.roll(curve, -1, axis=0) - np.roll(curve, 1, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    seed = np.array([0.0, 0.0, 1.0]) if abs(tangent[0, 2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    normals = np.empty_like(curve)
    nrm = seed - seed.dot(tangent[0]) * tangent[0]
    for i in range(n):
        nrm = nrm - nrm.dot(tangent[i]) * tangent[i]
        nrm /= np.linalg.norm(nrm)
        normals[i] = nrm
    # closing twist: angle from the transported last normal (projected on T0) to the first normal
    closing = normals[-1] - normals[-1].dot(tangent[0]) * tangent[0]
    closing /= np.linalg.norm(closing)
    angle = math.atan2(np.cross(closing, normals[0]).dot(tangent[0]), closing.dot(normals[0]))
    binormals = np.cross(tangent, normals)
    twist = angle * np.arange(n) / n
    normals, binormals = (np.cos(twist)[:, None] * normals + np.sin(twist)[:, None] * binormals,
                          -np.sin(twist)[:, None] * normals + np.cos(twist)[:, None] * binormals)
    theta = 2.0 * np.pi * np.arange(sides) / sides
    ring = np.cos(theta)[None, :, None] * normals[:, None, :] + np.sin(theta)[None, :, None] * binormals[:, None, :]
    verts = (curve[:, None, :] + radius * ring).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(n), np.arange(sides), indexing="ij")
    a = i * sides + j
    b = ((i + 1) % n) * sides + j
    c = ((i + 1) % n) * sides + (j + 1) % sides
    d = i * sides + (j + 1) % sides
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return _out(_trimesh(verts, faces))


def surface_topology(verts: np.ndarray, faces: np.ndarray) -> Dict:
    """``closed`` (every edge in exactly two faces, with opposite directions: watertight and consistently
    oriented), ``components`` (connected pieces) and ``genus`` (from the Euler characteristic; None unless closed)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(verts)
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).astype(np.int64)
    one_way = len(np.unique(directed[:, 0] * n + directed[:, 1])) == len(directed)
    n_edges = len(np.unique(np.minimum(directed[:, 0], directed[:, 1]) * n + np.maximum(directed[:, 0], directed[:, 1])))
    closed = bool(one_way and 2 * n_edges == len(directed))
    graph = coo_matrix((np.ones(len(directed)), (directed[:, 0], directed[:, 1])), shape=(n, n))
    used = np.zeros(n, dtype=bool)
    used[faces.ravel()] = True
    components = int(connected_components(graph, directed=False)[0] - (~used).sum())  # unused vertices are not pieces
    euler = int(used.sum()) - n_edges + len(faces)
    genus = (2 * components - euler) // 2 if closed else None
    return {"closed": closed, "components": components, "genus": genus}


# --- recipes ----------------------------------------------------------------------------------------
def _icosphere(p):
    import trimesh

    return _out(trimesh.creation.icosphere(subdivisions=int(p["subdivisions"]), radius=float(p["radius"])))


def _ellipsoid(p):
    v, f = _icosphere({"subdivisions": p["subdivisions"], "radius": 1.0})
    return v * np.asarray(p["axes"], dtype=np.float64), f


def _box(p):
    import trimesh

    return _out(trimesh.creation.box(extents=tuple(float(e) for e in p["extents"])))


def _cylinder(p):
    import trimesh

    return _out(trimesh.creation.cylinder(radius=float(p["radius"]), height=float(p["height"]), sections=int(p["sections"])))


def _cone(p):
    import trimesh

    return _out(trimesh.creation.cone(radius=float(p["radius"]), height=float(p["height"]), sections=int(p["sections"])))


def _octahedron(p):
    from manifold3d import Manifold

    return _from_manifold(Manifold.sphere(1.0, 4).scale(tuple(float(s) for s in p.get("scale", (1.0, 1.0, 1.0)))))


def _torus(p):
    import trimesh

    return _out(trimesh.creation.torus(float(p["major"]), float(p["minor"]), major_sections=int(p["major_sections"]),
                                       minor_sections=int(p["minor_sections"])))


def _torus_knot(p):
    curve = torus_knot_curve(int(p["p"]), int(p["q"]), float(p["R"]), float(p["r"]), int(p["samples"]))
    return tube_mesh(curve, float(p["tube"]), int(p["sides"]))


def _helix(p):
    """A helical tube with rounded ends: exact distance to the helix curve (Newton on the curve parameter)."""
    radius, turns, pitch, tube = float(p["radius"]), float(p["turns"]), float(p["pitch"]), float(p["tube"])
    h = pitch / (2.0 * np.pi)
    t_end = 2.0 * np.pi * turns
    z0 = pitch * turns / 2.0
    cap = 2.0 * tube

    def curve_distance(x):
        rho = np.hypot(x[:, 0], x[:, 1])
        phi = np.arctan2(x[:, 1], x[:, 0])
        z = x[:, 2] + z0
        best = np.full(len(x), np.inf)
        k0 = np.round((z / h - phi) / (2.0 * np.pi))
        for dk in (-1.0, 0.0, 1.0):
            t = phi + 2.0 * np.pi * (k0 + dk)
            for _ in range(4):
                d1 = rho * radius * np.sin(t - phi) - h * (z - h * t)
                d2 = rho * radius * np.cos(t - phi) + h * h
                t = t - d1 / np.where(d2 > 1e-9, d2, 1e-9)
            t = np.clip(t, 0.0, t_end)
            dist2 = rho ** 2 + radius ** 2 - 2.0 * rho * radius * np.cos(t - phi) + (z - h * t) ** 2
            best = np.minimum(best, dist2)
        return np.sqrt(np.maximum(best, 0.0))

    def sdf(x):
        flat = x.reshape(-1, 3)
        out = np.full(len(flat), cap)
        rho = np.hypot(flat[:, 0], flat[:, 1])
        near = (np.abs(rho - radius) < cap) & (np.abs(flat[:, 2]) < z0 + cap)
        out[near] = np.minimum(curve_distance(flat[near]), cap)
        return out.reshape(x.shape[:-1]) - tube

    return sdf_mesh(sdf, float(p["bound"]), int(p["res"]))


def _superquadric(p):
    e1, e2 = float(p["e1"]), float(p["e2"])
    ax = np.asarray(p.get("axes", (1.0, 1.0, 1.0)), dtype=np.float64)

    def f(x):
        x = np.abs(x / ax)
        return (x[..., 0] ** (2 / e2) + x[..., 1] ** (2 / e2)) ** (e2 / e1) + x[..., 2] ** (2 / e1) - 1.0

    return sdf_mesh(f, float(p["bound"]), int(p["res"]))


def _rounded_box(p):
    half, r = np.asarray(p["half_extents"], dtype=np.float64), float(p["radius"])

    def f(x):
        q = np.abs(x) - (half - r)
        return np.linalg.norm(np.maximum(q, 0.0), axis=-1) + np.minimum(q.max(axis=-1), 0.0) - r

    return sdf_mesh(f, float(p["bound"]), int(p["res"]))


def _bumpy_sphere(p):
    def f(x):
        rad = np.linalg.norm(x, axis=-1)
        theta = np.arccos(np.clip(x[..., 2] / np.maximum(rad, 1e-12), -1.0, 1.0))
        phi = np.arctan2(x[..., 1], x[..., 0])
        return rad - (p["base"] + p["a1"] * np.sin(p["k_theta"] * theta) * np.cos(p["k_phi"] * phi)
                      + p["a2"] * np.cos(p["k2"] * theta))

    return sdf_mesh(f, float(p["bound"]), int(p["res"]))


def _genus2(p):
    R, r, off = float(p["R"]), float(p["r"]), float(p["offset"])

    def torus_sdf(x, cx):
        q = np.sqrt((x[..., 0] - cx) ** 2 + x[..., 1] ** 2) - R
        return np.sqrt(q ** 2 + x[..., 2] ** 2) - r

    return sdf_mesh(lambda x: np.minimum(torus_sdf(x, -off), torus_sdf(x, off)), float(p["bound"]), int(p["res"]))


def _schwarz_p(p):
    k, level, box = float(p["k"]), float(p["level"]), float(p["box"])

    def f(x):
        tpms = np.abs(np.cos(k * x[..., 0]) + np.cos(k * x[..., 1]) + np.cos(k * x[..., 2])) - level
        return np.maximum(tpms, np.abs(x).max(axis=-1) - box)

    return sdf_mesh(f, float(p["bound"]), int(p["res"]))


def _csg_bracket(p):
    from manifold3d import Manifold

    base = Manifold.cube(tuple(p["base"]), True)
    wall = Manifold.cube(tuple(p["wall"]), True).translate(tuple(p["wall_at"]))
    body = base + wall
    for hole in p["holes"]:
        body = body - Manifold.cylinder(1.0, float(p["hole_radius"]), float(p["hole_radius"]), 64, True).translate((hole[0], hole[1], 0.0))
    cross = Manifold.cylinder(0.6, float(p["cross_radius"]), float(p["cross_radius"]), 64, True).rotate((0.0, 90.0, 0.0))
    body = body - cross.translate(tuple(p["cross_at"]))
    return _from_manifold(body)


RECIPES: Dict[str, Callable[[Dict], Mesh]] = {
    "icosphere": _icosphere,
    "ellipsoid": _ellipsoid,
    "box": _box,
    "cylinder": _cylinder,
    "cone": _cone,
    "octahedron": _octahedron,
    "torus": _torus,
    "torus_knot": _torus_knot,
    "helix": _helix,
    "superquadric": _superquadric,
    "rounded_box": _rounded_box,
    "bumpy_sphere": _bumpy_sphere,
    "genus2": _genus2,
    "schwarz_p": _schwarz_p,
    "csg_bracket": _csg_bracket,
}


def build_recipe(recipe: str, params: Dict) -> Mesh:
    """Run one recipe. Unknown recipe names raise :class:`InputError`."""
    if recipe not in RECIPES:
        raise InputError(f"unknown shape recipe {recipe!r} (known: {', '.join(sorted(RECIPES))})")
    return RECIPES[recipe](params)


# --- the 18 frozen test shapes (datasets.md §C1) ----------------------------------------------------
_BRACKET = {"base": [1.8, 1.0, 0.3], "wall": [0.3, 1.0, 1.2], "wall_at": [-0.75, 0.0, 0.45],
            "holes": [[0.2, 0.25], [0.2, -0.25], [0.65, 0.0]], "hole_radius": 0.15, "cross_radius": 0.2,
            "cross_at": [-0.75, 0.0, 0.7]}

TEST_SHAPES: Dict[str, ShapeSpec] = {s.name: s for s in [
    ShapeSpec("sphere", "smooth", "icosphere", {"subdivisions": 5, "radius": 1.0}, 0),
    ShapeSpec("cube", "sharp", "box", {"extents": [1.6, 1.6, 1.6]}, 0),
    ShapeSpec("cylinder", "sharp", "cylinder", {"radius": 0.6, "height": 1.6, "sections": 128}, 0),
    ShapeSpec("cone", "sharp", "cone", {"radius": 0.8, "height": 1.6, "sections": 128}, 0),
    ShapeSpec("octahedron", "sharp", "octahedron", {"scale": [1.0, 1.0, 1.0]}, 0),
    ShapeSpec("thin_plate", "thin", "box", {"extents": [1.8, 1.2, 0.06]}, 0),
    ShapeSpec("torus", "genus", "torus", {"major": 0.75, "minor": 0.3, "major_sections": 128, "minor_sections": 64}, 1),
    ShapeSpec("thin_torus", "thin", "torus", {"major": 0.85, "minor": 0.06, "major_sections": 256, "minor_sections": 32}, 1),
    ShapeSpec("trefoil_knot", "smooth", "torus_knot", {"p": 2, "q": 3, "R": 0.7, "r": 0.3, "tube": 0.18, "samples": 600, "sides": 32}, 1),
    ShapeSpec("knot_3_5", "thin", "torus_knot", {"p": 3, "q": 5, "R": 0.7, "r": 0.25, "tube": 0.07, "samples": 1200, "sides": 24}, 1),
    ShapeSpec("helix_spring", "thin", "helix", {"radius": 0.6, "turns": 4.0, "pitch": 0.4, "tube": 0.1,
                                                "bound": 1.0, "res": 144}, 0),
    ShapeSpec("superquadric_box", "sharp", "superquadric", {"e1": 0.25, "e2": 0.25, "bound": 1.1, "res": 128}, 0),
    ShapeSpec("superquadric_star", "sharp", "superquadric", {"e1": 2.5, "e2": 2.5, "bound": 1.1, "res": 128}, 0),
    ShapeSpec("rounded_box", "smooth", "rounded_box", {"half_extents": [0.7, 0.5, 0.35], "radius": 0.15, "bound": 1.0, "res": 128}, 0),
    ShapeSpec("bumpy_sphere", "smooth", "bumpy_sphere", {"base": 0.85, "a1": 0.08, "k_theta": 6, "k_phi": 5, "a2": 0.04, "k2": 11,
                                                         "bound": 1.0, "res": 160}, 0),
    ShapeSpec("genus2", "genus", "genus2", {"R": 0.5, "r": 0.2, "offset": 0.45, "bound": 1.2, "res": 160}, 2),
    ShapeSpec("schwarzP_cell", "genus", "schwarz_p", {"k": math.pi, "level": 0.6, "box": 0.9, "bound": 1.0, "res": 96}, 5),
    ShapeSpec("csg_bracket", "genus", "csg_bracket", _BRACKET, 4),
]}


def suite_shape_names() -> List[str]:
    """The 18 test shape names, in the order of datasets.md §C1."""
    return list(TEST_SHAPES)


def get_test_spec(name: str) -> ShapeSpec:
    """The frozen spec of one test shape; unknown names raise :class:`InputError` listing the known ones."""
    if name not in TEST_SHAPES:
        raise InputError(f"unknown shape {name!r} (known: {', '.join(TEST_SHAPES)})")
    return TEST_SHAPES[name]


# --- the seeded training family ------------------------------------------------------------------------
def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    """A uniform draw rounded to 4 decimals (parameters stay readable in the manifest)."""
    return round(float(rng.uniform(lo, hi)), 4)


def _perturb(template: ShapeSpec, rng: np.random.Generator) -> Dict:
    """Random parameters for ``template``'s recipe (same recipe, new geometry)."""
    p = dict(template.params)
    rec = template.recipe
    if rec == "icosphere":
        return {"subdivisions": 5, "axes": [_u(rng, 0.6, 1.0), _u(rng, 0.6, 1.0), _u(rng, 0.6, 1.0)]}
    if rec == "box":
        if template.category == "thin":
            return {"extents": [_u(rng, 1.2, 1.9), _u(rng, 0.8, 1.5), _u(rng, 0.05, 0.12)]}
        return {"extents": [_u(rng, 0.8, 1.8), _u(rng, 0.8, 1.8), _u(rng, 0.8, 1.8)]}
    if rec in ("cylinder", "cone"):
        return {"radius": _u(rng, 0.3, 0.9), "height": _u(rng, 0.8, 1.8), "sections": 128}
    if rec == "octahedron":
        return {"scale": [_u(rng, 0.6, 1.4), _u(rng, 0.6, 1.4), _u(rng, 0.6, 1.4)]}
    if rec == "torus":
        if template.category == "thin":
            return {"major": _u(rng, 0.7, 0.9), "minor": _u(rng, 0.04, 0.1), "major_sections": 256, "minor_sections": 32}
        return {"major": _u(rng, 0.6, 0.8), "minor": _u(rng, 0.18, 0.4), "major_sections": 128, "minor_sections": 64}
    if rec == "torus_knot":
        pq = [(2, 3), (2, 5), (3, 4), (3, 5)][int(rng.integers(4))]
        tube = _u(rng, 0.12, 0.2) if pq == (2, 3) else _u(rng, 0.05, 0.08)
        samples = 600 if pq == (2, 3) else 1200
        return {"p": pq[0], "q": pq[1], "R": _u(rng, 0.65, 0.75), "r": _u(rng, 0.25, 0.3), "tube": tube,
                "samples": samples, "sides": 32 if pq == (2, 3) else 24}
    if rec == "helix":
        p.update(radius=_u(rng, 0.45, 0.7), turns=_u(rng, 2.5, 5.0), tube=_u(rng, 0.06, 0.12))
        p["pitch"] = round(min(1.5 / p["turns"], max(0.3, _u(rng, 0.3, 0.6))), 4)
        return p
    if rec == "superquadric":
        p.update(e1=_u(rng, 0.2, 3.0), e2=_u(rng, 0.2, 3.0), axes=[_u(rng, 0.6, 1.0), _u(rng, 0.6, 1.0), _u(rng, 0.6, 1.0)])
        return p
    if rec == "rounded_box":
        half = [_u(rng, 0.3, 0.8), _u(rng, 0.3, 0.8), _u(rng, 0.2, 0.6)]
        p.update(half_extents=half, radius=_u(rng, 0.05, 0.9 * min(half)))
        return p
    if rec == "bumpy_sphere":
        p.update(a1=_u(rng, 0.03, 0.1), k_theta=int(rng.integers(3, 10)), k_phi=int(rng.integers(2, 9)),
                 a2=_u(rng, 0.0, 0.05), k2=int(rng.integers(5, 14)))
        return p
    if rec == "genus2":
        R = _u(rng, 0.4, 0.55)
        p.update(R=R, r=_u(rng, 0.12, 0.22), offset=_u(rng, 0.8 * R, 0.98 * R))
        return p
    if rec == "schwarz_p":
        p.update(level=_u(rng, 0.4, 0.9), box=_u(rng, 0.7, 0.95))
        return p
    if rec == "csg_bracket":
        holes = [[_u(rng, 0.05, 0.35), _u(rng, 0.15, 0.3)], [_u(rng, 0.05, 0.35), -_u(rng, 0.15, 0.3)], [_u(rng, 0.55, 0.72), _u(rng, -0.1, 0.1)]]
        p = dict(_BRACKET)
        p.update(holes=holes, hole_radius=_u(rng, 0.08, 0.15), cross_radius=_u(rng, 0.1, 0.25))
        return p
    raise InputError(f"no training-family sampler for recipe {rec!r}")


def _closes_on_grid(recipe: str, p: Dict) -> bool:
    """Reject draws whose marching-cubes surface would not be closed: bumps reaching the grid
    boundary, or superquadric arms too thin for the grid (checked for all 46 family shapes)."""
    if recipe == "bumpy_sphere":
        return p["base"] + p["a1"] + p["a2"] <= 0.97
    if recipe == "superquadric":
        return max(p["e1"], p["e2"]) <= 2.6
    return True


def family_specs(split: str, count: int, seed: int) -> List[ShapeSpec]:
    """``count`` training-family shapes for ``split`` ('train' or 'val'), cycling over the 18 test recipes.

    Shape ``i`` perturbs test template ``i mod 18`` with an RNG seeded from (split, seed, i), so
    train and val never share a shape and no shape repeats a test parameter set (checked).
    Names: ``<template>_<split><i:02d>`` (e.g. ``torus_train07``).
    """
    if count < 0:
        raise InputError(f"shape count must be ≥ 0, got {count}")
    templates = list(TEST_SHAPES.values())
    specs = []
    for i in range(count):
        template = templates[i % len(templates)]
        digest = hashlib.sha256(f"synth-family|{split}|{seed}|{i}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        params = _perturb(template, rng)
        while params == template.params or not _closes_on_grid(template.recipe, params):  # never a test set
            params = _perturb(template, rng)
        genus = template.genus
        if template.recipe == "torus_knot" or template.recipe == "torus":
            genus = 1
        specs.append(ShapeSpec(f"{template.name}_{split}{i:02d}", template.category,
                               "ellipsoid" if template.recipe == "icosphere" else template.recipe, params, genus))
    return specs
