#!/usr/bin/env bash
# Installs what `make test`, `make demo` and `make bench` need on a Debian machine:
# system packages (when root and missing) and a virtualenv in .venv with the package.
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL server + client tools, Redis, the libraries Qt needs offscreen and for PDF
# rendering, poppler (pdftotext/pdftoppm) to read our PDFs back, Xvfb for screenshots.
DEBIAN_PACKAGES=(
  postgresql postgresql-contrib redis-server poppler-utils
  libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libfreetype6 libdbus-1-3
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0
  libxcb-randr0 libxcb-render-util0 libxcb-image0 fonts-dejavu-core
  python3 python3-venv python3-pip
)

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
  done
fi
# npm fetches the PostgreSQL servers of the other majors (packaging/pg_matrix.py).
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bootstrap: these Debian packages are missing: ${missing[*]}" >&2
    echo "bootstrap: install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

PYTHON=${PYTHON:-python3}
stamp=.venv/.installed
# lint-imports too: a venv made before import-linter joined the test extra lacks it.
if [[ ! -x .venv/bin/python || ! -f $stamp || pyproject.toml -nt $stamp \
      || ! -x .venv/bin/lint-imports ]]; then
  echo "bootstrap: creating .venv with the package and its test extra"
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  touch "$stamp"
fi
