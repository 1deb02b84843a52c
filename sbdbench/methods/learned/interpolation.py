"""Weight-space interpolation of a fine-tune with the checkpoint it started from (WiSE-FT).

``θ(α) = α · θ_finetuned + (1 − α) · θ_start`` for every floating-point tensor (Wortsman et al., "Robust
fine-tuning of zero-shot models", CVPR 2022). Integer tensors (batch-norm step counters) come from the fine-tune.
Fine-tuning from a shared start keeps both ends in one basin, so the path between them does not cross a loss
barrier; α is chosen on the val split like any other setting (docs/sbd-warm-start.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import torch

from sbdbench.errors import DataError, InputError
from sbdbench.methods.learned.checkpoint import load_checkpoint, save_state
from sbdbench.paths import sha256_file


def interpolate_states(finetuned: Dict[str, torch.Tensor], start: Dict[str, torch.Tensor], alpha: float) -> Dict[str, torch.Tensor]:
    """``alpha · finetuned + (1 − alpha) · start`` key by key (float32); both must hold the same keys and shapes.

    Args:
        finetuned, start: state_dicts of one architecture.
        alpha: in [0, 1]; 1 gives ``finetuned``, 0 gives ``start`` (integer tensors always come from ``finetuned``).
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise InputError(f"alpha must be in [0, 1], got {alpha}")
    if set(finetuned) != set(start):
        first = sorted(set(finetuned) ^ set(start))[0]
        raise DataError(f"the two checkpoints hold different tensors (e.g. {first!r}); they are not one architecture")
    out = {}
    for key, tuned in finetuned.items():
        other = start[key]
        if tuple(tuned.shape) != tuple(other.shape):
            raise DataError(f"tensor {key!r} has shape {tuple(tuned.shape)} in one checkpoint and {tuple(other.shape)} in the other")
        if tuned.is_floating_point():
            out[key] = (float(alpha) * tuned.float() + (1.0 - float(alpha)) * other.float()).contiguous()
        else:
            out[key] = tuned.clone()
    return out


def interpolate_checkpoints(finetuned: str | Path, start: str | Path, alpha: float, out: str | Path) -> Dict[str, Any]:
    """Write the interpolated checkpoint to ``out`` (atomically) and return its metadata.

    The metadata is the fine-tune's (its recipe, data and provenance, so :func:`describe_weights` still names the
    licence of what it derives from), plus ``interpolation``: α and the file name and sha256 of both ends.
    """
    tuned_state, tuned_meta = load_checkpoint(finetuned)
    start_state, _ = load_checkpoint(start)
    state = interpolate_states(tuned_state, start_state, alpha)
    meta = {k: v for k, v in tuned_meta.items() if k != "args"}
    meta["interpolation"] = {
        "rule": "alpha * finetuned + (1 - alpha) * start (WiSE-FT, Wortsman et al., CVPR 2022)",
        "alpha": float(alpha),
        "finetuned_file": Path(finetuned).name, "finetuned_sha256": sha256_file(finetuned),
        "start_file": Path(start).name, "start_sha256": sha256_file(start),
    }
    save_state(out, state, meta)
    return meta
