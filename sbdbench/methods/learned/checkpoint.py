"""Weights for the learned methods: where they are (``official`` / ``project`` / a path) and how they load.

Everything is read with ``torch.load(weights_only=True)``. The only class allow-listed is
``argparse.Namespace`` (the released ScoreDenoise checkpoint stores its training arguments in one);
the project's own files hold a plain ``state_dict`` and plain-type metadata and need no allow-list.
A missing, corrupt or mismatched file is a :class:`~sbdbench.errors.DataError` with a one-line message.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from sbdbench.errors import DataError, InputError
from sbdbench.paths import atomic_path, home

#: the shipped weights live in the package (``sbdbench/weights/``).
PACKAGE_WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"


@dataclass(frozen=True)
class OfficialWeights:
    """Where a method's released checkpoint comes from (a ``datasets/<fetch>.toml`` weights card) and where
    ``sbdbench fetch <fetch>`` installs it (``$SBDBENCH_HOME/weights/<file>``)."""

    fetch: str
    file: str


#: {method: its released weights}; each learned method module registers its own with :func:`register_official`
#: (``sbd`` uses ScoreDenoise's release: the same networks).
OFFICIAL: Dict[str, OfficialWeights] = {
    "score": OfficialWeights("score-official", "score-denoise-official.pt"),
    "sbd": OfficialWeights("score-official", "score-denoise-official.pt"),
}


def register_official(method: str, fetch: str, file: str) -> None:
    """Declare that ``weights=official`` of ``method`` is the file that ``sbdbench fetch <fetch>`` installs."""
    OFFICIAL[method] = OfficialWeights(fetch, file)


def official_weights_path(method: str = "score") -> Path:
    """Where ``sbdbench fetch <card>`` puts ``method``'s released checkpoint."""
    if method not in OFFICIAL:
        raise InputError(f"{method!r} has no released weights (weights must be a shipped name, {', '.join(SHIPPED)}, or a path to a checkpoint)")
    return home() / "weights" / OFFICIAL[method].file


#: names of the weights shipped in the package: ``sbdbench/weights/<method>_<name>.pt`` (for ``sbd``: ``project`` the
#: default, ``finetune`` the fine-tune it interpolates, ``scratch`` the from-scratch training; the last two are kept
#: so that their results stay reproducible).
SHIPPED = ("project", "finetune", "scratch")


def project_weights_path(method: str = "score", name: str = "project") -> Path:
    """The project's own shipped weights for ``method`` (``sbdbench/weights/<method>_<name>.pt``)."""
    return PACKAGE_WEIGHTS_DIR / f"{method}_{name}.pt"


def resolve_weights(weights: str | Path, method: str = "score") -> Path:
    """Turn ``official`` / a :data:`SHIPPED` name / a file path into an existing file, or raise a clear error."""
    spec = str(weights)
    if spec == "official":
        path = official_weights_path(method)
        if not path.is_file():
            raise DataError(f"the official {method} weights are not downloaded ({path} is absent): run `sbdbench fetch {OFFICIAL[method].fetch}`")
        return path
    if spec in SHIPPED:
        path = project_weights_path(method, spec)
        if not path.is_file():
            raise DataError(f"this build of sbdbench ships no {spec} weights for {method!r} ({path} is absent); use weights=official or weights=PATH")
        return path
    path = Path(spec).expanduser()
    if not path.is_file():
        raise DataError(f"weights file not found: {path} (weights must be 'official', a shipped name, {', '.join(SHIPPED)}, or a path to a checkpoint)")
    return path


def weights_digest(weights: str | Path, method: str = "score") -> str:
    """``sha256:<first 16 hex>`` of the file that ``weights`` resolves to (what a result was computed with)."""
    from sbdbench.paths import sha256_file

    return "sha256:" + sha256_file(resolve_weights(weights, method=method))[:16]


def describe_weights(path: str | Path) -> str:
    """One line on where a weights file came from, from its metadata: its start (random or the file it was
    fine-tuned from, with that file's licence), data, loss and budget; a released file says so."""
    try:
        _, meta = load_checkpoint(path)
    except DataError as exc:
        return str(exc)
    if "args" in meta and "config" not in meta:
        return "a released checkpoint (not trained by sbdbench)"
    config = meta.get("config", {})
    start = meta.get("init_provenance") or ("fine-tuned from " + str(meta["init"]) if meta.get("init") else "trained from random weights")
    loss = f", loss={meta['loss']}" if meta.get("loss") else ""
    line = (f"{start}; sbdbench recipe on {meta.get('dataset', '?')} train, {meta.get('iteration', '?')} of "
            f"{config.get('iterations', '?')} iterations × {config.get('batch_size', '?')} patches{loss}, selected on val")
    mix = meta.get("interpolation")
    if isinstance(mix, dict):  # a WiSE-FT interpolation (sbdbench.methods.learned.interpolation)
        line = (f"weight interpolation (WiSE-FT) {mix.get('alpha')} × {mix.get('finetuned_file')} + "
                f"{1 - float(mix.get('alpha', 0)):g} × its start, {mix.get('start_file')}, α chosen on val; the fine-tune: {line}")
    return line


class WeightsDigestMixin:
    """``artifact_digest`` of a learned method: the sha256 of the weights file its ``weights`` names."""

    def artifact_digest(self) -> str:
        return "weights=" + weights_digest(self.weights, method=self.name)

    def unavailable_reason(self) -> Optional[str]:
        """Why this instance cannot run here: its ``weights`` do not resolve to a file (what to fetch), or None."""
        try:
            resolve_weights(self.weights, method=self.name)
        except DataError as exc:
            return str(exc)
        return None

    @classmethod
    def shipped_weights(cls) -> Dict[str, str]:
        """{name: provenance line} of the weights shipped for this method (``weights=project``, ``scratch``)."""
        return {name: describe_weights(project_weights_path(cls.name, name)) for name in SHIPPED
                if project_weights_path(cls.name, name).is_file()}


def load_checkpoint(path: str | Path) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """Read a checkpoint safely → (state_dict, metadata).

    Accepted layouts: ``{"state_dict": ..., "args": Namespace, ...}`` (ScoreDenoise's release),
    ``{"state_dict": ..., "meta": {...}}`` (sbdbench's own files), or a bare state_dict.
    """
    path = Path(path)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"weights file not found: {path}") from None
    except Exception as exc:  # torch raises many types for corrupt, truncated or unsafe files
        raise DataError(_load_error(path, exc)) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        state, meta = obj["state_dict"], dict(obj.get("meta") or {})
        args = obj.get("args")
        if isinstance(args, argparse.Namespace):
            meta["args"] = vars(args)
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state, meta = obj, {}
    else:
        raise DataError(f"{path}: not a model checkpoint (expected a state_dict or a dict with 'state_dict')")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise DataError(f"{path}: its state_dict holds non-tensor entries")
    check_weight_values(state, path)
    return state, meta


#: the largest weight magnitude accepted (trained networks here stay below ~1e3, BatchNorm variances included)
MAX_ABS_WEIGHT = 1e6


def check_weight_values(state: Dict[str, torch.Tensor], source: str | Path) -> None:
    """Refuse NaN/Inf or absurdly large floating-point tensors (they would only produce NaN clouds)."""
    for key, value in state.items():
        if not value.is_floating_point() or value.numel() == 0:
            continue
        if not bool(torch.isfinite(value).all()):
            raise DataError(f"{source}: tensor {key!r} holds NaN/Inf values; refusing these weights")
        peak = float(value.abs().max())
        if peak > MAX_ABS_WEIGHT:
            raise DataError(f"{source}: tensor {key!r} holds values up to {peak:.3g} (limit {MAX_ABS_WEIGHT:.0e}); "
                            "refusing these weights (not a trained network)")


def _load_error(path: Path, exc: Exception) -> str:
    """Our one-line message for a file torch.load refused (never torch's advice to disable weights_only)."""
    import pickle
    import re

    text = str(exc)
    found = re.search(r"unsupported (?:global: )?GLOBAL ([\w.]+)", text, re.IGNORECASE)
    if found:
        return (f"{path}: refused as unsafe: the checkpoint references {found.group(1)}, not only tensors and plain "
                "metadata; sbdbench loads weights only and never runs code from a checkpoint")
    if isinstance(exc, pickle.UnpicklingError) or "weights only load failed" in text.lower():
        return f"{path}: not a readable PyTorch checkpoint (corrupt, truncated, or a pickle the weights-only loader refuses)"
    return f"{path}: not a readable PyTorch checkpoint (corrupt or truncated: {type(exc).__name__})"


def load_into(model: nn.Module, state: Dict[str, torch.Tensor], source: str | Path = "checkpoint") -> nn.Module:
    """``model.load_state_dict(state, strict=True)`` with a one-line error naming what does not match."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} with another shape (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
        raise DataError(f"{source}: weights do not fit the {type(model).__name__} architecture: {'; '.join(parts)}")
    model.load_state_dict(state, strict=True)
    return model


def save_project_weights(path: str | Path, model: nn.Module, meta: Dict[str, Any]) -> None:
    """Write a float32 state_dict + plain-type metadata atomically (loads with weights_only=True, no allow-list)."""
    save_state(path, model.state_dict(), meta)


def save_state(path: str | Path, state: Dict[str, torch.Tensor], meta: Dict[str, Any]) -> None:
    """:func:`save_project_weights` for a bare state_dict (floating-point tensors stored as float32, on the CPU)."""
    state = {k: (v.detach().float() if v.is_floating_point() else v.detach()).cpu().clone() for k, v in state.items()}
    _check_plain(meta)
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "meta": meta}, tmp)


def _check_plain(value: Any, where: str = "meta") -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InputError(f"{where}: keys must be strings, got {k!r}")
            _check_plain(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not (value is None or isinstance(value, (str, int, float, bool))):
        raise InputError(f"{where}: metadata must be plain types (str/int/float/bool/None/list/dict), got {type(value).__name__}")
