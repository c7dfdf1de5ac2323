"""The chip clock set forward (TPM2_ClockSet's power) is judged by the Verifier's own time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from computewatch.attacks import ClockSetForward
from computewatch.inspection import check_chip_clock, check_firmware_history, inspect_chip

if TYPE_CHECKING:
    from pathlib import Path

RNG = np.random.default_rng(0)
HOUR_MS = 3_600_000


def _att(clock_ms: object, size: int = 0) -> dict[str, object]:
    return {"chip_time": {"clock_ms": clock_ms, "resets": 0}, "log": {"size": size}}


def test_a_clock_ahead_of_the_verifiers_time_is_a_jump_and_drift_within_bounds_is_not() -> None:
    before = _att(1_000)
    # 10 h of the Verifier's time: up to 10 h * 1.15 + 1 h of chip time is drift
    assert (
        check_chip_clock(before, _att(1_000 + 12 * HOUR_MS), serial="CW", elapsed_ms=10 * HOUR_MS)
        == []
    )
    found = check_chip_clock(
        before, _att(1_000 + 13 * HOUR_MS), serial="CW", elapsed_ms=10 * HOUR_MS
    )
    assert [f.kind for f in found] == ["chip-clock-jump"]
    assert "13.0 h" in found[0].detail
    # a clock that fell behind (powered off) ages nothing; unreadable clocks are not compared
    assert check_chip_clock(before, _att(0), serial="CW", elapsed_ms=HOUR_MS) == []
    assert check_chip_clock(before, _att(clock_ms=True), serial="CW", elapsed_ms=0) == []
    assert check_chip_clock({}, _att(5), serial="CW", elapsed_ms=0) == []


def test_the_attack_passes_on_the_chip_clock_alone_and_is_caught_by_trusted_time(
    tmp_path: Path,
) -> None:
    attack = ClockSetForward()
    for trial in (0, 5):
        data = attack.create(tmp_path, trial, []).data
        # the hole: judged by the chip clock only, the fresh update looks weeks old
        blind = inspect_chip(
            data["folder"],
            data["record"],
            expected_owner="lab-a",
            nonce=bytes(range(7, 39)),
            reports=data["reports"],
        )
        assert blind.findings == (), blind.findings
        caught = attack.detect(attack.create(tmp_path / "again", trial, []), None, RNG)  # type: ignore[arg-type]
        assert {"chip-clock-jump", "update-before-inspection"} <= set(caught.checks), caught
        honest = attack.detect(attack.honest(tmp_path, trial), None, RNG)  # type: ignore[arg-type]
        assert not honest.detected, honest.detail


def test_an_update_since_the_earlier_attestation_is_aged_by_the_verifiers_time() -> None:
    assert check_firmware_history([], serial="CW", trusted_since=(0, HOUR_MS)) == []
