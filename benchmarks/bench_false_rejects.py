"""False rejects: honest long runs verified at the 5 % replay cap (issue: attacks), resumable.

The attack benchmark verifies two honest runs per trial; at the long scale
that is 60 runs, too few to show a false-reject rate of at most 1 %. This
verifies 300 honest long runs (1200 steps), each with its own data order
and chip, under `default_policy(LONG)` (all replay capped at 5 %),
over two processes, through the sandboxed replay workers of the trusted
cluster. 0 rejects in 300 puts the one-sided 95 % upper bound at 0.99 %.

The campaign accumulates: each verified trial is appended to
``results/false_rejects/trials.jsonl`` with the scale and policy it ran
under (`campaign_setup`; trials of another setup stay in the file but are
not counted), trial `i` is the same run wherever it is computed, and a run
only verifies the trials still missing, a chunk
at a time, so it can be stopped and resumed. The summary counts what the
file holds (``trials`` may be below 300 while the campaign is unfinished).
Quick mode verifies 4 runs and leaves the file alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

RUNS = 300
CHUNK = 10
CAMPAIGN = Path(__file__).resolve().parent / "results" / "false_rejects" / "trials.jsonl"


def _load(path: Path) -> dict[int, dict[str, Any]]:
    """The file's trials of the current setup, by trial number."""
    from computewatch.attacks import campaign_setup  # noqa: PLC0415

    want = campaign_setup()
    done: dict[int, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                if record.get("setup") == want:
                    done[int(record["trial"])] = record
    return done


def campaign(
    runs: int = RUNS, path: Path = CAMPAIGN, budget_s: float | None = None
) -> dict[str, Any]:
    """Verify the trials of ``0..runs-1`` missing from `path`, appending each chunk.

    Stops starting chunks after `budget_s` seconds (None: run to the end).
    """
    from computewatch.attacks import (  # noqa: PLC0415
        LONG,
        campaign_setup,
        honest_trials,
        summarize_false_rejects,
    )

    t0 = time.perf_counter()
    done = _load(path)
    missing = [i for i in range(runs) if i not in done]
    path.parent.mkdir(parents=True, exist_ok=True)
    while missing and (budget_s is None or time.perf_counter() - t0 < budget_s):
        chunk, missing = missing[:CHUNK], missing[CHUNK:]
        records = [r | {"setup": campaign_setup()} for r in honest_trials(chunk, LONG)]
        with path.open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in records)
        done.update((int(r["trial"]), r) for r in records)
    honest = [done[i] for i in sorted(done) if i < runs]
    return summarize_false_rejects(honest, LONG) | {
        "target_trials": runs,
        "seconds_this_run": time.perf_counter() - t0,
    }


def run(quick: bool) -> dict[str, Any]:  # noqa: FBT001
    """Verify honest long runs and report the false-reject rate (quick: 4 runs, no file)."""
    if quick:
        from computewatch.attacks import LONG, false_reject_rate  # noqa: PLC0415

        return false_reject_rate(4, LONG)
    return campaign()


def main(argv: list[str] | None = None) -> int:
    """Resume the campaign from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--budget-s", type=float, default=None)
    args = parser.parse_args(argv)
    print(json.dumps(campaign(args.runs, budget_s=args.budget_s), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
