"""Running methods on datasets: one cell (:mod:`sbdbench.bench.cell`), grids, executors, the results store."""

# Benchmark API, imported lazily so `import sbdbench.bench.cell` stays light.
_EXPORTS = {
    "run_bench": "sbdbench.bench.runner",
    "BenchConfig": "sbdbench.bench.config",
    "BenchSummary": "sbdbench.bench.runner",
    "build_grid": "sbdbench.bench.grid",
    "Cell": "sbdbench.bench.grid",
    "ResultsStore": "sbdbench.bench.store",
    "write_leaderboard": "sbdbench.bench.leaderboard",
    "versus_table": "sbdbench.bench.versus",
}


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sbdbench.bench' has no attribute {name!r}")
