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

DEFAULT_DATASETS: Tuple[str, ...] = ("synth",)
DEFAULT_RESOLUTIONS: Tuple[int, ...] = (10000, 50000)
DEFAULT_NOISE_LEVELS: Tuple[float, ...] = (0.01, 0.02, 0.03)
GAUSSIAN = "gaussian"

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
    from sbdbench.data.dataset import noisy_dir_name

    prefixes = (f"examples/{noisy_dir_name(dataset.name, n_points, sigma, noise)}/",
                f"{dataset.name}/pointclouds/test/{int(n_points)}_poisson/",
                f"{dataset.name}/meshes/test/")
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
        return self.method.split(":", 1)[0]

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
def baselines_dir() -> Path:
    """The ``baselines/`` folder of the source tree (frozen settings and reported numbers)."""
    try:
        from sbdbench.methods import settings

        folder = getattr(settings, "BASELINES_DIR", None) or getattr(settings, "baselines_dir", None)
        if callable(folder):
            folder = folder()
        if folder:
            return Path(folder)
    except ImportError:
        pass
    return Path(__file__).resolve().parents[2] / "baselines"


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
    """``"score:weights=official:T=8"`` → ``("score", {"weights": "official", "T": 8})``.

    A variant is a registered method with some parameters fixed; it is benchmarked and ranked under
    its own name (the whole spec), next to the method's frozen settings."""
    name, *items = [part.strip() for part in str(spec).split(":")]
    overrides: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"method variant {spec!r}: expected name:key=value[:key=value...], got {item!r}")
        overrides[key.strip()] = _parse_value(value.strip())
    return name, overrides


def _parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def method_params(method: str, n_points: int, sigma: float, device: str) -> Dict[str, Any]:
    """Frozen parameters of ``method`` (or of a variant's method, overridden by the variant) at (N, σ);
    a torch method also gets ``device``. Unknown variant parameters are an :class:`InputError`."""
    from sbdbench.methods import get_method_class

    name, overrides = parse_method_spec(method)
    cls = get_method_class(name)
    try:
        from sbdbench.methods.settings import frozen_params

        params = dict(frozen_params(name, n_points, sigma) or {})
    except ImportError:
        params = {}
    unknown = sorted(set(overrides) - set(cls._param_names()))
    if unknown:
        raise InputError(f"method variant {method!r}: {name} has no parameter(s) {', '.join(unknown)} "
                         f"(it has: {', '.join(cls._param_names())})")
    params.update(overrides)
    if "device" in cls._param_names():
        params["device"] = device
    return params


def _artifact_digest(method: str, params: Dict[str, Any]) -> str:
    """The method's :meth:`~sbdbench.methods.base.Denoiser.artifact_digest` with these parameters, or ""
    (also when it cannot be computed here, e.g. weights not fetched: the cell then fails with that reason)."""
    from sbdbench.methods import make_method

    try:
        return make_method(parse_method_spec(method)[0], **params).artifact_digest() or ""
    except SbdbenchError:
        return ""


def _cannot_start(method: str, device: str) -> Optional[str]:
    """Why ``method`` cannot be built with its frozen settings here (missing weights...), or None."""
    from sbdbench.methods import make_method

    probe_n, probe_sigma = DEFAULT_RESOLUTIONS[0], DEFAULT_NOISE_LEVELS[0]
    try:
        make_method(parse_method_spec(method)[0], **method_params(method, probe_n, probe_sigma, device))
    except SbdbenchError as exc:
        return str(exc)
    return None


def _has_cells(ds, resolutions: Sequence[int], noise_levels: Sequence[float], noise: str) -> bool:
    have = set(ds.resolutions("test"))
    return all(int(n) in have and all(any(abs(s - x) < 1e-9 for x in ds.noise_levels(int(n), noise)) for s in noise_levels)
               for n in resolutions)


def _open_or_build(name: str, resolutions: Sequence[int], noise_levels: Sequence[float], noise: str,
                   quick: bool, log: Callable[[str], None]):
    """Open a dataset; the offline ``synth`` dataset is built (or completed) when it lacks default cells.

    ``--quick`` builds only what it needs when nothing is there (the test shapes at its resolutions,
    about a CPU-minute); otherwise the full default dataset is built (with the training family,
    several CPU-minutes). Non-default resolutions or noise levels are never built implicitly.
    """
    from sbdbench.data.dataset import open_dataset
    from sbdbench.paths import data_root

    try:
        ds = open_dataset(name)
    except DataError:
        if name != "synth":
            raise
        ds = None
    if name != "synth" or (ds is not None and _has_cells(ds, resolutions, noise_levels, noise)):
        return ds
    buildable = (noise == GAUSSIAN and set(map(int, resolutions)) <= set(DEFAULT_RESOLUTIONS)
                 and all(any(abs(s - d) < 1e-9 for d in DEFAULT_NOISE_LEVELS) for s in noise_levels))
    if not buildable or (ds is not None and Path(ds.root).resolve() != data_root().resolve()):
        if ds is None:
            raise DataError("dataset 'synth' is absent (create it with `sbdbench fetch synth`)")
        return ds  # build_grid names the missing cells
    from sbdbench.data.synth import build_synth_dataset

    if quick and ds is None:
        log(f"building the synth test shapes at {', '.join(map(str, resolutions))} points "
            "(about a CPU-minute; `sbdbench fetch synth` builds the full dataset)")
        build_synth_dataset(resolutions=sorted(map(int, resolutions)), include_train=False, progress=False)
    else:
        log("building the synth dataset (several CPU-minutes, once)")
        build_synth_dataset(progress=False)
    return open_dataset(name)


def build_grid(
    methods: Optional[Sequence[str]] = None,
    datasets: Optional[Sequence[str]] = None,
    resolutions: Optional[Sequence[int]] = None,
    noise_levels: Optional[Sequence[float]] = None,
    *,
    noise: str = GAUSSIAN,
    device: str = "cpu",
    metrics_device: Optional[str] = None,
    quick: bool = False,
    log: Callable[[str], None] = lambda msg: None,
) -> Grid:
    """The cells for the given choices; ``None`` means the default (or the ``quick`` subset).

    Unknown methods or datasets and absent (N, σ) inputs are an :class:`InputError` /
    :class:`DataError` before anything runs. The synth dataset is built when absent.
    """
    from sbdbench.methods import available_methods

    grid = Grid()
    known = available_methods()
    if methods is None:
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
        methods = usable
    else:
        methods = list(dict.fromkeys(methods))
        unknown = [m for m in methods if parse_method_spec(m)[0] not in known]
        if unknown:
            raise InputError(f"unknown method(s) {', '.join(unknown)} (available: {', '.join(known)})")
    datasets = list(dict.fromkeys(datasets or DEFAULT_DATASETS))
    if resolutions is None:
        resolutions = QUICK_RESOLUTIONS if quick else DEFAULT_RESOLUTIONS
    if noise_levels is None:
        noise_levels = QUICK_NOISE_LEVELS if quick else DEFAULT_NOISE_LEVELS

    digests: Dict[Tuple[str, str], str] = {}
    for ds_name in datasets:
        ds = _open_or_build(ds_name, resolutions, noise_levels, noise, quick, log)
        have_res = ds.resolutions("test")
        for n in resolutions:
            if int(n) not in have_res:
                raise DataError(f"dataset {ds_name!r} has no test clouds at {n} points (has: {', '.join(map(str, have_res)) or 'none'})")
            have_sigma = ds.noise_levels(int(n), noise)
            for sigma in noise_levels:
                if not any(abs(s - sigma) < 1e-9 for s in have_sigma):
                    raise DataError(f"dataset {ds_name!r} has no {noise} noisy inputs at {n} points σ={sigma:g} "
                                    f"(has: {', '.join(f'{s:g}' for s in have_sigma) or 'none'})")
                data_hash = cell_data_hash(ds, int(n), float(sigma), noise)
                for m in methods:
                    params = method_params(m, int(n), float(sigma), device)
                    params_json = canonical_json(params)
                    if (m, params_json) not in digests:  # hash each weights file once, not once per cell
                        digests[(m, params_json)] = _artifact_digest(m, params)
                    artifacts = digests[(m, params_json)]
                    grid.cells.append(Cell(m, params_json, ds_name, str(ds.root), data_hash, int(n), float(sigma),
                                           noise, device, artifacts, metrics_device or ""))
    return grid
