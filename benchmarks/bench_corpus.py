"""The whole attack corpus at the long scale, resumable, toward 299 trials an attack (issue 15).

Every attack of `computewatch.attacks.ATTACKS` at the long scale (1200
steps, a checkpoint every 240) under `default_policy(LONG)`: 5 % cap on
everything replayed, 4-step boundary windows, two one-step snapshot
replays, step audits at c = 0.04 (ADRs 0037, 0044). Trials accumulate in
``results/corpus/trials.jsonl`` (`computewatch.attacks.run_campaign`:
one record per attack and trial, with its setup, appended as it is done),
so the campaign, about 10 minutes a trial of the whole corpus on this
machine, spreads over many runs and processes (``--shard K/N``). An attack
stops at 299 trials, or earlier once its exact one-sided 95 % lower bound
reaches 0.99. The two honest base runs of each trial that builds them are
verified under the same policy (``honest-base``). The summary, rows by
attack with their bounds, compute and failing checks, goes to
``results/corpus.json``. Quick mode runs trial 0 of two attacks in a
scratch file.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CAMPAIGN = HERE / "results" / "corpus" / "trials.jsonl"
SUMMARY = HERE / "results" / "corpus.json"
QUICK = ("forged-log-entry", "data-substitution-10%")


def run(quick: bool) -> dict[str, Any]:  # noqa: FBT001
    """The campaign's summary (quick: one trial of two attacks, no file kept)."""
    from computewatch.attacks import run_campaign  # noqa: PLC0415

    if quick:
        with tempfile.TemporaryDirectory() as tmp:
            return run_campaign(Path(tmp) / "trials.jsonl", QUICK, trials=1)
    return run_campaign(CAMPAIGN)


def main(argv: list[str] | None = None) -> int:
    """Resume the campaign from the command line; write the summary."""
    from computewatch.attacks import TARGET, attack_names, run_campaign  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=TARGET)
    parser.add_argument("--budget-s", type=float, default=None)
    parser.add_argument("--only", action="append", default=[], help="an attack (repeat)")
    parser.add_argument("--shard", default="0/1", help="K/N: this process runs trials i % N == K")
    args = parser.parse_args(argv)
    k, n = (int(x) for x in args.shard.split("/"))
    if not 0 <= k < n:
        parser.error(f"--shard {args.shard}: expected K/N with 0 <= K < N")
    unknown = sorted(set(args.only) - set(attack_names()))
    if unknown:
        parser.error(f"--only: unknown attack(s) {unknown}")
    summary = run_campaign(
        CAMPAIGN,
        args.only,
        trials=args.trials,
        budget_s=args.budget_s,
        shard=(k, n),
        progress=lambda m: print(m, file=sys.stderr, flush=True),
    )
    SUMMARY.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(json.dumps({a: (r["count"], r["trials"]) for a, r in summary["rows"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
