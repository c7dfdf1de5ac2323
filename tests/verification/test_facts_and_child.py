"""Rules on verified facts, and the trusted cluster's child process, in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from computewatch.datacenter import TranscriptPaths
from computewatch.rules import load_rules
from computewatch.verification import VerificationPolicy, verify_transcript
from computewatch.verification._cluster_child import main as child_main

if TYPE_CHECKING:
    import pytest

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


def test_cluster_child_prints_the_verdict(
    honest: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pub = tmp_path / "chip.pub"
    honest.chip.public_key.save(pub)
    job = {
        "transcript": str(honest.run_dir),
        "report": str(TranscriptPaths(honest.run_dir).report),
        "chips": [
            {
                "serial": str(honest.chip.serial),
                "public_key": str(pub),
                "log": str(honest.chip.log_path),
            }
        ],
        "budget": 0.25,
        "exact": False,
        "seed": 3,
        "rules": str(RULES),
        "declared": {"reported": True, "approvals": []},
    }
    assert child_main(["child", json.dumps(job)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "pass"
    assert len(doc["rules"]) == 5


def test_cluster_child_bad_jobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert child_main(["child", "{not json"]) == 2
    assert "cluster job malformed" in capsys.readouterr().err
    bad_rules = tmp_path / "r.yaml"
    bad_rules.write_text("version: 1\nrules: []\n")
    job = {
        "transcript": str(tmp_path),
        "report": str(tmp_path / "r.json"),
        "chips": [],
        "budget": 0.05,
        "exact": False,
        "seed": 1,
        "rules": str(bad_rules),
    }
    assert child_main(["child", json.dumps(job)]) == 2
    assert capsys.readouterr().err.startswith("bad input")
