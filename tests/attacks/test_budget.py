"""The total replay cap (`max_compute`) holds, and attacks are still caught under it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pytest

from computewatch.attacks import (
    LONG,
    SCALE,
    DataSubstitution,
    HonestRun,
    InterpolatedCheckpoints,
    Scale,
    default_policy,
    false_reject_rate,
    run_on_chip,
)
from computewatch.cli import main
from computewatch.datacenter import TranscriptPaths
from computewatch.errors import ParameterError
from computewatch.verification import CheckStatus, VerificationPolicy, verify_transcript
from tests.attacks.runs import run_with_a_snapshot

if TYPE_CHECKING:
    from pathlib import Path

#: 96 steps, a checkpoint every 4, a handful of snapshots: long enough for 5 %.
MID = Scale("mid", steps=96, checkpoint_every=4, snapshot_rate_per_day=86_400.0 * 8)


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> list[HonestRun]:
    root = tmp_path_factory.mktemp("mid")
    return [  # the first is checked against its snapshots
        run_with_a_snapshot(root, "base", "CW-M-0", scale=MID),
        run_on_chip(root, name="other", serial="CW-M-1", scale=MID, data_seed=50),
    ]


def _verify(run: HonestRun, policy: VerificationPolicy, seed: int = 0) -> object:
    return verify_transcript(
        run.run_dir,
        TranscriptPaths(run.run_dir).report,
        run.evidence(),
        policy,
        np.random.default_rng(seed),
    )


def test_scale_checkpoints() -> None:
    assert SCALE.checkpoints == [0, 6, 12, 18, 24]
    assert SCALE.interior == [6, 12, 18]
    assert SCALE.half == 12
    assert LONG.checkpoints == [0, 240, 480, 720, 960, 1200]
    assert len(DataSubstitution(0.01).steps(0, LONG)) == 12


@pytest.mark.parametrize("cap", [0.0, 0.05, 0.1])
def test_replay_stays_under_the_cap_and_honest_runs_pass(
    bases: list[HonestRun], cap: float
) -> None:
    for seed in range(3):
        verdict = _verify(bases[0], VerificationPolicy(max_compute=cap), seed)
        assert verdict.passed, [c.detail for c in verdict.failures]  # type: ignore[attr-defined]
        assert verdict.compute_fraction <= cap + 1e-12  # type: ignore[attr-defined]
        if cap > 0:
            assert verdict.replayed_steps > 0  # type: ignore[attr-defined]


def test_without_budget_every_logged_snapshot_is_still_hash_checked(
    bases: list[HonestRun],
) -> None:
    verdict = _verify(bases[0], VerificationPolicy(max_compute=0.0))
    snaps = [c for c in verdict.checks if c.name.startswith("snapshot:")]  # type: ignore[attr-defined]
    assert snaps
    assert all(c.status is CheckStatus.PASS for c in snaps)
    assert verdict.replayed_steps == 0  # type: ignore[attr-defined]


def test_interpolated_checkpoints_are_caught_at_five_percent(
    tmp_path: Path, bases: list[HonestRun]
) -> None:
    attack = InterpolatedCheckpoints()
    attempt = attack.create(tmp_path, 0, bases, MID)
    result = attack.detect(attempt, default_policy(LONG), np.random.default_rng(0))
    assert result.detected
    assert result.compute_fraction is not None
    assert result.compute_fraction <= 0.05


def test_bad_policy_fractions_are_refused() -> None:
    with pytest.raises(ParameterError, match="budget"):
        VerificationPolicy(budget=1.5)
    with pytest.raises(ParameterError, match="max_compute"):
        VerificationPolicy(max_compute=-0.1)


def test_bench_cli_refuses_bad_scale_and_budget(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "attacks", "--scale", "huge"]) == 2
    err = capsys.readouterr().err
    assert "huge" in err
    assert len(err.strip().splitlines()) == 1
    code = main(["bench", "attacks", "--only", "forged-log-entry", "--max-compute", "-1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "max-compute" in err
    assert "Traceback" not in err


def test_bench_cli_long_scale_protocol_attack_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "attacks", "--scale", "long", "--only", "firmware-rollback", "--trials", "1"]
    code = main([*argv, "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["scale"]["name"] == "long"
    assert doc["policy"]["max_compute"] == 0.05
    assert doc["attacks"][0]["detection"]["count"] == 1


@pytest.mark.slow
def test_false_reject_rate_verifies_distinct_honest_runs() -> None:
    result = false_reject_rate(2, LONG, processes=1)
    fr = result["false_reject"]
    assert fr["trials"] == 2
    assert fr["count"] == 0
    assert 0 < fr["compute_fraction_max"] <= 0.05
    assert result["policy"]["max_compute"] == 0.05
