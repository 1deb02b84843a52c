"""The benchmark grid: which cells (method × params × dataset × N × σ) a bench run covers.

A :class:`Cell` is the unit of work, of storage and of resumption. Its :attr:`Cell.key` hashes
everything that changes its numbers — method, parameters, the dataset's manifest, the resolution,
the noise model and level — so changed settings or a rebuilt dataset are new cells, never a
silent mix with old ones.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from sbdbench.errors import DataError, InputError, SbdbenchError
from sbdbench.methods.params import canonical_spec, method_name, split_spec, typed_overrides
from sbdbench.methods.settings import baselines_dir  # noqa: F401  (the frozen settings' folder; leaderboard reads it here)
from sbdbench.protocol import DEFAULT_RESOLUTIONS, DEFAULT_SIGMAS, GAUSSIAN  # noqa: F401  (re-exported)

DEFAULT_DATASETS: Tuple[str, ...] = ("synth",)
DEFAULT_NOISE_LEVELS = DEFAULT_SIGMAS  # the bench's name for the protocol's default σ list

#: ``--quick``: the default methods at 10K × 1/2/3 %, without the methods too slow for a 2-core,
#: 10-minute run including the dataset build (README "Benchmark and leaderboard" has the timing).
QUICK_RESOLUTIONS: Tuple[int, ...] = (10000,)
QUICK_NOISE_LEVELS: Tuple[float, ...] = DEFAULT_NOISE_LEVELS
#: left out of ``--quick``: scoring alone costs ~35 CPU-s per 18-shape 10K cell, so only the fast
#: classical methods fit; these take 1-3 s per 10K shape on CPU (the learned ones far more).
QUICK_EXCLUDED: Tuple[str, ...] = ("wlop", "mls", "bilateral", "score", "sbd")


def canonical_json(value: Any) -> str:
    """Stable JSON (sorted keys, no spaces) used for hashing and storing parameters."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def short_hash(text: str | bytes, n: int = 16) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()[:n]


def cell_data_hash(dataset, n_points: int, sigma: float, noise: str = GAUSSIAN) -> str:
    """A hash of the manifest entries (sha256 of every file, and the categories) that one cell reads:
    its noisy inputs, the clean test clouds at N and the test meshes.

    Only what the cell reads counts, so adding a resolution or the training split to a dataset keeps
    the finished cells, while any changed input file makes new ones. A registered foreign folder
    without a manifest is hashed from the names and sizes of those files instead.
    """
    from sbdbench.protocol import clean_rel_dir, mesh_rel_dir, noisy_rel_dir

    prefixes = (noisy_rel_dir(dataset.name, n_points, sigma, noise) + "/", clean_rel_dir(dataset.name, "test", n_points) + "/",
                mesh_rel_dir(dataset.name, "test") + "/")
    files = dataset.manifest.get("files") if isinstance(dataset.manifest, dict) else None
    if files:
        chosen = sorted((path, str(entry.get("sha256") if isinstance(entry, dict) else entry))
                        for path, entry in files.items() if path.startswith(prefixes))
        if chosen:
            categories = sorted((s, dataset.category(s)) for s in dataset.shapes("test"))
            return short_hash(canonical_json([chosen, categories]))
    listing = []
    root = Path(dataset.root)
    for prefix in prefixes:
        base = root / prefix
        if base.is_dir():
            listing += [f"{p.relative_to(root)}:{p.stat().st_size}" for p in sorted(base.iterdir()) if p.is_file()]
    return "nomanifest-" + short_hash("\n".join(listing), 12)


@dataclass(frozen=True)
class Cell:
    """One benchmark cell. Plain data (strings and numbers) so it pickles to any worker."""

    method: str
    params_json: str
    dataset: str
    dataset_root: str
    manifest_hash: str  # :func:`cell_data_hash`: the manifest entries of the files this cell reads
    n_points: int
    sigma: float
    noise: str = GAUSSIAN
    device: str = "cpu"
    #: :meth:`~sbdbench.methods.base.Denoiser.artifact_digest` (weights file of a learned method), "" if none
    artifacts: str = ""
    #: where the metrics run when not on ``device`` ("" = on ``device``); not part of the key: every
    #: backend computes the same exact distances (float tolerance)
    metrics_device: str = ""

    @property
    def params(self) -> Dict[str, Any]:
        return json.loads(self.params_json)

    @property
    def method_name(self) -> str:
        """The registered method (``method`` may be a variant such as ``score:weights=official``)."""
        return method_name(self.method)

    @property
    def params_hash(self) -> str:
        return short_hash(self.params_json, 12)

    @property
    def key(self) -> str:
        """Identity of the cell's numbers (the device only counts when it is a method parameter; the
        weights file of a learned method counts through :attr:`artifacts`)."""
        parts = [self.method, self.params_hash, self.dataset, self.manifest_hash,
                 str(int(self.n_points)), f"{float(self.sigma):g}", self.noise]
        if self.artifacts:
            parts.append(self.artifacts)
        ident = "|".join(parts)
        return short_hash(ident, 20)

    @property
    def label(self) -> str:
        noise = "" if self.noise == GAUSSIAN else f" ({self.noise})"
        return f"{self.method} on {self.dataset} {format_n(self.n_points)} {self.sigma * 100:g}%{noise}"


def format_n(n_points: int) -> str:
    """10000 → '10K', 1234 → '1234' (as the papers label resolutions)."""
    n_points = int(n_points)
    return f"{n_points // 1000}K" if n_points % 1000 == 0 else str(n_points)


@dataclass
class Grid:
    """The cells of a bench run plus notes on what was left out and why."""

    cells: List[Cell] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


# --- defaults -----------------------------------------------------------------------------------
#: always in the default grid: parameter-free reference rows (the noisy input itself).
ALWAYS_DEFAULT: Tuple[str, ...] = ("noisy",)


def methods_with_frozen_settings() -> List[str]:
    """Registered methods that have a ``baselines/<method>.toml``, plus the parameter-free reference
    rows of :data:`ALWAYS_DEFAULT` (the default bench methods)."""
    from sbdbench.methods import available_methods

    folder = baselines_dir()
    frozen = {p.stem for p in folder.glob("*.toml")} if folder.is_dir() else set()
    methods = [m for m in available_methods() if m in frozen]
    if not methods:
        return []
    return [m for m in available_methods() if m in ALWAYS_DEFAULT and m not in methods] + methods


def parse_method_spec(spec: str) -> Tuple[str, Dict[str, Any]]:
    """``"score:weights=official:T=8"`` → ``("score", {"weights": "official", "T": 8})``, the values typed by the
    method's constructor (:mod:`sbdbench.methods.params`).

    A variant is a registered method with some parameters fixed; it is benchmarked and ranked under
    its own name (the whole spec), next to the method's frozen settings."""
    from sbdbench.methods import get_method_class

    name, _ = split_spec(spec)
    return name, typed_overrides(spec, get_method_class(name))


def method_params(method: str, n_points: int, sigma: float, device: str) -> Dict[str, Any]:
    """The parameters a cell sets (frozen at (N, σ), then the variant's, then ``device`` for a torch method): what
    :func:`sbdbench.methods.resolve.resolve_method` resolves. Unknown variant parameters, or values not of the
    constructor's types, are an :class:`InputError`."""
    from sbdbench.methods import resolve_method

    return resolve_method(method, n_points, sigma, device=device).settings


def check_method_params(method: str, params: Dict[str, Any]) -> None:
    """Instantiate ``method`` with ``params`` and run its own parameter check (one-line InputError)."""
    from sbdbench.methods import make_method

    try:
        make_method(method_name(method), **params)._check_params()
    except InputError as exc:
        raise InputError(f"method {method!r}: {exc}") from None


def canonical_methods(methods: Sequence[str]) -> List[str]:
    """Each spec in its canonical spelling (``pca:k=03`` → ``pca:k=3``), duplicates dropped, order kept."""
    from sbdbench.methods import get_method_class

    return list(dict.fromkeys(canonical_spec(m, get_method_class(method_name(m))) for m in methods))


def _require_items(value, what: str, example: str) -> None:
    if value is not None and len(list(value)) == 0:
        raise InputError(f"the list of {what} is empty: name at least one (e.g. {example}), or leave the option out for the default")


def _artifact_digest(method: str, params: Dict[str, Any]) -> str:
    """The method's :meth:`~sbdbench.methods.base.Denoiser.artifact_digest` with these parameters, or "".

    Computing it resolves a learned method's weights file, so a missing or unreadable file is a one-line
    error naming the method before any cell starts (never a failed cell after the bench began)."""
    from sbdbench.methods import make_method

    try:
        return make_method(method_name(method), **params).artifact_digest() or ""
    except SbdbenchError as exc:
        raise type(exc)(f"method {method!r}: {exc}") from None


def _cannot_start(method: str, device: str) -> Optional[str]:
    """Why ``method`` cannot be built with its frozen settings here (missing weights...), or None."""
    from sbdbench.methods import make_method

    probe_n, probe_sigma = DEFAULT_RESOLUTIONS[0], DEFAULT_NOISE_LEVELS[0]
    try:
        make_method(method_name(method), **method_params(method, probe_n, probe_sigma, device)).artifact_digest()
    except SbdbenchError as exc:
        return str(exc)
    return None


def build_grid(config=None, *grid_args, log: Callable[[str], None] = lambda msg: None, **fields) -> Grid:
    """The cells of a :class:`~sbdbench.bench.config.BenchConfig` (or of its fields, given as ``run_bench`` takes
    them); ``None`` means the default (or the ``quick`` subset).

    Empty lists, unknown methods or datasets, bad variant values, absent (N, σ) inputs and input files
    that no longer match the dataset's manifest are an :class:`InputError` / :class:`DataError` before
    anything runs. An absent synth dataset is built only with ``build`` (:mod:`sbdbench.bench.inputs`).
    """
    from sbdbench.bench.config import BenchConfig
    from sbdbench.bench.inputs import open_for_bench

    cfg = config
    if not isinstance(cfg, BenchConfig):  # fields, positionally as run_bench takes them or by name
        cfg = BenchConfig.of(*((config, *grid_args) if config is not None or grid_args else ()), **fields)
    for value, what, example in ((cfg.methods, "methods", "--methods pca"), (cfg.datasets, "datasets", "--datasets synth"),
                                 (cfg.resolutions, "resolutions", "--resolutions 10K"), (cfg.sigmas, "noise levels", "--sigmas 1%")):
        _require_items(value, what, example)
    grid = Grid()
    methods = _default_methods(grid, cfg.quick, cfg.device) if cfg.methods is None else _explicit_methods(cfg.methods)
    datasets = list(dict.fromkeys(cfg.datasets or DEFAULT_DATASETS))
    resolutions = cfg.resolutions or (QUICK_RESOLUTIONS if cfg.quick else DEFAULT_RESOLUTIONS)
    noise_levels = cfg.sigmas or (QUICK_NOISE_LEVELS if cfg.quick else DEFAULT_NOISE_LEVELS)
    digests: Dict[Tuple[str, str], str] = {}
    for ds_name in datasets:
        ds = open_for_bench(ds_name, resolutions, noise_levels, cfg.noise, quick=cfg.quick, build=cfg.build, log=log)
        for n in resolutions:
            for sigma in noise_levels:
                data_hash = _checked_cell_data(ds, int(n), float(sigma), cfg.noise)
                for m in methods:
                    grid.cells.append(_make_cell(m, ds, data_hash, int(n), float(sigma), cfg.noise, cfg.device,
                                                 cfg.metrics_device, digests))
    return grid


def _default_methods(grid: Grid, quick: bool, device: str) -> List[str]:
    methods = methods_with_frozen_settings()
    if quick:
        left_out = [m for m in methods if m in QUICK_EXCLUDED]
        methods = [m for m in methods if m not in QUICK_EXCLUDED]
        if left_out:
            grid.notes.append(f"--quick leaves out the slow method(s) {', '.join(left_out)}")
    if not methods:
        raise SbdbenchError(f"no method has frozen settings in {baselines_dir()} (pick methods with --methods)")
    usable = []
    for m in methods:  # a default method that cannot start here (e.g. weights not fetched) is skipped
        problem = _cannot_start(m, device)
        if problem:
            grid.notes.append(f"skipped {m}: {problem}")
        else:
            usable.append(m)
    return usable


def _explicit_methods(methods: Sequence[str]) -> List[str]:
    """The canonical specs; an unknown name is a one-line error (looked up the classical family first, so a
    classical bench never imports torch)."""
    from sbdbench.methods import available_methods
    from sbdbench.methods.base import get_method_class

    unknown = []
    for m in dict.fromkeys(methods):
        name = method_name(m)  # a malformed spec is its own one-line error
        try:
            get_method_class(name)
        except InputError:
            unknown.append(m)
    if unknown:
        raise InputError(f"unknown method(s) {', '.join(unknown)} (available: {', '.join(available_methods())})")
    return canonical_methods(methods)


def _checked_cell_data(ds, n: int, sigma: float, noise: str) -> str:
    """The cell's data hash, once its inputs exist and match the manifest (else a one-line DataError)."""
    from sbdbench.bench.inputs import missing_hint
    from sbdbench.data.integrity import check_cell_inputs

    have_res = ds.resolutions("test")
    if n not in have_res:
        raise DataError(f"dataset {ds.name!r} has no test clouds at {n} points (has: {', '.join(map(str, have_res)) or 'none'})"
                        + missing_hint(ds, [n], [sigma]))
    have_sigma = ds.noise_levels(n, noise)
    if not any(abs(s - sigma) < 1e-9 for s in have_sigma):
        raise DataError(f"dataset {ds.name!r} has no {noise} noisy inputs at {n} points σ={sigma:g} "
                        f"(has: {', '.join(f'{s:g}' for s in have_sigma) or 'none'})" + missing_hint(ds, [n], [sigma]))
    check_cell_inputs(ds, n, sigma, noise)
    return cell_data_hash(ds, n, sigma, noise)


def _make_cell(m: str, ds, data_hash: str, n: int, sigma: float, noise: str, device: str,
               metrics_device: Optional[str], digests: Dict[Tuple[str, str], str]) -> Cell:
    params = method_params(m, n, sigma, device)
    params_json = canonical_json(params)
    if (m, params_json) not in digests:  # check and hash each weights file once, not once per cell
        check_method_params(m, params)
        digests[(m, params_json)] = _artifact_digest(m, params)
    return Cell(m, params_json, ds.name, str(ds.root), data_hash, n, sigma, noise, device, digests[(m, params_json)],
                metrics_device or "")
