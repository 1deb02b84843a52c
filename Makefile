# Two-command quick start: `make bench` (default benchmark end to end), `make test` (the test suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: venv bench test clean

$(BIN)/sbdbench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first, so the project's bare `torch` requirement never pulls a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(BIN)/sbdbench

venv: $(BIN)/sbdbench

bench: venv
	# --build: build the synth test shapes at 10K when absent (an existing dataset is used as is, never replaced)
	$(BIN)/sbdbench bench --quick --build
	$(BIN)/sbdbench leaderboard

test: venv
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
