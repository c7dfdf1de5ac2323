"""Lies inside one interval against step audits (issue 15, ADR 0037), at the tiny scale."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from computewatch.attacks import (
    ATTACKS,
    SCALE,
    ConcentratedSubstitution,
    DataSubstitution,
    InIntervalReordering,
    SingleStepSubstitution,
    attack_names,
    campaign_setup,
)
from computewatch.verification import VerificationPolicy

ALL = VerificationPolicy(budget=0.0, audit_fraction=1.0, max_replayed_snapshots=0)
NONE = VerificationPolicy(budget=0.0, max_replayed_snapshots=0)


def test_the_new_attacks_are_in_the_corpus() -> None:
    names = attack_names()
    for name in ("concentrated-substitution", "in-interval-reordering", "single-step-substitution"):
        assert name in names
    assert len({a.name for a in ATTACKS}) == len(ATTACKS)


@pytest.mark.parametrize(
    "attack", [ConcentratedSubstitution(), InIntervalReordering(), SingleStepSubstitution()]
)
def test_each_lie_is_caught_by_auditing_every_step_and_passes_without_audits(
    attack: Any, tmp_path: Path
) -> None:
    attempt = attack.create(tmp_path, 1, [])
    chosen = attack.steps(1, SCALE)
    caught = attack.detect(attempt, ALL, np.random.default_rng(0))
    assert caught.detected, caught
    assert "audit" in caught.checks
    assert f"first bad step {min(chosen)}" in caught.detail
    # the transcript is consistent: without audits (and no replay) nothing fails
    missed = attack.detect(attempt, NONE, np.random.default_rng(0))
    assert not missed.detected, missed


def test_the_lies_sit_inside_one_interior_interval() -> None:
    for attack in (ConcentratedSubstitution(), InIntervalReordering()):
        for trial in range(20):
            steps = attack.steps(trial, SCALE)
            a = steps[0]
            assert a in SCALE.interior
            assert steps == list(range(a, a + SCALE.checkpoint_every))
    assert len(SingleStepSubstitution().steps(3, SCALE)) == 1
    assert SingleStepSubstitution().formula(0.04) == pytest.approx(0.04)


def _bench() -> Any:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_step_audits.py"
    spec = importlib.util.spec_from_file_location("bench_step_audits", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_campaign_summary_counts_what_the_file_holds(tmp_path: Path) -> None:
    bench = _bench()
    path = tmp_path / "trials.jsonl"
    rows = [
        {"attack": "single-step-substitution", "trial": i, "detected": i == 0, "checks": [],
         "compute_fraction": 0.04, "seconds": 1.0, "setup": bench.setup()}
        for i in range(3)
    ] + [{"attack": "honest", "trial": 0, "detected": False, "checks": [],
          "compute_fraction": 0.05, "seconds": 1.0, "setup": bench.setup()},
         {"attack": "honest", "trial": 1, "detected": True, "checks": [],
          "compute_fraction": 0.05, "seconds": 1.0, "setup": {"scale": [480, 4, 1.0]}}
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = bench.summarize(bench._load(path))
    single = summary["rows"]["single-step-substitution"]
    assert (single["count"], single["trials"]) == (1, 3)
    assert single["audit_formula"] == pytest.approx(summary["audit_fraction"])
    assert not single["meets_99"]
    assert single["below_sampling"]  # δ3: one step at c = 0.04
    assert not summary["rows"]["concentrated-substitution"]["below_sampling"]
    # a record of another scale or policy is kept in the file but not counted
    assert summary["rows"]["honest"]["trials"] == 1
    assert summary["rows"]["honest"]["compute_fraction_max"] == 0.05
    assert summary["rows"]["concentrated-substitution"]["trials"] == 0
    # the sequential rule: 299 detections and no miss reach the 0.99 lower bound
    done = [{"detected": True}] * 299
    assert bench._finished(done, 10_000)
    assert not bench._finished(done[:298], 10_000)
    assert not bench._finished([{"detected": False}, *done], 10_000)


def test_the_false_reject_campaign_counts_only_trials_of_its_setup(tmp_path: Path) -> None:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_false_rejects.py"
    spec = importlib.util.spec_from_file_location("bench_false_rejects", path)
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    file = tmp_path / "trials.jsonl"
    records = [
        {"trial": 0, "rejected": False, "setup": campaign_setup()},
        {"trial": 1, "rejected": False},  # before setups were recorded (the 480-step scale)
        {"trial": 2, "rejected": True, "setup": {**campaign_setup(), "scale": [480, 4, 1.0]}},
    ]
    file.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert sorted(bench._load(file)) == [0]


def test_data_substitution_answers_from_its_own_trajectory(tmp_path: Path) -> None:
    # a capable cheater: every answer is a committed state, only the replays of
    # the substituted steps differ (nothing is caught by a refused answer)
    attack = DataSubstitution(0.1)
    attempt = attack.create(tmp_path, 2, [])
    caught = attack.detect(attempt, ALL, np.random.default_rng(0))
    assert caught.detected
    assert "tampered" not in caught.detail
    assert set(caught.checks) <= {"audit", "audits", "heuristic"}, caught
    first = min(attempt.data["substituted_steps"])
    assert f"first bad step {first}" in caught.detail
