"""Attacks: detection rates of the attack corpus (issue: attacks).

For each attack of `computewatch.attacks`, at two scales of run: the
detection rate over N trials with a 95% Clopper-Pearson interval, the
fraction of training compute the Verifier replayed, and the false-reject
rate of the same policy on the honest base runs (two per trial).

- ``tiny``: 24-step runs, dense snapshots, the default policy (no total
  cap): many trials, for the rates.
- ``long``: 1200-step runs with a checkpoint every 240, a few snapshots per
  run, everything replayed capped at 5 % of training: the issue's budget;
  4-step boundary windows, two snapshots replayed one step each and step
  audits at c = 0.04 (`LONG_POLICY`, ADRs 0037 and 0044), each Prover
  answering its challenges. The interval lies' resumable campaign is
  ``bench_step_audits.py``.

The two scales run in two processes at once (one per core). Quick mode runs
one trial of a representative subset at each scale (< 60 s).
"""

from __future__ import annotations

from typing import Any

#: Trials per attack in the full run (299 clean trials give a 95 % lower bound of 0.99).
TRIALS = {"tiny": 300, "long": 30}

QUICK = {
    "tiny": (
        "omega-as-init",
        "data-substitution-100%",
        "hyper-lr-lie",
        "forged-log-entry",
        "hidden-snapshot",
        "firmware-rollback",
        "swap-fixed-schedule",
        "swap-poisson-schedule",
    ),
    "long": ("omega-as-init", "interpolation"),
}


def run(quick: bool) -> dict[str, Any]:  # noqa: FBT001
    """Run the attack benchmark at both scales (a subset, one trial, when `quick`)."""
    from computewatch.attacks import run_scales  # noqa: PLC0415

    return run_scales({name: (1, QUICK[name]) if quick else (TRIALS[name], ()) for name in TRIALS})
