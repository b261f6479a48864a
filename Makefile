# Headwater: `make up` runs the demo pipeline, `make test` runs the whole suite.
# Both set up what they need (virtualenv, generated code) themselves.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bootstrap-stamp
PROTOS := $(wildcard protos/headwater/v1/*.proto)
# The oldest grpcio the generated stubs accept: pyproject's floor (`grpcio>=1.70,<2`), not the
# generator's own version, so an application keeps its grpcio (tests/unit/test_packaging.py).
GRPC_FLOOR := 1.70.0

help: ## Show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || PYTHON=python3; \
	  test -x $(PY) || $${PYTHON:-$(PYTHON)} -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,all]'
	@touch $(STAMP)

# The compiled kernels (headwater/jit.py): each module ahead of time into an extension in its
# __pycache__ (loaded without numba: about 110 MB less per process), numba's cache on the way;
# rebuilt when a kernel's source changes (a stale extension is not loaded: numba's JIT then).
KERNEL_MODULES := headwater.services.ingestion.log._kernels headwater.services.processing.exec._jsonkernels
KERNELS_STAMP := $(VENV)/.kernels-stamp
$(KERNELS_STAMP): $(STAMP) headwater/jit.py services/ingestion/log/_kernels.py services/processing/exec/_jsonkernels.py
	$(PY) -m headwater.jit $(KERNEL_MODULES)
	@touch $(KERNELS_STAMP)

# The Node client example's npm packages (docs/clients.md), when node is installed.
NODE_EXAMPLE := tests/clients/node
$(NODE_EXAMPLE)/node_modules/.package-lock.json: $(NODE_EXAMPLE)/package-lock.json
	@if command -v npm >/dev/null; then cd $(NODE_EXAMPLE) && npm ci --no-audit --no-fund --loglevel=error; \
	  else echo "make: npm not installed; the Node client test will be skipped"; fi

setup: $(STAMP) $(KERNELS_STAMP) $(NODE_EXAMPLE)/node_modules/.package-lock.json ## Create .venv and install Headwater with its test dependencies (idempotent)

GO_PKGS := golang-go golang-google-grpc-dev golang-google-genproto-dev golang-github-golang-protobuf-1-5-dev \
	protoc-gen-go protoc-gen-go-grpc
setup-go: ## Install Debian's Go toolchain and gRPC packages (the Go client example's test; about 20 s)
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(GO_PKGS) >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(GO_PKGS) >/dev/null; }

proto: $(STAMP) ## Regenerate headwater/v1 from protos/
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. $(PROTOS)
	sed -i "s/^GRPC_GENERATED_VERSION = .*/GRPC_GENERATED_VERSION = '$(GRPC_FLOOR)'/" headwater/v1/*_pb2_grpc.py

up: setup bytecode ## Start the four services and the dashboard, create the demo hub and job, run trips
	@echo "make up: the CLI is $(CURDIR)/$(VENV)/bin/headwater; from any directory: export PATH=\"$(CURDIR)/$(VENV)/bin:\$$PATH\""
	$(VENV)/bin/headwater demo

down: ## Stop what `make up` started
	-$(VENV)/bin/headwater down

# The dashboard's browser test drives Debian's chromium through chromedriver.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || echo "make: chromium/chromedriver not installed; the browser test will be skipped"; }

# Bytecode for every module, written even where PYTHONDONTWRITEBYTECODE is set (this machine
# sets it): otherwise each service, job worker and command the tests start compiles the
# modules it imports from source again (about 0.2 CPU s a process, some 750 processes a run).
# Only changed files are compiled again (under a second for the whole tree).
bytecode: setup ## Compile every module's bytecode (make test and make up do it first)
	$(PY) -m compileall -q -j 0 headwater services plugins tests

test: setup browser bytecode ## Run the whole test suite
	$(VENV)/bin/pytest -q -n 4 --dist loadgroup

# `buf breaking` compares protos/ with the last release: the newest tag, else main's previous commit.
BUF_AGAINST ?= $(shell git describe --tags --abbrev=0 2>/dev/null || echo main~1)

lint: setup ## Lint the contracts (buf lint + buf breaking against the last release, via npx) and the code (ruff, import contracts, mypy)
	npx --yes @bufbuild/buf lint
	@rm -rf .buf-against && mkdir -p .buf-against && git archive $(BUF_AGAINST) protos | tar -x -C .buf-against
	npx --yes @bufbuild/buf breaking --against .buf-against/protos; status=$$?; rm -rf .buf-against; exit $$status
	$(PY) -m pip install -q ruff && $(VENV)/bin/ruff check headwater services plugins tests
	$(PY) -m tests.layers
	$(PY) -m tests.types

fmt: setup ## Format the code
	$(PY) -m pip install -q ruff && $(VENV)/bin/ruff format headwater services plugins tests

bench: setup ## Run the perf commands against local services and print the numbers
	$(VENV)/bin/headwater perf all

perf: bench

.PHONY: help setup setup-go browser bytecode proto up down test lint fmt bench perf
