# Outpost: `make test` installs everything into .venv and runs every check; `make run` starts it.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install test lint typecheck xvfb docs run bench bench-peer conflicts conflicts-cluster \
	bench-cluster bundle bundle-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall whenever pyproject.toml changes.
$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[client,backend,dev]'
	touch $@

install: $(INSTALLED)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# The app's end-to-end tests (and the bench's board scenario) draw on a virtual display:
# install Xvfb when it is missing (as root, with apt-get). Kivy's own window needs nothing
# more than Xvfb brings along.
xvfb:
	@command -v Xvfb >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends xvfb; \
	  else \
	    echo "make: Xvfb is missing and this is not root with apt-get:" \
	      "install the xvfb package, then run make again" >&2; \
	    exit 1; \
	  fi; }

test: lint typecheck xvfb
	$(BIN)/outpost docs --check
	$(BIN)/pytest -n 3 --dist loadfile --durations=30

docs: install
	$(BIN)/outpost docs

# The backend on the embedded defaults, and the app signed in to a demo account on it.
run: install
	$(BIN)/python -m outpost.run_local $(ARGS)

# The board scenario draws the app on a virtual display, as the app's tests do: Xvfb is
# installed where it can be (root with apt-get); elsewhere that one scenario says it is missing.
bench: install
	@$(MAKE) --no-print-directory xvfb || echo "make bench: no Xvfb: the board scenario will fail" >&2
	$(BIN)/outpost bench --json bench-results.json

# Outpost beside the PouchDB peer (issue 15): local_action, ingest and propagation, three
# alternating rounds. Needs node and npm; the first run installs the lockfile's packages
# with npm ci (the registry) into ~/.cache/outpost/peer-<lockfile hash>/.
bench-peer: install
	$(BIN)/outpost bench --peer pouchdb --only local_action --only ingest --only propagation \
	  --json bench-peer-results.json

# 200 seeded scenarios, 3 device processes, 200 actions each, with every fault kind.
conflicts: install
	$(BIN)/outpost conflicts --scenarios 200 --seed 1 --clients 3 --ops 200 --faults \
	  --json conflicts-results.json

# The desktop app as one folder, dist/outpost-app/ (packaging/outpost.spec): the app and the
# client, no backend; checked afterwards (outpost/bundle_check.py). PyInstaller comes from
# the `bundle` extra.
BUNDLE := dist/outpost-app
BUNDLED := $(VENV)/.bundle-installed

$(BUNDLED): pyproject.toml | $(INSTALLED)
	$(BIN)/python -m pip install --quiet -e '.[client,backend,dev,bundle]'
	touch $@

# Rebuilt when a file of the app, the client, the protocol or the spec changed.
BUNDLE_SOURCES := $(shell find client protocol packaging -type f -not -path '*/__pycache__/*') \
  outpost/__init__.py outpost/cli.py pyproject.toml

bundle: $(BUNDLE)/outpost-app

$(BUNDLE)/outpost-app: $(BUNDLE_SOURCES) | $(BUNDLED)
	rm -rf build/outpost-app $(BUNDLE)
	KIVY_HOME=build/kivy-home KIVY_NO_CONSOLELOG=1 KIVY_NO_FILELOG=1 \
	  $(BIN)/pyinstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build \
	  packaging/outpost.spec
	$(BIN)/python -m outpost.bundle_check $(BUNDLE) || { rm -rf $(BUNDLE); exit 1; }
	@du -sh $(BUNDLE)

# The bundle started on a virtual display with no network, drawing a board (not in make test:
# its build takes a minute or two and the folder is ~50 MB). Builds the bundle when needed.
bundle-test: $(BUNDLE)/outpost-app xvfb
	$(BIN)/pytest --bundle -q tests/packaging

# The same on `outpost cluster`'s topology (three NATS nodes, PostgreSQL, two BFFs behind a
# front, each consumer apart with a standby), with the cluster's faults: the stream leader
# killed mid-push, a BFF killed mid-push, a lease holder killed, PostgreSQL restarted.
conflicts-cluster: install
	$(BIN)/outpost conflicts --cluster --scenarios 5 --seed 1 --clients 4 --ops 150 --faults \
	  --json conflicts-cluster-results.json

# Ingest and propagation through outpost cluster's topology beside the single process, and
# ingest through 1, 2 and 4 BFFs (README, "Run at scale locally").
bench-cluster: install
	$(BIN)/outpost bench --cluster --json bench-cluster-results.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist
