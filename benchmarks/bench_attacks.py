"""Attacks: detection rates of the attack corpus (issue: attacks).

For each attack of `computewatch.attacks`: the detection rate over N trials
with a 95% Clopper-Pearson interval, the fraction of training compute the
Verifier replayed, and the false-reject rate of the same policy on the
honest base runs. Quick mode runs one trial of a representative subset
(< 60 s); the full run runs every attack for 3 trials.
"""

from __future__ import annotations

from typing import Any

from computewatch.attacks import run_benchmark

QUICK = (
    "omega-as-init",
    "data-substitution-100%",
    "hyper-lr-lie",
    "forged-log-entry",
    "hidden-snapshot",
    "firmware-rollback",
    "swap-fixed-schedule",
    "swap-poisson-schedule",
)


def run(quick: bool) -> dict[str, Any]:  # noqa: FBT001
    """Run the attack benchmark (a subset, one trial, when `quick`)."""
    if quick:
        return run_benchmark(trials=1, only=QUICK)
    return run_benchmark(trials=3)
