# Ai:oS control plane. `make up` runs it; `make test` tests it. See README.md.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
REQ_HASH := $(shell cat requirements.txt constraints.txt | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(REQ_HASH)
# pip prints a warning per package for this machine's optional local indexes; hide only those.
PIP_QUIET := { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: help install browser up test test-fast test-browser lint format demo bench clean lock

help:
	@echo "make up      install, migrate, seed, then run web + worker + beat (http://127.0.0.1:$${PORT:-8000})"
	@echo "make test    install what tests need, then run the whole suite on real Postgres and Redis"
	@echo "make demo    a realistic demo workload for the dashboard (RATE=20 DURATION=300)"
	@echo "make lint    ruff check and format check"

$(STAMP): requirements.txt constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing pinned dependencies into $(VENV) (torch==2.13.0, CPU build)..."
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt 2>&1 | $(PIP_QUIET)
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# Browser tests drive Debian's Chromium (Playwright cannot download its own browser here).
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "Installing Chromium from Debian's packages..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Chromium is missing: run 'sudo apt-get install -y chromium'"; exit 1; fi; \
	fi

up: install
	DEBUG=$${DEBUG:-1} $(PY) manage.py up

demo: install
	DEBUG=$${DEBUG:-1} $(PY) manage.py aios_demo --rate $${RATE:-20} --duration $${DURATION:-300}

test: install browser
	$(PY) -m pytest -m "not browser"
	$(PY) -m pytest -m browser

test-fast: install
	$(PY) -m pytest -m "not browser" -x -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Re-pin requirements.txt from requirements.in (pip-tools is not installed here): a throwaway
# venv installs the direct dependencies, and `pip freeze` pins everything they pulled in.
lock:
	@rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.in -c constraints.txt 2>&1 | $(PIP_QUIET)
	.lock-venv/bin/python -m pip freeze --exclude-editable > requirements.txt
	@rm -rf .lock-venv
	@echo "requirements.txt re-pinned; review 'git diff requirements.txt'"

clean:
	rm -rf staticfiles .pytest_cache .ruff_cache
