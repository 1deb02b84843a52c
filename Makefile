# Two-command quick start: `make bench` (default benchmark end to end), `make test` (the test suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH_VERSION   ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: venv cpu-torch bench test clean

# The CPU build of torch, before the project, so its bare `torch` requirement never pulls a CUDA build:
# the `+cpu` wheel from the configured package index when it has one (as on the project's machines),
# else PyTorch's own CPU wheel index (a standard Linux or macOS machine). Says which one it used.
define INSTALL_CPU_TORCH
if $(BIN)/pip install --quiet "torch==$(TORCH_VERSION)+cpu" 2>/dev/null; then \
	echo "torch $(TORCH_VERSION)+cpu (CPU build) installed from the configured package index"; \
else \
	$(BIN)/pip install --quiet "torch==$(TORCH_VERSION)" --index-url $(TORCH_CPU_INDEX) && \
	echo "torch $(TORCH_VERSION) (CPU build) installed from $(TORCH_CPU_INDEX)"; \
fi
endef

$(BIN)/sbdbench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@$(INSTALL_CPU_TORCH)
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(BIN)/sbdbench

venv: $(BIN)/sbdbench

# CPU torch into an existing venv (VENV=path), e.g. before `pip install sbdbench-*.whl` (.ci/wheel_smoke.sh)
cpu-torch:
	@$(INSTALL_CPU_TORCH)

bench: venv
	# --build: build the synth test shapes at 10K when absent (an existing dataset is used as is, never replaced)
	$(BIN)/sbdbench bench --quick --build
	# --out leaderboard: the repository's committed folder (the command's own default is ./leaderboard of the current directory)
	$(BIN)/sbdbench leaderboard --out leaderboard

test: venv
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
