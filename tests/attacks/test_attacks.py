"""Each attack of the corpus is caught by the check that must catch it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from computewatch.attacks import (
    ATTACKS,
    DataSubstitution,
    FewerStepsClaimed,
    FinalCheckpointSwap,
    FirmwareRollback,
    ForgedLogEntry,
    HiddenSnapshot,
    HonestRun,
    InterpolatedCheckpoints,
    LearningRateLie,
    NoiseUnderEpsilon,
    OmegaAsInit,
    ReplayedLogEntry,
    ResoldChip,
    RestartChain,
    ShardRelocation,
    SmallUpdateSpoof,
    SnapshotSwap,
    UnregisteredChip,
    attack_names,
    clopper_pearson,
    markdown_table,
    one_sided_bounds,
    run_benchmark,
    run_on_chip,
)
from computewatch.verification import VerificationPolicy

if TYPE_CHECKING:
    from pathlib import Path

POLICY = VerificationPolicy(budget=0.05)


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> list[HonestRun]:
    root = tmp_path_factory.mktemp("bases")
    return [
        run_on_chip(root, name="base", serial="CW-T-0"),
        run_on_chip(root, name="other", serial="CW-T-1", data_seed=50),
    ]


def _check(attack: object, tmp_path: Path, bases: list[HonestRun], must: set[str]) -> None:
    attempt = attack.create(tmp_path, 0, bases)  # type: ignore[attr-defined]
    result = attack.detect(attempt, POLICY, np.random.default_rng(0))  # type: ignore[attr-defined]
    assert result.detected, result
    assert must & set(result.checks), result.checks


@pytest.mark.slow
def test_honest_base_runs_pass(bases: list[HonestRun]) -> None:
    from computewatch.datacenter import TranscriptPaths  # noqa: PLC0415
    from computewatch.verification import verify_transcript  # noqa: PLC0415

    for run in bases:
        verdict = verify_transcript(
            run.run_dir,
            TranscriptPaths(run.run_dir).report,
            run.evidence(),
            POLICY,
            np.random.default_rng(0),
        )
        assert verdict.passed


@pytest.mark.slow
@pytest.mark.parametrize(
    ("attack", "must"),
    [
        (OmegaAsInit(), {"init"}),
        (InterpolatedCheckpoints(), {"snapshot", "segment"}),
        (LearningRateLie(), {"precommit-logged", "init"}),
        (FewerStepsClaimed(), {"snapshot", "precommit-logged"}),
        (ShardRelocation(), {"snapshot", "precommit-logged"}),
        (SmallUpdateSpoof(), {"snapshot", "segment"}),
    ],
    ids=lambda a: getattr(a, "name", ""),
)
def test_transcript_spoof_is_caught(
    attack: object, must: set[str], tmp_path: Path, bases: list[HonestRun]
) -> None:
    _check(attack, tmp_path, bases, must)


@pytest.mark.slow
def test_restart_chain_fails_init(tmp_path: Path, bases: list[HonestRun]) -> None:
    _check(RestartChain(), tmp_path, bases, {"init"})


@pytest.mark.slow
def test_full_data_substitution_is_caught(tmp_path: Path, bases: list[HonestRun]) -> None:
    _check(DataSubstitution(1.0), tmp_path, bases, {"snapshot", "segment", "heuristic"})


def test_data_substitution_fractions_draw_at_least_one_step() -> None:
    assert len(DataSubstitution(0.01).steps(0)) == 1
    assert len(DataSubstitution(0.5).steps(1)) == 12
    assert DataSubstitution(1.0).steps(2) == set(range(24))


@pytest.mark.slow
def test_noise_under_epsilon_is_caught_by_default_exact_replay(
    tmp_path: Path, bases: list[HonestRun]
) -> None:
    # 0.9 ε (ε as a noise twin measures it) passed segment replay under the
    # tolerance (ADR 0004); runs recorded since ADR 0033 pin their environment,
    # so the verifier compares bitwise by default and the always-replayed last
    # interval sees it
    attack = NoiseUnderEpsilon()
    attempt = attack.create(tmp_path, 0, bases)
    assert 0 < attempt.data["noise_norm"] < attempt.data["epsilon"]
    for policy in (VerificationPolicy(budget=1.0), POLICY):
        result = attack.detect(attempt, policy, np.random.default_rng(0))
        assert result.detected
        assert "segment" in result.checks
    loud = NoiseUnderEpsilon(fraction=50.0)
    attempt = loud.create(tmp_path / "loud", 0, bases)
    result = loud.detect(attempt, VerificationPolicy(budget=1.0), np.random.default_rng(0))
    assert result.detected
    assert "segment" in result.checks


@pytest.mark.slow
def test_a_change_confined_to_the_final_checkpoint_is_caught_every_time(
    tmp_path: Path, bases: list[HonestRun]
) -> None:
    # the last interval is never left to the draw: every seed replays it
    attack = FinalCheckpointSwap()
    attempt = attack.create(tmp_path, 0, bases)
    for seed in range(5):
        result = attack.detect(attempt, POLICY, np.random.default_rng(seed))
        assert result.detected, result
        assert "segment" in result.checks


@pytest.mark.slow
def test_exact_mode_catches_noise_under_epsilon(tmp_path: Path, bases: list[HonestRun]) -> None:
    # the README's mitigation: single-chip runs replay bitwise, so ε is 0 and
    # the final segment's replay sees the perturbation
    attack = NoiseUnderEpsilon()
    attempt = attack.create(tmp_path, 0, bases)
    policy = VerificationPolicy(budget=1.0, exact=True)
    result = attack.detect(attempt, policy, np.random.default_rng(0))
    assert result.detected
    assert "segment" in result.checks


@pytest.mark.parametrize(
    ("attack", "must"),
    [
        (HiddenSnapshot(), {"hidden-snapshot"}),
        (ResoldChip(), {"owner-mismatch"}),
        (UnregisteredChip(), {"key-substituted"}),
        (ForgedLogEntry(), {"IntegrityError"}),
        (ReplayedLogEntry(), {"IntegrityError"}),
        (FirmwareRollback(), {"IntegrityError"}),
    ],
    ids=lambda a: getattr(a, "name", ""),
)
def test_protocol_attack_is_caught(attack: object, must: set[str], tmp_path: Path) -> None:
    _check(attack, tmp_path, [], must)


def test_swap_beats_a_fixed_schedule_but_not_the_poisson_one(tmp_path: Path) -> None:
    fixed, poisson = SnapshotSwap(fixed=True), SnapshotSwap(fixed=False)
    for trial in range(2):
        attempt = fixed.create(tmp_path, trial, [])
        assert not fixed.detect(attempt, POLICY, np.random.default_rng(0)).detected
        assert attempt.data["snapshots"] > 0
        assert attempt.data["on_secret"] == 0
        attempt = poisson.create(tmp_path, trial, [])
        result = poisson.detect(attempt, POLICY, np.random.default_rng(0))
        assert result.detected
        assert result.checks == ("snapshot",)
        assert attempt.data["on_secret"] > 0


def test_corpus_names_and_intervals() -> None:
    names = attack_names()
    assert len(names) == len(set(names)) == len(ATTACKS)
    assert clopper_pearson(3, 3)[1] == 1.0
    lo, hi = clopper_pearson(0, 3)
    assert lo == 0.0
    assert hi == pytest.approx(0.7076, abs=1e-3)
    # 299 clean trials show >= 99 % at one-sided 95 %; 298 do not
    assert one_sided_bounds(299, 299)[0] >= 0.99
    assert one_sided_bounds(298, 298)[0] < 0.99
    assert one_sided_bounds(0, 299)[1] <= 0.01
    with pytest.raises(ValueError, match="unknown attack"):
        run_benchmark(1, ["no-such-attack"])


def test_benchmark_runs_protocol_attacks(tmp_path: Path) -> None:
    results = run_benchmark(1, ["forged-log-entry", "swap-fixed-schedule"], workdir=tmp_path)
    rows = {r["name"]: r for r in results["attacks"]}
    assert rows["forged-log-entry"]["detection"]["count"] == 1
    assert rows["swap-fixed-schedule"]["detection"]["count"] == 0
    assert results["false_reject"]["trials"] == 0
    table = markdown_table(results)
    assert "| forged-log-entry | 1/1 |" in table
    assert "| swap-fixed-schedule | 0/1 |" in table
    assert len(rows["swap-fixed-schedule"]["missed"]) == 1
