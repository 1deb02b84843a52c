"""The CLI's shared vocabulary: one parser per kind of value and one decorator per option.

Every command spells the same idea the same way (docs/cli.md):

* ``--resolutions N,N``  point counts; ``10K`` = 10000 (:func:`parse_counts`)
* ``--sigmas S,S`` / ``--sigma S``  noise levels σ; ``2%`` = 0.02 (:func:`parse_sigmas`)
* ``--noise-kind KIND``  noise model of the noisy inputs (``gaussian``, ``laplace``, ...)
* ``--out``  what the command writes: a folder where it writes several files, a file where it writes one
* ``--quiet``  no progress bars or progress lines (results are still printed)

Old spellings (``--noise``, ``--noise-levels``, ``--resolution``, ...) still work through
:class:`AliasedCommand`: each is rewritten to its new name with a one-line deprecation warning on stderr.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import click

from sbdbench.errors import InputError
from sbdbench.protocol import GAUSSIAN

_SUFFIXES = {"k": 1_000, "m": 1_000_000}


# --- parsers ------------------------------------------------------------------------------------
def _items(text: Optional[str], option: str, what: str, example: str) -> Optional[List[str]]:
    """The comma-separated items of an option; None when absent, an InputError when given but empty."""
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise InputError(f"the list of {what} is empty ({option} {text!r}): name at least one (e.g. {option} {example}), "
                         "or leave the option out for the default")
    if not all(parts):
        raise InputError(f"{option}: an empty item in {text!r}")
    return parts


def parse_count(part: str, option: str = "value") -> int:
    """'10000', '10K', '1.5k', '2M' → a positive integer point count."""
    low = str(part).strip().lower()
    scale = _SUFFIXES.get(low[-1:], 1)
    number = low[:-1] if scale > 1 else low
    try:
        value = float(number) * scale if scale > 1 else int(number)
    except ValueError:
        raise InputError(f"{option} must be integers separated by commas (10000 or 10K), got {part!r}") from None
    if value != int(value):
        raise InputError(f"{option} must be whole point counts, got {part!r}")
    if value <= 0:
        raise InputError(f"{option} must be > 0, got {part}")
    return int(value)


def parse_sigma(part: str, option: str = "value") -> float:
    """'0.02' or '2%' → 0.02; σ must be finite and ≥ 0."""
    part = str(part).strip()
    try:
        value = float(part[:-1]) / 100.0 if part.endswith("%") else float(part)
    except ValueError:
        raise InputError(f"{option} must be numbers separated by commas (0.02 or 2%), got {part!r}") from None
    if not value >= 0 or value == float("inf"):
        raise InputError(f"{option} must be finite and ≥ 0, got {part}")
    return value


def parse_counts(text: Optional[str], option: str = "--resolutions") -> Optional[List[int]]:
    """'10K,50000' → [10000, 50000]; None when absent; an InputError for an empty or bad list."""
    parts = _items(text, option, "resolutions", "10K")
    return None if parts is None else [parse_count(p, option) for p in parts]


def parse_sigmas(text: Optional[str], option: str = "--sigmas") -> Optional[List[float]]:
    """'1%,0.02' → [0.01, 0.02]; None when absent; an InputError for an empty or bad list."""
    parts = _items(text, option, "noise levels", "1%")
    return None if parts is None else [parse_sigma(p, option) for p in parts]


def parse_names(text: Optional[str]) -> Optional[List[str]]:
    """'a, b' → ['a', 'b']; None (absent) → None; '' or ',' → [] (callers refuse an empty list)."""
    if text is None:
        return None
    return [t.strip() for t in str(text).split(",") if t.strip()]


# --- deprecated spellings -----------------------------------------------------------------------
class AliasedCommand(click.Command):
    """A command that still accepts old option spellings: ``aliases={"--noise": "--sigmas"}``.

    Each old spelling on the command line (``--noise 1%`` or ``--noise=1%``) is rewritten to the new
    one before parsing, with one warning line on stderr; the old names are not in ``--help``."""

    def __init__(self, *args, aliases: Optional[Dict[str, str]] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.aliases = dict(aliases or {})

    def parse_args(self, ctx: click.Context, args: List[str]) -> List[str]:
        return super().parse_args(ctx, self.rewrite(args))

    def rewrite(self, args: List[str]) -> List[str]:
        out, warned = [], set()
        for i, arg in enumerate(args):
            if arg == "--":
                return out + list(args[i:])
            old, eq, value = arg.partition("=")
            new = self.aliases.get(old)
            if new is None:
                out.append(arg)
                continue
            if old not in warned:
                click.echo(f"warning: {self.name} {old} is deprecated; use {new}", err=True)
                warned.add(old)
            out.append(new + eq + value)
        return out

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        if self.aliases:
            with formatter.section("Deprecated spellings (still accepted, with a warning)"):
                formatter.write_dl([(old, f"use {new}") for old, new in self.aliases.items()])


# --- option decorators --------------------------------------------------------------------------
def _parsed(parse):
    def callback(ctx, param, value):
        return parse(value, param.opts[0])

    return callback


def resolutions_option(default: Optional[str] = None, help: str = "Point counts N, e.g. 10K,50K.", **kwargs):
    return click.option("--resolutions", "resolutions", default=default, metavar="N,N", callback=_parsed(parse_counts),
                        show_default=default is not None, help=help, **kwargs)


def sigmas_option(default: Optional[str] = None, help: str = "Noise levels σ, e.g. 1%,2%,3% or 0.01,0.02.", **kwargs):
    return click.option("--sigmas", "sigmas", default=default, metavar="S,S", callback=_parsed(parse_sigmas),
                        show_default=default is not None, help=help, **kwargs)


def _one_sigma(value, option):
    return None if value is None else parse_sigma(value, option)


def sigma_option(default: Optional[str] = None, help: str = "Noise level σ, e.g. 2% or 0.02.", **kwargs):
    return click.option("--sigma", "sigma", default=default, metavar="S", callback=_parsed(_one_sigma),
                        show_default=default is not None, help=help, **kwargs)


def noise_kind_option(default: str = GAUSSIAN, help: str = "Noise model of the noisy inputs.", **kwargs):
    return click.option("--noise-kind", "noise_kind", default=default, show_default=True, metavar="KIND", help=help, **kwargs)


def quiet_option(help: str = "No progress bars or progress lines (results are still printed)."):
    return click.option("--quiet", "-q", is_flag=True, help=help)


def max_memory_option():
    """``--max-memory SIZE`` (denoise, run): clouds larger than the cap are denoised in overlapping spatial blocks."""
    return click.option("--max-memory", "max_memory", default=None, metavar="SIZE",
                        help="Cap the working memory (e.g. 2GB, 512MB): large clouds are denoised in overlapping spatial blocks.")


def out_option(kind: str, help: str, dest: str = "out", **kwargs):
    """``--out``: ``kind`` is "folder" (the command writes several files) or "file" (it writes one)."""
    path_type = click.Path(file_okay=False) if kind == "folder" else click.Path(dir_okay=False)
    return click.option("--out", dest, type=path_type, metavar=kind.upper(), help=f"Output {kind}: {help}", **kwargs)
