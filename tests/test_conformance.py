"""Every registered method passes the interface contract; the check itself catches broken methods;
third-party methods plug in through the ``sbdbench.methods`` entry point group."""

from __future__ import annotations

import functools
import sys
import textwrap

import numpy as np
import pytest

from sbdbench.errors import DataError
from sbdbench.methods import base
from sbdbench.methods.base import Denoiser, available_methods, get_method_class, make_method, register
from sbdbench.methods.conformance import CHECKS, ConformanceError, check_denoiser, checks_for, noisy_sphere, parametrize_with_checks


@functools.lru_cache(maxsize=None)
def _skip_reason(name: str):
    """Why a registered method cannot run here (missing weights), or None."""
    method = get_method_class(name)()
    reason = method.unavailable_reason()
    if reason:
        return reason
    if method.uses_torch:
        try:
            method.denoise(noisy_sphere(1000), noise_level=0.02)
        except DataError as exc:  # e.g. a checkpoint that is not on this machine
            return str(exc)
    return None


@parametrize_with_checks(available_methods())
def test_registered_method_conforms(method, check):
    reason = _skip_reason(method.name)
    if reason:
        pytest.skip(f"{method.name}: {reason}")
    check(method)


def test_checks_follow_the_capability_flags():
    assert checks_for("pca") == list(CHECKS)
    assert checks_for("score") == [*CHECKS, "torch_device"]
    mark = parametrize_with_checks(["pca", _Good(strength=0.2)]).mark
    assert mark.kwargs["ids"][:2] == ["pca-class_attributes", "pca-params_roundtrip"]
    assert len(mark.args[1]) == 2 * len(CHECKS) and mark.args[1][-1][0].strength == 0.2


def test_builtin_classical_methods_are_registered():
    assert {"noisy", "pca", "jet", "bilateral", "mls", "wlop", "laplacian", "taubin", "graph_lap"} <= set(available_methods())


# --- the check must catch real contract violations --------------------------------------------------
class _Base(Denoiser):
    paper = "test double"

    def __init__(self, strength: float = 0.5) -> None:
        self.strength = strength


class _ModifiesInput(_Base):
    name = "t_modifies"

    def denoise(self, points, *, noise_level=None):
        if isinstance(points, np.ndarray) and points.flags.writeable:
            points *= 1.0 + 1e-3
        return super().denoise(points, noise_level=noise_level)

    def _denoise_unit(self, points, noise_level):
        return points


class _Random(_Base):
    name = "t_random"

    def _denoise_unit(self, points, noise_level):
        return points + 1e-3 * np.random.default_rng().normal(size=points.shape)


class _DropsPoints(_Base):
    name = "t_drops"
    preserves_count = True

    def _denoise_unit(self, points, noise_level):
        return points[: len(points) // 2]


class _RenamesParam(_Base):
    name = "t_renames"

    def __init__(self, strength: float = 0.5) -> None:
        self.strength_ = strength

    def _denoise_unit(self, points, noise_level):
        return points


class _Good(_Base):
    name = "t_good"

    def _denoise_unit(self, points, noise_level):
        return points * (1.0 - 0.01 * self.strength)


class _IgnoresDevice(_Base):
    name = "t_ignores_device"
    uses_torch = True

    def __init__(self, strength: float = 0.5, device: str = "cpu") -> None:
        self.strength = strength
        self.device = device

    def _denoise_unit(self, points, noise_level):
        return points


@pytest.mark.parametrize("cls,check", [
    (_IgnoresDevice, "torch_device"),
    (_ModifiesInput, "does_not_modify_input"),
    (_Random, "deterministic"),
    (_DropsPoints, "output_shape_and_finite"),
    (_RenamesParam, "params_roundtrip"),
])
def test_check_catches_violations(cls, check):
    with pytest.raises(ConformanceError, match=rf"\[{check}\]"):
        check_denoiser(cls, checks=[check])
    with pytest.raises(ConformanceError):
        check_denoiser(cls)  # and the full check fails too


def test_check_passes_a_minimal_method_and_accepts_instances():
    assert check_denoiser(_Good) == list(CHECKS)
    assert check_denoiser(_Good(strength=0.1), checks=["deterministic"]) == ["deterministic"]
    with pytest.raises(ValueError, match="unknown check"):
        check_denoiser(_Good, checks=["nope"])


# --- plug-ins ---------------------------------------------------------------------------------------
@pytest.fixture()
def clean_registry():
    saved_registry, saved_loaded, saved_errors = dict(base._REGISTRY), base._LOADED, dict(base._LOAD_ERRORS)
    yield
    base._REGISTRY.clear()
    base._REGISTRY.update(saved_registry)
    base._LOADED = saved_loaded
    base._LOAD_ERRORS.clear()
    base._LOAD_ERRORS.update(saved_errors)


def test_third_party_method_registers_through_entry_point(tmp_path, monkeypatch, clean_registry):
    (tmp_path / "my_denoiser_pkg.py").write_text(textwrap.dedent('''
        from sbdbench.methods.base import Denoiser

        class Shrink(Denoiser):
            name = "my_shrink"
            paper = "nobody, 2026"

            def __init__(self, factor: float = 0.9):
                self.factor = factor

            def _denoise_unit(self, points, noise_level):
                return points * self.factor
    '''))
    dist = tmp_path / "my_denoiser_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-denoiser-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[sbdbench.methods]\nmy_shrink = my_denoiser_pkg:Shrink\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    base._LOADED = False
    assert "my_shrink" in available_methods()
    method = make_method("my_shrink", factor=0.5)
    pts = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    out = method.denoise(pts)
    np.testing.assert_allclose(out, (pts - [1.0, 0.5, 0.0]) * 0.5 + [1.0, 0.5, 0.0])  # shrunk about the bbox centre
    check_denoiser("my_shrink")
    sys.modules.pop("my_denoiser_pkg", None)


def test_broken_plugin_is_reported_not_fatal(tmp_path, monkeypatch, clean_registry):
    dist = tmp_path / "broken_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[sbdbench.methods]\nbroken = no_such_module_xyz:Thing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    base._LOADED = False
    assert "jet" in available_methods()
    assert any("broken" in k for k in base.load_errors())


def test_register_rejects_name_clash(clean_registry):
    class Other(Denoiser):
        name = "jet"
        paper = "x"

    with pytest.raises(TypeError, match="already taken"):
        register(Other)
