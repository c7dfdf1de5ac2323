#!/usr/bin/env bash
# The main job: set up, then reproduce the paper's sampling results on the
# embedded defaults. Outputs go to ./out/ (PNG, JSON).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cw=.venv/bin/computewatch
mkdir -p out

echo; echo "== Table 1 (paper §3.2): samples a year to catch a run with p = 0.9 =="
"$cw" sampling table1
"$cw" sampling table1 --json > out/table1.json

echo; echo "== Footnote 5: inspectors for 10^7 chips, H = 1e25, 30-day detection =="
"$cw" sampling inspectors

echo; echo "== Appendix C: stretching (Figure 2) and compressing (Theorem 1) a run =="
"$cw" sampling figure2 --out out/figure2.png
"$cw" sampling theorem1

echo; echo "== Monte Carlo: a Chinchilla-1T run hidden among 10^7 chips for a year =="
"$cw" simulate --flops 1.27e26 --chips 10000000 --trials 200000 --seed 2303 \
  --json > out/simulate.json
"$cw" simulate --flops 1.27e26 --chips 10000000 --trials 200000 --seed 2303

echo; echo "wrote out/table1.json, out/figure2.png, out/simulate.json"
