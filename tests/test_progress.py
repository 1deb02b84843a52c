"""sbdbench.progress: a tqdm bar on a terminal, plain lines with counts and an ETA elsewhere (issue #21, item 2)."""

from __future__ import annotations

import io

import pytest
from click.testing import CliRunner

from sbdbench.progress import Progress, format_bytes, format_seconds, progress_iter


class Clock:
    """A fake monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lines_of(total, desc="building synth", unit="shape", **kw):
    lines, clock = [], Clock()
    return Progress(total, desc, unit, log=lines.append, tty=False, clock=clock, **kw), lines, clock


def test_format_seconds_and_bytes():
    assert format_seconds(5) == "5 s" and format_seconds(72) == "1 min 12 s" and format_seconds(4000) == "1 h 06 min"
    assert format_bytes(512) == "512 B" and format_bytes(126143897) == "120.3 MiB" and format_bytes(1.2 * 2**30) == "1.2 GiB"


def test_bench_progress_still_exports_format_seconds():
    from sbdbench.bench.progress import format_seconds as again

    assert again is format_seconds


def test_lines_carry_the_count_and_an_eta_at_most_every_interval():
    progress, lines, clock = lines_of(64)
    for _ in range(8):  # 8 shapes in 20 s: no line yet (the first comes 30 s after the start)
        clock.now += 2.5
        progress.update()
    assert lines == []
    clock.now += 20.0  # 9 shapes in 40 s
    progress.update()
    assert lines == ["building synth: 9/64 shapes (14 %), ETA 4 min 04 s"]  # 40 / 9 × 55 = 244 s
    clock.now += 10.0
    progress.update()
    assert len(lines) == 1  # only 10 s after the last line
    clock.now += 25.0
    progress.update(2)
    assert lines[-1] == "building synth: 12/64 shapes (19 %), ETA 5 min 25 s"  # 75 / 12 × 52 = 325 s
    clock.now += 15.0  # 90 s in all
    progress.update(52)  # done: the summary line says it, not a progress line
    assert len(lines) == 2
    progress.close()
    progress.close()
    assert lines[-1] == "building synth: 64/64 shapes in 1 min 30 s" and len(lines) == 3


def test_short_work_prints_nothing():
    progress, lines, clock = lines_of(10)
    with progress:
        for _ in range(10):
            clock.now += 1.0
            progress.update()
    assert lines == []


def test_stopped_work_says_where_it_stopped():
    progress, lines, clock = lines_of(10, min_interval_s=0)
    progress.update(3)
    clock.now += 12.0
    progress.close()
    assert lines[-1] == "building synth: stopped at 3/10 shapes after 12 s"


def test_byte_lines_for_downloads_resume_from_initial():
    progress, lines, clock = lines_of(int(1.2 * 2**30), desc="downloading PUNet.zip", unit="B", initial=2**20)
    clock.now += 31.0
    progress.update(int(119.3 * 2**20))
    assert lines == ["downloading PUNet.zip: 120.3 MiB / 1.2 GiB (10 %), ETA 4 min 48 s"]  # 31 s / 119.3 MiB new × 1108.5 MiB left


def test_unknown_total_has_a_count_but_no_eta():
    progress, lines, clock = lines_of(None, min_interval_s=0, unit="set")
    progress.update(2)
    assert lines == ["building synth: 2 sets"]


def test_disabled_is_silent_even_on_a_terminal():
    stream = io.StringIO()
    lines = []
    with Progress(5, "evaluate", "shape", log=lines.append, tty=True, enabled=False, min_interval_s=0, file=stream) as p:
        p.update(5)
    assert p.bar is None and lines == [] and stream.getvalue() == ""
    assert list(progress_iter(range(3), None, "quiet", enabled=False, log=lines.append, tty=False, min_interval_s=0)) == [0, 1, 2]
    assert lines == []


def test_a_terminal_gets_a_tqdm_bar():
    stream, lines = io.StringIO(), []
    with Progress(4, "building synth", "shape", log=lines.append, tty=True, file=stream) as progress:
        from tqdm import tqdm

        assert isinstance(progress.bar, tqdm)
        progress.update(4)
    shown = stream.getvalue()
    assert "building synth" in shown and "4/4" in shown and "\r" in shown and lines == []


def test_progress_iter_counts_each_item_and_ends_with_the_loop():
    lines, clock = [], Clock()
    seen = []
    for item in progress_iter(["a", "b", "c"], None, "evaluate", "shape", log=lines.append, tty=False,
                              min_interval_s=0, clock=clock):
        seen.append(item)
        clock.now += 1.0
    assert seen == ["a", "b", "c"]
    assert lines == ["evaluate: 1/3 shapes (33 %), ETA 2 s", "evaluate: 2/3 shapes (67 %), ETA 1 s",
                     "evaluate: 3/3 shapes in 3 s"]


def test_point_progress_keeps_its_lines():
    from sbdbench.bench.progress import PointProgress

    lines = []
    progress = PointProgress(lines.append, "denoise pca", tty=False, min_interval_s=0)
    progress(250, 1000)
    progress(1000, 1000)
    progress.close()
    assert len(lines) == 1 and lines[0].startswith("  denoise pca: 250/1000 points (25 %), ETA ")


def test_training_eta_from_this_invocations_rate():
    from types import SimpleNamespace

    from sbdbench.methods.learned.training import _TrainingRun

    run = SimpleNamespace(config=SimpleNamespace(iterations=100, time_limit_s=None), run_from=(20, 50.0), elapsed=90.0)
    assert _TrainingRun.eta(run, 40) == ", ETA 2 min 00 s"  # 40 s per 20 iterations × 60 left
    assert _TrainingRun.eta(run, 100) == "" and _TrainingRun.eta(run, 20) == ""
    run.config.time_limit_s = 100.0
    assert _TrainingRun.eta(run, 40) == ", ETA 10 s"


@pytest.mark.parametrize("quiet", [False, True])
def test_build_off_a_terminal_writes_lines_not_bar_redraws(tmp_path, monkeypatch, quiet):
    """click's runner is no terminal: the build's progress (lines every 0 s here) has no carriage return."""
    import sbdbench.progress as progress_mod
    from sbdbench.cli import main

    monkeypatch.setenv("SBDBENCH_HOME", str(tmp_path))
    class Eager(progress_mod.Progress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "min_interval_s": 0.0})

    monkeypatch.setattr(progress_mod, "Progress", Eager)
    args = ["build", "--shapes", "cube", "--resolutions", "300", "--sigmas", "1%", "--no-train", "--workers", "1"]
    result = CliRunner().invoke(main, args + (["--quiet"] if quiet else []))
    assert result.exit_code == 0, result.output
    assert "\r" not in result.output
    if quiet:
        assert "building synth" not in result.output
    else:
        assert "building synth: 1/1 shapes in " in result.output
