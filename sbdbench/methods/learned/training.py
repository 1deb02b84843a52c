"""A small, generic trainer for the learned denoisers: pluggable loss, resumable checkpoints, loss curve.

    result = train(model, loss_fn, sampler, TrainConfig(iterations=..., batch_size=..., out_dir=...),
                   validate=val_fn, meta={...})

* ``loss_fn(batch, model) -> scalar tensor``: the method's loss (ScoreDenoise: :func:`score_loss`;
  SBD plugs in its own).
* ``sampler``: anything with ``sample(batch_size) -> batch`` and ``state_dict()/load_state_dict()``
  (:class:`~sbdbench.methods.learned.data_patches.PatchSampler`).
* ``validate(model) -> float`` (lower is better), run every ``val_every`` iterations and at the end; the
  best model is written to ``<out_dir>/best.pt`` (plain state_dict + metadata, loads with
  ``weights_only=True``). Model selection never sees the test split: callers pass the ``val`` split.
* ``<out_dir>/last.pt`` holds model, optimiser, sampler and RNG state: running again with the same
  ``out_dir`` resumes where it stopped (the same batches as an uninterrupted run). Running again with a
  larger ``iterations`` extends a run: the cosine rate is re-stretched over the new total (a warm
  restart, as in SGDR); ``segments`` in the checkpoints records each ``[start, target]``.
* ``<out_dir>/loss.csv`` (iteration, train loss, val, seconds) and ``loss.png`` are the loss curve.
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from sbdbench.errors import DataError, InputError
from sbdbench.methods.learned.checkpoint import load_checkpoint, save_project_weights
from sbdbench.paths import atomic_path, atomic_write_text
from sbdbench.progress import format_seconds

LossFn = Callable[[Dict[str, torch.Tensor], nn.Module], torch.Tensor]


@dataclass
class TrainConfig:
    """What a training run does (stored in its checkpoints and in the shipped weights' metadata)."""

    iterations: int
    batch_size: int = 8
    lr: float = 1e-4
    #: learning rate at the last iteration: cosine decay from ``lr`` (None: constant ``lr``)
    lr_final: Optional[float] = None
    #: iterations of linear warm-up from ``lr / warmup`` to ``lr`` before the decay (0: none); fine-tuning a
    #: trained network uses it so that Adam's first, poorly-scaled steps do not knock it off its minimum
    warmup: int = 0
    #: rate multiplier of the parameters that ``model.output_parameters()`` names (when it has that method)
    output_lr_scale: float = 1.0
    val_every: int = 100
    checkpoint_every: int = 50
    max_grad_norm: float = math.inf
    seed: int = 2020
    out_dir: str = "train_out"
    device: str = "cpu"
    threads: Optional[int] = None
    #: stop (validate, save) after the first iteration that ends past this wall time, in seconds (None: no limit).
    time_limit_s: Optional[float] = None
    #: validate the starting network too (iteration 0): a warm start's baseline, kept as ``best.pt`` unless beaten
    validate_start: bool = False
    #: keep the normalisation layers in eval mode while training (their running statistics stay those of the start;
    #: their affine parameters still train): fine-tuning on batches of 8 patches would otherwise overwrite statistics
    #: estimated on a far larger training run
    freeze_norm: bool = False
    extra: Dict[str, Any] = field(default_factory=dict)


#: settings that may change between invocations of one run (budget, speed, where it runs); any other difference
#: between the stored and the requested configuration means the folder holds another run.
RESUMABLE_CHANGES = ("iterations", "time_limit_s", "threads", "device", "out_dir", "val_every", "checkpoint_every", "validate_start")


def config_differences(stored: Dict[str, Any], config: TrainConfig) -> List[str]:
    """``key: stored → requested`` for every setting that differs and identifies the run (not RESUMABLE_CHANGES)."""
    wanted = asdict(config)
    defaults = asdict(TrainConfig(iterations=1))
    out = []
    for key, value in wanted.items():
        if key in RESUMABLE_CHANGES:
            continue
        before = stored.get(key, defaults[key])  # a checkpoint older than the setting ran at its default
        if key == "extra":
            out += [f"{k}: {before.get(k)!r} → {value.get(k)!r}" for k in sorted(set(before) | set(value)) if before.get(k) != value.get(k)]
        elif before != value:
            out.append(f"{key}: {before!r} → {value!r}")
    return out


@dataclass
class TrainResult:
    iterations: int
    best_val: float
    best_iteration: int
    seconds: float
    best_path: Path
    history: List[Dict[str, float]]


def learning_rate(config: TrainConfig, iteration: int) -> float:
    """The rate of ``iteration`` (1-based): a linear warm-up over ``warmup`` iterations, then constant, or
    cosine from ``lr`` down to ``lr_final`` at the last one.

    A pure function of the iteration, so a resumed run continues on the same curve."""
    if iteration <= config.warmup:
        return config.lr * iteration / config.warmup
    if config.lr_final is None or config.iterations <= config.warmup + 1:
        return config.lr
    progress = (iteration - 1 - config.warmup) / (config.iterations - 1 - config.warmup)
    return config.lr_final + 0.5 * (config.lr - config.lr_final) * (1 + math.cos(math.pi * min(1.0, progress)))


def train_mode(model: nn.Module, freeze_norm: bool = False) -> nn.Module:
    """``model.train()``; with ``freeze_norm`` its batch-norm layers stay in eval mode (running statistics frozen)."""
    model.train()
    if freeze_norm:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
    return model


def _param_groups(model: nn.Module, output_lr_scale: float) -> List[Dict[str, Any]]:
    """Adam parameter groups: the output layer (``model.output_parameters()``, if any) at a scaled rate.

    Adam moves every weight by about the learning rate per step, whatever its scale; a regression
    head whose right weights are ~100× smaller than the hidden layers' (displacements of 1 % of the
    unit sphere) needs a proportionally smaller step, which is what the scale gives it."""
    out_ids = {id(p) for p in model.output_parameters()} if hasattr(model, "output_parameters") else set()
    rest = [p for p in model.parameters() if id(p) not in out_ids]
    head = [p for p in model.parameters() if id(p) in out_ids]
    groups = [{"params": rest, "lr_scale": 1.0}]
    if head:
        groups.append({"params": head, "lr_scale": float(output_lr_scale)})
    return groups


def _write_curve(out_dir: Path, history: List[Dict[str, float]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["iteration", "loss", "val", "seconds"])
    writer.writeheader()
    for row in history:
        writer.writerow({k: row.get(k, "") for k in writer.fieldnames})
    atomic_write_text(out_dir / "loss.csv", buf.getvalue())
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    trained = [r for r in history if r.get("loss") not in (None, "")]  # (iteration 0 of a warm start has no loss)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["iteration"] for r in trained], [r["loss"] for r in trained], lw=0.8, label="train loss")
    vals = [(r["iteration"], r["val"]) for r in history if r.get("val") not in (None, "")]
    if vals:
        ax.plot(*zip(*vals), "o-", ms=3, label="val")
    ax.set_xlabel("iteration")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    with atomic_path(out_dir / "loss.png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def train(
    model: nn.Module,
    loss_fn: LossFn,
    sampler: Any,
    config: TrainConfig,
    *,
    validate: Optional[Callable[[nn.Module], float]] = None,
    meta: Optional[Dict[str, Any]] = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train ``model`` with Adam for ``config.iterations`` iterations (resuming from ``out_dir/last.pt``)."""
    if config.iterations < 1 or config.batch_size < 1:
        raise InputError("iterations and batch_size must be ≥ 1")
    if config.threads:
        torch.set_num_threads(int(config.threads))
    run = _TrainingRun(model, loss_fn, sampler, config, validate, meta, log)
    run.resume()
    return run.run()


class _TrainingRun:
    """The state of one training run: the model, optimizer and sampler, the best validation so far, the loss
    history and the rate segments, with the steps that :func:`train` chains."""

    def __init__(self, model, loss_fn, sampler, config: TrainConfig, validate, meta, log) -> None:
        self.model, self.loss_fn, self.sampler, self.config = model, loss_fn, sampler, config
        self.validate_fn, self.meta, self.log = validate, meta, log
        self.out_dir = Path(config.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.device = torch.device(config.device)
        model.to(self.device)
        self.optimizer = torch.optim.Adam(_param_groups(model, config.output_lr_scale), lr=config.lr)
        torch.manual_seed(config.seed)
        self.history: List[Dict[str, float]] = []
        self.start_it, self.best_val, self.best_it, self.elapsed = 0, math.inf, 0, 0.0
        self.run_from = (0, 0.0)  # (iteration, seconds) where this invocation's loop began
        #: [start iteration, target iterations] of each invocation whose target differed: the LR history
        self.segments: List[List[int]] = [[0, config.iterations]]
        self.last = self.out_dir / "last.pt"

    # --- resuming ------------------------------------------------------------------------------------
    def resume(self) -> None:
        """Continue from ``last.pt`` when there is one (the same run only: another configuration is an error)."""
        if not self.last.is_file():
            return
        state = self._read_last()
        self.start_it, self.best_val, self.best_it = state["iteration"], state["best_val"], state["best_iteration"]
        self.elapsed, self.history = state["seconds"], state["history"]
        self.segments = [list(x) for x in state.get("segments", [[0, int(state["config"]["iterations"])]])]
        self.log(f"resumed at iteration {self.start_it} (best val {self.best_val:.6g} at {self.best_it})")
        config = self.config
        if self.start_it >= config.iterations:
            self.log(f"nothing to do: the run is at iteration {self.start_it} ≥ {config.iterations}")
        elif self.segments[-1][1] != config.iterations:
            self.segments.append([self.start_it, config.iterations])
            if config.lr_final is not None:
                verb = "extending" if config.iterations > self.segments[-2][1] else "shortening"
                self.log(f"{verb} the run to {config.iterations} iterations: the cosine rate is re-stretched over the new "
                         f"total (a warm restart at {learning_rate(config, self.start_it + 1):.3g})")

    def _read_last(self) -> Dict[str, Any]:
        try:
            state = torch.load(self.last, map_location=self.device, weights_only=True)
        except Exception as exc:
            raise DataError(f"{self.last}: cannot resume from this checkpoint ({type(exc).__name__}); delete it to start over") from None
        changed = config_differences(state.get("config", {}) if isinstance(state, dict) else {}, self.config)
        if changed:
            raise InputError(f"{self.out_dir} holds another training run ({'; '.join(changed[:3])}); choose a new --out or delete the folder")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.sampler.load_state_dict(state["sampler"])
            torch.set_rng_state(state["torch_rng"].cpu())
        except Exception as exc:
            raise DataError(f"{self.last}: cannot resume from this checkpoint ({type(exc).__name__}: {exc}); delete it to start over") from None
        return state

    # --- saving ---------------------------------------------------------------------------------------
    def save_last(self, it: int) -> None:
        with atomic_path(self.last) as tmp:
            torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                        "sampler": self.sampler.state_dict(), "torch_rng": torch.get_rng_state(), "iteration": it,
                        "best_val": self.best_val, "best_iteration": self.best_it, "seconds": self.elapsed,
                        "history": self.history, "config": asdict(self.config), "segments": self.segments}, tmp)
        _write_curve(self.out_dir, self.history)

    def save_best(self, it: int, val: float) -> None:
        info = dict(self.meta or {})
        info.update({"iteration": it, "val": float(val), "train_seconds": round(self.elapsed, 1), "config": asdict(self.config),
                     "segments": [list(x) for x in self.segments]})
        save_project_weights(self.out_dir / "best.pt", self.model, info)

    # --- the loop ---------------------------------------------------------------------------------------
    def validate(self) -> float:
        self.model.eval()
        with torch.no_grad():
            return float(self.validate_fn(self.model))

    def run(self) -> TrainResult:
        config = self.config
        if self.start_it == 0 and config.validate_start and self.validate_fn is not None:
            self.best_val = self.validate()
            self.save_best(0, self.best_val)
            self.history.append({"iteration": 0, "loss": "", "val": self.best_val, "seconds": 0.0})
            self.log(f"iteration 0 (the starting network): val {self.best_val:.6g}")
        t0 = time.perf_counter() - self.elapsed
        it = self.start_it
        self.run_from = (self.start_it, self.elapsed)  # this invocation's start: its mean time per iteration gives the ETA
        for it in range(self.start_it + 1, config.iterations + 1):
            loss = self.step(it)
            self.elapsed = time.perf_counter() - t0
            out_of_time = config.time_limit_s is not None and self.elapsed >= config.time_limit_s
            self.record(it, loss, validate_now=it % config.val_every == 0 or it == config.iterations or out_of_time)
            if it % config.checkpoint_every == 0 or it == config.iterations or out_of_time:
                self.save_last(it)
            if out_of_time:
                self.log(f"time limit reached after iteration {it} ({self.elapsed:.0f} s)")
                break
        if self.validate_fn is None:
            self.best_it = it
            self.save_best(it, float("nan"))
        return TrainResult(iterations=it, best_val=self.best_val, best_iteration=self.best_it, seconds=self.elapsed,
                           best_path=self.out_dir / "best.pt", history=self.history)

    def step(self, it: int) -> float:
        """One optimisation step at iteration ``it``; returns the loss."""
        config = self.config
        train_mode(self.model, config.freeze_norm)
        batch = {k: v.to(self.device) for k, v in self.sampler.sample(config.batch_size).items()}
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(config, it) * group["lr_scale"]
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(batch, self.model)
        if not torch.isfinite(loss):
            raise DataError(f"training diverged: loss is {loss.item()} at iteration {it}")
        loss.backward()
        if math.isfinite(config.max_grad_norm):
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
        self.optimizer.step()
        return float(loss.item())

    def record(self, it: int, loss: float, validate_now: bool) -> None:
        """Append the iteration to the history; validate (and keep the best weights) when it is time."""
        row: Dict[str, float] = {"iteration": it, "loss": loss, "val": "", "seconds": round(self.elapsed, 2)}
        if self.validate_fn is not None and validate_now:
            val = self.validate()
            row["val"] = val
            if val < self.best_val:
                self.best_val, self.best_it = val, it
                self.save_best(it, val)
            self.log(f"iteration {it}: loss {row['loss']:.5f}, val {val:.6g} (best {self.best_val:.6g} at {self.best_it}), "
                     f"{self.elapsed:.0f} s{self.eta(it)}")
        elif validate_now:
            self.log(f"iteration {it}: loss {row['loss']:.5f}, {self.elapsed:.0f} s{self.eta(it)}")
        self.history.append(row)

    def eta(self, it: int) -> str:
        """', ETA 3 min 02 s' after iteration ``it``: this invocation's seconds per iteration × the iterations left
        (at most the time limit's rest); '' at the last iteration or before the first of this invocation."""
        first_it, first_s = self.run_from
        config = self.config
        if it <= first_it or it >= config.iterations:
            return ""
        left = (self.elapsed - first_s) / (it - first_it) * (config.iterations - it)
        if config.time_limit_s is not None:
            left = min(left, max(config.time_limit_s - self.elapsed, 0.0))
        return f", ETA {format_seconds(left)}"


def load_best(model: nn.Module, path: str | Path) -> Dict[str, Any]:
    """Load a ``best.pt`` written by :func:`train` into ``model``; returns its metadata."""
    from sbdbench.methods.learned.checkpoint import load_into

    state, meta = load_checkpoint(path)
    load_into(model, state, source=path)
    return meta


# --- recipes: one per trainable method (``sbdbench train --method NAME``) ---------------------------
#: name → function(**options) -> TrainResult. ``score`` registers itself in ``score_training.py``.
@dataclass(frozen=True)
class Recipe:
    """A registered training recipe: its function, the dataclass of its own options (None: it has none), and the
    names under which ``sbdbench train --param`` gives its training-noise range."""

    train: Callable[..., TrainResult]
    specific: Optional[type] = None
    noise_keys: Tuple[str, str] = ("noise_min", "noise_max")


RECIPES: Dict[str, Recipe] = {}


def register_recipe(name: str, *, specific: Optional[type] = None, noise_keys: Tuple[str, str] = ("noise_min", "noise_max")) -> Callable:
    """Decorator: make ``fn(options: RecipeOptions[, specific], *, log)`` available as ``sbdbench train --method name``."""

    def deco(fn: Callable[..., TrainResult]) -> Callable[..., TrainResult]:
        RECIPES[name] = Recipe(fn, specific, noise_keys)
        return fn

    return deco


def run_recipe(method: str, *, log: Callable[[str], None] = print, **options: Any) -> TrainResult:
    """Run the training recipe of ``method`` with options given by name: the shared ones
    (:class:`~sbdbench.methods.learned.patch_recipe.RecipeOptions`), the recipe's own, and its noise-range keys.
    An option neither knows is a one-line error."""
    import sbdbench.methods.learned  # noqa: F401  (registers the recipes)

    if method not in RECIPES:
        raise InputError(f"no training recipe for method {method!r} (trainable: {', '.join(sorted(RECIPES)) or 'none'})")
    recipe = RECIPES[method]
    shared, specific = recipe_options(method, recipe, options)
    return recipe.train(shared, specific, log=log) if recipe.specific else recipe.train(shared, log=log)


def recipe_options(method: str, recipe: Recipe, options: Dict[str, Any]):
    """(the shared :class:`RecipeOptions`, the recipe's own options or None) from options given by name."""
    from dataclasses import fields

    from sbdbench.methods.learned.patch_recipe import RecipeOptions

    given = {k: v for k, v in options.items() if v is not None or k in ("lr_final", "init", "threads", "time_limit_s", "resolutions")}
    low, high = (given.pop(k, None) for k in recipe.noise_keys)
    shared_names = {f.name for f in fields(RecipeOptions)} - {"noise_range"}
    own_names = {f.name for f in fields(recipe.specific)} if recipe.specific else set()
    unknown = sorted(set(given) - shared_names - own_names)
    if unknown:
        raise InputError(f"train --method {method}: unknown option(s) {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(shared_names | own_names | set(recipe.noise_keys)))})")
    shared = {k: v for k, v in given.items() if k in shared_names}
    default = RecipeOptions().noise_range
    shared["noise_range"] = (default[0] if low is None else float(low), default[1] if high is None else float(high))
    shared.setdefault("out_dir", f"train_{method}")
    own = recipe.specific(**{k: v for k, v in given.items() if k in own_names}) if recipe.specific else None
    return RecipeOptions(**shared), own
