# custodes: two commands on a fresh machine.
#   make demo   create .venv, install, build a synthetic city (a week of activity), serve its dashboard
#   make test   create .venv, install, start PostgreSQL, run the whole suite (four workers,
#               one test file each at a time: most tests wait on servers and subprocesses;
#               files marked heavy spread over the first half, none left alone at the end)
SHELL := /bin/bash
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000
DEMO_DATA ?= demo-data

.PHONY: demo test install lint typecheck clean bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	scripts/system-deps.sh
	$(BIN)/pip install -q -e '.[server,redact,dev]'
	touch $(STAMP)

# Leaflet and htmx come from the npm registry at set-up; the pages load them
# from the server itself, never from a CDN.
VENDOR := src/custodes/web/static/vendor
$(VENDOR)/.installed: package.json
	scripts/web-assets.sh $(VENDOR)
	touch $@

install: $(STAMP) $(VENDOR)/.installed

demo: install
	PORT=$(PORT) DEMO_DATA=$(DEMO_DATA) scripts/demo.sh

test: install
	CUSTODES_TEST_PG_URL="$$(scripts/postgres.sh | tail -n 1)" \
	  $(BIN)/python -m pytest -q -p no:cacheprovider -n 4 --dist loadfile --no-loadscope-reorder

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(DEMO_DATA) build *.egg-info
