#!/usr/bin/env bash
# CI: build the wheel, install it into a fresh venv (CPU torch first, as the Makefile does) and use it
# from a folder outside the checkout: the dataset cards, the frozen settings and one bench cell must
# come from the installed package (issue 19, item 1). Usage: bash .ci/wheel_smoke.sh [PYTHON]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${1:-python3}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS=1 SBDBENCH_HOME="$TMP/home"
unset SBDBENCH_DATASETS_DIR SBDBENCH_BASELINES

echo "== wheel"
# built from a copy of the working tree (tracked + untracked, not ignored), so no build/ is left in the checkout
mkdir "$TMP/src"
git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
  | (cd "$ROOT" && tar --null -T - --ignore-failed-read -cf -) | tar -xf - -C "$TMP/src"
"$PY" -m pip wheel --quiet --no-deps "$TMP/src" -w "$TMP/dist"
"$PY" -m venv "$TMP/venv"
make --no-print-directory -C "$ROOT" cpu-torch VENV="$TMP/venv"
"$TMP/venv/bin/pip" install --quiet "$TMP"/dist/sbdbench-*.whl
export PATH="$TMP/venv/bin:$PATH"
mkdir "$TMP/work" && cd "$TMP/work"
python - "$TMP/venv" <<'PY'
import sys, sbdbench, sbdbench.resources as r
assert sbdbench.__file__.startswith(sys.argv[1]), f"imported from {sbdbench.__file__}, not the fresh venv"
assert r.checkout_root() is None, "the installed package thinks it is a checkout"
print("package:", sbdbench.__file__)
PY

echo "== fetch --list (dataset cards)"
sbdbench fetch --list | tee list.txt
grep -q "^punet" list.txt

echo "== denoise --method jet (frozen settings)"
python -c "import numpy as np; p = np.random.default_rng(0).normal(size=(10000, 3)); np.savetxt('cloud.xyz', p / np.linalg.norm(p, axis=1, keepdims=True))"
sbdbench denoise cloud.xyz out.xyz --method jet --sigma 2% >denoise.txt 2>denoise.err
cat denoise.txt denoise.err
python - "$ROOT/baselines/jet.toml" <<'PY'
import sys
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
cells = tomllib.load(open(sys.argv[1], "rb"))["cell"]
cell = next(c for c in cells if c["n_points"] == 10000 and abs(c["sigma"] - 0.02) < 1e-12)
line = open("denoise.txt").read()
for key, value in cell["params"].items():
    assert f"{key}={value!r}" in line, f"denoise did not use the frozen {key}={value!r}: {line}"
err = open("denoise.err", encoding="utf-8").read()
assert "no frozen settings" not in err and "deprecated" not in err, err
assert "σ given: 0.02" in err and "frozen cell N=10000 σ=0.02" in err, err
print("frozen settings used:", cell["params"])
PY

echo "== one bench cell"
sbdbench build --shapes sphere --resolutions 10K --sigmas 1% --no-train --quiet
sbdbench bench --methods noisy,jet --resolutions 10K --sigmas 1% --db "$TMP/r.db"
python - "$TMP/r.db" <<'PY'
import json, sqlite3, sys
from sbdbench.methods.settings import frozen_params
rows = dict(sqlite3.connect(sys.argv[1]).execute("SELECT method, params_json FROM runs WHERE status = 'finished'").fetchall())
assert set(rows) == {"noisy", "jet"}, rows
frozen, used = frozen_params("jet", 10000, 0.01), json.loads(rows["jet"])
assert frozen and all(used[k] == v for k, v in frozen.items()), (frozen, used)
print("bench cell used the frozen settings:", frozen)
PY
echo "wheel smoke test: OK"
