"""The 18 procedural test shapes (datasets.md §C1) and the seeded training family."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import trimesh

from sbdbench.data.shapes import (CATEGORIES, TEST_SHAPES, build_recipe, family_specs, get_test_spec,
                                  suite_shape_names, surface_topology)
from sbdbench.errors import InputError

C1_NAMES = ["sphere", "cube", "cylinder", "cone", "octahedron", "thin_plate", "torus", "thin_torus", "trefoil_knot",
            "knot_3_5", "helix_spring", "superquadric_box", "superquadric_star", "rounded_box", "bumpy_sphere",
            "genus2", "schwarzP_cell", "csg_bracket"]
C1_GENUS = {"torus": 1, "thin_torus": 1, "trefoil_knot": 1, "knot_3_5": 1, "genus2": 2, "schwarzP_cell": 5, "csg_bracket": 4}


@pytest.fixture(scope="module")
def test_meshes():
    """All 18 test meshes, built once (the expensive marching-cubes ones take ~1-3 s each)."""
    return {name: get_test_spec(name).build() for name in C1_NAMES}


def test_the_18_names_and_categories():
    assert suite_shape_names() == C1_NAMES
    for spec in TEST_SHAPES.values():
        assert spec.category in CATEGORIES
    assert {s.category for s in TEST_SHAPES.values()} == set(CATEGORIES)
    assert TEST_SHAPES["thin_plate"].category == "thin" and TEST_SHAPES["cube"].category == "sharp"


def closed_surface_stats(v, f):
    top = surface_topology(v, f)
    return top["closed"], top["components"], top["genus"]


def test_surface_topology_on_known_meshes():
    box = trimesh.creation.box()
    assert surface_topology(box.vertices, box.faces) == {"closed": True, "components": 1, "genus": 0}
    assert surface_topology(box.vertices, box.faces[1:])["closed"] is False            # a hole
    flipped = np.array(box.faces)
    flipped[0] = flipped[0, ::-1]
    assert surface_topology(box.vertices, flipped)["closed"] is False                        # inconsistent winding
    two = trimesh.util.concatenate([box, box.copy().apply_translation((3, 0, 0))])
    assert surface_topology(two.vertices, two.faces) == {"closed": True, "components": 2, "genus": 0}
    torus = trimesh.creation.torus(1.0, 0.3)
    assert surface_topology(torus.vertices, torus.faces)["genus"] == 1


def test_every_test_shape_is_a_closed_single_volume_of_the_right_genus(test_meshes):
    for name, (v, f) in test_meshes.items():
        assert v.dtype == np.float64 and f.dtype == np.int64 and np.isfinite(v).all()
        closed, n_comp, genus = closed_surface_stats(v, f)
        assert closed, name
        assert n_comp == 1, name
        assert genus == C1_GENUS.get(name, 0) == TEST_SHAPES[name].genus, name
        assert trimesh.Trimesh(v, f, process=False).volume > 0, name  # outward normals


def test_recipes_match_the_c1_table(test_meshes):
    v, f = test_meshes["sphere"]
    assert (len(v), len(f)) == (10242, 20480)
    assert (len(test_meshes["cube"][1]), len(test_meshes["octahedron"][1]), len(test_meshes["cylinder"][1])) == (12, 8, 512)
    assert len(test_meshes["trefoil_knot"][0]) == 600 * 32 and len(test_meshes["knot_3_5"][0]) == 1200 * 24
    thin = trimesh.Trimesh(*test_meshes["thin_plate"])
    assert np.allclose(thin.extents, (1.8, 1.2, 0.06))
    helix = trimesh.Trimesh(*test_meshes["helix_spring"])
    assert helix.bounds[1, 2] == pytest.approx(0.9, abs=0.01)  # 4 turns of pitch 0.4, tube 0.1


@pytest.mark.parametrize("name", ["trefoil_knot", "superquadric_star", "csg_bracket"])
def test_shapes_are_byte_deterministic(name, test_meshes):
    v, f = get_test_spec(name).build()
    digest = lambda a, b: hashlib.sha256(a.tobytes() + b.tobytes()).hexdigest()
    assert digest(v, f) == digest(*test_meshes[name])


def test_family_never_repeats_a_test_shape_and_is_deterministic():
    from sbdbench.data.synth import N_TRAIN, N_VAL

    train, val = family_specs("train", N_TRAIN, 1), family_specs("val", N_VAL, 1)
    assert len(train) == 40 and len(val) == 18
    assert not {s.name for s in train} & {s.name for s in val}
    assert not {s.name for s in train} & set(TEST_SHAPES)
    test_params = [s.params for s in TEST_SHAPES.values()]
    assert all(s.params not in test_params for s in train + val)
    assert [s.params for s in family_specs("train", 40, 1)] == [s.params for s in train]
    assert [s.params for s in family_specs("train", 40, 2)] != [s.params for s in train]
    # every recipe of the test suite appears in training, with the template's category
    assert {s.name.rsplit("_", 1)[0] for s in train} == set(TEST_SHAPES)
    assert all(s.category == TEST_SHAPES[s.name.rsplit("_", 1)[0]].category for s in train)
    # model selection sees every kind of test shape too (synth-v2), and v1's six val shapes are unchanged
    assert {s.name.rsplit("_", 1)[0] for s in val} == set(TEST_SHAPES)
    assert [(s.name, s.params) for s in family_specs("val", 6, 1)] == [(s.name, s.params) for s in val[:6]]


@pytest.mark.parametrize("index", [0, 6, 8, 11, 14, 17, 20, 30])
def test_family_shapes_are_closed_volumes(index):
    spec = family_specs("train", 40, 20261125)[index]
    v, f = spec.build()
    closed, n_comp, _ = closed_surface_stats(v, f)
    assert closed and n_comp == 1 and trimesh.Trimesh(v, f, process=False).volume > 0, spec.name


def test_unknown_names():
    with pytest.raises(InputError, match="unknown shape 'blob'"):
        get_test_spec("blob")
    with pytest.raises(InputError, match="unknown shape recipe"):
        build_recipe("blob", {})
