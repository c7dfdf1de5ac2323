"""Resumable campaigns: trials add up across runs, processes and shards (issue 15)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from computewatch.attacks import (
    HONEST_BASE,
    append_trials,
    campaign_setup,
    finished,
    load_trials,
    run_campaign,
    summarize_campaign,
)

if TYPE_CHECKING:
    from pathlib import Path

CHEAP = ["forged-log-entry", "resold-chip"]  # no training: a trial in about 0.1 s


def _trials(path: Path, name: str) -> list[int]:
    return sorted(t for (a, t) in load_trials(path) if a == name)


def test_a_campaign_resumes_where_it_stopped_and_shards_add_up(tmp_path: Path) -> None:
    path = tmp_path / "trials.jsonl"
    run_campaign(path, CHEAP, trials=3, budget_s=0.0)
    assert not path.exists()  # no time: nothing run, nothing written
    summary = run_campaign(path, CHEAP, trials=3, shard=(0, 2))
    assert _trials(path, "forged-log-entry") == [0, 2, 4]
    assert summary["rows"]["forged-log-entry"]["count"] == 3
    lines = path.read_text().splitlines()
    again = run_campaign(path, CHEAP, trials=3, shard=(1, 2))  # finished: nothing to add
    assert path.read_text().splitlines() == lines
    assert again["rows"]["resold-chip"]["trials"] == 3
    run_campaign(path, CHEAP, trials=5, shard=(1, 2))  # the other shard fills its numbers
    assert _trials(path, "resold-chip") == [0, 1, 2, 3, 4]
    records = [json.loads(x) for x in path.read_text().splitlines()]
    assert all(r["setup"] == campaign_setup() for r in records)
    assert len({(r["attack"], r["trial"]) for r in records}) == len(records)  # no trial twice


def test_records_of_another_setup_are_kept_but_not_counted(tmp_path: Path) -> None:
    path = tmp_path / "trials.jsonl"
    old = {"attack": "forged-log-entry", "trial": 0, "detected": False, "checks": []}
    append_trials(
        path,
        [
            old | {"compute_fraction": None, "seconds": 1.0},  # no setup: before they were kept
            old | {"trial": 1, "compute_fraction": None, "seconds": 1.0, "setup": {"scale": []}},
        ],
    )
    assert load_trials(path) == {}
    run_campaign(path, ["forged-log-entry"], trials=2)
    assert _trials(path, "forged-log-entry") == [0, 1]
    assert len(path.read_text().splitlines()) == 4  # the old lines are still there


def test_the_summary_separates_what_sampling_cannot_see() -> None:
    def rec(name: str, trial: int, *, detected: bool) -> dict[str, object]:
        return {
            "attack": name,
            "trial": trial,
            "detected": detected,
            "checks": ["audit"] if detected else [],
            "compute_fraction": 0.048,
            "seconds": 20.0,
        }

    done = {
        ("concentrated-substitution", i): rec("concentrated-substitution", i, detected=True)
        for i in range(299)
    }
    done |= {
        ("single-step-substitution", i): rec("single-step-substitution", i, detected=i < 5)
        for i in range(100)
    }
    done |= {(HONEST_BASE, i): rec(HONEST_BASE, i, detected=False) for i in range(10)}
    rows = summarize_campaign(
        done, ["concentrated-substitution", "single-step-substitution", "forged-log-entry"]
    )["rows"]
    assert rows["concentrated-substitution"]["meets_99"]
    assert rows["concentrated-substitution"]["lower95"] >= 0.99
    assert not rows["concentrated-substitution"]["below_sampling"]
    single = rows["single-step-substitution"]
    assert single["below_sampling"]  # one step at c = 0.04
    assert not single["meets_99"]
    assert single["checks"] == {"audit": 5}
    assert rows["forged-log-entry"]["trials"] == 0
    assert "audit_formula" not in rows["forged-log-entry"]
    assert rows[HONEST_BASE]["count"] == 0
    assert rows[HONEST_BASE]["compute_fraction_max"] == 0.048
    assert finished([{"detected": True}] * 299)
    assert not finished([{"detected": True}] * 298)
