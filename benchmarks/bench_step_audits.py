"""Step audits at the long scale: lies inside one interval, measured against 1-(1-c)^m (issue 15).

Runs `ConcentratedSubstitution`, `InIntervalReordering` and
`SingleStepSubstitution` (δ3) at the long scale (1200 steps, a checkpoint
every 240) under `default_policy(LONG)`: 5 % cap on everything replayed,
the first and last 4 steps, two snapshots each replayed from one step
before it, step audits at fraction c = 0.04 (ADRs 0037, 0044). Each Prover
answers the challenges from its own trajectory; honest runs under the same
policy give the false-reject rate.

Resumable: every trial is appended to ``results/step_audits/trials.jsonl``
with the scale and policy it ran under (`setup`; records of another setup
stay in the file but are not counted). Trial `i` of an attack is the same
run wherever it is computed, and a run only does the trials still missing,
round-robin over the attacks, so a campaign spreads over several runs. An
attack stops early by the exact sequential rule once its one-sided 95 %
Clopper-Pearson lower bound reaches 0.99 (299 detections, no miss), else
at `TRIALS`. The summary counts what the file holds, with each attack's
formula ``1 - (1 - c)^m`` beside its measured rate; an attack whose formula
is below 0.99 is below what this audit fraction can see (the δ3 class) and
is reported as such, not as a miss of the 99 % goal. Quick mode runs one trial of
each and leaves the file alone.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TRIALS = 299
CAMPAIGN = Path(__file__).resolve().parent / "results" / "step_audits" / "trials.jsonl"
HONEST = "honest"


def _attacks() -> dict[str, Any]:
    from computewatch.attacks import (  # noqa: PLC0415
        ConcentratedSubstitution,
        InIntervalReordering,
        SingleStepSubstitution,
    )

    return {
        a.name: a
        for a in (ConcentratedSubstitution(), InIntervalReordering(), SingleStepSubstitution())
    }


def one_trial(name: str, trial: int, workdir: Path) -> dict[str, Any]:
    """Build and verify trial `trial` of attack `name` (or an honest run) at the long scale."""
    import numpy as np  # noqa: PLC0415

    from computewatch.attacks import LONG, Attempt, default_policy, run_on_chip  # noqa: PLC0415
    from computewatch.attacks._harness import verify_attempt  # noqa: PLC0415

    policy = default_policy(LONG)
    t0 = time.perf_counter()
    if name == HONEST:
        run = run_on_chip(
            workdir,
            name=f"h-{trial}",
            serial=f"CW-SH-{trial}",
            scale=LONG,
            data_seed=60_000 + trial,
        )
        attempt = Attempt(run=run)
    else:
        attempt = _attacks()[name].create(workdir, trial, [], LONG)
    detection = verify_attempt(attempt, policy, np.random.default_rng(70_000 + trial))
    return {
        "attack": name,
        "trial": trial,
        "detected": detection.detected,
        "checks": list(detection.checks),
        "compute_fraction": detection.compute_fraction,
        "seconds": time.perf_counter() - t0,
        "setup": setup(),
    }


def setup() -> dict[str, Any]:
    """What a trial's outcome depends on besides its number (`campaign_setup`)."""
    from computewatch.attacks import campaign_setup  # noqa: PLC0415

    return campaign_setup()


def _load(
    path: Path, current: dict[str, Any] | None = None
) -> dict[tuple[str, int], dict[str, Any]]:
    """The file's trials under `current` (default `setup()`), by (attack, trial)."""
    from computewatch.attacks import load_trials  # noqa: PLC0415

    return load_trials(path, current)


def _finished(records: list[dict[str, Any]], trials: int) -> bool:
    from computewatch.attacks import finished  # noqa: PLC0415

    return finished(records, trials)


def summarize(done: dict[tuple[str, int], dict[str, Any]]) -> dict[str, Any]:
    """Rates, bounds, replayed compute and the formula, per attack and for honest runs."""
    from computewatch.attacks import GOAL, LONG, LONG_POLICY, summary_row  # noqa: PLC0415

    c = float(LONG_POLICY["audit_fraction"])
    out: dict[str, Any] = {"audit_fraction": c, "setup": setup(), "rows": {}}
    attacks = _attacks()
    for name in [*attacks, HONEST]:
        row = summary_row([r for (a, _), r in sorted(done.items()) if a == name])
        if name in attacks:
            row["audit_formula"] = attacks[name].formula(c, LONG)
            row["substituted_steps"] = len(attacks[name].steps(0, LONG))
            row["meets_99"] = row["lower95"] >= GOAL
            row["below_sampling"] = row["audit_formula"] < GOAL  # the δ3 class
        out["rows"][name] = row
    return out


def campaign(
    trials: int = TRIALS,
    path: Path = CAMPAIGN,
    budget_s: float | None = None,
    shard: tuple[int, int] = (0, 1),
) -> dict[str, Any]:
    """Add missing trials round-robin until done or `budget_s` runs out; the summary.

    With ``shard=(k, n)`` only trials ``i`` with ``i % n == k`` are run, so
    `n` processes can share one file; each round re-reads it.
    """
    k, n = shard
    t0 = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [*_attacks(), HONEST]
    done = _load(path)
    while budget_s is None or time.perf_counter() - t0 < budget_s:
        done = _load(path)
        progressed = False
        for name in names:
            rs = [r for (a, _), r in sorted(done.items()) if a == name]
            if _finished(rs, trials):
                continue
            trial = next(i for i in range(k, 10**6, n) if (name, i) not in done)
            tmp = Path(tempfile.mkdtemp(prefix="cw-step-audits-"))
            try:
                record = one_trial(name, trial, tmp)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            with path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record, sort_keys=True) + "\n")
            done[name, trial] = record
            progressed = True
        if not progressed:
            break
    return summarize(_load(path)) | {"seconds_this_run": time.perf_counter() - t0}


def run(quick: bool) -> dict[str, Any]:  # noqa: FBT001
    """The campaign (quick: one trial of each in a scratch file)."""
    if quick:
        with tempfile.TemporaryDirectory() as tmp:
            return campaign(1, Path(tmp) / "trials.jsonl")
    return campaign()


def main(argv: list[str] | None = None) -> int:
    """Resume the campaign from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=TRIALS)
    parser.add_argument("--budget-s", type=float, default=None)
    parser.add_argument("--shard", default="0/1", help="K/N: this process runs trials i % N == K")
    args = parser.parse_args(argv)
    k, n = (int(x) for x in args.shard.split("/"))
    if not 0 <= k < n:
        parser.error(f"--shard {args.shard}: expected K/N with 0 <= K < N")
    print(json.dumps(campaign(args.trials, budget_s=args.budget_s, shard=(k, n)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
