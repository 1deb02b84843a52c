"""One method resolver: the Python API builds exactly the method the CLI runs (frozen settings, variants, --param)."""

from __future__ import annotations

import numpy as np
import pytest

from sbdbench.bench.grid import method_params
from sbdbench.errors import InputError
from sbdbench.methods import make_method, resolve_method
from sbdbench.methods.params import typed_overrides
from sbdbench.methods.settings import frozen_params


@pytest.mark.parametrize("name, n, sigma", [("jet", 10000, 0.02), ("bilateral", 50000, 0.03), ("sbd", 10000, 0.03)])
def test_python_api_equals_the_cli(name, n, sigma):
    frozen = frozen_params(name, n, sigma)
    assert frozen, f"{name} has frozen settings in baselines/"
    api = make_method(name, tuned_for=(n, sigma))
    assert {k: api.get_params()[k] for k in frozen} == frozen
    assert api.get_params() != make_method(name).get_params()  # the constructor defaults differ: the point of tuned_for
    assert resolve_method(name, n, sigma, device="cpu").settings == method_params(name, n, sigma, "cpu")  # = bench


def test_param_and_variant_spellings_agree():
    from sbdbench.methods import get_method_class

    cls = get_method_class("pca")
    by_param = resolve_method("pca", 10000, 0.01, overrides={"k": "08", "radius_scale": "2"}).settings
    by_variant = resolve_method("pca:k=08:radius_scale=2", 10000, 0.01).settings
    assert by_param == by_variant and by_param["k"] == 8 and by_param["radius_scale"] == 2.0
    assert typed_overrides("pca:k=8", cls) == {"k": 8}
    assert make_method("pca", tuned_for=(10000, 0.01), k="8").k == 8  # a notebook passes the same text as the CLI


def test_precedence_frozen_variant_device_overrides():
    r = resolve_method("sbd:niters=2", 10000, 0.03, device="cpu", overrides={"frame_knn": 4})
    assert r.settings["niters"] == 2 and r.settings["frame_knn"] == 4 and r.settings["device"] == "cpu"
    assert r.cell == (10000, 0.03) and r.note is None
    defaults = resolve_method("sbd", 10000, 0.03, frozen=False)
    assert defaults.cell is None and defaults.settings == {}
    assert resolve_method("score", 10000, 0.02, device="cpu", overrides={"device": "cuda"}).settings["device"] == "cuda"


def test_bad_specs_are_one_line_errors():
    for spec, overrides, message in [("pca", {"bogus": 1}, "has no parameter"), ("pca:k=abc", None, "must be int"),
                                     ("pca:3", None, "expected name:key=value"), ("nope", None, "unknown method"),
                                     ("pca", {"k": "x"}, "must be int")]:
        with pytest.raises(InputError, match=message) as info:
            resolve_method(spec, 10000, 0.01, overrides=overrides)
        assert "\n" not in str(info.value)


def test_denoise_file_runs_the_resolved_method(tmp_path):
    from sbdbench.methods.files import denoise_file

    rng = np.random.default_rng(0)
    cloud = rng.normal(size=(3000, 3))
    cloud /= np.linalg.norm(cloud, axis=1, keepdims=True)
    np.savetxt(tmp_path / "in.xyz", cloud + rng.normal(0, 0.02, cloud.shape))
    info = denoise_file(tmp_path / "in.xyz", tmp_path / "out.xyz", "jet", noise_level=0.02, params={"iterations": "1"})
    expected = make_method("jet", tuned_for=(3000, 0.02), iterations=1)
    assert info["params"] == expected.get_params() and info["cell"] is not None
