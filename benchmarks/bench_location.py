"""Location checks: flag rates of diverted and honest chips (issue 20, docs/location.md).

The campaign of `computewatch.supplychain.run_campaign`: the real protocol
(chip answers signed by a file secure element, landmark measurements signed
by the landmarks, `check_location`) over a latency model from published
figures. Honest chips sit anywhere on a 50 km site around Frankfurt;
diverted chips beyond a landmark's licensed radius, once over modelled
internet paths and once over a straight fibre with no queueing (the best a
Prover can do at 2/3 c). Rates come with exact one-sided 95 % bounds; the
seconds per check are a same-run figure, never asserted.

Then the four location attacks of the corpus (relay, delayed answer,
replayed answer, another chip's key), each run live against UDP landmarks
on 127.0.0.1 for the same number of trials (`run_benchmark`).
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

#: Chips of each kind in the full run (299 clean trials give a one-sided 95 % bound of 99 %).
TRIALS = 300
LOCATION_ATTACKS = (
    "location-relay",
    "location-delayed-answer",
    "location-replayed-answer",
    "location-other-chip-key",
)


def run(quick: bool) -> dict[str, Any]:  # noqa: FBT001
    """Run the campaign (30 trials of each kind when `quick`)."""
    from computewatch.attacks import run_benchmark  # noqa: PLC0415
    from computewatch.chip import (  # noqa: PLC0415
        LocationAnswerer,
        LogState,
        genesis_hash,
        provision_secure_element,
    )
    from computewatch.supplychain import run_campaign  # noqa: PLC0415

    trials = 30 if quick else TRIALS
    with tempfile.TemporaryDirectory(prefix="cw-bench-location-") as tmp:
        se = provision_secure_element(f"file:{tmp}/se", "CW-BENCH-LOC")
        with LocationAnswerer(se, LogState(0, genesis_hash("CW-BENCH-LOC"))) as answerer:
            t0 = time.perf_counter()
            result = run_campaign(answerer, trials=trials, seed=0)
            seconds = time.perf_counter() - t0
    attacks = run_benchmark(3 if quick else trials, LOCATION_ATTACKS)
    return result | {
        "seconds": seconds,
        "seconds_per_check": seconds / (3 * trials),
        "attacks": attacks["attacks"],
        "attack_seconds": attacks["seconds"],
    }
