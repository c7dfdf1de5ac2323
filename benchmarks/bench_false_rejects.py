"""False rejects: honest long runs verified at the 5 % replay cap (issue: attacks).

The attack benchmark verifies two honest runs per trial; at the long scale
that is 60 runs, too few to show a false-reject rate of at most 1 %. This
verifies 300 honest 480-step runs, each with its own data order and chip,
under `default_policy(LONG)` (all replay, twins included, capped at 5 %),
over two processes. 0 rejects in 300 puts the one-sided 95 % upper bound at
0.99 %. Quick mode verifies 4 runs.
"""

from __future__ import annotations

from typing import Any

RUNS = 300


def run(quick: bool) -> dict[str, Any]:  # noqa: FBT001
    """Verify honest long runs and report the false-reject rate."""
    from computewatch.attacks import LONG, false_reject_rate  # noqa: PLC0415

    return false_reject_rate(4 if quick else RUNS, LONG)
