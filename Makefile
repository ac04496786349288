# Two commands do everything on a fresh machine:  `make repro`  and  `make test`.
# Both create .venv if missing and install the project into it first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# Keep a torch that the host Python already has (e.g. a CUDA build): the venv then sees it, and
# pip treats `torch>=2.1` as satisfied. Without one, the pinned CPU wheel is installed.
VENV_FLAGS ?= $(shell $(PYTHON) -c "import torch" >/dev/null 2>&1 && echo --system-site-packages)

export PATH := $(BIN):$(PATH)
export MLFLOW_DISABLE_TELEMETRY ?= true
export DO_NOT_TRACK ?= true
export DVC_NO_ANALYTICS ?= 1
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: install repro test grid bench mlflow-ui clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	@$(BIN)/python -c "import torch" >/dev/null 2>&1 || $(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install -c constraints.txt -e ".[test]"
	@touch $@

repro: install            ## the full pipeline on params.yaml (DVC skips stages that are up to date)
	dvc repro

test: install             ## the test suite (CPU only, hermetic temp stores); installs headless Chromium if missing
	bash .ci/browsers.sh
	$(BIN)/python -m pytest

grid: install             ## the same grid as a Prefect flow (local mode)
	arena grid

bench: install            ## speed per kind at L 1K/4K/16K beside HF BERT and a minimal S4D, MFU, bf16, the smoke grid's split -> reports/benchmarks.md
	$(BIN)/python benchmarks/bench.py

mlflow-ui: install        ## browse the runs at http://127.0.0.1:5000
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///mlflow.db

clean:                    ## remove generated data, checkpoints, metrics and the local MLflow store
	rm -rf data artifacts metrics mlflow.db mlruns
