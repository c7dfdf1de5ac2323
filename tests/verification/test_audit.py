"""Random step audits answered by the Prover's challenge (ADR 0037)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from computewatch.attacks import ConcentratedSubstitution, trained_batches
from computewatch.datacenter import DataSchedule, TranscriptPaths
from computewatch.errors import FormatError
from computewatch.rules import load_rules
from computewatch.testing import train_on_chip
from computewatch.verification import (
    VerificationPolicy,
    answer_challenge,
    draw_audit_steps,
    miss_probability,
    prover_challenge,
    verify_transcript,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from computewatch.testing import TinyRun

BAD = 15  # a step inside the interval 12-18 of the tiny run (not a checkpoint)
EVERY: dict[str, Any] = {"budget": 0.0, "audit_fraction": 1.0}  # no segments: only audits replay


def _verify(run: TinyRun, challenge: Any, seed: int = 3, **policy: Any) -> Any:
    return verify_transcript(
        run.run_dir,
        TranscriptPaths(run.run_dir).report,
        run.evidence(),
        VerificationPolicy(**{"max_replayed_snapshots": 0, **policy}),
        np.random.default_rng(seed),
        challenge=challenge,
    )


def _shift(schedule: DataSchedule, step: int) -> list[int]:
    idx = schedule.indices(step)
    return [(i + 1) % schedule.dataset_size for i in idx] if step == BAD else idx


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return train_on_chip(tmp_path_factory.mktemp("honest"), serial="CW-AU-0")


@pytest.fixture(scope="module")
def substituted(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """Trains on other points at step BAD; its commitments follow what it trained."""

    def seam(schedule: DataSchedule, step: int, rank: int, world: int) -> list[int]:
        idx = _shift(schedule, step)
        per = len(idx) // world
        return idx[rank * per : (rank + 1) * per]

    return train_on_chip(tmp_path_factory.mktemp("sub"), serial="CW-AU-1", batches=seam)


def test_the_draw_is_per_step_and_the_miss_rate_is_the_formula() -> None:
    rng = np.random.default_rng(1)
    drawn = [len(draw_audit_steps(1_000, 0.05, rng)) for _ in range(200)]
    assert 45 < np.mean(drawn) < 55
    # m substituted steps, wherever they sit, are all missed with (1-c)^m
    rng = np.random.default_rng(2)
    for where in ([0, 1, 2, 3], [10, 400, 700, 999]):
        missed = sum(not set(where) & set(draw_audit_steps(1_000, 0.2, rng)) for _ in range(4_000))
        assert abs(missed / 4_000 - miss_probability(0.2, 4)) < 0.03
    assert draw_audit_steps(5, 1.0, np.random.default_rng(0), skip={1, 2}) == [0, 3, 4]


def test_an_honest_run_passes_every_audit(honest: TinyRun, tmp_path: Path) -> None:
    verdict = _verify(honest, prover_challenge(honest.run_dir, tmp_path), **EVERY)
    assert verdict.passed, [str(c) for c in verdict.failures]
    summary = next(c for c in verdict.checks if c.name == "audits")
    assert "24 steps audited" in summary.detail
    assert "0 differ" in summary.detail
    assert verdict.replayed_steps == 24
    assert verdict.policy["audit_fraction"] == 1.0


def test_a_substituted_step_is_named_by_its_audit(substituted: TinyRun, tmp_path: Path) -> None:
    # the cheater answers with its own trajectory: every answered state matches
    # its commitment, and only the replay of the substituted step differs
    batches = trained_batches(_shift)
    challenge = prover_challenge(substituted.run_dir, tmp_path, batches=batches)
    verdict = _verify(substituted, challenge, **EVERY)
    assert not verdict.passed
    failed = [c for c in verdict.failures if c.name.startswith("audit:")]
    assert [c.name for c in failed] == [f"audit:{BAD}"]
    assert f"first bad step {BAD}" in failed[0].detail


def test_audits_that_miss_the_step_pass_it(substituted: TinyRun, tmp_path: Path) -> None:
    batches = trained_batches(_shift)
    challenge = prover_challenge(substituted.run_dir, tmp_path, batches=batches)
    for seed in range(40):
        steps = draw_audit_steps(24, 0.1, np.random.default_rng(seed))
        if BAD not in steps and steps:
            break
    verdict = _verify(substituted, challenge, seed=seed, budget=0.0, audit_fraction=0.1)
    assert verdict.passed, [str(c) for c in verdict.failures]


def test_an_honest_regeneration_does_not_match_a_cheaters_commitment(
    substituted: TinyRun, tmp_path: Path
) -> None:
    # answering with the committed data's trajectory after the lie: tampering
    challenge = prover_challenge(substituted.run_dir, tmp_path)
    verdict = _verify(substituted, challenge, **EVERY)
    tampered = [c for c in verdict.failures if "tampered" in c.detail]
    assert tampered
    assert all(int(c.name.split(":")[1]) > BAD for c in tampered)


class _Hostile:
    """A Prover whose answers are bad in one way."""

    def __init__(self, run: TinyRun, tmp: Path, kind: str) -> None:
        self.run, self.tmp, self.kind = run, tmp, kind

    def __call__(self, steps: tuple[int, ...]) -> Mapping[int, Any]:
        if self.kind == "raise":
            msg = "disk on fire"
            raise RuntimeError(msg)
        if self.kind == "list":
            return [1, 2]  # type: ignore[return-value]
        answers: dict[int, Any] = dict(answer_challenge(self.run.run_dir, steps, self.tmp))
        first = min(answers)
        if self.kind == "missing":
            del answers[first]
        elif self.kind == "garbage":
            answers[first].write_bytes(b"\x00" * 64)
        elif self.kind == "wrong-step":
            answers[first] = answers[max(answers)]
        elif self.kind == "number":
            answers[first] = 42
        return answers


@pytest.mark.parametrize(
    ("kind", "expect"),
    [
        ("raise", "did not answer (RuntimeError: disk on fire)"),
        ("list", "not a mapping"),
        ("missing", "gave no state"),
        ("garbage", "malformed"),
        ("wrong-step", "its header says step"),
        ("number", "expected a file path"),
    ],
)
def test_a_hostile_answer_is_a_one_line_failed_check(
    honest: TinyRun, tmp_path: Path, kind: str, expect: str
) -> None:
    verdict = _verify(honest, _Hostile(honest, tmp_path, kind), **EVERY)
    assert not verdict.passed
    details = [c.detail for c in verdict.failures]
    assert any(expect in d and "\n" not in d for d in details), details


def test_without_a_prover_a_drawn_audit_fails(honest: TinyRun) -> None:
    verdict = _verify(honest, None, **EVERY)
    assert any("no Prover to challenge" in c.detail for c in verdict.failures)
    # no audit fraction: no audits, no challenge needed
    assert _verify(honest, None, budget=0.0).passed


def test_a_rule_file_raises_the_audit_fraction_for_long_runs(
    honest: TinyRun, tmp_path: Path
) -> None:
    text = """\
version: 1
name: near the threshold
audit: {{fraction: 0.5, min_steps: {n}}}
rules:
  - {{id: report, kind: reporting, when: "training.flops > 1e30"}}
"""
    near = tmp_path / "near.yaml"
    near.write_text(text.format(n=20))
    far = tmp_path / "far.yaml"
    far.write_text(text.format(n=1000))
    for path, want in ((near, 0.5), (far, 0.0)):
        verdict = verify_transcript(
            honest.run_dir,
            TranscriptPaths(honest.run_dir).report,
            honest.evidence(),
            VerificationPolicy(budget=0.0, max_replayed_snapshots=0),
            np.random.default_rng(4),
            rules=load_rules(path),
            declared={"reported": True, "approvals": []},
            challenge=prover_challenge(honest.run_dir, tmp_path / path.stem),
        )
        assert verdict.policy["audit_fraction"] == want
        audited = [c for c in verdict.checks if c.name == "audits"]
        assert bool(audited) == (want > 0)
        assert verdict.passed, [str(c) for c in verdict.failures]


@pytest.mark.parametrize(
    ("block", "match"),
    [
        ("audit: 0.2", "expected a mapping"),
        ("audit: {fraction: 0}", r"fraction: expected a number in \(0, 1\]"),
        ("audit: {fraction: 0.1, min_steps: -1}", "min_steps"),
        ("audit: {fraction: 0.1, often: true}", "unknown key"),
    ],
)
def test_a_bad_audit_block_is_refused(tmp_path: Path, block: str, match: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        f'version: 1\nname: x\n{block}\nrules:\n  - {{id: a, kind: ban, when: "true"}}\n'
    )
    with pytest.raises(FormatError, match=match):
        load_rules(path)


def test_the_policy_bounds_the_audit_fraction() -> None:
    with pytest.raises(FormatError, match="audit_fraction"):
        VerificationPolicy.from_dict({"audit_fraction": 1.5})
    p = VerificationPolicy(audit_fraction=0.02)
    assert VerificationPolicy.from_dict(p.to_dict()) == p


def test_the_concentrated_attack_formula() -> None:
    attack = ConcentratedSubstitution()
    assert attack.formula(0.015) == pytest.approx(1 - 0.985**6)  # tiny scale: 6-step interval


def test_audits_beyond_the_cap_are_dropped_at_random_and_do_not_fail(
    honest: TinyRun, tmp_path: Path
) -> None:
    challenge = prover_challenge(honest.run_dir, tmp_path)
    verdict = _verify(honest, challenge, budget=0.0, audit_fraction=1.0, max_compute=0.25)
    assert verdict.passed, [str(c) for c in verdict.failures]
    cap = next(c for c in verdict.checks if c.name == "audits:cap")
    assert cap.status.value == "skipped"
    assert "18 drawn steps do not fit" in cap.detail
    summary = next(c for c in verdict.checks if c.name == "audits")
    assert "6 steps audited" in summary.detail
    assert verdict.replayed_steps == 6
