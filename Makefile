# The README's two commands are `make demo` and `make test`; both set up what they need.
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: setup test lint pytest demo bench clean

setup:
	@bash packaging/bootstrap.sh

lint: setup
	$(VENV)/bin/ruff check wizard tests
	$(VENV)/bin/mypy

pytest: setup
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest $(PYTEST_ARGS)

test: lint pytest

demo: setup
	$(PY) -m wizard.sandbox up $(DEMO_ARGS)

bench: setup
	@set -e; for script in tests/bench/bench_*.py; do $(PY) $$script; done

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache
