"""Rules on verified facts, in `verify_transcript` and signed by the trusted cluster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from computewatch.crypto import SigningKey
from computewatch.datacenter import TranscriptPaths
from computewatch.errors import FormatError
from computewatch.rules import load_rules
from computewatch.verification import (
    ChipInput,
    ClusterJob,
    VerificationPolicy,
    cluster_verify,
    read_verdict,
    verify_transcript,
)

if TYPE_CHECKING:
    from tests.verification.conftest import Run

RULES = Path(__file__).resolve().parents[2] / "examples" / "rules.yaml"


def test_rules_are_evaluated_on_verified_facts(honest: Run) -> None:
    rules = load_rules(RULES)
    verdict = verify_transcript(
        honest.run_dir,
        TranscriptPaths(honest.run_dir).report,
        honest.evidence(),
        VerificationPolicy(budget=0.25),
        np.random.default_rng(2),
        rules=rules,
        declared={"reported": False, "approvals": []},
    )
    statuses = {r["id"]: r["status"] for r in verdict.rules}
    assert set(statuses) == {r.id for r in rules.rules}
    # the tiny run is far below every compute threshold and trains on clean data
    assert statuses["report-large-runs"] == "not_applicable"
    assert statuses["no-exploit-code"] == "not_applicable"
    assert verdict.passed, verdict.violations
    # only outcomes leave the cluster: no data estimates, scores or hyperparameters
    text = json.dumps(verdict.to_json())
    assert "bits_per_byte" not in text
    assert "exploit_code" not in text
    assert "n_embd" not in text


def test_a_violated_rule_fails_the_verdict(honest: Run, tmp_path: Path) -> None:
    strict = tmp_path / "strict.yaml"
    strict.write_text(
        "version: 1\nname: strict\nrules:\n  - id: no-training-at-all\n    kind: ban\n"
        '    when: "training.flops > 0.0"\n'
    )
    verdict = verify_transcript(
        honest.run_dir,
        TranscriptPaths(honest.run_dir).report,
        honest.evidence(),
        VerificationPolicy(budget=0.25),
        np.random.default_rng(2),
        rules=load_rules(strict),
    )
    assert verdict.violations == [
        {"id": "no-training-at-all", "kind": "ban", "status": "violation"}
    ]
    assert not verdict.passed


def test_cluster_evaluates_rules_and_signs_their_outcomes(honest: Run, tmp_path: Path) -> None:
    pub = tmp_path / "chip.pub"
    honest.chip.public_key.save(pub)
    job = ClusterJob(
        transcript=honest.run_dir,
        report=TranscriptPaths(honest.run_dir).report,
        chips=(ChipInput(str(honest.chip.serial), pub, honest.chip.log_path),),
        policy=VerificationPolicy(budget=0.25),
        seed=3,
        rules=RULES,
        declared={"reported": True, "approvals": []},
    )
    key = SigningKey.generate()
    envelope, verdict = cluster_verify(job, key=key)
    assert verdict.passed, verdict.failures
    assert len(verdict.rules) == 5
    assert read_verdict(envelope, key.verifying_key).rules == verdict.rules


def test_a_bad_rule_file_is_the_verifiers_fault(tmp_path: Path) -> None:
    bad_rules = tmp_path / "r.yaml"
    bad_rules.write_text("version: 1\nrules: []\n")
    job = ClusterJob(transcript=tmp_path, report=tmp_path / "r.json", rules=bad_rules)
    with pytest.raises(FormatError):
        cluster_verify(job, key=SigningKey.generate())
