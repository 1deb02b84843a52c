"""StraightPCF's inference: which network a checkpoint holds, the per-patch flows, and the patch pipeline.

Three released networks, told apart by their keys (each checkpoint's ``state_dict``):

* ``vm`` (``pretrained_vm/ckpt_vm.pt``; ``encoder.*``, ``decoder.*`` with a 3-d ``lin_3``): ``models/vm.py``
  ``denoise_langevin_dynamics``: ``tot_steps = 4`` steps ``x += ¼·v(x)``.
* ``cvm`` (``pretrained_cvm/ckpt_cvm.pt``; ``velocity_nets.<m>.*`` only): ``models/cvm.py``: ``tot_its = 3``
  (fixed in its constructor) iterations, each through the M modules, ``x += (1/3)(1/M)·v_m(x)``.
* ``straightpcf`` (``pretrained_straightpcf/ckpt_straightpcf.pt``; ``velocity_nets.*`` + the distance module's
  ``encoder.*``/``decoder.*`` with a 1-d ``lin_3``): ``models/straightpcf.py``: d = distance(x₀) once per patch,
  then ``tot_its`` iterations through the M modules, ``x += (1/T)(1/M)·d·v_m(x)``. T is the checkpoint's
  ``args.tot_its`` (the model is built from ``ckpt['args']`` in test_straightpcf.py; the script's own
  ``--tot_its`` flag is never passed to it); when the file has no args, T = 2, the default of
  train_straightpcf.py (``--tot_its`` default 2).

Patches (``utils/denoise.py`` ``patch_based_denoise``): int(seed_k·N/patch_size) FPS seeds (torch_cluster ``fps``,
``random_start=False``: start at index 0), the patch_size nearest points of each seed, centred on the seed;
after the flow, each input point takes its output from the patch where its squared seed distance divided by
that patch's largest squared seed distance is smallest (``weights = exp(−d/d_max)``, ``torch.max`` over
patches, ties → the first patch). This is not :func:`~sbdbench.methods.learned.patches.merge_stitch`, which
compares unnormalised distances.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch

from sbdbench.errors import DataError
from sbdbench.geometry import farthest_point_sampling
from sbdbench.methods.learned.knn import knn_points
from sbdbench.methods.learned.patches import batch_slices
from sbdbench.methods.learned.straightpcf.network import CoupledVMArch, StraightPCF, VelocityModule

#: train_straightpcf.py ``--tot_its`` default (used when a checkpoint has no ``args.tot_its``)
DEFAULT_TOT_ITS = 2
#: models/vm.py ``tot_steps = 4``; models/cvm.py ``self.tot_its = 3``
VM_STEPS, CVM_ITS = 4, 3


def checkpoint_kind(state: Dict[str, torch.Tensor], source: str = "checkpoint") -> str:
    """``"vm"``, ``"cvm"`` or ``"straightpcf"`` from the keys, or a one-line DataError naming the first odd key."""
    keys = sorted(state)
    has_vel = any(k.startswith("velocity_nets.") for k in keys)
    has_head = "decoder.lin_3.weight" in state
    if has_vel and has_head and state["decoder.lin_3.weight"].shape[0] == 1:
        return "straightpcf"
    if has_vel and not has_head:
        return "cvm"
    if not has_vel and has_head and state["decoder.lin_3.weight"].shape[0] == 3:
        return "vm"
    odd = next((k for k in keys if not k.startswith(("velocity_nets.", "encoder.", "decoder."))), keys[0] if keys else "(none)")
    raise DataError(f"{source}: not a StraightPCF checkpoint (expected velocity_nets.*/encoder.*/decoder.* keys; "
                    f"first unexpected key: {odd!r})")


def _vm_dims(state: Dict[str, torch.Tensor], prefix: str) -> Tuple[int, int]:
    """(embedding_dim, decoder hidden_dim) of a velocity module from its tensor shapes."""
    try:
        return int(state[prefix + "decoder.lin_1.weight"].shape[0]), int(state[prefix + "decoder.lin_2.weight"].shape[0])
    except KeyError as exc:
        raise DataError(f"checkpoint: missing key {exc.args[0]!r}") from None


def build_network(state: Dict[str, torch.Tensor], meta: Dict, source: str = "checkpoint") -> Tuple[str, torch.nn.Module, int]:
    """(kind, the empty network whose shapes fit ``state``, flow iterations T) — load the weights with ``load_into``.

    The architecture comes from the tensor shapes (the original instead reads the CVM file's args at
    construction); k = ``args.frame_knn`` (32, every training script's default) for all graphs.
    """
    kind = checkpoint_kind(state, source)
    args = meta.get("args", {}) or {}
    k = int(args.get("frame_knn", 32))
    if kind == "vm":
        emb, hid = _vm_dims(state, "")
        return kind, VelocityModule(k, emb, hid), VM_STEPS
    modules = sorted({int(key.split(".")[1]) for key in state if key.startswith("velocity_nets.")})
    emb, hid = _vm_dims(state, "velocity_nets.0.")
    if kind == "cvm":
        return kind, CoupledVMArch(len(modules), k, emb, hid), CVM_ITS
    d_emb, d_hid = _vm_dims(state, "")
    net = StraightPCF(len(modules), 32, emb, hid, distance_k=k, distance_embedding_dim=d_emb, distance_hidden_dim=d_hid,
                      distance_estimation=bool(args.get("distance_estimation", True)))
    return kind, net, int(args.get("tot_its", DEFAULT_TOT_ITS))


def flow(kind: str, net: torch.nn.Module, patches: torch.Tensor, iterations: int) -> torch.Tensor:
    """The per-patch flow of each network: (B, P, 3) seed-centred patches → (B, P, 3)."""
    x = patches.clone()
    with torch.no_grad():
        if kind == "vm":
            for _ in range(iterations):
                x += (1 / iterations) * net.velocity(x)
            return x
        scale = net.distance(x) if kind == "straightpcf" else None  # (B, 1, 1)
        m = len(net.velocity_nets)
        for _ in range(iterations):
            for module in net.velocity_nets:
                step = (1 / iterations) * (1 / m) * (module.velocity(x) if scale is None else scale * module.velocity(x))
                x = x + step
    return x


def stitch(denoised: torch.Tensor, patch_idx: torch.Tensor, patch_d2: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """utils/denoise.py's 1:1 stitching.

    Args:
        denoised: (S, P, 3) patches back in the cloud's frame; patch_idx: (S, P) input indices;
        patch_d2: (S, P) squared seed distances (ascending per row); points: (N, 3).

    Returns:
        (N, 3). A point in no patch (the original drops it) keeps its input position.
    """
    s, p = patch_idx.shape
    flat = patch_idx.reshape(-1)
    weight = torch.exp(-1 * (patch_d2 / patch_d2[:, -1:]).reshape(-1))  # as the original: exp(−d/d_max)
    best = torch.zeros(points.shape[0], dtype=weight.dtype, device=points.device)  # uncovered: exp(−inf) = 0
    best.scatter_reduce_(0, flat, weight, reduce="amax")
    winner = weight == best[flat]
    entry = torch.full((points.shape[0],), s * p, dtype=torch.long, device=points.device)
    entry.scatter_reduce_(0, flat[winner], torch.nonzero(winner).squeeze(1), reduce="amin")  # patch-major: first patch
    out = points.clone()
    covered = entry < s * p
    out[covered] = denoised.reshape(-1, 3)[entry[covered]]
    return out


def denoise_pass(kind: str, net: torch.nn.Module, points: torch.Tensor, iterations: int, *, patch_size: int = 1000,
                 seed_k: float = 6, batch_size: int = 2, progress: Optional[callable] = None) -> torch.Tensor:
    """One ``patch_based_denoise`` pass of an (N, 3) cloud in the unit sphere → (N, 3)."""
    n = points.shape[0]
    p = min(int(patch_size), n)
    seeds = farthest_point_sampling(points, max(1, int(seed_k * n / patch_size)), start=0)
    d2, idx = knn_points(points[seeds].unsqueeze(0), points.unsqueeze(0), p)
    d2, idx = d2[0], idx[0]
    centres = points[seeds].unsqueeze(1)  # (S, 1, 3)
    patches = points[idx] - centres
    out = torch.empty_like(patches)
    for batch in batch_slices(patches.shape[0], batch_size, progress):
        out[batch] = flow(kind, net, patches[batch], iterations)
    return stitch(out + centres, idx, d2, points)
