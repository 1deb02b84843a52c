"""What the patch-based training recipes (``score``, ``sbd``) share, so that "the same budget and data"
is true by construction: the training patches and fixed validation batches, the trainer configuration
built from the common options, the run metadata stored with the weights, and installing the best weights
into the package."""

from __future__ import annotations

import datetime as _dt
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from sbdbench.data.dataset import Dataset, open_dataset
from sbdbench.errors import DataError, InputError
from sbdbench.methods.learned.checkpoint import load_checkpoint, load_into, resolve_weights
from sbdbench.methods.learned.data_patches import PatchSampler, fixed_batches, load_split_clouds
from sbdbench.methods.learned.model import ScoreDenoiseModel, initial_model
from sbdbench.methods.learned.training import TrainConfig, TrainResult
from sbdbench.paths import sha256_file


@dataclass
class PatchData:
    """The train patches (sampler) and fixed val batches of one or more datasets, as both recipes draw them."""

    datasets: List[Dataset]
    train_clouds: List[np.ndarray]
    sampler: PatchSampler
    val_set: List[Dict[str, torch.Tensor]]
    resolutions: List[int]

    def meta(self) -> Dict[str, Any]:
        """Where the weights came from: datasets, shapes, clouds, resolutions, date, machine."""
        return {
            "dataset": ",".join(ds.name for ds in self.datasets),
            "train_shapes": sum(len(ds.shapes("train")) for ds in self.datasets),
            "train_clouds": len(self.train_clouds),
            "val_shapes": sum(len(ds.shapes("val")) for ds in self.datasets),
            "resolutions": list(self.resolutions),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}",
        }


def dataset_names(dataset: str | Sequence[str]) -> List[str]:
    """``"synth,punet"`` or ``["synth", "punet"]`` → the dataset names, in order, without repeats."""
    names = [n.strip() for n in (dataset.split(",") if isinstance(dataset, str) else dataset) if n and n.strip()]
    if not names:
        raise InputError("--dataset: give at least one dataset name")
    return list(dict.fromkeys(names))


def patch_data(dataset: str | Sequence[str], resolutions: Optional[Sequence[int]], *, patch_size: int, noise_range: Tuple[float, float],
               patches_per_cloud: int, batch_size: int, val_batches: int, val_sigma: float, seed: int) -> PatchData:
    """Training patches of the datasets' train splits, pooled (noise σ ~ U(noise_range)), and ``val_batches`` fixed
    batches of patches of their val splits at ``val_sigma`` (model selection never sees a test split). Each dataset
    must have a train split; at least one must have a val split (``synth`` has both)."""
    sets = [open_dataset(name) for name in dataset_names(dataset)]
    train_clouds = [c for ds in sets for c in load_split_clouds(ds, "train", resolutions)]
    val_clouds = [c for ds in sets if ds.shapes("val") for c in load_split_clouds(ds, "val", resolutions)]
    if not val_clouds:
        raise DataError(f"none of the datasets {', '.join(ds.name for ds in sets)} has a val split for model selection (add synth: --dataset synth,...)")
    sampler = PatchSampler(train_clouds, patch_size=patch_size, sigma_range=noise_range, patches_per_cloud=patches_per_cloud, seed=seed)
    val_set = fixed_batches(val_clouds, n_batches=val_batches, batch_size=batch_size, sigma=val_sigma, patch_size=patch_size, seed=seed + 1)
    res = list(resolutions) if resolutions else sorted({n for ds in sets for n in ds.resolutions("train")})
    return PatchData(sets, train_clouds, sampler, val_set, res)


# --- the optimiser and the starting point -------------------------------------------------------------
#: From random weights (the shipped ``scratch`` weights): Adam 1e-3 with cosine decay to 1e-5, the output layer
#: zeroed and trained at 0.03× the rate (the model starts as "no displacement").
SCRATCH_OPTIMISER = {"lr": 1e-3, "lr_final": 1e-5, "warmup": 0, "output_lr_scale": 0.03, "zero_output": True, "freeze_norm": False}
#: From trained networks (``init=``): the released weights were trained with Adam at a constant 1e-4 on every
#: layer; fine-tuning on a CPU budget (batches of 8 patches) at that rate knocks them off their minimum (val CD of the
#: SBD chain 1.48 → 1.54–1.63 within 400 iterations, both losses), and updating the batch-norm statistics from such
#: small batches alone costs ~1 % (1.48 → 1.50 in 40 iterations at rate ~0). So: a 5× lower rate with a 50-iteration
#: warm-up and cosine decay to 1e-7, batch norm frozen (its affine parameters still train), the output layer kept.
FINE_TUNE_OPTIMISER = {"lr": 2e-5, "lr_final": 1e-7, "warmup": 50, "output_lr_scale": 1.0, "zero_output": False, "freeze_norm": True}


#: the value of a recipe's optimiser option that means "the default for this start" (``lr_final=None`` is a constant rate)
DEFAULT = "default"


def optimiser_options(init: Optional[str], given: Dict[str, Any]) -> Dict[str, Any]:
    """The optimiser settings of a run: the defaults for its start (scratch or ``init``), overridden by ``given``
    (entries equal to :data:`DEFAULT` keep the default). Zeroing the output layer of trained networks is refused."""
    options = dict(FINE_TUNE_OPTIMISER if init else SCRATCH_OPTIMISER)
    options.update({k: v for k, v in given.items() if not (isinstance(v, str) and v == DEFAULT) and k in options})
    if init and options["zero_output"]:
        raise InputError("zero_output=true would discard the output layer of the --init weights; drop one of the two")
    return options


def start_model(init: Optional[str], method: str, seed: int, zero_output: bool) -> Tuple[ScoreDenoiseModel, Dict[str, Any]]:
    """The network a run starts from, and what the weights' metadata records of it.

    ``init=None``: seeded random weights (:func:`initial_model`). Otherwise ``official`` (ScoreDenoise's released
    checkpoint, after ``sbdbench fetch score-official``), ``project`` / ``scratch`` (the shipped files) or a path:
    loaded with ``weights_only=True`` and ``strict=True`` (a file of another architecture is a one-line error that
    names the first mismatched key)."""
    model = initial_model(seed, zero_output and not init)
    if not init:
        return model, {"init": "random", "init_seed": int(seed)}
    path = resolve_weights(init, method=method)
    state, meta = load_checkpoint(path)
    load_into(model, state, source=path)
    record = {"init": str(init), "init_file": path.name, "init_sha256": sha256_file(path)}
    if "args" in meta or str(init) == "official":
        record["init_provenance"] = INIT_PROVENANCE_OFFICIAL
    elif meta.get("init_provenance"):
        record["init_provenance"] = meta["init_provenance"]
    return model, record


#: what a file fine-tuned from the released ScoreDenoise networks derives from (its licence ships beside the weights)
INIT_PROVENANCE_OFFICIAL = ("fine-tuned from ScoreDenoise's released checkpoint (Luo & Hu, ICCV 2021; luost26/score-denoise, "
                            "pretrained/ckpt.pt, MIT licence: sbdbench/weights/LICENSE-score-denoise)")


@dataclass(frozen=True)
class RecipeOptions:
    """The options both patch recipes share, so "the same data and budget" holds by construction: built once by
    ``sbdbench train`` (or :func:`~sbdbench.methods.learned.training.run_recipe`) and read by the recipe.

    Fields:
        dataset: a dataset with ``train`` and ``val`` splits (default: the offline ``synth``), or several
            (``"synth,punet"``: train patches pooled, val from those that have a val split).
        out_dir: the run's folder (checkpoints, loss curve, ``best.pt``).
        init: start from trained networks (``official``, ``project``, ``scratch`` or a path) instead of random
            weights; the optimiser defaults then switch to fine-tuning (:data:`FINE_TUNE_OPTIMISER`).
        iterations, batch_size, patches_per_cloud, patch_size: the budget (patches per batch; patches cut per
            noisy draw; points per patch).
        noise_range: training noise σ ~ U(noise_range) (ScoreDenoise: 0.5 %–2 %).
        lr, lr_final, warmup, output_lr_scale, zero_output, freeze_norm: the optimiser (:data:`DEFAULT`: the default
            for the start, :func:`optimiser_options`).
        val_every, val_sigma, val_batches: validation on ``val_batches`` fixed batches of val patches at ``val_sigma``.
        resolutions: the clouds' point counts to cut patches from (None: every resolution of the train split).
        device, threads, seed, time_limit_s: where and how long it runs.
        install: copy the best weights into the package (``sbdbench/weights/<method>_project.pt``) at the end.
    """

    dataset: Any = "synth"
    out_dir: Any = "train_out"
    init: Optional[str] = None
    iterations: int = 1600
    batch_size: int = 8
    patches_per_cloud: int = 4
    patch_size: int = 1000
    noise_range: Tuple[float, float] = (0.005, 0.02)
    lr: Any = DEFAULT
    lr_final: Any = DEFAULT
    warmup: Any = DEFAULT
    output_lr_scale: Any = DEFAULT
    zero_output: Any = DEFAULT
    freeze_norm: Any = DEFAULT
    val_every: int = 100
    val_sigma: float = 0.015
    val_batches: int = 4
    resolutions: Optional[Sequence[int]] = None
    device: str = "cpu"
    threads: Optional[int] = None
    seed: int = 2020
    time_limit_s: Optional[float] = None
    install: bool = False

    def optimiser(self) -> Dict[str, Any]:
        """The optimiser settings of this run (:func:`optimiser_options` for its start)."""
        return optimiser_options(self.init, {"lr": self.lr, "lr_final": self.lr_final, "warmup": self.warmup,
                                             "output_lr_scale": self.output_lr_scale, "zero_output": self.zero_output,
                                             "freeze_norm": self.freeze_norm})

    def data(self) -> PatchData:
        """The training patches and fixed val batches (:func:`patch_data`)."""
        return patch_data(self.dataset, self.resolutions, patch_size=self.patch_size, noise_range=tuple(self.noise_range),
                          patches_per_cloud=self.patches_per_cloud, batch_size=self.batch_size, val_batches=self.val_batches,
                          val_sigma=self.val_sigma, seed=self.seed)

    def trainer_config(self, optimiser: Dict[str, Any], start: Dict[str, Any], **extra: Any) -> TrainConfig:
        """The trainer configuration: these options, the recipe's own ``extra`` and the start record (a warm start)."""
        common = {"patches_per_cloud": self.patches_per_cloud, "patch_size": self.patch_size,
                  "sigma_range": [float(x) for x in self.noise_range], "val_sigma": self.val_sigma, "val_batches": self.val_batches}
        return recipe_config(out_dir=self.out_dir, iterations=self.iterations, batch_size=self.batch_size, optimiser=optimiser,
                             val_every=self.val_every, seed=self.seed, device=self.device, threads=self.threads,
                             time_limit_s=self.time_limit_s, extra={**common, **extra, **({"start": start} if self.init else {})})


def recipe_config(*, out_dir: str | Path, iterations: int, batch_size: int, optimiser: Dict[str, Any], val_every: int, seed: int,
                  device: str, threads: Optional[int], time_limit_s: Optional[float], extra: Dict[str, Any]) -> TrainConfig:
    """The trainer configuration of a recipe (checkpoints at least every 50 iterations); ``optimiser`` is
    :func:`optimiser_options`' result (``zero_output`` goes into ``extra``)."""
    return TrainConfig(iterations=iterations, batch_size=batch_size, lr=optimiser["lr"], lr_final=optimiser["lr_final"],
                       warmup=int(optimiser["warmup"]), output_lr_scale=optimiser["output_lr_scale"],
                       freeze_norm=bool(optimiser["freeze_norm"]), val_every=val_every,
                       checkpoint_every=min(50, val_every), seed=seed, out_dir=str(out_dir), device=device, threads=threads,
                       time_limit_s=time_limit_s, validate_start="start" in extra,
                       extra={**extra, "zero_output": bool(optimiser["zero_output"])})


def install_best(result: TrainResult, method: str, log: Callable[[str], None] = print) -> Path:
    """Copy the run's best weights into the package (``sbdbench/weights/<method>_project.pt``), atomically."""
    from sbdbench.methods.learned.checkpoint import project_weights_path
    from sbdbench.paths import atomic_write_bytes

    target = project_weights_path(method)
    atomic_write_bytes(target, Path(result.best_path).read_bytes())
    log(f"installed {target}")
    return target
