"""Speed of ``pdflow`` (PD-Flow) inference: reference-style path vs sbdbench's path, same input, one run.

    python benchmarks/pdflow_speed.py [--weights PATH|official] [--threads 1] [--n 10000]

* reference-style: the original's structure (``models/deflow``) in plain torch (no PyTorch3D here): all
  patches in one batch, a dense brute-force kNN (B, P, P) sorted for each of the 5 flow graphs and the
  12-NN of the augmentation, every kNN unit on ``cat[f_i, f_j, f_j − f_i]`` with its own gather for the
  scale and the bias net, 1×1 convolutions channels-first, ``W⁻¹`` taken at every inverse, the plain FPS loop
  and a dense outlier search.
* sbdbench: :class:`sbdbench.methods.learned.pdflow.PDFlow` (one sorted 32-NN per patch for all graphs,
  folded first layers with one shared gather, channels-last GEMMs, KD-tree kNN/FPS on CPU, batches of
  patches under a memory budget).

Both draw ε from the same seeded generator, so they must give the same cloud: printed as CD(ours, ref)
relative to CD(ref, clean). The machine may be shared: the ratio is meaningful, absolute times depend on the
load (printed).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from sbdbench.geometry import _fps_torch, normalize_unit_sphere
from sbdbench.methods import make_method
from sbdbench.methods.learned.knn import knn_points
from sbdbench.methods.learned.patches import num_seeds
from sbdbench.methods.learned.pdflow.network import AUG_K, CLAMP, H1, PRE_KS
from speed_inputs import torus_input  # the shared input (benchmarks/ is on sys.path)

REFERENCE_CKPT = Path(__file__).resolve().parents[2] / "shared" / "reference" / "pdflow" / "pdflow-score-LCC.pt"




# --- the reference-style path (the original's algorithm, unoptimised) ------------------------------------------
def _dense_knn(q, r, k):
    d = ((q.unsqueeze(2) - r.unsqueeze(1)) ** 2).sum(-1)
    return torch.argsort(d, dim=-1)[..., :k]


def _group(x, idx):
    b, n, k = idx.shape
    return x[torch.arange(b).view(-1, 1), idx.reshape(b, -1)].view(b, n, k, -1)


def _conv(x, conv):  # channels-first 1x1
    return F.conv1d(x, conv.weight, conv.bias)


def _knn_unit(u, f, idx):
    nb = _group(f, idx)
    own = f.unsqueeze(2).expand_as(nb)
    h = F.relu(u.linear2(F.relu(u.linear1(torch.cat([own, nb, nb - own], -1)))))
    return u.linear3(h.max(dim=2)[0])


def _linear_unit(u, f):
    convs = [m for m in u.linears if isinstance(m, torch.nn.Conv1d)]
    x = f.transpose(1, 2)
    for c in convs[:-1]:
        x = F.relu(_conv(x, c))
    return _conv(x, convs[-1]).transpose(1, 2)


def _coupling(c, x, idx, inverse):
    h1, h2 = x[..., :H1], x[..., H1:]
    run = (lambda u: _knn_unit(u, h1, idx)) if c.knn else (lambda u: _linear_unit(u, h1))
    s, b = CLAMP * torch.atan(run(c.scale_net)), run(c.bias_net)
    return torch.cat([h1, h2 * torch.exp(s) + b if inverse else (h2 - b) * torch.exp(-s)], -1)


def _augment(a, xyz, eps):
    sh = a.shallow
    x = sh.trans1(_group(xyz, _dense_knn(xyz, xyz, AUG_K))).permute(0, 3, 2, 1)  # (B, h, k, N)
    for conv in sh.convs:
        x = F.relu(F.conv2d(x, conv.weight, conv.bias))
    ctx = sh.trans2(x.mean(2).transpose(1, 2)).transpose(1, 2)  # (B, 64, N)
    nl = lambda t: F.elu(torch.cat([t, -t], 1))  # noqa: E731
    y = eps
    for st in a.steps:
        x1, x2 = y.chunk(2, 1)
        if st.is_reverse:
            x2, x1 = x1, x2
        g = st.gated_conv
        h = _conv(x2, st.conv_in)
        z = _conv(nl(_conv(nl(h), g.conv1)), g.conv2) + _conv(nl(ctx), g.conv3)
        za, zb = z.chunk(2, 1)
        h = F.batch_norm(h + za * torch.sigmoid(zb), st.layer_norm.running_mean, st.layer_norm.running_var,
                         st.layer_norm.weight, st.layer_norm.bias, False, 0.0, st.layer_norm.eps)
        co = st.conv_out
        out = (F.conv1d(h, co.conv1d.weight) + co.bias) * co.logs.mul(co.logscale_factor).exp()
        x1 = (x1 + out[:, 0::2]) * torch.sigmoid(out[:, 1::2])
        y = torch.cat([x2, x1] if st.is_reverse else [x1, x2], 1)
    return torch.sigmoid(y).transpose(1, 2)


def reference_style_net(net, xyz, eps):
    graphs = [_dense_knn(xyz, xyz, k) for k in PRE_KS]
    x = torch.cat([xyz, _augment(net.argument, xyz, eps)], -1)
    for i, fl in enumerate(net.flow_assemblies):
        g = graphs[i] if i < len(PRE_KS) else None
        x = torch.einsum("ij,bnj->bni", fl.permutate1.permutater.W, x) * torch.exp(fl.actnorm.logs) + fl.actnorm.bias
        x = _coupling(fl.coupling2, _coupling(fl.coupling1, x, g, False)[..., fl.permutate2.permutater.direct_idx], g, False)
    z = torch.einsum("ij,bnj->bni", net.channel_mask, x)
    for i in reversed(range(len(net.flow_assemblies))):
        fl, g = net.flow_assemblies[i], graphs[i] if i < len(PRE_KS) else None
        z = _coupling(fl.coupling2, z, g, True)[..., fl.permutate2.permutater.inverse_idx]
        z = (_coupling(fl.coupling1, z, g, True) - fl.actnorm.bias) * torch.exp(-fl.actnorm.logs)
        z = torch.einsum("ij,bnj->bni", torch.inverse(fl.permutate1.permutater.W), z)
    return z[..., :3]


def reference_style_denoise(net, points: torch.Tensor, seed: int = 0) -> torch.Tensor:
    n = points.shape[0]
    seeds = points[_fps_torch(points, num_seeds(n, 1024, 3), 0)]
    patches = points[_dense_knn(seeds[None], points[None], 1024)[0]]
    eps = torch.randn((patches.shape[0], 32, 1024), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        pool = reference_style_net(net, patches, eps).reshape(-1, 3)
    merged = pool[_fps_torch(pool, n + 10, 0)]
    d = torch.cat([((merged[s:s + 512, None] - points[None]) ** 2).sum(-1).min(1)[0] for s in range(0, len(merged), 512)])
    keep = torch.ones(len(merged), dtype=torch.bool)
    keep[torch.argsort(d, descending=True)[:10]] = False
    return merged[keep]


def _cd(a, b) -> float:
    ta, tb = (torch.as_tensor(np.asarray(x, np.float32))[None] for x in (a, b))
    return float(knn_points(ta, tb, 1)[0].mean() + knn_points(tb, ta, 1)[0].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=str(REFERENCE_CKPT) if REFERENCE_CKPT.is_file() else "official")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=10000)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    noisy, clean, source = torus_input(args.n)
    print(f"input: {source}, {len(noisy)} points, σ = 2 %; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    unit, center, scale = normalize_unit_sphere(noisy)
    clean_unit = (clean - center) / scale
    method = make_method("pdflow", weights=args.weights, niters=1, seed=0)
    net = method.load()
    t = time.perf_counter()
    ours = method._denoise_unit(unit.copy(), 0.02)
    t_ours = time.perf_counter() - t
    print(f"sbdbench path:        {t_ours:7.2f} s  (CD to clean {_cd(ours, clean_unit) * 1e4:.3f}e-4, noisy {_cd(unit, clean_unit) * 1e4:.3f}e-4)")
    t = time.perf_counter()
    ref = reference_style_denoise(net, torch.as_tensor(unit, dtype=torch.float32)).numpy()
    t_ref = time.perf_counter() - t
    rel = _cd(ours, ref) / _cd(ref, clean_unit)
    print(f"reference-style path: {t_ref:7.2f} s  → speed-up {t_ref / t_ours:.2f}x; CD(ours, ref) = {rel * 100:.4f} % of CD(ref, clean)")


if __name__ == "__main__":
    main()
