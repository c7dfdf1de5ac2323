#!/usr/bin/env bash
# The main job: set up, then run the end-to-end audit on the embedded defaults
# (files and SQLite): a registry, two Provers training on emulated chips, one
# of them breaking the rules and spoofing its transcript, and the Verifier's
# sampled inspections and sandboxed verification. Outputs go to ./out/demo/
# (report: out/demo/audit/report/audit.html, audit.md, audit.json, detection.png).
#
# `computewatch demo` exits 1 when a Prover is non-compliant, which is the
# expected outcome here (lab-b is caught); any other failure exits 2.
set -euo pipefail
cd "$(dirname "$0")/.."
# the trusted cluster's sandbox and the TPM tests use Debian packages
bash scripts/install-system-deps.sh || echo "demo: system packages missing; continuing" >&2
bash scripts/setup.sh
status=0
.venv/bin/computewatch demo --out out/demo "$@" || status=$?
if [ "$status" -gt 1 ]; then
  echo "demo: failed (exit $status)" >&2
  exit "$status"
fi
echo
echo "sampling maths (paper Table 1):"
.venv/bin/computewatch sampling table1
echo "demo: audit complete (exit $status: 1 means a non-compliant Prover was caught, as designed)"
