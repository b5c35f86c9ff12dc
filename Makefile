# pyd developer entry points. `make run` and `make test` work on a fresh Debian 12 machine as root.
VENV      ?= .venv
PY        := $(VENV)/bin/python
PYTHON    ?= python3
STAMP     := $(VENV)/.installed
# Test processes: 2 cores, the suites are independent.
TEST_JOBS ?= 2

.PHONY: install deps run test lint typecheck unit e2e bench clean

install: deps $(STAMP)

deps:
	bash scripts/install-deps.sh

$(STAMP): pyproject.toml $(shell find pyd twistd_plugins migrations -name '*.py' -o -name '*.mako' 2>/dev/null)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q '.[test]'
	touch $(STAMP)

run: install
	$(VENV)/bin/twistd -n --pidfile= pyd

lint: install
	$(VENV)/bin/ruff check pyd twistd_plugins migrations tests $(wildcard bench)
	$(VENV)/bin/lint-imports

typecheck: install
	$(VENV)/bin/mypy

test: install lint typecheck
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist loadfile tests

unit: install
	$(PY) -m pytest -q tests/unit tests/component

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info
