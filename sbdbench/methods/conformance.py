"""``check_denoiser``: the conformance check every registered method must pass (like sklearn's ``check_estimator``).

Third parties run it on their own class before registering it::

    from sbdbench.methods.conformance import check_denoiser
    check_denoiser(MyDenoiser)            # or an instance, or a registered name

Each check is a public function ``check_<name>(method, data)`` (``data`` a :class:`CheckInput`) that
raises :class:`ConformanceError` (an ``AssertionError``) naming the check and what was wrong. The
general checks (:data:`CHECKS`) apply to every method; the capability checks (:data:`CAPABILITY_CHECKS`)
to the methods whose class flags claim that capability (``uses_torch``: the ``device`` parameter is
honoured). :func:`checks_for` lists what applies to a method; in a test suite,
:func:`parametrize_with_checks` gives one pytest id per (method, check), as scikit-learn's does::

    @parametrize_with_checks(["pca", MyDenoiser(k=8)])
    def test_conforms(method, check):
        check(method)

The inputs are small (a noisy sphere of ``n_points`` points, 1000 by default) so learned
methods can be checked on CPU in seconds; pass ``n_points`` to suit a patch-based method.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Type, Union

import numpy as np

from sbdbench.errors import InputError, SbdbenchError
from sbdbench.methods.base import Denoiser, get_method_class

#: the checks, in the order they run.
CHECKS = (
    "class_attributes",
    "params_roundtrip",
    "output_shape_and_finite",
    "does_not_modify_input",
    "same_frame",
    "frame_equivariance",
    "deterministic",
    "accepts_array_likes",
    "noise_level_optional",
    "rejects_bad_input",
    "tiny_input",
)

#: checks that apply when a class flag claims the capability: {flag: (check, ...)}.
CAPABILITY_CHECKS: Dict[str, Tuple[str, ...]] = {
    "uses_torch": ("torch_device",),
}


@dataclass(frozen=True)
class CheckInput:
    """What every check runs on: the (N, 3) noisy test cloud, its σ, and the frame-equivariance tolerance."""

    points: np.ndarray
    sigma: float = 0.02
    frame_atol: float = 1e-4

    @classmethod
    def sphere(cls, n_points: int = 1000, sigma: float = 0.02, frame_atol: float = 1e-4) -> "CheckInput":
        return cls(noisy_sphere(n_points, sigma), sigma, frame_atol)


class ConformanceError(AssertionError):
    """A method broke the :class:`~sbdbench.methods.base.Denoiser` contract."""


def noisy_sphere(n_points: int = 1000, sigma: float = 0.02, seed: int = 0) -> np.ndarray:
    """A unit sphere sampled uniformly at random with Gaussian noise σ: the standard test input."""
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n_points, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    return p + sigma * rng.normal(size=p.shape)


def _fail(check: str, message: str) -> None:
    raise ConformanceError(f"[{check}] {message}")


def _instantiate(method_or_class: Union[str, Type[Denoiser], Denoiser]) -> Denoiser:
    if isinstance(method_or_class, str):
        return get_method_class(method_or_class)()
    if isinstance(method_or_class, type):
        if not issubclass(method_or_class, Denoiser):
            _fail("class_attributes", f"{method_or_class!r} is not a Denoiser subclass")
        return method_or_class()
    if not isinstance(method_or_class, Denoiser):
        _fail("class_attributes", f"{method_or_class!r} is not a Denoiser instance")
    return method_or_class


def _clone(method: Denoiser) -> Denoiser:
    return type(method)(**method.get_params())


def checks_for(method_or_class: Union[str, Type[Denoiser], Denoiser]) -> List[str]:
    """The checks that apply to a method: every general check, then those of the capabilities its class claims."""
    cls = method_or_class if isinstance(method_or_class, type) else type(_instantiate(method_or_class))
    extra = [name for flag, names in CAPABILITY_CHECKS.items() if getattr(cls, flag, False) for name in names]
    return list(CHECKS) + extra


def check_denoiser(method_or_class: Union[str, Type[Denoiser], Denoiser], *, n_points: int = 1000, sigma: float = 0.02,
                   checks: Optional[Sequence[str]] = None, frame_atol: float = 1e-4) -> List[str]:
    """Check a denoiser against the interface contract; returns the names of the checks run.

    Args:
        method_or_class: a registered name, a :class:`Denoiser` subclass (built with its defaults)
            or an instance (its parameters are used; it is cloned through ``get_params``).
        n_points: size of the test cloud (raise it for patch-based methods that need more points).
        sigma: noise of the test cloud (fraction of the unit sphere).
        checks: a subset of the check names (default: :func:`checks_for` the method).
        frame_atol: tolerance of the frame-equivariance check, relative to the cloud's radius.

    Raises:
        ConformanceError: the first check that fails, with its name in brackets.
    """
    method = _instantiate(method_or_class)
    selected = checks_for(method) if checks is None else list(checks)
    unknown = set(selected) - set(ALL_CHECKS)
    if unknown:
        raise ValueError(f"unknown check(s) {sorted(unknown)}; known: {', '.join(ALL_CHECKS)}")
    data = CheckInput.sphere(n_points, sigma, frame_atol)
    for name in selected:
        ALL_CHECKS[name](method, data)
    return selected


def parametrize_with_checks(methods: Sequence[Union[str, Type[Denoiser], Denoiser]], *, n_points: int = 1000,
                            sigma: float = 0.02, frame_atol: float = 1e-4):
    """A ``pytest.mark.parametrize`` over (method, check) pairs, one test id ``<method>-<check>`` each.

    The decorated test receives ``method`` (a :class:`Denoiser` instance) and ``check`` (a callable taking the
    method) and should call ``check(method)``. Names and classes are instantiated with their defaults."""
    import pytest

    params, ids = [], []
    data = CheckInput.sphere(n_points, sigma, frame_atol)
    for spec in methods:
        method = _instantiate(spec)
        for name in checks_for(method):
            params.append((method, functools.partial(_run_check, name, data=data)))
            ids.append(f"{method.name}-{name}")
    return pytest.mark.parametrize("method, check", params, ids=ids)


def _run_check(name: str, method: Denoiser, data: CheckInput) -> None:
    ALL_CHECKS[name](method, data)


# --- the checks ----------------------------------------------------------------------------------
def check_class_attributes(method: Denoiser, data: CheckInput) -> None:
    base, sigma, atol = data.points, data.sigma, data.frame_atol
    cls = type(method)
    if not isinstance(cls.name, str) or not cls.name or not cls.name.replace("_", "").replace("-", "").replace(".", "").isalnum():
        _fail("class_attributes", f"{cls.__name__}.name must be a non-empty identifier-like string, got {cls.name!r}")
    if not isinstance(cls.paper, str) or not cls.paper.strip():
        _fail("class_attributes", f"{cls.__name__}.paper must cite the method's paper (one line)")
    if not isinstance(cls.preserves_count, bool):
        _fail("class_attributes", f"{cls.__name__}.preserves_count must be a bool")
    sig = inspect.signature(cls.__init__)
    for p in sig.parameters.values():
        if p.name == "self":
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            _fail("class_attributes", f"{cls.__name__}.__init__ must list its parameters explicitly (no *args/**kwargs)")
        if p.default is inspect.Parameter.empty:
            _fail("class_attributes", f"{cls.__name__}.__init__ parameter {p.name!r} needs a default")
    if cls.uses_torch and "device" not in cls._param_names():
        _fail("class_attributes", f"{cls.__name__} uses torch but has no `device` parameter")
    for key in cls.tuning_grid:
        if key not in cls._param_names():
            _fail("class_attributes", f"{cls.__name__}.tuning_grid names {key!r}, which is not a constructor parameter")


def check_params_roundtrip(method: Denoiser, data: CheckInput) -> None:
    base, sigma, atol = data.points, data.sigma, data.frame_atol
    try:
        params = method.get_params()
    except AttributeError as exc:
        _fail("params_roundtrip", f"get_params() failed ({exc}): store each constructor parameter as self.<name>")
    if set(params) != set(type(method)._param_names()):
        _fail("params_roundtrip", f"get_params() keys {sorted(params)} != constructor parameters {sorted(type(method)._param_names())}")
    for key, value in params.items():
        if getattr(method, key) is not value:
            _fail("params_roundtrip", f"parameter {key!r} must be stored unchanged as attribute self.{key}")
    clone = _clone(method)
    if repr(clone.get_params()) != repr(params):
        _fail("params_roundtrip", f"type(m)(**m.get_params()) does not reproduce the parameters: {clone.get_params()} vs {params}")
    try:
        method.set_params(__no_such_parameter__=1)
    except InputError:
        pass
    else:
        _fail("params_roundtrip", "set_params accepted an unknown parameter")


def _denoise(method: Denoiser, points, check: str, **kw) -> np.ndarray:
    try:
        return method.denoise(points, **kw)
    except SbdbenchError as exc:
        _fail(check, f"denoise raised {type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - anything else is a contract violation
        _fail(check, f"denoise raised an unexpected {type(exc).__name__}: {exc}")
    raise AssertionError("unreachable")


def check_output_shape_and_finite(method: Denoiser, data: CheckInput) -> None:
    base, sigma, atol = data.points, data.sigma, data.frame_atol
    out = _denoise(method, base, "output_shape_and_finite", noise_level=sigma)
    if not isinstance(out, np.ndarray):
        _fail("output_shape_and_finite", f"denoise must return a numpy array, got {type(out).__name__}")
    if out.dtype != np.float64 or out.ndim != 2 or out.shape[1] != 3 or len(out) == 0:
        _fail("output_shape_and_finite", f"expected a non-empty (M, 3) float64 array, got {out.dtype} {out.shape}")
    if not np.isfinite(out).all():
        _fail("output_shape_and_finite", "output has NaN/Inf coordinates")
    if method.preserves_count and len(out) != len(base):
        _fail("output_shape_and_finite", f"preserves_count is True but {len(base)} points became {len(out)}")


def check_does_not_modify_input(method: Denoiser, data: CheckInput) -> None:
    base, sigma, atol = data.points, data.sigma, data.frame_atol
    pts = base.copy()
    _denoise(method, pts, "does_not_modify_input", noise_level=sigma)
    if not np.array_equal(pts, base):
        _fail("does_not_modify_input", "denoise modified its input array")
    frozen = base.copy()
    frozen.setflags(write=False)
    _denoise(method, frozen, "does_not_modify_input", noise_level=sigma)  # a read-only input must work


def check_same_frame(method: Denoiser, data: CheckInput) -> None:
    base, sigma, atol = data.points, data.sigma, data.frame_atol
    center, scale = np.array([120.0, -40.0, 7.5]), 35.0
    pts = base * scale + center
    out = _denoise(method, pts, "same_frame", noise_level=sigma)
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(pts).query(out)
    if np.median(dist) > 0.1 * scale:
        _fail("same_frame", f"the output is not in the input's frame (median distance to the input {np.median(dist):.3g} "
                            f"for a cloud of radius {scale}); map results back to the input frame")


def check_frame_equivariance(method: Denoiser, data: CheckInput) -> None:
    base, sigma, atol = data.points, data.sigma, data.frame_atol
    unit = _denoise(_clone(method), base, "frame_equivariance", noise_level=sigma)
    center, scale = np.array([-3.0, 250.0, 12.0]), 0.02
    moved = _denoise(_clone(method), base * scale + center, "frame_equivariance", noise_level=sigma)
    if moved.shape != unit.shape:
        _fail("frame_equivariance", f"output size depends on the frame: {unit.shape} vs {moved.shape}")
    err = np.abs((moved - center) / scale - unit).max()
    if err > atol:
        _fail("frame_equivariance", f"scaling/translating the input changed the result by {err:.3g} (unit-sphere units, "
                                    f"tolerance {atol}); normalise internally as the protocol does")


def check_deterministic(method: Denoiser, data: CheckInput) -> None:
    base, sigma, atol = data.points, data.sigma, data.frame_atol
    a = _denoise(method, base, "deterministic", noise_level=sigma)
    b = _denoise(method, base, "deterministic", noise_level=sigma)
    c = _denoise(_clone(method), base, "deterministic", noise_level=sigma)
    for other, what in ((b, "a second call"), (c, "a fresh instance with the same parameters (seed)")):
        if other.shape != a.shape or not np.allclose(a, other, rtol=0, atol=1e-6):
            _fail("deterministic", f"{what} gave a different result; methods with randomness must take a `seed` parameter")


def check_accepts_array_likes(method: Denoiser, data: CheckInput) -> None:
    base, sigma, atol = data.points, data.sigma, data.frame_atol
    _denoise(method, base.astype(np.float32), "accepts_array_likes", noise_level=sigma)
    _denoise(method, base.tolist(), "accepts_array_likes", noise_level=sigma)
    _denoise(method, np.asfortranarray(base), "accepts_array_likes", noise_level=sigma)


def check_noise_level_optional(method: Denoiser, data: CheckInput) -> None:
    base, sigma, atol = data.points, data.sigma, data.frame_atol
    out = _denoise(method, base, "noise_level_optional")
    if not np.isfinite(out).all():
        _fail("noise_level_optional", "output with noise_level=None has NaN/Inf")


def _expect_input_error(method: Denoiser, points, what: str, check: str = "rejects_bad_input", **kw) -> None:
    try:
        method.denoise(points, **kw)
    except InputError as exc:
        if "\n" in str(exc).strip():
            _fail(check, f"{what}: the error message must be one line, got {str(exc)!r}")
        return
    except Exception as exc:  # noqa: BLE001
        _fail(check, f"{what}: expected sbdbench.errors.InputError, got {type(exc).__name__}: {exc}")
    _fail(check, f"{what}: was accepted; it must raise sbdbench.errors.InputError")


def check_rejects_bad_input(method: Denoiser, data: CheckInput) -> None:
    base, sigma, atol = data.points, data.sigma, data.frame_atol
    with_nan = base.copy()
    with_nan[3, 1] = np.nan
    with_inf = base.copy()
    with_inf[5, 0] = np.inf
    _expect_input_error(method, with_nan, "a NaN coordinate")
    _expect_input_error(method, with_inf, "an Inf coordinate")
    _expect_input_error(method, base[:, :2], "an (N, 2) array")
    _expect_input_error(method, base[None], "a (1, N, 3) array")
    _expect_input_error(method, np.zeros((0, 3)), "an empty cloud")
    _expect_input_error(method, "points.xyz", "a string")
    _expect_input_error(method, base, "noise_level=-0.01", noise_level=-0.01)
    _expect_input_error(method, base, "noise_level=nan", noise_level=float("nan"))


def check_tiny_input(method: Denoiser, data: CheckInput) -> None:
    base, sigma, atol = data.points, data.sigma, data.frame_atol
    for n in (1, 5):
        try:
            out = method.denoise(base[:n], noise_level=sigma)
        except InputError:
            continue  # a clear refusal is fine
        except Exception as exc:  # noqa: BLE001
            _fail("tiny_input", f"{n} point(s): expected a result or InputError, got {type(exc).__name__}: {exc}")
        if not np.isfinite(out).all() or (method.preserves_count and len(out) != n):
            _fail("tiny_input", f"{n} point(s): output must be finite with {n} points")


def check_torch_device(method: Denoiser, data: CheckInput) -> None:
    """``uses_torch``: an explicit ``device="cpu"`` gives the default's result, and a device that does not exist is
    refused with a one-line :class:`InputError` (never a torch traceback)."""
    base, sigma = data.points, data.sigma
    default = _denoise(_clone(method), base, "torch_device", noise_level=sigma)
    on_cpu = _denoise(_clone(method).set_params(device="cpu"), base, "torch_device", noise_level=sigma)
    if on_cpu.shape != default.shape or not np.allclose(default, on_cpu, rtol=0, atol=1e-6):
        _fail("torch_device", "device='cpu' given explicitly changed the result")
    bogus = _clone(method).set_params(device="no_such_device")
    _expect_input_error(bogus, base, "device='no_such_device'", "torch_device", noise_level=sigma)


#: every check by name (general first, then the capability checks), in the order they run.
ALL_CHECKS: Dict[str, Callable[[Denoiser, CheckInput], None]] = {
    **{name: globals()[f"check_{name}"] for name in CHECKS},
    **{name: globals()[f"check_{name}"] for names in CAPABILITY_CHECKS.values() for name in names},
}
