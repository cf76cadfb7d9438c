# Orchestrator: `make demo` runs the whole product end to end; `make test` runs every check.
# Both set up what they need themselves (a virtualenv in .venv) on a fresh clone.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PY      = $(BIN)/python

.PHONY: demo test lint typecheck contracts unit services torch browser console-screenshots bench bench-serving bench-kube clean help docker-setup images

help:
	@echo "make demo   - set up, start a control plane, train, deploy, predict, clean up"
	@echo "make test   - set up, then ruff, mypy --strict, import contracts and pytest"
	@echo "make bench  - run the benchmarks in benchmarks/ (figures: docs/benchmarks.md)"
	@echo "make bench-kube - the operator's pass and submit -> Job latency, against the API emulator"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# One stamp per set of extras, remade when pyproject.toml changes.
$(VENV)/.stamp-demo: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[sklearn]"
	touch $@

$(VENV)/.stamp-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.stamp-demo

demo: $(VENV)/.stamp-demo
	$(PY) -m orchestrator.demo

lint: $(VENV)/.stamp-dev
	$(BIN)/ruff check orchestrator tests benchmarks
	$(BIN)/ruff format --check orchestrator tests benchmarks

typecheck: $(VENV)/.stamp-dev
	$(BIN)/mypy --strict orchestrator

contracts: $(VENV)/.stamp-dev
	$(BIN)/lint-imports

services:
	@bash .ci/services.sh

kube-tools:
	@bash .ci/kube-tools.sh
	@bash .ci/promtool.sh

# A Docker engine and the offline base image (installs and starts them when root).
docker-setup:
	@bash .ci/docker.sh

# The training, algorithms, serving and controller images (docs/containers.md).
images: $(VENV)/.stamp-dev docker-setup
	@bash containers/build.sh

# PyTorch, pinned, for the distributed-training tests (installed in CI only: .ci/torch.sh).
torch: $(VENV)/.stamp-dev
	@bash .ci/torch.sh $(PY)

# Debian's Chromium for the web console's browser tests (tests/console; never a downloaded one).
browser: $(VENV)/.stamp-dev
	@PYTHON=$(PY) bash .ci/chromium.sh

# The console's screenshots in docs/console/ (docs/console.md), taken by its browser tests.
console-screenshots: $(VENV)/.stamp-dev browser
	CONSOLE_SCREENSHOTS_DIR=docs/console $(BIN)/pytest tests/console -q

# Parallel workers (pytest-xdist; tests/conftest.py): a file's tests run in order on one worker,
# files spread over the workers. PYTEST_WORKERS=0 runs the suite in this process. The fault
# tests (killed control planes and operators, their timing) run after, with the machine to
# themselves.
PYTEST_WORKERS ?= 2

unit: $(VENV)/.stamp-dev services kube-tools images torch browser
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not faults"
	$(BIN)/pytest -m faults

test: lint typecheck contracts unit

bench: $(VENV)/.stamp-dev
	$(PY) benchmarks/objectstore_throughput.py
	$(PY) benchmarks/submit_latency.py
	$(PY) benchmarks/endpoint_throughput.py

# Ours against KServe, MLServer and a bare FastAPI app, then adaptive batching (one core each
# for server and load; wrk and the peers' virtualenvs in .bench/ come from setup.sh).
bench-serving: $(VENV)/.stamp-dev
	bash benchmarks/serving/setup.sh
	$(PY) benchmarks/serving/vs_peers.py
	$(PY) benchmarks/serving/router_choice.py
	$(PY) benchmarks/serving/batching.py

# The operator on Kubernetes against the API emulator of tests/kube_operator (no cluster).
bench-kube: $(VENV)/.stamp-dev
	$(PY) benchmarks/operator_pass.py
	$(PY) benchmarks/kube_submit_latency.py

clean:
	rm -rf $(VENV) .demo .mypy_cache .ruff_cache .pytest_cache
