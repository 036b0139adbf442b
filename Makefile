# The README's two commands are `make demo` and `make test`; both set up what they need.
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: setup test lint pytest pg-matrix test-pg demo bench screenshots clean package package-test

setup:
	@bash packaging/bootstrap.sh

lint: setup
	$(VENV)/bin/ruff check wizard tests packaging
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache  # under a second; no cache folder left behind

pytest: setup
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest $(PYTEST_ARGS)

# The engine's pg_matrix tests on other PostgreSQL majors (servers and client tools fetched
# once into .cache/pg/, checked against packaging/pg-matrix.json): make test runs them on 13
# (the oldest with trusted extensions) and 17 (production's); test-pg on every major.
PG_MATRIX_QUICK := 13,17
PG_MATRIX_ALL   := 12,13,14,16,17,18

pg-matrix: setup
	$(PY) packaging/pg_matrix.py --majors $(PG_MATRIX_QUICK)

test-pg: setup
	$(PY) packaging/pg_matrix.py --majors $(PG_MATRIX_ALL)

# The full suite on Debian's PostgreSQL, the matrix subset on 13 and 17, then the packaged
# executables, built and tested last (see package-test below).
test: lint pytest pg-matrix package-test

demo: setup
	$(PY) -m wizard.sandbox up $(DEMO_ARGS)

bench: setup
	@set -e; for script in tests/bench/bench_*.py; do $(PY) $$script; done

# PNGs of every page, offscreen, over a fresh sandbox (the README shows them).
screenshots: setup
	QT_QPA_PLATFORM=offscreen $(PY) packaging/screenshots.py

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .cache

# The executables: dist/enerlink-migrate (one file) and dist/enerlink-migrate-onedir/.
# PyInstaller comes with the dev extra; the build ends with the frozen app's --self-test.
package: setup
	@$(PY) -c "import PyInstaller" 2>/dev/null || $(PY) -m pip install -q -e '.[dev]'
	$(PY) packaging/build.py

# Builds (minutes), then tests the builds: --self-test on a clean machine, keyring, CLI.
package-test: package
	ENERLINK_PACKAGE_TEST=1 QT_QPA_PLATFORM=offscreen $(PY) -m pytest tests/test_package.py $(PYTEST_ARGS)
