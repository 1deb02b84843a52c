"""The ``sbdbench`` command line: thin click commands over the Python API.

Every command calls a function that a notebook can call with the same arguments. Errors the user
can act on (:class:`~sbdbench.errors.SbdbenchError`, bad parameters) print one line and exit with
a non-zero code; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import sys
from typing import List, Sequence

import click

from sbdbench import __version__
from sbdbench.errors import SbdbenchError


class _Group(click.Group):
    """A click group that turns SbdbenchError (and other expected failures) into one-line errors."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except SbdbenchError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted (finished results are kept)", err=True)
            ctx.exit(130)
        except (OSError, MemoryError) as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="sbdbench")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """sbdbench: build point-cloud denoising benchmarks, run denoisers, score them, publish leaderboards.

    \b
    Typical session:
      sbdbench fetch synth              # the offline default dataset (no download)
      sbdbench run --method jet         # denoise the test inputs and evaluate them
      sbdbench bench --quick            # a grid of methods x resolutions x noise levels
      sbdbench leaderboard              # CSV / Markdown / HTML under leaderboard/
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


# --- shared option parsing ----------------------------------------------------------------------
def parse_int_list(text: str | None, what: str = "value") -> List[int] | None:
    """'10000,50000' → [10000, 50000]; a clear error for anything else."""
    if text is None or text == "":
        return None
    out = []
    for part in str(text).split(","):
        part = part.strip().lower().replace("k", "000")
        try:
            value = int(part)
        except ValueError:
            raise click.BadParameter(f"{what} must be integers separated by commas, got {text!r}") from None
        if value <= 0:
            raise click.BadParameter(f"{what} must be > 0, got {value}")
        out.append(value)
    return out


def parse_float_list(text: str | None, what: str = "value") -> List[float] | None:
    """'0.01,0.02' → [0.01, 0.02] (percent allowed: '1%' → 0.01); σ must be ≥ 0."""
    if text is None or text == "":
        return None
    out = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            value = float(part[:-1]) / 100.0 if part.endswith("%") else float(part)
        except ValueError:
            raise click.BadParameter(f"{what} must be numbers separated by commas, got {text!r}") from None
        if not value >= 0 or value != value or value == float("inf"):
            raise click.BadParameter(f"{what} must be finite and ≥ 0, got {part}")
        out.append(value)
    return out


def parse_params(items: Sequence[str]) -> dict:
    """``key=value`` pairs → dict; values parsed as int, float, bool or left as strings."""
    params = {}
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"--param expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        params[key.strip()] = _parse_scalar(value.strip())
    return params


def _parse_scalar(value: str):
    low = value.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


# === data commands (issue 2: fetch synth, build, verify, check-noise, datasets) =================

# === evaluation commands (issue 3: evaluate) ====================================================

# === method commands (issue 4: methods, run, denoise, tune) =====================================

# === learned-model commands (issues 5 and 8: train, diagnose) ===================================

# === benchmark commands (issue 6: bench, leaderboard) ===========================================

# === download commands (issue 7: fetch for real sources) ========================================


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
