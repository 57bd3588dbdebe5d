# Lokaly developer commands. On a fresh clone, `make dev` and `make test` are enough:
# both create .venv first (Python 3.11+ needed) and, when DATABASE_URL / REDIS_URL are not
# set, start the embedded PostgreSQL and Redis under .data/ (lokaly_core/conf/embedded.py).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Extra arguments for pytest: make test ARGS="-k orders -x"
ARGS ?=

# Prints `export NAME='value'` for DATABASE_URL / REDIS_URL when one is unset, starting the
# embedded server behind it (python -m lokaly_core.conf.embedded env does the same for both).
EMBEDDED_ENV := $(VENV_PY) -W 'ignore:XDG_RUNTIME_DIR' -c 'import os, shlex; from lokaly_core.conf import embedded as e; \
	[print(f"export {k}={shlex.quote(f())}") for k, f in \
	(("DATABASE_URL", e.database_url), ("REDIS_URL", e.redis_url)) if not os.environ.get(k)]'

.PHONY: help venv dev test lint bench stop-embedded clean clean-data

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

venv: $(STAMP) ## Create .venv and install requirements/dev.txt (done by the other targets)

$(STAMP): requirements/base.txt requirements/dev.txt requirements/constraints.txt
	@if ! command -v $(PYTHON) >/dev/null 2>&1; then \
		echo "make: '$(PYTHON)' was not found. Install Python 3.11 or newer, or point at one:" >&2; \
		echo "      make $(MAKECMDGOALS) PYTHON=/path/to/python3.11" >&2; \
		exit 1; \
	fi
	@if ! $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
		echo "make: Lokaly needs Python 3.11 or newer; '$(PYTHON)' is $$($(PYTHON) -V 2>&1)." >&2; \
		echo "      Install a newer Python (python.org, pyenv, or your OS packages), then run" >&2; \
		echo "      make $(MAKECMDGOALS) PYTHON=python3.11  (or python3.12, ...)" >&2; \
		exit 1; \
	fi
	@if [ -x $(VENV_PY) ] && ! $(VENV_PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
		echo "make: $(VENV) was made with $$($(VENV_PY) -V 2>&1); remove it (rm -rf $(VENV)) and retry." >&2; \
		exit 1; \
	fi
	@if [ ! -x $(VENV_PY) ]; then \
		echo "make: creating $(VENV) with $$($(PYTHON) -V 2>&1)"; \
		$(PYTHON) -m venv $(VENV) || { \
			echo "make: '$(PYTHON) -m venv' failed. On Debian/Ubuntu: apt-get install python3-venv" >&2; \
			exit 1; }; \
	fi
	$(VENV_PY) -m pip install --quiet --upgrade pip
	$(VENV_PY) -m pip install -r requirements/dev.txt
	@touch $@

dev: $(STAMP) ## Run the public API (:3000), the admin API (:3001) and the worker; Ctrl-C stops all
	$(VENV_PY) devtools/dev.py

test: $(STAMP) ## Run the test suite (ARGS="..." goes to pytest)
	@set -euo pipefail; \
	if [ -z "$${DATABASE_URL:-}" ] || [ -z "$${REDIS_URL:-}" ]; then \
		echo "make test: starting the embedded server(s) for the unset DATABASE_URL / REDIS_URL (data in .data/)"; \
		exports="$$($(EMBEDDED_ENV))" || { \
			echo "make test: could not start the embedded PostgreSQL/Redis (see above)." >&2; \
			echo "           Set DATABASE_URL and REDIS_URL to use other servers." >&2; \
			exit 1; }; \
		eval "$$exports"; \
		echo "make test: DATABASE_URL=$${DATABASE_URL} REDIS_URL=$${REDIS_URL}"; \
	else \
		echo "make test: using DATABASE_URL and REDIS_URL from the environment"; \
	fi; \
	status=0; \
	$(VENV)/bin/pytest $(ARGS) || status=$$?; \
	echo "make test: the admin server's tests (tests/admin, admin settings)"; \
	$(VENV_PY) -m tests.admin.browser || echo "make test: no Chromium; the browser tests will say why"; \
	$(VENV)/bin/pytest --ds=lokaly_admin.settings.test tests/admin $(ARGS) || { \
		code=$$?; if [ $$code -ne 5 ] || [ -z "$(ARGS)" ]; then status=$$code; fi; }; \
	exit $$status

lint: $(STAMP) ## ruff, the import contracts and mypy (the files and strictness: pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

bench: $(STAMP) ## Run the benchmark (bench/run.py; ARGS="..." goes to it)
	$(VENV_PY) bench/run.py $(ARGS)

stop-embedded: ## Stop the embedded PostgreSQL and Redis started by make dev / make test
	@if [ -x $(VENV_PY) ]; then $(VENV_PY) -m lokaly_core.conf.embedded stop; \
	else echo "make: no $(VENV), so nothing embedded was started"; fi

clean: ## Remove caches (keeps .venv and the embedded data in .data/)
	find . -path ./$(VENV) -prune -o -path ./.data -prune -o -type d -name __pycache__ -print0 \
		| xargs -0 rm -rf
	rm -rf .pytest_cache .ruff_cache .import_linter_cache staticfiles

clean-data: stop-embedded ## Stop the embedded servers and delete their data (.data/)
	rm -rf .data
