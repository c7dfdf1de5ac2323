"""The audit's verify step hands the plan's whole verification policy to the trusted cluster."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from computewatch.cli import main
from computewatch.crypto import SigningKey
from computewatch.inspection import AuditFolder, verify
from computewatch.testing import TinyRun, train_on_chip
from computewatch.verification import HEURISTICS, VerificationPolicy, read_verdict

if TYPE_CHECKING:
    from pathlib import Path

PROVER = "lab-x"
RUN = "run-1"
#: Not the defaults in every field the cluster acts on.
CHOSEN = VerificationPolicy(
    budget=0.0,
    pol_segments=0,
    safety=3.0,
    max_replayed_snapshots=0,
    heuristics=(HEURISTICS["loss_trend"],),
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TinyRun]:
    """A Prover's submission (one chip, one run on it)."""
    root = tmp_path_factory.mktemp("policy")
    run = train_on_chip(root, serial="CW-P-0")
    doc = {
        "prover": PROVER,
        "chips": {str(run.chip.serial): str(run.chip.log_path.parent)},
        "runs": {RUN: {"transcript": str(run.run_dir)}},
        "declared": {},
    }
    (root / "submissions" / PROVER).mkdir(parents=True)
    (root / "submissions" / PROVER / "submission.json").write_text(json.dumps(doc))
    return root, run


def _folder(root: Path, run: TinyRun, policy: Any) -> AuditFolder:
    """An audit folder up to ``inspect`` (the sampled chip names the run), under `policy`."""
    folder = AuditFolder(root)
    serial = str(run.chip.serial)
    files = {
        folder.plan: {
            "format": "computewatch-audit-plan/v1",
            "period": "p",
            "verifier": "reg-1",
            "provers": {PROVER: {}},
            "registry": {},
            "params": {},
            "verification": {"rules": None, "policy": policy},
        },
        folder.step("sample", PROVER): {
            "prover": PROVER,
            "holdings": [{"serial": serial, "key": run.chip.public_key.raw.hex()}],
            "draw": {"verifier_nonce": "44" * 32, "chips": [serial]},
        },
        folder.step("inspect", PROVER): {
            "prover": PROVER,
            "inspections": [{"serial": serial, "runs": [RUN]}],
            "findings": [],
        },
    }
    for path, doc in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))
    return folder


@pytest.mark.slow
def test_the_verdict_is_computed_under_exactly_the_plans_policy(
    world: tuple[Path, TinyRun], tmp_path: Path
) -> None:
    root, run = world
    key = SigningKey.generate()
    verdicts = {}
    for name, policy in (("chosen", CHOSEN), ("other", VerificationPolicy(budget=0.25))):
        folder = _folder(tmp_path / name, run, policy.to_dict())
        doc = verify(folder, root / "submissions", PROVER, cluster_key=key)
        assert doc["findings"] == []
        data = folder.verdict(PROVER, RUN).read_bytes()
        verdicts[name] = read_verdict(data, key.verifying_key)
        assert verdicts[name].policy == policy.to_dict()
    chosen, other = verdicts["chosen"], verdicts["other"]
    # what the cluster did follows the policy: no replays, one heuristic
    assert chosen.replayed_steps == 0
    assert other.replayed_steps > 0
    heuristics = {c.name for c in chosen.checks if c.name.startswith("heuristic:")}
    assert heuristics == {"heuristic:loss-trend"}
    assert len({c.name for c in other.checks if c.name.startswith("heuristic:")}) == len(
        VerificationPolicy().heuristics
    )
    assert not any(c.name.startswith("segment:") for c in chosen.checks)
    assert any(c.name.startswith("segment:") for c in other.checks)


def test_a_malformed_plan_policy_is_one_line_and_exit_2(
    world: tuple[Path, TinyRun], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, run = world
    folder = _folder(tmp_path / "bad", run, {**CHOSEN.to_dict(), "safety": "lots"})
    key = tmp_path / "cluster.key"
    SigningKey.generate().save(key)
    capsys.readouterr()
    code = main(["audit", "verify", "--dir", str(folder.root), "--submissions",
                 str(root / "submissions"), "--cluster-key", str(key)])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "verification.policy field 'safety': expected a number" in err
    assert len(err.splitlines()) == 1
    assert not folder.verdict(PROVER, RUN).exists()
