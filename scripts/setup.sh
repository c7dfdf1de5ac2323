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

extras=dev,ray,hf
# the TPM backend builds against libtss2 (scripts/install-system-deps.sh)
if pkg-config --exists tss2-esys 2> /dev/null; then
  extras=dev,ray,hf,tpm
fi
stamp=".venv/.computewatch-installed-${extras//,/-}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing computewatch[$extras] and its pinned dependencies (first run: a few minutes)"
  [ "$extras" = dev,ray,hf ] && echo "setup: libtss2 not found: no TPM secure element (scripts/install-system-deps.sh adds it)"
  # torch==2.13.0 is pinned in pyproject.toml: pip takes the CPU build from
  # this machine's local wheel store, never a multi-GB CUDA build. The grep
  # drops pip's notes about absent optional local indexes.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]" 2>&1 \
    | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
  touch "$stamp"
fi
