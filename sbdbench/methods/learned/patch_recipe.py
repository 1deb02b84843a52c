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
from sbdbench.methods.learned.data_patches import PatchSampler, fixed_batches, load_split_clouds
from sbdbench.methods.learned.training import TrainConfig, TrainResult


@dataclass
class PatchData:
    """A dataset's train patches (sampler) and its fixed val batches, as both recipes draw them."""

    dataset: Dataset
    train_clouds: List[np.ndarray]
    sampler: PatchSampler
    val_set: List[Dict[str, torch.Tensor]]
    resolutions: List[int]

    def meta(self) -> Dict[str, Any]:
        """Where the weights came from: dataset, shapes, clouds, resolutions, date, machine."""
        return {
            "dataset": self.dataset.name,
            "train_shapes": len(self.dataset.shapes("train")),
            "train_clouds": len(self.train_clouds),
            "val_shapes": len(self.dataset.shapes("val")),
            "resolutions": list(self.resolutions),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}",
        }


def patch_data(dataset: str, resolutions: Optional[Sequence[int]], *, patch_size: int, noise_range: Tuple[float, float],
               patches_per_cloud: int, batch_size: int, val_batches: int, val_sigma: float, seed: int) -> PatchData:
    """Training patches of ``dataset``'s train split (noise σ ~ U(noise_range)) and ``val_batches`` fixed
    batches of val patches at ``val_sigma`` (model selection never sees the test split)."""
    ds = open_dataset(dataset)
    train_clouds = load_split_clouds(ds, "train", resolutions)
    val_clouds = load_split_clouds(ds, "val", resolutions)
    sampler = PatchSampler(train_clouds, patch_size=patch_size, sigma_range=noise_range, patches_per_cloud=patches_per_cloud, seed=seed)
    val_set = fixed_batches(val_clouds, n_batches=val_batches, batch_size=batch_size, sigma=val_sigma, patch_size=patch_size, seed=seed + 1)
    return PatchData(ds, train_clouds, sampler, val_set, list(resolutions) if resolutions else ds.resolutions("train"))


def recipe_config(*, out_dir: str | Path, iterations: int, batch_size: int, lr: float, lr_final: Optional[float],
                  output_lr_scale: float, val_every: int, seed: int, device: str, threads: Optional[int],
                  time_limit_s: Optional[float], extra: Dict[str, Any]) -> TrainConfig:
    """The trainer configuration of a recipe (checkpoints at least every 50 iterations)."""
    return TrainConfig(iterations=iterations, batch_size=batch_size, lr=lr, lr_final=lr_final, output_lr_scale=output_lr_scale,
                       val_every=val_every, checkpoint_every=min(50, val_every), seed=seed, out_dir=str(out_dir), device=device,
                       threads=threads, time_limit_s=time_limit_s, extra=extra)


def install_best(result: TrainResult, method: str, log: Callable[[str], None] = print) -> Path:
    """Copy the run's best weights into the package (``sbdbench/weights/<method>_project.pt``), atomically."""
    from sbdbench.methods.learned.checkpoint import project_weights_path
    from sbdbench.paths import atomic_write_bytes

    target = project_weights_path(method)
    atomic_write_bytes(target, Path(result.best_path).read_bytes())
    log(f"installed {target}")
    return target
