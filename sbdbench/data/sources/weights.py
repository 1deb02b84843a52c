"""Single files installed as they are (checkpoints), and the offline ``synth`` dataset.

``score-official``: ScoreDenoise's pretrained checkpoint, verified by sha256, installed at
``$SBDBENCH_HOME/weights/score-denoise-official.pt`` where the learned methods look for it.
"""

from __future__ import annotations

from sbdbench.data.sources.context import FetchContext, FetchResult
from sbdbench.paths import sha256_file
from sbdbench.errors import DataError
from sbdbench.paths import home


def install(ctx: FetchContext) -> FetchResult:
    """Download the card's single file straight to ``home()/<options.target>`` (verified)."""
    card = ctx.card
    spec = next(f for f in card.files if not f.optional)
    target = home() / card.options.get("target", f"weights/{card.name}.pt")
    expected = ctx.expected_sha256(spec)
    if target.is_file() and not ctx.force:
        digest = sha256_file(target)
        if expected is None or digest == expected:
            return FetchResult(card.name, "present", target, f"{card.name}: already present at {target} (sha256 verified)")
        raise DataError(f"{target} already exists with different contents (sha256 {digest[:12]}…, expected {expected[:12]}…); rerun with --force to replace it")
    local = ctx._from_source_path(spec)
    if local is not None:
        ctx.get_file(spec)  # verifies it (and records its hash when unknown)
        from sbdbench.paths import atomic_path
        import shutil

        with atomic_path(target) as tmp:
            shutil.copyfile(local, tmp)
    else:
        ctx.get_file(spec, dest=target)
    return FetchResult(card.name, "installed", target, f"{card.name}: installed {target}")


def install_synth(ctx: FetchContext) -> FetchResult:
    """``fetch synth``: build the offline default dataset (no network); an intact one is kept."""
    from sbdbench.data.synth import build_synth_dataset
    from sbdbench.paths import data_root

    import inspect

    params = inspect.signature(build_synth_dataset).parameters
    allowed = {k for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY} - {"progress", "force", "root", "name"}
    unknown = sorted(set(ctx.options) - allowed)
    if unknown:
        raise DataError(f"synth: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(allowed))})")
    existed = (data_root() / "synth" / "manifest.json").is_file()
    ds = build_synth_dataset(progress=ctx.progress, force=ctx.force, **ctx.options)
    if existed and not ctx.force:
        return FetchResult("synth", "present", ds.dir, f"synth: already present at {ds.dir} (verified; use --force to rebuild)")
    return FetchResult("synth", "installed", ds.dir, f"synth: built under {ds.root}")
