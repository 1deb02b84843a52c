"""Real data sources: ``fetch(name)`` downloads, verifies and installs a dataset (or checkpoint).

Each source has a card ``datasets/<name>.toml`` (URLs, sizes, sha256, licence, citation, layout)
and a *kind*, the module that turns its downloads into the benchmark layout:

==============  ===============================================================================
kind            module
==============  ===============================================================================
scoredenoise    :mod:`.scoredenoise`  PUNet / PCNet from ScoreDenoise's ``data.zip`` (Drive folder)
dmr             :mod:`.dmr`           DMRDenoise test set (Drive) → clean + noisy clouds
pointcleannet   :mod:`.pointcleannet` PointCleanNet (Nextcloud share) → clean + noisy clouds
meshes          :mod:`.meshsets`      Stanford, Thingi10K, ModelNet40, ShapeNet: meshes → sampled splits
scans           :mod:`.scans`         real scans without GT (Kinect v1, Paris-rue-Madame) → ``<name>/scans/test/``
weights         :mod:`.weights`       a checkpoint file under ``$SBDBENCH_HOME/weights``
synth           :func:`sbdbench.data.synth.build_synth_dataset` (offline, no download)
==============  ===============================================================================

``weights-archive`` (:mod:`.weights_archive`): one checkpoint taken out of a larger archive (IterativePFN).

Host clients: :mod:`.gdrive` (gdown), :mod:`.huggingface` (huggingface_hub, pinned revision),
:mod:`.http` (plain web servers, Nextcloud and mirrors: the project's own ``Range``-resuming client,
and the size/sha256 check every download passes), :mod:`.nextcloud` (share URLs);
:mod:`.archives` extracts safely; :mod:`.lockfile` records first-use hashes. See docs/downloads.md.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

from sbdbench.data.sources.cards import Card, card_names, load_card
from sbdbench.data.sources.context import URL_MAP_ENV, FetchContext, FetchResult, mirror_env_name, parse_url_map
from sbdbench.data.sources.http import Downloader, human_size
from sbdbench.errors import DataError

# kind → "module:function" taking a FetchContext and returning a FetchResult
KINDS: Dict[str, str] = {
    "scoredenoise": "sbdbench.data.sources.scoredenoise:install",
    "dmr": "sbdbench.data.sources.dmr:install",
    "pointcleannet": "sbdbench.data.sources.pointcleannet:install",
    "stanford": "sbdbench.data.sources.meshsets:install_stanford",
    "thingi10k": "sbdbench.data.sources.meshsets:install_thingi10k",
    "modelnet40": "sbdbench.data.sources.meshsets:install_modelnet40",
    "shapenet": "sbdbench.data.sources.meshsets:install_shapenet",
    "weights": "sbdbench.data.sources.weights:install",
    "scans": "sbdbench.data.sources.scans:install",
    "weights-archive": "sbdbench.data.sources.weights_archive:install",
    "synth": "sbdbench.data.sources.weights:install_synth",
}

__all__ = ["fetch", "list_sources", "SourceInfo", "FetchResult", "load_card", "KINDS", "LIST_OPTIONS"]

# card options whose values are lists (``-o models=bunny,dragon`` on the command line)
LIST_OPTIONS = frozenset({"members", "models", "classes", "synsets", "licences", "splits", "exclude_ids", "resolutions", "noise_levels",
                          "noises", "shapes", "train_resolutions", "extra_noises"})


def _installer(kind: str) -> Callable[[FetchContext], FetchResult]:
    if kind not in KINDS:
        raise DataError(f"unknown source kind {kind!r} (known: {', '.join(sorted(KINDS))})")
    module, func = KINDS[kind].split(":")
    return getattr(importlib.import_module(module), func)


def fetch(
    name: str,
    *,
    force: bool = False,
    mirror: Optional[str] = None,
    progress: bool = True,
    source_path: Optional[str | os.PathLike] = None,
    options: Optional[Dict] = None,
    downloader: Optional[Downloader] = None,
    url_map: Optional[Dict[str, str]] = None,
    log: Optional[Callable[[str], None]] = None,
) -> FetchResult:
    """Download, verify and install source ``name`` (see ``datasets/<name>.toml``).

    ``force`` downloads and installs again; ``mirror`` (or ``$SBDBENCH_MIRROR_<NAME>``) is a base URL
    serving the card's files by name; ``source_path`` uses a local copy of the download (a file or a
    folder holding the card's files) instead of the network (required for gated ShapeNet);
    ``options`` overrides the card's ``[options]`` (e.g. ``{"models": ["bunny"]}``). A present and
    intact dataset is not downloaded again ("already present"); one with different contents is a
    :class:`DataError` suggesting ``--force``.
    """
    if name == "synth":  # offline, built by sbdbench.data.synth whatever its card says
        card = Card("synth", "synth (offline procedural dataset)", "synth", "MIT", "", "", "", "synth", ())
    else:
        card = load_card(name)
    mirror = mirror or os.environ.get(mirror_env_name(name)) or None
    ctx = FetchContext(
        card=card,
        force=force,
        mirror=mirror,
        progress=progress,
        source_path=Path(source_path) if source_path else None,
        downloader=downloader or Downloader(progress=progress),
        url_map=url_map if url_map is not None else parse_url_map(os.environ.get(URL_MAP_ENV)),
        options=dict(options or {}),
        **({"log": log} if log is not None else {}),
    )
    result = _installer(card.kind)(ctx)
    ctx.commit_pins()  # only now, with the install validated, are first-use hashes recorded
    return result


@dataclass(frozen=True)
class SourceInfo:
    """One row of ``sbdbench fetch --list``."""

    name: str
    title: str
    kind: str
    size: str
    licence: str
    present: bool
    where: str


def list_sources() -> List[SourceInfo]:
    """Every card with its size, licence and whether it is already installed."""
    from sbdbench.paths import data_root, home

    rows = []
    for name in card_names():
        try:
            card = load_card(name)
        except DataError:
            if name != "synth":
                raise
            card = Card("synth", "synth (offline procedural dataset)", "synth", "MIT", "", "", "built offline", "synth", ())
        if card.kind in ("weights", "weights-archive"):
            target = home() / card.options.get("target", f"weights/{name}.pt")
        else:
            target = data_root() / card.options.get("dataset", name)
        size = human_size(card.known_size) if card.known_size else (card.size_note or "?")
        rows.append(SourceInfo(name, card.title, card.kind, size, card.licence, target.exists(), str(target)))
    return rows
