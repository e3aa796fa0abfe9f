# The two commands of the README, and the few a developer uses daily.
# Needs only Python 3.11 on the machine: everything else goes into .venv/.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
export PORT ?= 8000

.PHONY: run test bench fuzz lint install install-dev browser clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## make run: migrate, load the demo chain, and start web + Celery worker + beat (Ctrl-C stops all)
run: $(VENV)/.installed
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) scripts/run.py

## make test: install the development dependencies and run the whole suite
test: $(VENV)/.installed-dev
	-@scripts/install-chromium.sh --if-possible
	$(PY) -m pytest

## make bench: run the benchmarks in bench/ and print their figures
bench: $(VENV)/.installed-dev
	$(PY) -m bench

## make fuzz: schemathesis against the ERP API with fresh random requests, 200 per operation
fuzz: $(VENV)/.installed-dev
	O2O_FUZZ_EXAMPLES=$${O2O_FUZZ_EXAMPLES:-200} $(PY) -m pytest tests/integrations/test_erp_schemathesis.py

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf var/ .pytest_cache .ruff_cache .hypothesis
