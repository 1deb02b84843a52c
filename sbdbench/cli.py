"""The ``sbdbench`` command line: thin click commands over the Python API.

Every command calls a function that a notebook can call with the same arguments. Errors the user
can act on (:class:`~sbdbench.errors.SbdbenchError`, bad parameters) print one line and exit with
a non-zero code; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import sys
from typing import List, Sequence

import click

from sbdbench import __version__
from sbdbench.cli_options import (AliasedCommand, max_memory_option, noise_kind_option, out_option, parse_counts, parse_names,
                                  parse_sigmas, quiet_option, resolutions_option, sigma_option, sigmas_option)
from sbdbench.errors import InputError, SbdbenchError
from sbdbench.methods.params import untyped_value, untyped_values
from sbdbench.protocol import GAUSSIAN


class _Group(click.Group):
    """A click group that turns SbdbenchError (and other expected failures) into one-line errors."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except SbdbenchError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted (finished results are kept)", err=True)
            ctx.exit(130)
        except (OSError, MemoryError) as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="sbdbench")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """sbdbench: build point-cloud denoising benchmarks, run denoisers, score them, publish leaderboards.

    \b
    Typical session:
      sbdbench fetch synth              # the offline default dataset (no download)
      sbdbench run --method jet         # denoise the test inputs and evaluate them
      sbdbench bench --quick            # a grid of methods x resolutions x noise levels
      sbdbench leaderboard              # CSV / Markdown / HTML under leaderboard/
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


# --- shared option parsing ----------------------------------------------------------------------
def parse_int_list(text: str | None, what: str = "value") -> List[int] | None:
    """'10000,50K' → [10000, 50000] (kept for callers of the old name: :func:`sbdbench.cli_options.parse_counts`)."""
    return None if text is None or text == "" else parse_counts(text, what)


def parse_float_list(text: str | None, what: str = "value") -> List[float] | None:
    """'0.01,2%' → [0.01, 0.02] (kept for callers of the old name: :func:`sbdbench.cli_options.parse_sigmas`)."""
    return None if text is None or text == "" else parse_sigmas(text, what)


def parse_params(items: Sequence[str]) -> dict:
    """``key=value`` options that belong to no method's constructor (recipe, schedule and fetch options), each
    value read by :func:`sbdbench.methods.params.untyped_value`. A method's ``--param`` items are passed on as text
    and typed by its constructor (:func:`method_params`)."""
    return untyped_values(items, "--param")


def method_params(items: Sequence[str]) -> dict:
    """``--param key=value`` items of a method, as text (the resolver types them with the method's constructor)."""
    from sbdbench.methods.params import parse_assignments

    return parse_assignments(items, "--param")


def parse_value_lists(items: Sequence[str]) -> dict:
    """``key=v1,v2`` items → {key: [v1, v2]}, each value parsed as by ``--param``."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not sep or not key.strip() or not parts:
            raise InputError(f"--values expects KEY=V1,V2,..., got {item!r}")
        out[key.strip()] = [untyped_value(p) for p in parts]
    return out


# === data commands: fetch synth, build, verify, check-noise, datasets ===
@main.command("build", cls=AliasedCommand, aliases={"--noise-levels": "--sigmas", "--noise": "--noise-kind"})
@click.option("--name", default=None, help="Dataset name (default 'synth'; required with --meshes / --register).")
@click.option("--meshes", "meshes_dir", type=click.Path(file_okay=False), default=None,
              help="Build a dataset from every mesh (.off/.ply/.obj/.stl) in this folder (all shapes go to 'test').")
@click.option("--register", "register_path", type=click.Path(file_okay=False), default=None,
              help="Register an existing ScoreDenoise data folder under --name, without copying.")
@resolutions_option("10K,50K", help="Point counts N of the clean clouds and noisy inputs.")
@sigmas_option("1%,2%,3%", help="Noise levels σ of the noisy inputs.")
@noise_kind_option(GAUSSIAN, help="With --meshes: noise kinds of the noisy inputs, comma-separated (gaussian, laplace, "
                   "uniform_ball, anisotropic, outliers, scanner_ray).")
@click.option("--sampler", type=click.Choice(["poisson", "poisson_pcu", "uniform"]), default="poisson", show_default=True,
              help="With --meshes: how clean clouds are sampled (folders keep ScoreDenoise's '<N>_poisson' name; the manifest records the sampler).")
@click.option("--shapes", default=None, help="synth only: a comma-separated subset of the 18 test shapes.")
@click.option("--no-train", is_flag=True, help="synth only: skip the 40 train + 18 val shapes.")
@click.option("--force", is_flag=True, help="Rebuild even if an intact build holding everything asked for exists.")
@click.option("--workers", type=int, default=None, help="Worker processes (default min(2, CPUs)).")
@quiet_option()
def build_cmd(name, meshes_dir, register_path, resolutions, sigmas, noise_kind, sampler, shapes, no_train, force, workers, quiet):
    """Build a dataset in ScoreDenoise's layout under $SBDBENCH_HOME/data (default: the offline 'synth').

    \b
    sbdbench build                                  # synth: 18 test shapes + train/val family
    sbdbench build --meshes my_meshes/ --name mine  # your meshes, same layout, same manifest
    sbdbench build --register ~/score-denoise/data --name PUNet   # use an existing folder as is
    """
    from sbdbench.data.dataset import register_dataset
    from sbdbench.errors import InputError

    if meshes_dir and register_path:
        raise InputError("use either --meshes or --register, not both")
    if register_path:
        if not name:
            raise InputError("--register needs --name (the dataset folder inside PATH, e.g. PUNet)")
        ds = register_dataset(name, register_path)
        click.echo(f"registered {name!r} at {ds.dir} ({len(ds.shapes('test'))} test shapes, resolutions {ds.resolutions()})")
        return
    res, levels = resolutions, sigmas
    if meshes_dir:
        from sbdbench.data.splits import build_dataset_from_folder

        if not name:
            raise InputError("--meshes needs --name")
        _refuse_meshes_in_target(meshes_dir, name)
        kinds = parse_names(noise_kind)
        ds = build_dataset_from_folder(name, meshes_dir, resolutions=res, noise_levels=levels, noises=kinds,
                                       sampler=sampler, force=force, progress=not quiet, workers=workers)
    else:
        from sbdbench.data.synth import NAME, build_synth_dataset

        if sampler != "poisson":
            raise InputError("--sampler applies to --meshes builds; synth always uses the Poisson-disk sampler")
        if name not in (None, NAME):
            raise InputError(f"only {NAME!r} can be built without --meshes (got --name {name})")
        subset = [s.strip() for s in shapes.split(",") if s.strip()] if shapes else None
        ds = build_synth_dataset(resolutions=res, noise_levels=levels, include_train=not no_train, shapes=subset,
                                 force=force, progress=not quiet, workers=workers)
    n_files = len(ds.manifest.get("files", {}))
    click.echo(f"dataset {ds.name!r} ready at {ds.dir} ({n_files} files verified by manifest.json)")


@main.command("verify")
@click.argument("names", nargs=-1)
def verify_cmd(names):
    """Re-check the sha256 of every file of dataset(s) NAMES (default: synth) against manifest.json.

    Exits with a non-zero code naming the first missing or changed file.
    """
    from sbdbench.data.splits import verify_dataset

    for name in names or ("synth",):
        report = verify_dataset(name)
        click.echo(f"{name}: OK ({report.checked} files match manifest.json; files digest {report.digest})")


@main.command("check-noise")
@click.argument("name", default="synth")
@click.option("--alpha", type=float, default=0.001, show_default=True, help="Significance level of the Jarque-Bera test.")
@quiet_option()
def check_noise_cmd(name, alpha, quiet):
    """Jarque-Bera test of noisy - clean for every noisy set of dataset NAME (default synth).

    Gaussian sets must look normal (and have std within 3% of σ); Laplace / uniform-ball / outlier
    sets must not. Exits non-zero if any verdict fails.
    """
    from sbdbench.data.checks import check_noise, format_noise_table
    from sbdbench.errors import InputError

    if not 0 < alpha < 1:
        raise InputError(f"--alpha must be in (0, 1), got {alpha}")
    rows = check_noise(name, alpha=alpha, progress=not quiet)
    click.echo(format_noise_table(rows, alpha))
    failed = [r for r in rows if r.ok is False]
    if failed:
        raise SbdbenchError(f"{len(failed)} noisy set(s) do not hold the noise they claim "
                            f"(first: {failed[0].split} N={failed[0].n_points} {failed[0].noise} σ={failed[0].sigma:g})")


@main.command("datasets")
def datasets_cmd():
    """List the datasets present under $SBDBENCH_HOME/data or registered, with their contents."""
    from sbdbench.data.dataset import list_datasets, open_dataset

    names = list_datasets()
    if not names:
        click.echo("no datasets yet (run `sbdbench build` for the offline default 'synth')")
        return
    click.echo(f"{'name':12} {'test':>5} {'train':>6} {'val':>4}  {'resolutions':18} {'gaussian σ':18} location")
    for name in names:
        ds = open_dataset(name)
        res = ds.resolutions("test")
        levels = ds.noise_levels(res[0]) if res else []
        manifest = "" if ds.manifest_path.is_file() else "  (no manifest)"
        click.echo(f"{name:12} {len(ds.shapes('test')):>5} {len(ds.shapes('train')):>6} {len(ds.shapes('val')):>4}  "
                   f"{','.join(map(str, res)):18} {','.join(f'{s:g}' for s in levels):18} {ds.dir}{manifest}")


# === evaluation commands: evaluate ===
@main.command("evaluate", cls=AliasedCommand, aliases={"--resolution": "--resolutions"})
@click.option("--dataset", "dataset_name", help="Dataset name (with --pred-dir), e.g. synth.")
@click.option("--pred-dir", type=click.Path(file_okay=False, path_type=str), help="Folder of predictions <shape>.xyz.")
@resolutions_option(help="GT cloud resolution N (the inputs' point count), one value (default: inferred from --pred-dir's "
                    "name, else from its files' point counts).")
@click.option("--shapes", default=None, metavar="A,B", help="With --pred-dir: score only these shapes of the split (the folder may hold only them).")
@click.option("--split", default="test", show_default=True, help="Dataset split.")
@click.option("--pred", "pred_file", type=click.Path(dir_okay=False, path_type=str), help="One prediction file.")
@click.option("--gt-points", type=click.Path(dir_okay=False, path_type=str), help="GT cloud file (with --pred).")
@click.option("--gt-mesh", type=click.Path(dir_okay=False, path_type=str), help="GT mesh file (with --pred).")
@click.option("--noisy", "noisy_file", type=click.Path(dir_okay=False, path_type=str),
              help="With --pred alone (no GT): the noisy input it was denoised from; scored too, and plane_res of both "
                   "is measured in its unit-sphere frame.")
@out_option("file", "the per-shape CSV (raw values; must end in .csv).", dest="out_csv")
@click.option("--device", default="cpu", show_default=True, help="cpu (exact float64) or cuda[:i] (torch backend).")
@quiet_option()
def evaluate_cmd(dataset_name, pred_dir, resolutions, shapes, split, pred_file, gt_points, gt_mesh, noisy_file, out_csv, device,
                 quiet) -> None:
    """Score denoised clouds: CD, P2M (exact and PyTorch3D-mode) and HD; without GT, the no-reference figures.

    \b
    Folder:  sbdbench evaluate --dataset synth --pred-dir DIR [--resolutions 10K] [--shapes A,B] [--out per_shape.csv]
    Files:   sbdbench evaluate --pred X.xyz --gt-points Y.xyz --gt-mesh M.off
    No GT:   sbdbench evaluate --pred X.xyz [--noisy INPUT.xyz]   (plane_res x 10^4 and spacing_cv, docs/metrics.md)
    The table prints CD and P2M x 10^4 (columns *_1e4), as papers do; the CSV keeps raw values.
    """
    import pandas as pd

    from sbdbench.metrics import evaluate_files, evaluate_folder, mean_table, to_report_units
    from sbdbench.metrics.evaluate import infer_resolution, write_csv

    if out_csv:
        _refuse_csv_over_inputs(out_csv, pred_file, gt_points, gt_mesh, pred_dir, dataset_name, noisy_file)
    folder_mode = any(v is not None for v in (dataset_name, pred_dir, resolutions, shapes))
    file_mode = any(v is not None for v in (pred_file, gt_points, gt_mesh, noisy_file))
    if folder_mode == file_mode:
        raise click.UsageError("give either --dataset/--pred-dir [--resolutions/--shapes] or --pred/--gt-points/--gt-mesh")
    if folder_mode:
        if not (dataset_name and pred_dir):
            raise click.UsageError("--dataset and --pred-dir go together (--resolutions and --shapes are optional)")
        if resolutions is not None and len(resolutions) != 1:
            raise InputError(f"--resolutions: a prediction folder holds one resolution, got {len(resolutions)}")
        subset = parse_names(shapes)
        n_points = resolutions[0] if resolutions else infer_resolution(dataset_name, pred_dir, split, subset)
        if not resolutions and not quiet:
            click.echo(f"resolution N={n_points} (inferred from {pred_dir}; --resolutions to choose)", err=True)
        frame = evaluate_folder(dataset_name, pred_dir, n_points, split=split, device=device, progress=not quiet, shapes=subset)
    elif pred_file and gt_points is None and gt_mesh is None:
        frame = _evaluate_without_gt(pred_file, noisy_file, quiet)
    else:
        if not (pred_file and gt_points and gt_mesh) or noisy_file:
            raise click.UsageError("--pred, --gt-points and --gt-mesh go together (or --pred [--noisy] alone, without GT)")
        frame = pd.DataFrame([evaluate_files(pred_file, gt_points, gt_mesh, device=device)])
    if out_csv:
        click.echo(f"per-shape results: {write_csv(frame, out_csv)}")
    with pd.option_context("display.float_format", "{:.5g}".format, "display.width", 120):
        if "plane_res" in frame:  # no GT: one row per cloud (the prediction, and the noisy input with --noisy)
            click.echo(to_report_units(frame).rename(columns={"category": "role"}).set_index("shape").to_string())
        else:
            click.echo(mean_table(frame).to_string())


def _evaluate_without_gt(pred_file, noisy_file, quiet):
    """``evaluate --pred X [--noisy Y]``: the no-reference figures of X (and of Y), in Y's frame when given."""
    import pandas as pd

    from sbdbench.metrics import evaluate_file_noref

    if not quiet:
        click.echo("no GT given: no-reference figures (plane_res = mean distance to the local 16-NN plane, unit-sphere "
                   "frame, x 10^4; spacing_cv = spacing non-uniformity); see docs/metrics.md", err=True)
    rows = [{**evaluate_file_noref(pred_file, frame_path=noisy_file), "category": "pred"}]
    if noisy_file:
        rows.append({**evaluate_file_noref(noisy_file), "category": "noisy"})
    return pd.DataFrame(rows)


def _dataset_folders(dataset_name):
    """The folders holding a dataset's files (its own folder and its ``examples/``), when it exists."""
    from sbdbench.data.dataset import open_dataset

    try:
        ds = open_dataset(str(dataset_name))
    except SbdbenchError:
        return []
    return [ds.dir, ds.examples_dir]


def _refuse_csv_over_inputs(out_csv, pred_file, gt_points, gt_mesh, pred_dir, dataset_name, noisy_file=None) -> None:
    """``evaluate --out`` never replaces a prediction, a GT file or anything of the dataset it reads."""
    from pathlib import Path

    from sbdbench.outputs import refuse_inside, refuse_overwrite

    if Path(out_csv).suffix.lower() != ".csv":
        raise InputError(f"{out_csv}: --out writes a CSV table; give a path ending in .csv")
    preds = [q for q in Path(pred_dir).iterdir() if q.suffix.lower() == ".xyz"] if pred_dir and Path(pred_dir).is_dir() else []
    refuse_overwrite(out_csv, [pred_file, gt_points, gt_mesh, noisy_file, *preds], "--out")
    if dataset_name:
        refuse_inside(out_csv, _dataset_folders(dataset_name), "--out")


def _refuse_meshes_in_target(meshes_dir, name) -> None:
    """``build --meshes`` replaces the dataset folder: its input meshes must not live there."""
    from sbdbench.outputs import is_within
    from sbdbench.paths import data_root

    target = data_root() / name
    if is_within(meshes_dir, target) or is_within(meshes_dir, data_root() / "examples"):
        raise InputError(f"{meshes_dir}: the mesh folder lies inside the dataset folder {target} that the build replaces; copy the meshes elsewhere first")


# === method commands: methods, run, denoise, tune ===
_PARAM_HELP = "Method parameter as key=value (repeatable); overrides the frozen settings."


@main.command("methods")
@click.option("--verbose", "-v", is_flag=True, help="Also show each method's tuning grid.")
def methods_cmd(verbose: bool) -> None:
    """List the registered denoisers with their parameters and papers."""
    from sbdbench.methods.base import available_methods, get_method_class, load_errors

    for name in available_methods():
        cls = get_method_class(name)
        flags = [] if cls.preserves_count else ["changes point count"]
        if cls.uses_torch:
            flags.append("torch")
        click.echo(f"{name}{'  [' + ', '.join(flags) + ']' if flags else ''}")
        if cls.summary:
            click.echo(f"    {cls.summary}")
        click.echo(f"    paper: {cls.paper}")
        for weights, provenance in getattr(cls, "shipped_weights", dict)().items():
            click.echo(f"    weights={weights}: {provenance}")
        params = ", ".join(f"{k}={v!r}" for k, v in cls.default_params().items())
        click.echo(f"    params: {params or '(none)'}")
        if verbose and cls.tuning_grid:
            click.echo(f"    tuning grid: {cls.tuning_grid}")
    for where, err in load_errors().items():
        click.echo(f"(not loaded: {where}: {err})", err=True)


@main.command("run", cls=AliasedCommand, aliases={"--resolution": "--resolutions", "--noise": "--sigmas"})
@click.option("--method", "method_name", required=True, help="Registered method name (see `sbdbench methods`).")
@click.option("--dataset", default="synth", show_default=True, help="Dataset name.")
@resolutions_option(help="Point counts, e.g. 10K,50K (default: all in the dataset).")
@sigmas_option(help="Noise levels σ, e.g. 1%,2% or 0.01,0.02 (default: all at each N).")
@noise_kind_option()
@click.option("--param", "param_items", multiple=True, help=_PARAM_HELP)
@click.option("--defaults", is_flag=True, help="Use the constructor defaults instead of the frozen settings (baselines/<method>.toml).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:i] (torch methods and the metrics).")
@out_option("folder", "denoised clouds per cell, per_shape.csv and summary.csv [default: runs/<method>/].", dest="out_dir")
@click.option("--shapes", default=None, help="Comma-separated subset of test shapes.")
@max_memory_option()
@quiet_option()
def run_cmd(method_name, dataset, resolutions, sigmas, noise_kind, param_items, defaults, device, out_dir, shapes, max_memory, quiet) -> None:
    """Denoise every test input of a dataset, write ScoreDenoise-layout outputs, score them."""
    from pathlib import Path

    from sbdbench.bench.cell import run_method
    from sbdbench.methods.blocks import parse_memory
    from sbdbench.outputs import refuse_inside

    refuse_inside(Path(out_dir or Path("runs") / method_name), _dataset_folders(dataset), "--out")
    frame, summary = run_method(
        method_name, dataset, resolutions, sigmas, params=method_params(param_items), use_frozen=not defaults, device=device,
        out=Path(out_dir) if out_dir else None, noise=noise_kind, shapes=parse_names(shapes), progress=not quiet,
        log=_log(quiet), max_memory_mb=parse_memory(max_memory) if max_memory is not None else None)
    click.echo(summary.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    if not quiet:
        unit = "scan" if "plane_res" in frame.columns else "shape"  # a dataset of real scans has no GT: per_scan.csv
        click.echo(f"per-{unit} results: {Path(out_dir or Path('runs') / method_name) / f'per_{unit}.csv'}", err=True)


def _log(quiet: bool):
    """Progress lines go to stderr, unless --quiet."""
    return (lambda line: None) if quiet else (lambda line: click.echo(line, err=True))


@main.command("denoise", cls=AliasedCommand, aliases={"--noise-level": "--sigma"})
@click.argument("in_path", type=click.Path(dir_okay=False))
@click.argument("out_path", type=click.Path(dir_okay=False))
@click.option("--method", "method_name", required=True, help="Registered method name (see `sbdbench methods`).")
@click.option("--param", "param_items", multiple=True, help=_PARAM_HELP)
@sigma_option(help="Noise σ as a fraction of the cloud's radius, e.g. 2% or 0.02, if known (else estimated).")
@click.option("--defaults", is_flag=True, help="Use the constructor defaults instead of the frozen settings.")
@max_memory_option()
@click.option("--drop-invalid", is_flag=True, help="Drop points with NaN/Inf coordinates (and say how many) instead of refusing the file.")
@quiet_option("Print only the result line (no progress, not the σ and the frozen cell used).")
def denoise_cmd(in_path, out_path, method_name, param_items, sigma, defaults, max_memory, drop_invalid, quiet) -> None:
    """Denoise one point cloud file (.xyz/.txt/.pts/.csv, .ply, .npy, .pcd, .las/.laz): IN_PATH in, OUT_PATH out
    (a file), same frame and precision; per-point attributes (normals, colours, intensity) are carried when the
    method keeps the point count (docs/io-formats.md)."""
    from sbdbench.bench.progress import PointProgress
    from sbdbench.methods.blocks import parse_memory
    from sbdbench.methods.files import denoise_file

    cap = parse_memory(max_memory) if max_memory is not None else None
    progress = None if quiet else PointProgress(lambda m: click.echo(m, err=True), f"denoise {method_name}")
    try:
        info = denoise_file(in_path, out_path, method_name, params=method_params(param_items), noise_level=sigma,
                            use_frozen=not defaults, max_memory_mb=cap, drop_invalid=drop_invalid, progress=progress)
    finally:
        if progress is not None:
            progress.close()
    if info.get("dropped"):
        click.echo(f"dropped {info['dropped']} point(s) with NaN/Inf coordinates (--drop-invalid)", err=True)
    for line in (info.get("warning"), info.get("attributes_note")):
        if line:
            click.echo(line, err=True)
    if not quiet:
        click.echo(_settings_line(info), err=True)
        if info.get("attributes"):
            click.echo(f"attributes carried: {' '.join(info['attributes'])}", err=True)
    params = ", ".join(f"{k}={v!r}" for k, v in info["params"].items())
    rate = f", {info['points_per_second']:,.0f} points/s" if info["n_in"] >= LARGE_INPUT_POINTS else ""
    click.echo(f"{method_name}: {info['n_in']} -> {info['n_out']} points in {info['seconds']:.2f} s{rate} ({params}) -> {info['out']}")


#: from this many points on, ``denoise`` reports its speed (points per second)
LARGE_INPUT_POINTS = 100_000


def _settings_line(info) -> str:
    """denoise: the σ it used (given or estimated) and the frozen cell (N, σ) it took its settings from."""
    sigma = info.get("sigma")
    told = "none" if sigma is None else f"{sigma:.4g} ({sigma * 100:.3g} %)"
    cell = info.get("cell")
    where = (f"frozen cell N={cell[0]} σ={cell[1]:g}" if cell else
             "constructor defaults (--defaults)" if info.get("defaults") else "no frozen cell (constructor defaults)")
    return f"σ {info.get('sigma_source', 'given')}: {told}; settings: {where}"


@main.command("tune", cls=AliasedCommand, aliases={"--resolution": "--resolutions", "--noise": "--sigmas"})
@click.option("--method", "method_name", required=True, help="Registered method name.")
@click.option("--dataset", default="synth", show_default=True, help="Dataset whose --split is used.")
@click.option("--split", default="train", show_default=True, type=click.Choice(["train", "val"]),
              help="Shapes to tune on: train (classical methods) or val (learned methods, whose weights saw train).")
@resolutions_option("10K,50K", help="Point counts to tune.")
@sigmas_option("1%,2%,3%", help="Noise levels σ to tune.")
@click.option("--max-shapes", default=8, show_default=True, type=click.IntRange(1), help="Shapes per cell (N ≤ 20000).")
@click.option("--max-shapes-large", default=3, show_default=True, type=click.IntRange(1), help="Shapes per cell (N > 20000).")
@click.option("--seed", default=0, show_default=True, type=int, help="Noise seed offset.")
@out_option("file", "the settings TOML [default: baselines/<method>.toml].", dest="out_path")
@click.option("--refine", "refine_keys", multiple=True,
              help="Search only this grid key (repeatable); hold the others at the tuned choice of the nearest cell with the same σ.")
@click.option("--refine-from", default=None, type=click.Path(dir_okay=False), help="TOML holding those tuned cells (default: --out).")
@click.option("--values", "value_items", multiple=True, metavar="KEY=V1,V2",
              help="Search only these values of a searched grid key (repeatable), e.g. --values niters=3,4.")
@click.option("--param", "param_items", multiple=True, metavar="KEY=VALUE", help="Hold a parameter fixed in every trial (e.g. weights=best.pt).")
@click.option("--within", default=0.0, show_default=True, type=float,
              help="Cost is part of the choice: freeze the fastest trial within this fraction of the best score (0.01 = 1 %).")
@click.option("--max-seconds", default=None, type=float,
              help="Cost cap: freeze only trials of at most this many seconds per shape (e.g. a baseline's time on the same "
                   "inputs); --within then applies to the best of them.")
@quiet_option()
def tune_cmd(method_name, dataset, split, resolutions, sigmas, max_shapes, max_shapes_large, seed, out_path, refine_keys, refine_from,
             value_items, param_items, within, max_seconds, quiet) -> None:
    """Grid-search a method's parameters per (resolution, noise) on training (or val) shapes; freeze them in a TOML."""
    from pathlib import Path

    from sbdbench.methods.tuning import tune_method

    doc = tune_method(method_name, dataset, resolutions, sigmas,
                      max_shapes=max_shapes, max_shapes_large=max_shapes_large, seed=seed, split=split,
                      out=Path(out_path) if out_path else None, refine_keys=list(refine_keys) or None,
                      refine_from=Path(refine_from) if refine_from else None, values=parse_value_lists(value_items),
                      fixed_params=method_params(param_items), within=within, max_seconds=max_seconds,
                      log=_log(quiet))
    for cell in doc["cell"]:
        click.echo(f"N={cell.n_points} σ={cell.sigma:g}: {cell.params} cd_1e4={cell.cd * 1e4:.3f} (noisy {cell.noisy_cd * 1e4:.3f})")


@main.command("merge-settings")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@out_option("file", "the merged TOML (may be one of the inputs).", dest="out_path", required=True)
def merge_settings_cmd(inputs, out_path) -> None:
    """Merge `tune` TOMLs of one method run side by side: later files win a cell, except parts of one grid
    searched in parallel (`tune --values`), whose trials are pooled and the best of all chosen."""
    from pathlib import Path

    from sbdbench.methods.tuning import merge_settings_files

    doc = merge_settings_files([Path(p) for p in inputs], Path(out_path))
    for cell in doc["cell"]:
        click.echo(f"N={cell.n_points} σ={cell.sigma:g}: {cell.params} cd_1e4={cell.cd * 1e4:.3f} ({len(cell.trials or [])} trials)")


# === learned-model commands: train, diagnose ===

# --- train (score helper) ---
@main.command("train")
@click.option("--method", "method", required=True, help="Trainable method (score; sbd when present).")
@click.option("--dataset", default="synth", show_default=True, metavar="A,B", help="Datasets whose train splits are pooled (each needs a train split; model selection uses those with a val split).")
@click.option("--init", "init", default=None, metavar="official|project|scratch|PATH", help="Start from these networks (strict, weights_only) with the fine-tuning defaults (a lower rate with warm-up and cosine decay, batch norm frozen; docs/sbd-warm-start.md) instead of random weights.")
@out_option("folder", "the run (checkpoints, loss.csv/png) [default: train_<method>].", dest="out_dir")
@click.option("--iterations", default=1600, show_default=True, type=int, help="Training iterations. Re-running a finished run with more extends it (warm restart of the cosine rate).")
@click.option("--batch-size", default=8, show_default=True, type=int, help="Patches per iteration.")
@click.option("--patches-per-cloud", default=4, show_default=True, type=int, help="Patches cut from each noisy draw.")
@click.option("--val-every", default=100, show_default=True, type=int, help="Validate (val split) every K iterations.")
@click.option("--time-limit", "time_limit", default=None, type=float, help="Stop after this many minutes of training (resumable).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--threads", default=None, type=int, help="torch CPU threads.")
@click.option("--seed", default=2020, show_default=True, type=int)
@click.option("--install", is_flag=True, help="Copy the best weights into the package (sbdbench/weights/<method>_project.pt).")
@click.option("--param", "params", multiple=True, help="Recipe option key=value (sbd: loss=sbd|score, intermediate=marginal|nearest, T=...).")
@quiet_option()
def train_cmd(method, dataset, init, out_dir, iterations, batch_size, patches_per_cloud, val_every, time_limit, device, threads, seed, install, params,
              quiet):
    """Train a learned method on a dataset's train split, selecting on its val split. Re-run to resume."""
    from sbdbench.methods.learned.training import run_recipe

    result = run_recipe(method, dataset=dataset, init=init, out_dir=out_dir or f"train_{method}", iterations=iterations, batch_size=batch_size,
                        patches_per_cloud=patches_per_cloud, val_every=val_every, device=device, threads=threads, seed=seed,
                        time_limit_s=None if time_limit is None else time_limit * 60.0, install=install,
                        log=_log(quiet), **parse_params(params))
    click.echo(f"{result.iterations} iterations in {result.seconds:.0f} s; best val {result.best_val:.6g} at iteration "
               f"{result.best_iteration}; weights: {result.best_path}")


# --- diagnose (sbd helper) ---
@main.command("diagnose", cls=AliasedCommand, aliases={"--n-points": "--resolutions"})
@click.option("--method", "method", type=click.Choice(["sbd"]), default="sbd", show_default=True, help="Model whose training intermediates to test.")
@click.option("--dataset", default="synth", show_default=True, help="Dataset whose clean clouds are used.")
@click.option("--split", default="train", show_default=True, help="Split of the dataset.")
@resolutions_option("10K", help="Resolution, one value (or samples drawn from --mesh).")
@click.option("--max-shapes", default=4, show_default=True, type=int, help="Shapes of the split to pool.")
@click.option("--cloud", type=click.Path(exists=True, dir_okay=False), default=None, help="Use this clean cloud instead of a dataset.")
@click.option("--mesh", type=click.Path(exists=True, dir_okay=False), default=None, help="Use this mesh (Poisson-sampled) instead of a dataset.")
@sigma_option("2%", help="Noise level σ of the input (t* is matched to it), e.g. 2% or 0.02.")
@click.option("--param", "params", multiple=True, help="Schedule parameter key=value (T, schedule, sigma_min, sigma_max).")
@click.option("--alpha", default=0.05, show_default=True, type=float, help="Family-wise significance level (Bonferroni over steps).")
@click.option("--seed", default=0, show_default=True, type=int)
@out_option("folder", "sbd_jb.csv and sbd_jb.png.", dest="out_dir", default="diagnostics", show_default=True)
@quiet_option()
def diagnose_cmd(method, dataset, split, resolutions, max_shapes, cloud, mesh, sigma, params, alpha, seed, out_dir, quiet):
    """Jarque-Bera test of SBD's intermediates x_a^t - x^0 per step, for the marginal and nearest strategies."""
    from sbdbench.methods.learned.diagnostics import diagnose_sbd, load_clouds
    from sbdbench.methods.learned.sbd import schedule_from_params

    if len(resolutions) != 1:
        raise InputError(f"--resolutions: diagnose uses one resolution, got {len(resolutions)}")
    schedule = schedule_from_params(parse_params(params))
    clouds = load_clouds(dataset=dataset, split=split, n_points=resolutions[0], max_shapes=max_shapes, cloud=cloud, mesh=mesh, seed=seed)
    result = diagnose_sbd(out_dir, clouds=clouds, schedule=schedule, noise_level=sigma, alpha=alpha, seed=seed)
    click.echo(result["table"].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    click.echo(result["summary"])
    click.echo(f"wrote {result['csv']} and {result['png']}")


# === benchmark commands: bench, leaderboard ===
@main.command("bench", cls=AliasedCommand, aliases={"--noise": "--sigmas", "--noise-model": "--noise-kind"})
@click.option("--methods", "methods", default=None, metavar="A,B", help="Methods to run (default: every method with frozen settings in baselines/).")
@click.option("--datasets", "datasets", default=None, metavar="A,B", help="Datasets (default: synth; built only with --build, when absent).")
@resolutions_option(help="Point counts, e.g. 10K,50K (default: 10K,50K; --quick: 10K).")
@sigmas_option(help="Noise levels σ, e.g. 1%,2%,3% or 0.01,0.02 (default: 1%,2%,3%).")
@noise_kind_option()
@click.option("--device", default="cpu", show_default=True, help="torch device for methods and metrics (cpu, cuda, cuda:1...).")
@click.option("--metrics-device", default=None, help="Run the metrics on another device than the methods (e.g. --device cuda --metrics-device cpu: the exact CPU backend prunes with KD-trees).")
@click.option("--quick", is_flag=True, help="The quick subset (10K, 1/2/3%; no method too slow for a 2-core, 10-minute run).")
@click.option("--workers", default=None, type=click.IntRange(1), help="Cells run at once: >1 uses a local process pool (or the LocalCluster size with --executor dask). Default 1; with --quick, 2 (one per core).")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True, help="local (sequential or process pool) or dask (distributed).")
@click.option("--scheduler", default=None, metavar="ADDRESS", help="With --executor dask: address of a running scheduler (default: start a LocalCluster).")
@click.option("--db", default=None, type=click.Path(dir_okay=False), help="Results database (default: $SBDBENCH_HOME/results.db).")
@click.option("--rerun", is_flag=True, help="Run finished cells again (the new run supersedes the old one).")
@click.option("--build", "build", is_flag=True, help="Build the synth dataset when it is absent (never replaces or extends an existing one).")
@click.option("--init-db", "init_db", is_flag=True, help="Set up an existing empty (zero-byte) --db file as a new results database.")
@quiet_option("No per-shape progress (bars on a terminal, else lines); the per-cell lines and the summary are still printed.")
def bench_command(methods, datasets, resolutions, sigmas, noise_kind, device, metrics_device, quick, workers, executor, scheduler,
                  db, rerun, build, init_db, quiet):
    """Run every method on every benchmark cell and store the results (resumable: finished cells are skipped).

    Exits non-zero when a cell failed (it is recorded with its error; the next bench retries it).
    """
    from sbdbench.bench.config import BenchConfig
    from sbdbench.bench.progress import ShapeProgress
    from sbdbench.bench.runner import run_bench

    config = BenchConfig(parse_names(methods), parse_names(datasets), resolutions, sigmas, noise=noise_kind, device=device,
                         metrics_device=metrics_device, quick=quick, build=build, executor=executor, workers=workers,
                         scheduler=scheduler, db=db, rerun=rerun, init_db=init_db)
    summary = run_bench(config, log=lambda m: click.echo(m, err=True),
                        progress=None if quiet else ShapeProgress(lambda m: click.echo(m, err=True)))
    click.echo(summary.line())
    for failure in summary.failures:  # recorded in the store and on the leaderboard
        click.echo(f"failed cell: {failure}", err=True)
    if summary.failed:
        raise SbdbenchError(f"{summary.failed} of {summary.cells} cells failed (recorded with their error in "
                            f"{summary.db_path}; the next `sbdbench bench` retries them)")


@main.command("leaderboard")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False), help="Output folder (default: ./leaderboard in the current directory; at the top of a clone, where that is the committed board, it must be named).")
@click.option("--db", default=None, type=click.Path(dir_okay=False), help="Results database (default: $SBDBENCH_HOME/results.db).")
@click.option("--no-plots", is_flag=True, help="Skip the matplotlib plots.")
@click.option("--allow-dirty", is_flag=True, help="Publish rows that ran from a source tree with uncommitted changes (marked; refused by default).")
@click.option("--versus", default=None, metavar="METHOD", help="Add per-shape wins of every method against METHOD (e.g. score:weights=official): versus.csv and a table per dataset.")
@quiet_option("Print nothing on success (the files are the result; errors are still printed).")
def leaderboard_command(out_dir, db, no_plots, allow_dirty, versus, quiet):
    """Write leaderboard.csv, per_shape.csv, README.md and index.html from the results database."""
    from sbdbench.bench.leaderboard import write_leaderboard

    written = write_leaderboard(out_dir, db, plots=not no_plots, allow_dirty=allow_dirty, versus=versus)
    if not quiet:
        click.echo(written.line())


def _split_names(text):
    """'a, b' → ['a', 'b']; None (option absent) → None; '' or ',' → [] (the bench refuses an empty list)."""
    if text is None:
        return None
    return [t.strip() for t in str(text).split(",") if t.strip()]


# === download commands: fetch for real sources ===
@main.command("fetch", cls=AliasedCommand, aliases={"--no-progress": "--quiet"})
@click.argument("name", required=False)
@click.option("--list", "list_sources_", is_flag=True, help="List the sources with sizes, licences and what is already present.")
@click.option("--force", is_flag=True, help="Download and install again, replacing what is present.")
@click.option("--mirror", metavar="URL", help="Base URL serving the card's files by name (or $SBDBENCH_MIRROR_<NAME>).")
@click.option("--from", "source_path", metavar="PATH", help="Use a local copy of the download (file, or folder of the card's files); required for ShapeNet.")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE", help="Override a card option, e.g. -o models=bunny,dragon or -o max_shapes=10.")
@quiet_option("No progress bars or progress lines.")
def fetch_command(name, list_sources_, force, mirror, source_path, options, quiet):
    """Download, verify and install dataset NAME (see datasets/NAME.toml), or the offline `synth`.

    \b
      sbdbench fetch --list
      sbdbench fetch punet                      # PUNet from ScoreDenoise's Google Drive folder
      sbdbench fetch stanford -o models=bunny   # Stanford meshes, sampled into a benchmark dataset
      sbdbench fetch score-official             # ScoreDenoise's pretrained checkpoint
      sbdbench fetch shapenet --from ~/ShapeNetCore
    """
    from sbdbench.data.sources import LIST_OPTIONS, fetch, list_sources

    if list_sources_:
        rows = list_sources()
        width = max([len(r.name) for r in rows] + [6])
        click.echo(f"{'source':<{width}}  {'present':<7}  {'size':<26}  licence")
        for r in rows:
            state = "yes" if r.present else "-"
            click.echo(f"{r.name:<{width}}  {state:<7}  {r.size:<26.26}  {r.licence}")
        click.echo("(synth is built offline: `sbdbench fetch synth`; details and citations in datasets/<source>.toml)")
        return
    if not name:
        raise click.UsageError("give a source NAME, or --list")
    parsed = {}
    for key, value in untyped_values(options, "-o").items():  # "a,b" → [a, b] for the list-valued options
        parsed[key] = [untyped_value(v.strip()) for v in str(value).split(",") if v.strip()] if key in LIST_OPTIONS else value
    result = fetch(name, force=force, mirror=mirror, progress=not quiet, source_path=source_path, options=parsed,
                   log=_log(quiet))
    click.echo(result.message)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
