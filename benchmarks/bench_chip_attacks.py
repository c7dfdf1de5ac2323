"""Chip-evidence attacks (issue 16): detection and false findings, resumable.

For every attack of `computewatch.attacks.CHIP_EVIDENCE_ATTACKS` (a log cut
short or emptied, a slowed host clock, step-number, code-hash and
precommitment lies, double claims, unreported runs, a huge firmware
version, an update before an inspection, rolled-back chip state): build it
on a real chip, run the real defence, and build the honest twin on another
chip and run the same defence (a finding there is a false finding).

The campaign accumulates: trials already in
``benchmarks/results/chip_attacks/NAME.json`` are kept and new ones added
until each attack has `TRIALS`, so it can be stopped and resumed, and
processes given different ``--only`` lists run side by side
(``python benchmarks/bench_chip_attacks.py [--trials N] [--only NAME ...]``;
``run.py chip_attacks`` runs it too). Trials run on tmpfs where there is one
(each trial's chips are a few dozen fsyncs). Quick mode runs one trial of
each and does not touch the campaign file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
CAMPAIGN = HERE / "results" / "chip_attacks"
#: Trials per attack: 299 clean trials give a 95 % one-sided lower bound of 0.99.
TRIALS = 299
_SAVE_EVERY = 10


def _tmp_root() -> str | None:
    shm = Path("/dev/shm")  # noqa: S108 - only a parent for mkdtemp (private, random names)
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def _load() -> dict[str, Any]:
    attacks = {p.stem: json.loads(p.read_text()) for p in sorted(CAMPAIGN.glob("*.json"))}
    return {"backend": "file", "attacks": attacks}


def _save(name: str, rec: dict[str, Any]) -> None:
    CAMPAIGN.mkdir(parents=True, exist_ok=True)
    tmp = CAMPAIGN / f".{name}.tmp"
    tmp.write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")
    tmp.replace(CAMPAIGN / f"{name}.json")


def _summary(rec: dict[str, Any]) -> dict[str, Any]:
    from computewatch.attacks import one_sided_bounds  # noqa: PLC0415

    n, k, m = rec["trials"], rec["detected"], rec["false_findings"]
    return {
        "trials": n,
        "detected": k,
        "detection_lower95": one_sided_bounds(k, n)[0] if n else None,
        "false_findings": m,
        "false_finding_upper95": one_sided_bounds(m, n)[1] if n else None,
        "seconds_per_trial": rec["seconds"] / n if n else None,
    }


def campaign(
    trials: int = TRIALS, only: tuple[str, ...] = (), *, record: bool = True
) -> dict[str, Any]:
    """Run each selected attack (and its honest twin) until it has ``trials`` trials."""
    from computewatch.attacks import CHIP_EVIDENCE_ATTACKS, Detection  # noqa: PLC0415

    doc: dict[str, Any] = _load() if record else {"backend": "file", "attacks": {}}
    rng = np.random.default_rng(16)
    chosen = [a for a in CHIP_EVIDENCE_ATTACKS if not only or a.name in only]
    for attack in chosen:
        rec = doc["attacks"].setdefault(
            attack.name,
            {"trials": 0, "detected": 0, "false_findings": 0, "seconds": 0.0, "misses": []},
        )
        while rec["trials"] < trials:
            trial = rec["trials"]
            work = Path(tempfile.mkdtemp(prefix="cw-chipatk-", dir=_tmp_root()))
            t0 = time.perf_counter()
            try:
                caught = attack.detect(attack.create(work, trial, []), None, rng)  # type: ignore[arg-type]
                honest = attack.detect(attack.honest(work, trial), None, rng)  # type: ignore[arg-type]
            except Exception as e:  # noqa: BLE001 - a broken trial is recorded, not fatal
                failed = Detection(detected=False, detail=f"trial raised {type(e).__name__}: {e}")
                caught, honest = failed, Detection(detected=True, detail=failed.detail)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            rec["seconds"] += time.perf_counter() - t0
            rec["trials"] += 1
            rec["detected"] += bool(caught.detected)
            rec["false_findings"] += bool(honest.detected)
            if not caught.detected or honest.detected:
                rec["misses"].append(
                    {
                        "trial": trial,
                        "attack": caught.to_json(),
                        "honest": honest.to_json(),
                    }
                )
            if record and rec["trials"] % _SAVE_EVERY == 0:
                _save(attack.name, rec)
        if record:
            _save(attack.name, rec)
    return {
        "backend": doc["backend"],
        "target_trials": trials,
        "attacks": {name: _summary(rec) for name, rec in sorted(doc["attacks"].items())},
    }


def run(quick: bool) -> dict[str, Any]:  # noqa: FBT001
    """One trial each when `quick` (campaign file untouched); else resume the campaign."""
    return campaign(1 if quick else TRIALS, record=not quick)


def main(argv: list[str] | None = None) -> int:
    """Resume the campaign from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=TRIALS)
    parser.add_argument("--only", nargs="*", default=[])
    args = parser.parse_args(argv)
    print(json.dumps(campaign(args.trials, tuple(args.only)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
