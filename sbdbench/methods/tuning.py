"""``sbdbench tune``: choose each method's parameters per (resolution, noise level) on TRAINING shapes.

Protocol (docs/methods.md; the papers published no settings for the classical baselines):

* shapes: a fixed subset of the dataset's ``train`` split (never ``test``), spread over categories;
  a learned method, whose weights have seen the training shapes, is tuned on the ``val`` split instead
  (``split="val"``, the split its training selected weights on);
  fewer shapes at large resolutions to keep tuning affordable;
* inputs: each clean training cloud, normalised to the unit sphere, plus seeded Gaussian noise
  (:func:`sbdbench.data.noise.add_noise`, seed derived from shape, N and σ);
* score: mean Chamfer distance to the clean cloud (lower is better), over the shapes;
* choice: the best point of the method's ``tuning_grid`` (ties → the earlier grid point), written with
  the grid, every trial's score, the shapes, the date and the sbdbench version to ``baselines/<method>.toml``.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from sbdbench.errors import DataError, InputError
from sbdbench.geometry import normalize_unit_sphere
from sbdbench.paths import atomic_write_text
from sbdbench.protocol import CELL_KEYS, DEFAULT_RESOLUTIONS, DEFAULT_SIGMAS, TunedCell  # noqa: F401  (CELL_KEYS: re-exported)

#: resolutions above this use ``max_shapes_large`` shapes.
LARGE_N = 20000
#: the splits tuning may read: never ``test``.
TUNING_SPLITS = ("train", "val")


def check_split(split: str) -> None:
    """Tuning reads ``train`` or ``val``, never ``test``: anything else is an :class:`InputError`."""
    if split not in TUNING_SPLITS:
        raise InputError(f"tuning split must be one of {', '.join(TUNING_SPLITS)} (never the test split), got {split!r}")


def grid_points(grid: Dict[str, Sequence[Any]]) -> List[Dict[str, Any]]:
    """All combinations of a {name: [values]} grid, in a fixed order (first key varies slowest)."""
    if not grid:
        return [{}]
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(list(grid[k]) for k in keys))]


def pick_shapes(dataset, count: int, split: str = "train") -> List[str]:
    """``count`` shapes of ``split``, alternating over categories and, within a category, over
    templates (``<template>_train07`` → ``<template>``), so a small subset covers smooth, sharp, thin
    and genus shapes and as many different templates as possible. Deterministic."""
    shapes = dataset.shapes(split)
    if not shapes:
        raise DataError(f"dataset {dataset.name!r} has no {split!r} shapes to tune on")
    by_cat: Dict[str, Dict[str, List[str]]] = {}
    for s in shapes:
        template = s.rsplit("_", 1)[0] if "_" in s else s
        by_cat.setdefault(dataset.category(s), {}).setdefault(template, []).append(s)
    queues = []
    for _, templates in sorted(by_cat.items()):
        groups = [sorted(v) for _, v in sorted(templates.items())]
        interleaved = [g[i] for i in range(max(map(len, groups))) for g in groups if i < len(g)]
        queues.append(interleaved)
    out: List[str] = []
    while len(out) < min(count, len(shapes)):
        for q in queues:
            if q and len(out) < count:
                out.append(q.pop(0))
    return out


def noise_seed(shape: str, n_points: int, sigma: float, seed: int = 0) -> int:
    """A stable per-(shape, N, σ) seed for the tuning noise (independent of Python's hash salt)."""
    return (zlib.crc32(f"{shape}:{int(n_points)}:{sigma:g}".encode()) + 1000003 * int(seed)) % (2 ** 31)


def training_pair(dataset, shape: str, n_points: int, sigma: float, seed: int = 0, split: str = "train"):
    """(clean unit cloud, noisy unit cloud) of a ``split`` shape (never ``test``) at N points and noise σ."""
    unit, noisy, _, _ = _unit_pair(dataset, shape, n_points, sigma, seed, split)
    return unit, noisy


def training_case(dataset, shape: str, n_points: int, sigma: float, seed: int = 0, split: str = "train"):
    """:func:`training_pair` and the shape's mesh in the same unit frame: (clean, noisy, verts, faces), for P2M."""
    unit, noisy, center, scale = _unit_pair(dataset, shape, n_points, sigma, seed, split)
    verts, faces = dataset.load_mesh(shape, split)
    return unit, noisy, (np.asarray(verts, dtype=np.float64) - center) / scale, faces


def tuning_inputs(dataset, n_points: int, sigma: float, max_shapes: int, *, seed: int = 0, split: str = "train",
                  meshes: bool = False) -> Dict[str, tuple]:
    """What ``tune --split SPLIT`` scores at one (N, σ) cell, shape by shape: the :func:`pick_shapes` subset of
    ``max_shapes``, each as :func:`training_pair` (clean, noisy) or, with ``meshes``, :func:`training_case`
    (clean, noisy, verts, faces). The one place that says which inputs tuning and val selection see."""
    make = training_case if meshes else training_pair
    return {shape: make(dataset, shape, n_points, sigma, seed, split) for shape in pick_shapes(dataset, max_shapes, split)}


def _unit_pair(dataset, shape: str, n_points: int, sigma: float, seed: int, split: str):
    """(clean unit cloud, noisy unit cloud, the frame's center, scale)."""
    from sbdbench.data.noise import add_noise

    check_split(split)
    clean_path = dataset.clean_path(shape, n_points, split)
    if clean_path.is_file():
        clean = dataset.load_clean(shape, n_points, split)
    else:  # a mesh without a cloud at this N: sample one (seeded)
        from sbdbench.data.sampling import sample_poisson

        verts, faces = dataset.load_mesh(shape, split)
        clean = sample_poisson(verts, faces, n_points, seed=noise_seed(shape, n_points, 0.0, seed))
    unit, center, scale = normalize_unit_sphere(clean)
    noisy = add_noise(unit, sigma, seed=noise_seed(shape, n_points, sigma, seed))
    return unit, np.asarray(noisy, dtype=np.float64), center, scale


#: the order of a frozen-settings TOML: top-level keys, then each ``[[cell]]``'s keys (:data:`~sbdbench.protocol.CELL_KEYS`).
SETTINGS_KEYS = ("method", "paper", "sbdbench_version", "date", "dataset", "split", "score", "seed", "fixed_params", "grid")


def _plain(value: Any) -> Any:
    """numpy scalars and arrays, tuples and non-string keys as the plain Python types tomli-w writes."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _as_cell(cell: Union[TunedCell, Mapping[str, Any]]) -> TunedCell:
    """A :class:`~sbdbench.protocol.TunedCell` as it is, a parsed TOML table as one."""
    return cell if isinstance(cell, TunedCell) else TunedCell.from_dict(cell)


def settings_toml(doc: Dict[str, Any]) -> str:
    """Render a tuning result (see :func:`tune_method`) as TOML, through tomli-w (keys quoted, strings escaped).
    The document's ``cell`` list holds :class:`~sbdbench.protocol.TunedCell` objects or their parsed TOML tables."""
    import tomli_w

    ordered: Dict[str, Any] = {key: doc[key] for key in SETTINGS_KEYS if key in doc}
    ordered["cell"] = [_as_cell(cell).to_dict() for cell in doc["cell"]]
    header = f"# Frozen settings of `{doc['method']}`, written by `sbdbench tune`. Do not edit by hand: re-run the tuning.\n\n"
    try:
        return header + tomli_w.dumps(_plain(ordered))
    except TypeError as exc:  # a value TOML cannot hold (None, an object): a bug in the caller, said in one line
        raise DataError(f"cannot write the tuned settings of {doc['method']!r} as TOML: {exc}") from None


@dataclass(frozen=True)
class TuneConfig:
    """What one ``sbdbench tune`` does.

    Fields:
        method: a registered method.
        dataset: dataset name (its ``split`` split is used, never ``test``).
        resolutions, sigmas: the cells to tune.
        max_shapes / max_shapes_large: training shapes per cell at N ≤ / > :data:`LARGE_N`.
        grid: override the method's ``tuning_grid``; fixed_params: extra params held fixed (text values are typed
            by the method's constructor).
        seed: noise seed offset.
        split: ``train`` (classical methods) or ``val`` (learned methods, whose weights saw ``train``).
        out: TOML path (default ``baselines/<method>.toml``); the file is rewritten after every cell,
            so an interrupted tuning keeps the finished cells.
        merge: keep the cells of an existing TOML that this run does not tune (e.g. tune 10K, then 50K).
        refine_keys: search only these grid keys; every other parameter is held at the choice of the
            nearest already-tuned cell with the same σ (read from ``refine_from``, default ``out``).
            Used at 50K, where the neighbourhood size is what must change with resolution
            (docs/methods.md, "Classical baselines") and a full grid costs 25× the 10K one.
        values: search these values of a searched key instead of all of its grid values (a part of the
            grid, when the rest is known not to win or costs too much); the TOML's ``grid`` stays the
            method's, each cell's ``trials`` list what was tried.
        within: cost is part of the choice: freeze the cheapest trial (wall seconds per shape) whose score is
            within this fraction of the best (0.01: 1 %); the cell then also records ``best_params`` / ``best_cd``.
            0 (default): the best trial.
        max_seconds: a cost cap (e.g. a baseline's seconds per shape on the same inputs): only trials at most this
            slow may be frozen; ``within`` then applies to the best of them. The best trial overall is still recorded.
    """

    method: str
    dataset: str = "synth"
    resolutions: Sequence[int] = DEFAULT_RESOLUTIONS
    sigmas: Sequence[float] = DEFAULT_SIGMAS
    max_shapes: int = 8
    max_shapes_large: int = 3
    grid: Optional[Dict[str, Sequence[Any]]] = None
    fixed_params: Optional[Dict[str, Any]] = None
    seed: int = 0
    split: str = "train"
    out: Optional[Path] = None
    merge: bool = True
    refine_keys: Optional[Sequence[str]] = None
    refine_from: Optional[Path] = None
    values: Optional[Dict[str, Sequence[Any]]] = None
    within: float = 0.0
    max_seconds: Optional[float] = None


def tune_method(method_name: str, dataset: str = "synth", resolutions: Sequence[int] = DEFAULT_RESOLUTIONS,
                noise_levels: Sequence[float] = DEFAULT_SIGMAS, *, log: Callable[[str], None] = print, **fields) -> Dict[str, Any]:
    """Grid-search ``method_name`` per (resolution, σ) on training shapes and write the frozen TOML: :func:`tune`
    of a :class:`TuneConfig` given field by field (the other fields by name)."""
    return tune(TuneConfig(method_name, dataset, tuple(resolutions), tuple(noise_levels), **fields), log=log)


def tune(config: TuneConfig, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run a :class:`TuneConfig`; ``log`` gets one line per trial. Returns the document written (the TOML's content,
    its ``cell`` list as :class:`~sbdbench.protocol.TunedCell` objects)."""
    from sbdbench.data.dataset import open_dataset
    from sbdbench.methods.settings import settings_out_path

    check_split(config.split)
    choose_trial([{"cd": 1.0, "seconds": 0.0}], config.within, config.max_seconds)  # bad tolerances are refused before any work
    cls, grid, fixed = _checked_search(config)
    ds = open_dataset(config.dataset)
    out = Path(config.out) if config.out is not None else settings_out_path(config.method)
    doc = _new_document(config, cls, grid, fixed)
    base_cells = _refine_base(config, grid, out)
    searched = _searched_grid(config, grid)
    points = grid_points(searched)
    doc["cell"] = _kept_cells(config, out)
    for n_points in config.resolutions:
        count = config.max_shapes if n_points <= LARGE_N else config.max_shapes_large
        for sigma in config.sigmas:
            held = dict(fixed)
            if config.refine_keys:
                from sbdbench.methods.settings import nearest_cell

                base = nearest_cell(base_cells, n_points, sigma)
                held.update({k: v for k, v in (base.params or {}).items() if k not in config.refine_keys})
            inputs = tuning_inputs(ds, n_points, sigma, count, seed=config.seed, split=config.split)
            cell, chosen_text = _tune_cell(config, inputs, n_points, sigma, held, points, log)
            cell.searched = list(searched)
            doc["cell"] = sorted(doc["cell"] + [cell], key=lambda c: (int(c.n_points), float(c.sigma)))
            atomic_write_text(out, settings_toml(doc))
            log(f"{config.method} N={n_points} σ={sigma:g}: chose {chosen_text} -> {out}")
    return doc


def _checked_search(config: TuneConfig):
    """(method class, the grid, the typed fixed parameters); a name the method lacks is a one-line error."""
    from sbdbench.methods.base import get_method_class
    from sbdbench.methods.params import typed_params

    cls = get_method_class(config.method)
    grid = dict(cls.tuning_grid if config.grid is None else config.grid)
    fixed = typed_params(cls, dict(config.fixed_params or {}), f"method {config.method!r}")
    for key in grid:
        if key not in cls._param_names():
            raise InputError(f"method {config.method!r} has no parameter {key!r}")
    return cls, grid, fixed


def _new_document(config: TuneConfig, cls, grid, fixed) -> Dict[str, Any]:
    from sbdbench import __version__

    return {
        "method": config.method, "paper": cls.paper, "sbdbench_version": __version__,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"), "dataset": config.dataset, "split": config.split,
        "score": f"mean Chamfer distance (cd, raw, unit-sphere frame) over the {config.split} shapes; lower is better",
        "seed": int(config.seed), "fixed_params": fixed, "grid": grid, "cell": [],
    }


def _read_toml(path: Path) -> Dict[str, Any]:
    from sbdbench.methods.settings import tomllib

    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _refine_base(config: TuneConfig, grid, out: Path) -> List[TunedCell]:
    """The already-tuned cells whose choices a refining run holds (empty when not refining)."""
    if not config.refine_keys:
        return []
    unknown = set(config.refine_keys) - set(grid)
    if unknown:
        raise InputError(f"refine key(s) {', '.join(sorted(unknown))} are not in the grid of {config.method!r} ({', '.join(grid)})")
    src = Path(config.refine_from) if config.refine_from is not None else out
    if src.is_file():
        from sbdbench.methods.settings import tomllib

        base_cells = [TunedCell.from_dict(c) for c in tomllib.loads(src.read_text(encoding="utf-8")).get("cell", [])]
    else:
        base_cells = []
    if not base_cells:
        raise DataError(f"refining {config.method!r} needs an already-tuned TOML ({src} has no cells); tune a lower resolution first")
    return base_cells


def _searched_grid(config: TuneConfig, grid) -> Dict[str, List[Any]]:
    """The grid keys this run searches (all, or ``refine_keys``), with ``values`` replacing a key's values."""
    searched = {k: v for k, v in grid.items() if not config.refine_keys or k in config.refine_keys}
    for key, chosen in (config.values or {}).items():
        if key not in searched:
            raise InputError(f"values given for {key!r}, which this run does not search ({', '.join(searched) or 'nothing'})")
        if not list(chosen):
            raise InputError(f"no values given for {key!r}")
        searched[key] = list(chosen)
    return searched


def _kept_cells(config: TuneConfig, out: Path) -> List[TunedCell]:
    """With ``merge``: the cells of an existing TOML that this run does not redo."""
    if not (config.merge and out.is_file()):
        return []
    planned = {TunedCell(n, s).key for n in config.resolutions for s in config.sigmas}
    cells = [TunedCell.from_dict(c) for c in _read_toml(out).get("cell", [])]
    return [c for c in cells if c.key not in planned]


def _tune_cell(config: TuneConfig, inputs, n_points: int, sigma: float, held, points, log) -> Tuple[TunedCell, str]:
    """Every grid point on the cell's inputs ({shape: (clean, noisy)}) → (the tuned cell, what was chosen in words
    for the log line)."""
    import time

    from sbdbench.methods.resolve import resolve_method
    from sbdbench.metrics import chamfer

    shapes, pairs = list(inputs), list(inputs.values())
    noisy_cd = float(np.mean([chamfer(noisy, clean) for clean, noisy in pairs]))
    trials = []
    t_cell = time.perf_counter()
    for params in points:
        method = resolve_method(config.method, n_points, sigma, overrides={**held, **params}, frozen=False).method
        t_trial = time.perf_counter()
        score = float(np.mean([chamfer(method.denoise(noisy, noise_level=sigma), clean) for clean, noisy in pairs]))
        trials.append({**params, "cd": score, "seconds": round((time.perf_counter() - t_trial) / len(pairs), 3)})
        log(f"{config.method} N={n_points} σ={sigma:g} {params} cd={score * 1e4:.3f}e-4 (noisy {noisy_cd * 1e4:.3f}e-4)")
    seconds = (time.perf_counter() - t_cell) / max(1, len(points) * len(pairs))
    cell = TunedCell(int(n_points), float(sigma), shapes=shapes, noisy_cd=noisy_cd, seconds_per_shape=round(seconds, 3),
                     searched=[], held_from="nearest tuned cell, same σ" if config.refine_keys else "",
                     within=float(config.within) or None, max_seconds=config.max_seconds, trials=trials)
    best, chosen = _freeze_choice(cell, held, list(points[0]))
    text = f"{points[chosen]} (cd {trials[chosen]['cd'] * 1e4:.3f}e-4"
    if chosen != best:
        text += f"; best {points[best]} at {trials[best]['cd'] * 1e4:.3f}e-4"
    return cell, text + ")"


def _freeze_choice(cell: TunedCell, held: Dict[str, Any], keys: Sequence[str]) -> tuple[int, int]:
    """Set ``cell``'s frozen ``params`` / ``cd`` (and ``best_params`` / ``best_cd`` when the best trial is not the
    frozen one) from its ``trials`` under its ``within`` and ``max_seconds``; returns (best, chosen) indices."""
    trials = list(cell.trials)
    best, chosen = choose_trial(trials, float(cell.within or 0.0), cell.max_seconds)
    cell.params, cell.cd = {**held, **{k: trials[chosen][k] for k in keys}}, float(trials[chosen]["cd"])
    cell.best_params, cell.best_cd = (None, None) if chosen == best else (
        {**held, **{k: trials[best][k] for k in keys}}, float(trials[best]["cd"]))
    return best, chosen


def choose_trial(trials: Sequence[Dict[str, Any]], within: float = 0.0,
                 max_seconds: Optional[float] = None) -> tuple[int, int]:
    """(index of the best trial, index of the one to freeze). Only trials of at most ``max_seconds`` per shape may
    be frozen (all, without a cap); of those, the cheapest (``seconds``) whose ``cd`` is within ``within`` × the
    best eligible one's (ties → the earlier grid point); with ``within`` = 0, the best eligible one itself."""
    if within < 0:
        raise InputError(f"--within must be ≥ 0 (a fraction of the best score), got {within}")
    if max_seconds is not None and not max_seconds > 0:
        raise InputError(f"--max-seconds must be > 0 (seconds per shape), got {max_seconds}")
    best = min(range(len(trials)), key=lambda i: trials[i]["cd"])
    eligible = [i for i, t in enumerate(trials) if max_seconds is None or t.get("seconds", float("inf")) <= max_seconds]
    if not eligible:
        fastest = min(t.get("seconds", float("inf")) for t in trials)
        raise InputError(f"no trial ran within --max-seconds {max_seconds:g} per shape (the fastest took {fastest:g} s)")
    top = min(eligible, key=lambda i: (trials[i]["cd"], i))
    near = [i for i in eligible if trials[i]["cd"] <= trials[top]["cd"] * (1 + within)]
    return best, min(near, key=lambda i: (trials[i].get("seconds", float("inf")), i)) if within else top


def merge_settings_files(paths: Sequence[Path], out: Path) -> Dict[str, Any]:
    """Merge TOMLs of the same method tuned in separate runs (e.g. 10K and 50K in parallel) into one.

    A (resolution, σ) cell present in several files is taken from the later file, except when the runs
    searched parts of one grid side by side (``tune --values``): the same searched keys, the same held
    parameters, shapes and noise. Then their trials are pooled and the choice (``within``, ``max_seconds``)
    is made again over all of them, as one run over the union would have. The header (grid, date, version)
    comes from the last file. Returns the merged document (its ``cell`` list as :class:`~sbdbench.protocol.TunedCell` objects).
    """
    from sbdbench.methods.settings import tomllib

    docs = [tomllib.loads(Path(p).read_text(encoding="utf-8")) for p in paths]
    if not docs:
        raise InputError("no settings files to merge")
    methods = {d.get("method") for d in docs}
    if len(methods) != 1:
        raise InputError(f"cannot merge settings of different methods: {sorted(map(str, methods))}")
    cells: Dict[Any, TunedCell] = {}
    for d in docs:
        for c in map(TunedCell.from_dict, d.get("cell", [])):
            cells[c.key] = _pool_trials(cells[c.key], c) if c.key in cells and _same_search(cells[c.key], c) else c
    merged = dict(docs[-1])
    merged["cell"] = [cells[k] for k in sorted(cells)]
    atomic_write_text(out, settings_toml(merged))
    return merged


def _held(cell: TunedCell) -> Dict[str, Any]:
    return {k: v for k, v in (cell.params or {}).items() if k not in (cell.searched or [])}


def _same_search(a: TunedCell, b: TunedCell) -> bool:
    """Two tunings of one cell that differ only in which grid values they tried."""
    return (bool(a.trials) and bool(b.trials) and a.searched == b.searched and _held(a) == _held(b) and a.shapes == b.shapes
            and np.isclose(float(a.noisy_cd), float(b.noisy_cd), rtol=1e-9, atol=0.0))


def _pool_trials(a: TunedCell, b: TunedCell) -> TunedCell:
    """One cell from two :func:`_same_search` cells: their trials (a trial tried in both: the later one), the frozen
    one chosen again over all of them, as one run over the union would have (the larger ``within``, the smaller cap)."""
    keys = list(a.searched)
    trials = {tuple(t[k] for k in keys): t for t in list(a.trials) + list(b.trials)}
    n_a, n_b = len(a.trials), len(b.trials)
    seconds = (float(a.seconds_per_shape) * n_a + float(b.seconds_per_shape) * n_b) / (n_a + n_b)
    caps = [float(c.max_seconds) for c in (a, b) if c.max_seconds is not None]
    within = max(float(a.within or 0.0), float(b.within or 0.0))
    cell = replace(b, seconds_per_shape=round(seconds, 3), trials=list(trials.values()),
                   within=within or None, max_seconds=min(caps) if caps else None)
    _freeze_choice(cell, _held(b), keys)
    return cell
