"""A Prover's program that answers an undeclared benchmark in the replay worker is not believed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pytest

from computewatch.attacks import ATTACKS, BenchmarkInjection
from computewatch.datacenter import TranscriptPaths
from computewatch.rules import load_rules
from computewatch.verification import LocalPool, VerificationPolicy, WorkerLimits, verify_transcript

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from computewatch.verification import ArtifactStore, Job, JobOutcome

POLICY = VerificationPolicy(budget=0.0, max_replayed_snapshots=0)


@dataclass
class _Recording:
    """A real local pool that also keeps every raw worker answer."""

    inner: LocalPool = field(default_factory=lambda: LocalPool(limits=WorkerLimits(strict=False)))
    answers: list[bytes] = field(default_factory=list)
    workers: int = 1

    def run(self, jobs: Sequence[Job], store: ArtifactStore) -> list[JobOutcome]:
        outcomes = self.inner.run(jobs, store)
        self.answers += [o.answer or b"" for o in outcomes]
        return outcomes


@pytest.mark.slow
def test_an_injected_benchmark_score_does_not_satisfy_the_rule(tmp_path: Path) -> None:
    attack = BenchmarkInjection()
    assert any(a.name == attack.name for a in ATTACKS)
    attempt = attack.create(tmp_path, 0, [])
    assert attempt.run is not None
    # the payload fires: a worker answers the undeclared score ...
    engine = _Recording()
    verdict = verify_transcript(
        attempt.run.run_dir,
        TranscriptPaths(attempt.run.run_dir).report,
        attempt.run.evidence(),
        POLICY,
        np.random.default_rng(0),
        rules=load_rules(attempt.data["rules"]),
        declared={"reported": True, "approvals": []},
        engine=engine,
    )
    assert any(b"cyber_uplift" in a for a in engine.answers)
    # ... and the rule that needs it stays violated
    assert {r["id"]: r["status"] for r in verdict.rules} == {"needs-cyber-eval": "violation"}
    result = attack.detect(attempt, POLICY, np.random.default_rng(0))
    assert result.detected, result
    assert result.checks == ("rule:needs-cyber-eval",)
    assert "violation" in result.detail
