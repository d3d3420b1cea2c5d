# `make test` and `make demo` set everything up from nothing: venv, packages, services.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
# Every Python 3.10-3.13 that pyenv has goes on PATH, so tox finds the interpreters of its matrix.
PYENV_BINS := $(shell root=$$(pyenv root 2>/dev/null) && ls -d $$root/versions/3.1[0-3].*/bin 2>/dev/null | paste -sd: -)
export PATH := $(if $(PYENV_BINS),$(PATH):$(PYENV_BINS),$(PATH))

.PHONY: test lint typecheck docs pytest tox tox-django6 demo system-deps clean test-oscar dist

# The system packages first: pip builds mysqlclient (the mysql extra) against their headers.
# Where those headers are missing (not root), the MariaDB tests skip instead of the whole
# install failing.
$(BIN)/.installed: pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[celery,test,lint,oscar,docs]' tox
	if pkg-config --exists mysqlclient 2>/dev/null; then \
		$(BIN)/pip install --quiet -e '.[mysql]'; \
	else \
		echo "make: no libmysqlclient headers: mysqlclient not installed, MariaDB tests will skip"; \
	fi
	touch $@

system-deps:
	bash scripts/install-system-deps.sh

# Every linter is a hook in .pre-commit-config.yaml (ruff, ruff-format, django-upgrade, typos,
# mypy --strict, the import contracts), run from .venv: one list, the same before a commit and in CI.
lint: $(BIN)/.installed
	$(BIN)/pre-commit run --all-files --show-diff-on-failure

typecheck: $(BIN)/.installed
	$(BIN)/mypy django_tracify tracify_receiver

# The main suite, then contrib.oscar in its own run (Oscar needs its own INSTALLED_APPS);
# coverage of django_tracify/ is measured over both.
pytest: $(BIN)/.installed
	$(BIN)/pytest --cov --cov-report= $(PYTEST_ARGS)
	$(BIN)/pytest --ds=tests.oscar.settings --no-migrations -m oscar tests/oscar \
		--cov --cov-append --cov-report=term --cov-fail-under=90 $(PYTEST_ARGS)

# The manual (docs/, Sphinx): every warning, a broken cross-reference included, is an error.
docs: $(BIN)/.installed
	$(BIN)/sphinx-build -W --keep-going -n -b html docs docs/_build/html

test: lint docs pytest

# contrib.oscar against a real django-oscar shop: Oscar's INSTALLED_APPS need their own run.
test-oscar: $(BIN)/.installed
	$(BIN)/pytest --ds=tests.oscar.settings --no-migrations -m oscar tests/oscar $(PYTEST_ARGS)

tox: $(BIN)/.installed
	$(BIN)/tox run-parallel --parallel-no-spinner

tox-django6: $(BIN)/.installed
	$(BIN)/tox run -e py312-django61

# The wheel and sdist for PyPI, checked as PyPI checks them (tests/tools/test_packaging.py does the same).
dist: $(BIN)/.installed
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*

demo: $(BIN)/.installed
	$(BIN)/python example_project/demo.py

clean:
	rm -rf $(VENV) .tox .services .coverage htmlcov artifacts .demo docs/_build
