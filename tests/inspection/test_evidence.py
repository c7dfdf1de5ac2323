"""The pure checks of chip evidence, on real chips (each attack of issue 16 and its honest twin)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pytest

from computewatch.attacks import CHIP_EVIDENCE_ATTACKS, attack_names
from computewatch.datacenter import ClaimRecord
from computewatch.inspection import (
    check_claims,
    check_snapshot_rate,
    compare_attestations,
    expected_snapshots,
)
from computewatch.testing import claims_report

if TYPE_CHECKING:
    from pathlib import Path

    from computewatch.attacks._chip_evidence import _EvidenceAttack

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("attack", CHIP_EVIDENCE_ATTACKS, ids=lambda a: a.name)
def test_each_attack_is_caught_by_its_check_and_its_honest_twin_is_not(
    attack: _EvidenceAttack, tmp_path: Path
) -> None:
    for trial in (0, 1):  # the trials alternate variants (how much is cut, which clock cheat)
        caught = attack.detect(attack.create(tmp_path, trial, []), None, RNG)  # type: ignore[arg-type]
        assert caught.detected, (attack.name, caught.detail)
        assert set(caught.checks) & set(attack.expected), (attack.name, caught.checks)
        honest = attack.detect(attack.honest(tmp_path, trial), None, RNG)  # type: ignore[arg-type]
        assert not honest.detected, (attack.name, honest.detail)


def test_the_attacks_are_in_the_corpus() -> None:
    assert {a.name for a in CHIP_EVIDENCE_ATTACKS} <= set(attack_names())


def test_claims_of_snapshots_no_log_holds_are_phantoms() -> None:
    report = claims_report("r", "CW-1", [])
    claim = ClaimRecord("CW-1", 3, 1, "sha256:" + "0" * 64, (0, 0), "r")
    found = check_claims({"CW-1": []}, [replace(report, snapshots=(claim,))])
    assert [f.kind for f in found] == ["phantom-claim"]
    assert check_claims({}, []) == []


def test_rate_check_on_an_empty_log_finds_nothing_and_a_starved_run_is_named() -> None:
    assert (
        check_snapshot_rate([], serial="CW", run_id="r", rate_per_day=1.0, rate_per_kstep=1.0) == []
    )
    assert expected_snapshots([], run_id="r", rate_per_day=1.0, rate_per_kstep=1.0) == (0.0, 0)


def test_attestations_compared_name_each_rollback() -> None:
    before = {
        "serial": "CW",
        "public_key": "k",
        "counters": {"log": 9, "boot": 3, "firmware": 2},
        "log": {"size": 9},
        "chip_time": {"resets": 4},
        "firmware": {"v": 2},
    }
    now = {
        "serial": "CW",
        "public_key": "k2",
        "counters": {"log": 5, "boot": 3, "firmware": 1},
        "log": {"size": 5},
        "chip_time": {"resets": 2},
        "firmware": {"v": 1},
    }
    found = compare_attestations(before, now, serial="CW")
    kinds = [f.kind for f in found]
    assert kinds.count("state-rolled-back") == 4  # log and firmware counters, log size, resets
    assert "identity-changed" in kinds
    assert "firmware-downgraded" in kinds
    assert compare_attestations(before, before, serial="CW") == []
