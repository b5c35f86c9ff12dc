# pyd developer entry points. `make run` and `make test` work on a fresh Debian 12 machine as root.
VENV      ?= .venv
PY        := $(VENV)/bin/python
PYTHON    ?= python3
STAMP     := $(VENV)/.installed
TSTAMP    := $(VENV)/.installed-test
# Test processes: 2 cores, the suites are independent.
TEST_JOBS ?= 2

# The daemon's docstring-free code cache (pyd.core.lean), written before the first start so
# that start's time and memory are those of every later start (a first start that compiles
# holds ~16 MiB more). `install` writes the installed copy's (-P: not this tree);
# `test-install` also this tree's, which the tests and bench/ run the daemon from.
WARM_IMPORTS = import pyd.tap as t; t.lean_imports(); import pyd.daemon.drivers, pyd.daemon.wiring, pyd.api.lean
WARM = warm() { "$$1" -P -c '$(WARM_IMPORTS)'; }; warm

.PHONY: install test-install deps run test lint typecheck unit e2e bench clean deploy

# `install`: the daemon's runtime dependencies only (what `make run` needs); `test-install` adds
# the test toolchain (the `test` extra: pytest, mypy, ruff, docker-py, ...), which `make test`,
# `lint`, `typecheck`, `unit` and `bench` use.
install: deps $(STAMP)

test-install: install $(TSTAMP)

deps:
	bash scripts/install-deps.sh

$(STAMP): pyproject.toml $(shell find pyd twistd_plugins migrations -name '*.py' -o -name '*.mako' 2>/dev/null)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q .
	$(WARM) $(PY)
	touch $(STAMP)

$(TSTAMP): $(STAMP)
	$(PY) -m pip install -q '.[test]'
	$(PY) -c '$(WARM_IMPORTS)'
	touch $(TSTAMP)

run: install
	$(VENV)/bin/twistd -n --pidfile= pyd

lint: test-install
	$(VENV)/bin/ruff check pyd twistd_plugins migrations tests $(wildcard bench)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/vulture pyd twistd_plugins --min-confidence 80

typecheck: test-install
	$(VENV)/bin/mypy

test: test-install lint typecheck
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist loadfile tests

unit: test-install
	$(PY) -m pytest -q tests/unit tests/component

bench: test-install
	$(PY) -m bench

# Re-record dockerd's answers for the conformance suite (tests/data/conformance/): needs Debian's
# docker.io installed (never started as a service: the recorder runs its own dockerd on a private
# socket, data root and exec root, stops it by pid). `make conformance-record SCENARIOS="kill top"`
# re-records some only.
conformance-record: install
	$(PY) -m tests.conformance record $(SCENARIOS)

clean:
	rm -rf $(VENV) build *.egg-info

# Install pyd as a system service on this host (root, systemd). `make install` stays the developer
# set-up; this puts a venv in $(DEPLOY_PREFIX), the units in /etc/systemd/system and a minimal
# /etc/pyd/daemon.json (kept if present). See docs/operations.md.
DEPLOY_PREFIX ?= /opt/pyd
UNIT_DIR      ?= /etc/systemd/system
DOC_DIR       ?= /usr/local/share/doc/pyd
deploy:
	test -x $(DEPLOY_PREFIX)/bin/python || $(PYTHON) -m venv $(DEPLOY_PREFIX)
	$(DEPLOY_PREFIX)/bin/python -m pip install -q --upgrade .
	$(WARM) $(DEPLOY_PREFIX)/bin/python
	getent group pyd >/dev/null || groupadd --system pyd
	install -d -m 0755 /etc/pyd $(DOC_DIR)
	install -d -m 0700 /etc/pyd/tls
	test -e /etc/pyd/daemon.json || echo '{"group": "pyd"}' > /etc/pyd/daemon.json
	install -m 0644 deploy/daemon.json $(DOC_DIR)/daemon.json.example
	install -m 0644 deploy/daemon.json.md docs/operations.md docs/security.md $(DOC_DIR)/
	install -m 0644 deploy/pyd.service deploy/pyd.socket $(UNIT_DIR)/
	sed -i 's|/opt/pyd/bin/twistd|$(DEPLOY_PREFIX)/bin/twistd|' $(UNIT_DIR)/pyd.service
	if [ -d /run/systemd/system ]; then systemctl daemon-reload && systemctl enable pyd.socket pyd.service && systemctl restart pyd.socket pyd.service; fi
