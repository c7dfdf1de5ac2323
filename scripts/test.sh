#!/usr/bin/env bash
# Set up, then run every gate: lint, formatting, types, the full test suite
# (slow tests included) with the coverage floor, and a smoke run of the
# benchmarks. Extra arguments go to pytest (e.g. -m "not slow" -x).
set -euo pipefail
cd "$(dirname "$0")/.."
# swtpm and libtss2 for the TPM secure-element tests (needs root or sudo)
if ! bash scripts/install-system-deps.sh; then
  if [ "${CI:-}" = true ]; then exit 1; fi
  echo "test: system packages missing: TPM tests will be skipped" >&2
fi
bash scripts/setup.sh
py=.venv/bin/python

echo "== ruff =="
"$py" -m ruff check src tests benchmarks scripts
"$py" -m ruff format --check src tests benchmarks scripts
echo "== mypy (strict) =="
"$py" -m mypy
echo "== pytest =="
# Python's default: compiled modules are cached in __pycache__. Some hosts
# turn it off (PYTHONDONTWRITEBYTECODE); then every process the suite starts
# (about a hundred) recompiles computewatch, and pytest rewrites every test
# module's asserts again in each worker: about 10 % of the suite's CPU.
unset PYTHONDONTWRITEBYTECODE
# Coverage data goes to /dev/shm: the processes the suite spawns add their own
# data files beside it (pyproject: [tool.coverage.run] patch = subprocess),
# and inside the trusted cluster's sandbox /dev/shm is a private tmpfs, so a
# sandboxed child's data stays there, as everything in the sandbox does,
# instead of failing on the read-only host disk.
export COVERAGE_FILE="/dev/shm/computewatch-coverage-$$"
trap 'rm -f "$COVERAGE_FILE" "$COVERAGE_FILE".*' EXIT
"$py" -m pytest -n 2 --dist loadgroup --cov --cov-report=term --durations=25 "$@"
echo "== benchmarks (smoke) =="
"$py" benchmarks/run.py --quick --out "$(mktemp -d)" > /dev/null
echo "benchmarks ran"
