"""Every verdict an audit uses is the verdict of the run it is filed under (verdict-swap)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pytest

from computewatch.attacks import VerdictSwap, run_on_chip
from computewatch.crypto import SigningKey, canonical_json, sign_envelope
from computewatch.errors import IntegrityError
from computewatch.inspection import AuditFolder, check_verdicts
from computewatch.verification import VERDICT_PAYLOAD_TYPE, VerificationPolicy, verify_transcript

if TYPE_CHECKING:
    from pathlib import Path

    from computewatch.attacks import HonestRun

POLICY = VerificationPolicy(budget=0.05)


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> list[HonestRun]:
    root = tmp_path_factory.mktemp("bases")
    return [
        run_on_chip(root, name="benign", serial="CW-V-0", run_id="benign"),
        run_on_chip(root, name="other", serial="CW-V-1", data_seed=50, run_id="other"),
    ]


@pytest.mark.slow
def test_a_benign_runs_verdict_filed_under_another_run_is_refused(
    tmp_path: Path, bases: list[HonestRun]
) -> None:
    attack = VerdictSwap()
    attempt = attack.create(tmp_path, 0, bases)
    result = attack.detect(attempt, POLICY, np.random.default_rng(0))
    assert result.detected, result
    assert result.checks == ("IntegrityError",)
    assert "but it is the verdict of run" in result.detail


@pytest.mark.slow
def test_each_runs_own_verdict_is_accepted_and_a_foreign_one_is_not(
    tmp_path: Path, bases: list[HonestRun]
) -> None:
    # the control: filed correctly, both verdicts pass the binding check
    attack = VerdictSwap()
    attempt = attack.create(tmp_path, 0, bases)
    root: Path = attempt.data["root"]
    runs: dict[str, Path] = attempt.data["runs"]
    cluster = SigningKey.generate()
    folder = AuditFolder(root / "audit")
    filed = {}
    for run, run_dir in runs.items():
        verdict = verify_transcript(
            run_dir, run_dir / "report.json", bases[0].evidence() if run == "benign" else
            bases[1].evidence(), POLICY, np.random.default_rng(0),
        )  # fmt: skip
        env = sign_envelope(VERDICT_PAYLOAD_TYPE, canonical_json(verdict.to_json()), [cluster])
        path = folder.verdict("lab-x", run)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(env.to_json())
        filed[run] = {"verdict": folder.relative(path)}
    folder.step("verify", "lab-x").parent.mkdir(parents=True)
    index = {"prover": "lab-x", "runs": filed, "findings": []}
    folder.step("verify", "lab-x").write_text(json.dumps(index))
    doc = check_verdicts(folder, root / "submissions", "lab-x", cluster.verifying_key)
    assert sorted(doc["runs"]) == sorted(runs)
    # a verdict signed by another key is tampering too
    with pytest.raises(IntegrityError):
        check_verdicts(folder, root / "submissions", "lab-x", SigningKey.generate().verifying_key)
