# The two commands of a fresh clone: `make run` (the local stack) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint install

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) infra/local/stack.py

lint: $(STAMP)
	$(VENV)/bin/ruff check gateway legacy_stub services tests bench infra
	$(VENV)/bin/ruff format --check gateway legacy_stub services tests bench infra
	$(VENV)/bin/mypy --strict gateway tests legacy_stub services bench infra

test: lint
	$(PY) -m pytest -q
