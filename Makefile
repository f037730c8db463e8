# iabmeta: `make run` runs the main job (quick study on the fallback simulator),
# `make test` runs the whole test suite (lint, ns-3 build, pytest), `make docker` builds the
# container image and smoke-tests it (root on Debian/Ubuntu: starts the engine it needs).
VENV ?= .venv
PY := $(VENV)/bin/python
CORE := $(VENV)/.installed-core
STAMP := $(VENV)/.installed-dev

.PHONY: all install system-deps ns3 lint test test-fast run reproduce bench docker clean

all: test

# the main job needs only the core install; tests, lint and ns-3 need the dev, ns3 and ray
# extras
$(CORE): pyproject.toml .ci/install-python.sh
	VENV=$(VENV) EXTRAS= bash .ci/install-python.sh
	touch $(CORE)

$(STAMP): $(CORE)
	VENV=$(VENV) EXTRAS=dev,ns3,ray bash .ci/install-python.sh
	touch $(STAMP)

install: $(STAMP)

system-deps:
	bash .ci/install-system.sh

ns3: install system-deps
	$(PY) -m bridge.ns3.build

lint: install
	$(VENV)/bin/ruff check bridge agents tests benchmarks
	$(VENV)/bin/hadolint Dockerfile

test: lint ns3
	$(PY) -m pytest -q -ra

test-fast: lint
	$(PY) -m pytest -q -ra -m "not ns3 and not slow and not ray"

run: $(CORE)
	$(VENV)/bin/iabmeta reproduce --quick --jobs 2 --out runs/quick

reproduce: $(CORE)
	$(VENV)/bin/iabmeta reproduce --jobs 2 --out runs/default

bench: install ns3
	$(VENV)/bin/iabmeta bench fallback --json
	$(VENV)/bin/iabmeta bench ppo --json
	$(VENV)/bin/iabmeta bench bridge --json
	$(VENV)/bin/iabmeta bench ns3 --json
	$(VENV)/bin/iabmeta bench rollouts --json
	$(VENV)/bin/iabmeta bench training --json

docker:
	bash .ci/docker-smoke.sh

clean:
	rm -rf ns3_scenarios/build .pytest_cache .ruff_cache
