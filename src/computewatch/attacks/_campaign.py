"""Resumable detection campaigns: trials that accumulate in a file across runs (issue 15).

Showing ">= 99 %" takes 299 trials with no miss per attack (the exact
one-sided 95 % Clopper-Pearson bound), which at the long scale is hours
per attack: no single run finishes it. A campaign appends every trial to a
JSON-lines file as soon as it is done, as one record::

    {"attack": NAME, "trial": i, "detected": bool, "checks": [...],
     "compute_fraction": f, "seconds": s, "setup": campaign_setup()}

and a later run does only the trials still missing. Trial `i` of an attack
is the same run wherever and whenever it is computed (its seeds are `i`'s),
so trials from several runs, or from several processes each running its
own shard of trial numbers, add up. Records of another setup (scale or
policy) stay in the file but are not counted. An attack is finished when
its lower bound reaches 0.99 (299 detections and no miss: the exact
sequential rule) or after `TARGET` trials.

`corpus_trial` is one trial of the whole corpus (or a subset), built as
`run_benchmark` builds it: the two honest base runs of trial `i`, when an
attack needs them, also give two honest records (``honest-base``) for the
false-reject rate.

Example::

    >>> finished([{"detected": True}] * 299)
    True
    >>> finished([{"detected": False}] + [{"detected": True}] * 299, 10_000)
    False
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from computewatch.attacks._corpus import (
    ATTACKS,
    LONG_POLICY,
    _bases,
    _verify_honest,
    campaign_setup,
    clopper_pearson,
    default_policy,
    one_sided_bounds,
)
from computewatch.attacks._harness import LONG

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "GOAL",
    "HONEST_BASE",
    "TARGET",
    "append_trials",
    "corpus_trial",
    "finished",
    "load_trials",
    "run_campaign",
    "summarize_campaign",
    "summary_row",
]

#: Trials after which an attack stops even with misses (299 clean ones reach 0.99).
TARGET = 299

#: The goal: detected at >= 99 % (the one-sided 95 % lower bound reaches it).
GOAL = 0.99

#: The honest base runs' records (two per trial that built bases).
HONEST_BASE = "honest-base"

Key = tuple[str, int]


def load_trials(path: Path, setup: dict[str, Any] | None = None) -> dict[Key, dict[str, Any]]:
    """The file's trials of `setup` (default `campaign_setup()`), by (attack, trial)."""
    want = campaign_setup() if setup is None else setup
    done: dict[Key, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                if r.get("setup") == want:
                    done[str(r["attack"]), int(r["trial"])] = r
    return done


def append_trials(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Append `records` (one line each, written as soon as they are done)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in records)


def finished(records: Sequence[dict[str, Any]], trials: int = TARGET) -> bool:
    """Whether an attack needs no more trials: lower bound >= 0.99, or `trials` run."""
    k = sum(bool(r["detected"]) for r in records)
    lower, _ = one_sided_bounds(k, len(records))
    return len(records) >= trials or lower >= GOAL


def summary_row(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Count, rate, exact bounds, replayed compute, time and failing checks of one row."""
    k = sum(bool(r["detected"]) for r in records)
    n = len(records)
    fr = [float(r["compute_fraction"]) for r in records if r["compute_fraction"] is not None]
    lower, upper = one_sided_bounds(k, n)
    checks = Counter(c for r in records for c in r["checks"])
    return {
        "count": k,
        "trials": n,
        "rate": k / n if n else None,
        "ci95": list(clopper_pearson(k, n)),
        "lower95": lower,
        "upper95": upper,
        "compute_fraction_mean": sum(fr) / len(fr) if fr else None,
        "compute_fraction_max": max(fr) if fr else None,
        "seconds_per_trial": sum(float(r["seconds"]) for r in records) / n if n else None,
        "checks": dict(sorted(checks.items())),
    }


def _record(
    name: str,
    trial: int,
    detected: bool,  # noqa: FBT001
    checks: Iterable[str],
    fraction: float | None,
) -> dict[str, Any]:
    return {
        "attack": name,
        "trial": trial,
        "detected": detected,
        "checks": list(checks),
        "compute_fraction": fraction,
        "setup": campaign_setup(),
    }


def corpus_trial(
    names: Sequence[str], trial: int, workdir: Path, *, with_bases: bool = True
) -> list[dict[str, Any]]:
    """Trial `trial` of the attacks `names` at the long scale; one record each.

    The honest base runs are built when an attack needs them; with
    `with_bases` their verdicts are records too (``honest-base``, trials
    ``2 i`` and ``2 i + 1``).
    """
    policy = default_policy(LONG)
    chosen = [a for a in ATTACKS if a.name in set(names)]
    out: list[dict[str, Any]] = []
    bases = []
    if any(a.needs_base for a in chosen):
        t0 = time.perf_counter()
        bases = _bases(workdir / "bases", trial, LONG)
        if with_bases:
            for j, run in enumerate(bases):
                h = _verify_honest(run, policy, trial)
                rec = _record(
                    HONEST_BASE, 2 * trial + j, h["rejected"], h["checks"], h["compute_fraction"]
                )
                out.append(rec | {"seconds": (time.perf_counter() - t0) / len(bases)})
    for attack in chosen:
        t0 = time.perf_counter()
        attempt = attack.create(workdir / attack.name, trial, bases, LONG)
        d = attack.detect(attempt, policy, np.random.default_rng(trial))
        rec = _record(attack.name, trial, d.detected, d.checks, d.compute_fraction)
        out.append(rec | {"seconds": time.perf_counter() - t0})
        shutil.rmtree(workdir / attack.name, ignore_errors=True)
    return out


def run_campaign(
    path: Path,
    names: Sequence[str] = (),
    *,
    trials: int = TARGET,
    budget_s: float | None = None,
    shard: tuple[int, int] = (0, 1),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Add the missing trials of `names` (default: every attack) until done or out of time.

    Trial numbers ``i % n == k`` for ``shard=(k, n)``; the file is re-read
    before each trial, so processes on other shards add to the same counts.
    Returns the summary of what the file holds.
    """
    k, n = shard
    wanted = list(names) or [a.name for a in ATTACKS]
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    for trial in range(k, 10**6, n):
        if budget_s is not None and time.perf_counter() - t0 >= budget_s:
            break
        done = load_trials(path)
        rows = {a: [r for (b, _), r in done.items() if b == a] for a in wanted}
        todo = [a for a in wanted if not finished(rows[a], trials) and (a, trial) not in done]
        if not todo:
            if all(finished(rows[a], trials) for a in wanted):
                break
            continue
        say(f"trial {trial}: {len(todo)} attacks")
        bases_done = (HONEST_BASE, 2 * trial) in done
        with tempfile.TemporaryDirectory(prefix="cw-campaign-") as tmp:
            records = corpus_trial(todo, trial, Path(tmp), with_bases=not bases_done)
        append_trials(path, records)
    return summarize_campaign(load_trials(path), wanted) | {
        "seconds_this_run": time.perf_counter() - t0
    }


def summarize_campaign(done: dict[Key, dict[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """Every attack's row, the honest bases' row, and which attacks meet 99 %."""
    c = float(LONG_POLICY["audit_fraction"])
    by_name = {a.name: a for a in ATTACKS}
    rows: dict[str, Any] = {}
    for name in [*names, HONEST_BASE]:
        records = [r for (a, _), r in sorted(done.items()) if a == name]
        row = summary_row(records)
        attack = by_name.get(name)
        formula = getattr(attack, "formula", None)
        if formula is not None:  # lies sampled by step audits: what c can see
            row["audit_formula"] = formula(c, LONG)
            row["below_sampling"] = row["audit_formula"] < GOAL
        if attack is not None:
            row["meets_99"] = row["lower95"] >= GOAL
        rows[name] = row
    return {"setup": campaign_setup(), "rows": rows}
