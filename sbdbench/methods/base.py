"""One interface for every denoiser, classical or learned, in the spirit of scikit-learn's estimators.

* Parameters go in the constructor, are stored as given under the same names, and are reported by
  :meth:`Denoiser.get_params` (so a run is reproducible from its params).
* The work is in one method, :meth:`Denoiser.denoise`: an (N, 3) array in any frame in, an (M, 3)
  array in the same frame out. The base class validates the input, normalises it to the unit sphere
  as the ScoreDenoise protocol does, calls :meth:`Denoiser._denoise_unit` and maps the result back.
* ``preserves_count`` says whether M == N always holds. The benchmark relies on it.

A method is registered with :func:`register`; third-party packages register theirs through the entry
point group ``sbdbench.methods`` (``name = "package.module:ClassName"``), no fork needed.
"""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Optional, Tuple, Type

import numpy as np

from sbdbench.errors import InputError, SbdbenchError
from sbdbench.geometry import check_points, denormalize_unit_sphere, normalize_unit_sphere

ENTRY_POINT_GROUP = "sbdbench.methods"

# Modules whose import registers the built-in methods. Listed here (not imported at start-up) so that
# `import sbdbench` stays fast and a broken optional method never blocks the others. The first (classical,
# numpy/scipy only) is imported on its own by `get_method_class`; the learned family imports torch.
BUILTIN_MODULES = (
    "sbdbench.methods.classical",
    "sbdbench.methods.learned",
)


@dataclass(frozen=True)
class BlockSettings:
    """How :func:`sbdbench.methods.blocks.denoise_in_blocks` runs a method on spatial blocks of one cloud."""

    #: a copy of the method with its cloud-wide quantities (k, σ, passes) fixed from the whole cloud
    method: "Denoiser"
    #: the overlap: how far (unit-sphere units) the points a core point's output depends on can lie from it
    margin: float
    #: working bytes per input point of one run (measured, docs/scaling.md): sizes blocks under a memory cap
    bytes_per_point: float
    #: the σ every block is given (the whole cloud's, given or estimated once), so no block estimates its own
    noise_level: Optional[float] = None
    #: working megabytes that do not grow with the block (a chunked kNN pass's per-chunk arrays)
    fixed_mb: float = 0.0


class Denoiser:
    """Base class of every denoiser.

    Subclasses set the class attributes, take their parameters as explicit keyword arguments of
    ``__init__`` (stored unchanged on ``self``), and implement :meth:`_denoise_unit`.
    """

    #: registry name, used by the CLI (``--method NAME``) and the results store.
    name: ClassVar[str] = ""
    #: the paper the method follows (one line), shown by ``sbdbench methods``.
    paper: ClassVar[str] = ""
    #: a link to the paper (DOI, arXiv, HAL), where known; the leaderboard shows ``paper`` as plain text otherwise.
    paper_url: ClassVar[str] = ""
    #: the authors' reference code, where there is one (the leaderboard's "code" link).
    code_url: ClassVar[str] = ""
    #: whether the output always has exactly as many points as the input.
    preserves_count: ClassVar[bool] = True
    #: whether the method runs torch code and honours a ``device`` parameter.
    uses_torch: ClassVar[bool] = False
    #: what the method does, in a few words (the ``sbdbench methods`` table and the README).
    summary: ClassVar[str] = ""
    #: the grid ``sbdbench tune`` searches: {parameter: [values]} (empty = nothing to tune).
    tuning_grid: ClassVar[Dict[str, List[Any]]] = {}
    #: how blocks are merged (:mod:`sbdbench.methods.blocks`): ``"own"`` (output i is input i moved: each core
    #: point keeps its own output), ``"pool"`` (N points but not 1:1: the outputs next to each core are pooled and
    #: FPS-sampled back to N), or ``""`` (never split: the method runs on the whole cloud).
    block_merge: ClassVar[str] = ""

    def block_settings(self, unit_points: np.ndarray, noise_level: Optional[float]) -> BlockSettings:
        """The method's :class:`BlockSettings` for this (N, 3) unit-sphere cloud (only when ``block_merge``)."""
        raise NotImplementedError(f"{self.name} cannot run in blocks")

    def unavailable_reason(self) -> Optional[str]:
        """Why this instance cannot run on this machine (e.g. missing weights), or None if it can.

        The conformance test skips a method with that reason instead of failing; ``denoise`` itself
        should still raise a clear :class:`~sbdbench.errors.SbdbenchError` in that case.
        """
        return None

    def artifact_digest(self) -> Optional[str]:
        """A digest of what decides the output besides the parameters (a learned method's weights file),
        or None when nothing does. The bench folds it into each cell's identity, so re-trained or
        re-installed weights make new cells instead of reusing numbers of the old ones."""
        return None

    def _check_params(self) -> None:
        """Validate the constructor parameters (raise :class:`InputError`); runs before each denoise,
        since parameters are stored unchecked, scikit-learn style."""

    # --- scikit-learn style parameter handling ---------------------------------------------------
    @classmethod
    def _param_names(cls) -> List[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    @classmethod
    def default_params(cls) -> Dict[str, Any]:
        """The constructor's defaults, by name."""
        sig = inspect.signature(cls.__init__)
        return {n: sig.parameters[n].default for n in cls._param_names() if sig.parameters[n].default is not inspect.Parameter.empty}

    def get_params(self) -> Dict[str, Any]:
        """The constructor parameters of this instance (as given), for reproducibility."""
        return {n: getattr(self, n) for n in self._param_names()}

    def set_params(self, **params: Any) -> "Denoiser":
        """Set constructor parameters by name; unknown names are an error."""
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise InputError(f"method {self.name!r} has no parameter {key!r} (parameters: {', '.join(sorted(valid)) or 'none'})")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # --- the one entry point ---------------------------------------------------------------------
    def denoise(self, points, *, noise_level: Optional[float] = None) -> np.ndarray:
        """Denoise an (N, 3) cloud given in any frame; returns the cloud in the same frame.

        Args:
            points: (N, 3) array-like. It is never modified.
            noise_level: Gaussian σ as a fraction of the cloud's bounding-sphere radius (0.01 = "1 %"),
                when known; methods that need it estimate it otherwise.

        Returns:
            (M, 3) float64 array; M == N when ``preserves_count``.
        """
        self._check_params()
        pts = check_points(points, name=f"{self.name} input")  # finite, |x| ≤ MAX_ABS_COORD: the frame cannot overflow
        noise_level = check_noise_level(noise_level)
        unit, center, scale = normalize_unit_sphere(pts)
        out = self._check_output(self._denoise_unit(unit.copy(), noise_level), len(pts), "unit-sphere")
        return self._check_output(denormalize_unit_sphere(out, center, scale), len(pts), "input")

    def _check_output(self, out, n_in: int, frame: str) -> np.ndarray:
        """The method's output as (M, 3) float64, refused when malformed or not finite in ``frame``."""
        try:
            out = np.asarray(out, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise SbdbenchError(f"method {self.name!r} returned a non-numeric result ({exc})") from None
        if out.ndim != 2 or out.shape[1] != 3:
            raise SbdbenchError(f"method {self.name!r} returned shape {out.shape}, expected (M, 3)")
        if self.preserves_count and len(out) != n_in:
            raise SbdbenchError(f"method {self.name!r} returned {len(out)} points for {n_in} (it claims to preserve the count)")
        if not np.isfinite(out).all():
            raise SbdbenchError(f"method {self.name!r} returned NaN/Inf coordinates (in the {frame} frame)")
        return out

    def _denoise_unit(self, points: np.ndarray, noise_level: Optional[float]) -> np.ndarray:
        """Denoise a cloud already in the unit sphere (bbox centre at the origin, max radius 1)."""
        raise NotImplementedError


def check_noise_level(noise_level) -> Optional[float]:
    """None, or σ as a finite float ≥ 0; anything else is an :class:`InputError`."""
    if noise_level is None:
        return None
    if isinstance(noise_level, (bool, np.bool_)) or np.iscomplexobj(noise_level):
        raise InputError(f"noise_level must be a finite number ≥ 0, got {noise_level!r}")
    try:
        value = float(noise_level)
    except (TypeError, ValueError):
        raise InputError(f"noise_level must be a finite number ≥ 0, got {noise_level!r}") from None
    if not np.isfinite(value) or value < 0:
        raise InputError(f"noise_level must be a finite number ≥ 0, got {noise_level!r}")
    return value


# --- registry ------------------------------------------------------------------------------------
_REGISTRY: Dict[str, Type[Denoiser]] = {}
_LOADED = False
_LOAD_ERRORS: Dict[str, str] = {}
_IMPORTED: set = set()


def register(cls: Type[Denoiser]) -> Type[Denoiser]:
    """Class decorator: add a :class:`Denoiser` subclass to the registry under ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, Denoiser)):
        raise TypeError(f"{cls!r} is not a Denoiser subclass")
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no `name`")
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing is not cls and existing.__qualname__ != cls.__qualname__:
        raise TypeError(f"method name {cls.name!r} is already taken by {existing.__module__}.{existing.__qualname__}")
    _REGISTRY[cls.name] = cls
    return cls


def _import_builtin(module: str) -> None:
    """Import one built-in family once (its modules register their methods: the one place registration happens).
    A built-in family always exists: a failure to import it is a bug and raises."""
    if module not in _IMPORTED:
        importlib.import_module(module)
        _IMPORTED.add(module)


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for module in BUILTIN_MODULES:
        _import_builtin(module)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if isinstance(obj, type) and issubclass(obj, Denoiser):
                register(obj)
        except Exception as exc:
            _LOAD_ERRORS[f"entry point {ep.name}"] = f"{type(exc).__name__}: {exc}"


def available_methods() -> List[str]:
    """Names of all registered methods (built-in and plug-ins), sorted."""
    _load_all()
    return sorted(_REGISTRY)


def get_method_class(name: str) -> Type[Denoiser]:
    """The class registered under ``name``; a clear error lists the known names otherwise.

    The classical family is looked at first and the others (torch, plug-ins) only when the name is not
    there, so a classical method never imports torch."""
    _import_builtin(BUILTIN_MODULES[0])
    if name not in _REGISTRY:
        _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        extra = f" (failed to load: {'; '.join(f'{k}: {v}' for k, v in _LOAD_ERRORS.items())})" if _LOAD_ERRORS else ""
        raise InputError(f"unknown method {name!r} (available: {', '.join(sorted(_REGISTRY))}){extra}") from None


def make_method(name: str, *, tuned_for: Optional[Tuple[int, Optional[float]]] = None, **params: Any) -> Denoiser:
    """Instantiate a registered method with the given parameters (unknown ones are an error).

    ``tuned_for=(n_points, sigma)``: the method exactly as ``sbdbench run``/``denoise``/``bench`` run it on such a
    cloud — the frozen settings of the nearest tuned cell, then ``params`` (see
    :func:`sbdbench.methods.resolve.resolve_method`). Without it, the constructor defaults, then ``params``.
    """
    if tuned_for is not None:
        from sbdbench.methods.resolve import resolve_method  # resolve builds on this module

        n_points, sigma = tuned_for
        return resolve_method(name, int(n_points), sigma, overrides=params).method
    cls = get_method_class(name)
    valid = set(cls._param_names())
    unknown = set(params) - valid
    if unknown:
        raise InputError(f"method {name!r} has no parameter(s) {', '.join(sorted(unknown))} (parameters: {', '.join(sorted(valid)) or 'none'})")
    return cls(**params)


def load_errors() -> Dict[str, str]:
    """Modules or plug-ins that failed to import, with their error (shown by ``sbdbench methods``)."""
    _load_all()
    return dict(_LOAD_ERRORS)
