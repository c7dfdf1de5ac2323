#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv and install
# computewatch with its pinned dependencies. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: computewatch needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2
  exit 2
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.computewatch-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing computewatch and its pinned dependencies (first run: a few minutes)"
  # torch==2.13.0 is pinned in pyproject.toml: pip takes the CPU build from
  # this machine's local wheel store, never a multi-GB CUDA build. The grep
  # drops pip's notes about absent optional local indexes.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 \
    | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
  touch "$stamp"
fi
