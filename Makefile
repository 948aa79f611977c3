# Everyday verbs. Every target that needs Python first builds .venv from requirements.lock (with uv).
PYTHON ?= python3.10
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
XFER := $(VENV)/bin/xfer
CONFIG ?= configs/sample.yaml
DATA ?= data/sample
SAMPLE_IMAGES ?= 500
WORKSPACE ?= workspace
PORT ?= 5000
PYTEST_ARGS ?=


.PHONY: setup run pretrain run-pretrained test test-kfp test-fast ui ui-check lint format bench lock clean

setup: $(VENV)/.installed

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

# --compile-bytecode: uv writes no .pyc by default, and where PYTHONDONTWRITEBYTECODE is set (this machine, the
# image) Python never caches one either, so every process compiled TFX, Beam, TF and MLflow from source again:
# 16 s of a 31 s fully cached `xfer run` here. Compiling once at install takes about a minute.
$(VENV)/.installed: requirements.lock pyproject.toml | $(UV)
	[ -x $(PY) ] || $(UV) venv --python $(PYTHON) $(VENV)
	$(UV) pip sync --compile-bytecode --python $(PY) requirements.lock
	$(UV) pip install --python $(PY) --no-deps -e .
	touch $@

$(DATA)/annotations.csv: | $(VENV)/.installed
	$(XFER) sample-data --out $(DATA) --num-images $(SAMPLE_IMAGES)

run: $(VENV)/.installed $(DATA)/annotations.csv
	$(XFER) run --config $(CONFIG)

# Offline stand-in for ImageNet weights: a backbone trained on a source task that is not the sample
# (benchmarks/transfer.py), saved where configs/pretrained.yaml reads it. About 10 min here.
BACKBONE := workspace/backbones/source_backbone.h5
PRETRAIN_SECONDS ?= 600

pretrain: $(BACKBONE)

$(BACKBONE): | $(VENV)/.installed
	$(PY) -m benchmarks.transfer --source-only --source-budget $(PRETRAIN_SECONDS) --weights-out $@

run-pretrained: $(BACKBONE) $(DATA)/annotations.csv
	$(XFER) run --config configs/pretrained.yaml

# Everything, the KFP emulator's scheduled runs included, on two workers (conftest.py orders the files): about
# 26 min of emulator beside the rest (the whole suite about 31 min here). `make test-kfp` runs the emulator alone.
test: lint
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

test-kfp: $(VENV)/.installed
	$(PY) -m pytest -m kfp_emulator $(PYTEST_ARGS)

test-fast: $(VENV)/.installed
	$(PY) -m pytest -m "not e2e and not slow" $(PYTEST_ARGS)

ui: $(VENV)/.installed
	$(XFER) ui --workspace $(WORKSPACE) --port $(PORT)

# Headless Chromium (Debian's `chromium` package) against the UI on $(WORKSPACE): screenshots in
# $(WORKSPACE)/ui-check/, and a failure when a page shows an error.
ui-check: $(VENV)/.installed
	$(PY) -m tools.ui_check --workspace $(WORKSPACE) --out $(WORKSPACE)/ui-check

# The code, the tests, the benchmarks, the developer tools and infra's scripts; `make test` runs it first.
LINTED := pipeline components tests benchmarks infra tools

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

# Applies the formatter that `make lint` enforces.
format: $(VENV)/.installed
	$(VENV)/bin/ruff format $(LINTED)
	$(VENV)/bin/ruff check --fix $(LINTED)

bench: $(VENV)/.installed
	$(PY) -m benchmarks.ingest

# Re-resolves requirements.lock from pyproject.toml; commit the result.
lock: | $(UV)
	$(UV) pip compile pyproject.toml --extra dev --extra kubeflow --python-version 3.10 \
		--python-platform x86_64-unknown-linux-gnu --generate-hashes -o requirements.lock

clean:
	rm -rf $(WORKSPACE) $(DATA)
