"""`AuditTrust`: the plan's tlog-policy by hash, its quorum, the folder's memory across steps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from computewatch.crypto import (
    Checkpoint,
    Cosigner,
    MerkleLog,
    NoteSigner,
    QuorumNotMet,
    RollbackError,
    SignedCheckpoint,
)
from computewatch.errors import FormatError, IntegrityError, ParameterError
from computewatch.inspection import AuditFolder, AuditTrust

if TYPE_CHECKING:
    from pathlib import Path

ORIGIN = "registry.test/log"
NOW = 1_800_000_000


def _setup(tmp_path: Path) -> tuple[NoteSigner, list[Cosigner], Path]:
    log = NoteSigner.generate(ORIGIN)
    witnesses = [Cosigner.generate(f"w{i}.witness.test") for i in range(3)]
    text = f"log {log.verifier.vkey}\n"
    text += "".join(f"witness W{i} {c.key.vkey}\n" for i, c in enumerate(witnesses))
    policy = tmp_path / "policy.txt"
    policy.write_text(text + "group g 2 W0 W1 W2\nquorum g\n")
    return log, witnesses, policy


def _plan(log: NoteSigner, trust: AuditTrust) -> dict[str, Any]:
    return {"registry": {"log_key": log.verifier.vkey, "checkpoint_policy": trust.to_plan()}}


def _cosigned(log: NoteSigner, tree: MerkleLog, size: int, by: list[Cosigner]) -> bytes:
    cp = Checkpoint(ORIGIN, size, tree.root(size))
    signed = SignedCheckpoint.sign(cp, [log])
    return signed.with_signatures([c.cosign(cp, timestamp=NOW) for c in by]).to_bytes()


def test_the_plan_keeps_the_policy_by_hash(tmp_path: Path) -> None:
    log, _, policy = _setup(tmp_path)
    trust = AuditTrust.from_file(log.verifier, policy)
    plan = _plan(log, trust)
    assert plan["registry"]["checkpoint_policy"]["file"] == str(policy)
    again = AuditTrust.of_plan(plan)
    assert again.policy == trust.policy
    assert "quorum 'g' of 3 witnesses" in again.describe()
    policy.write_text(policy.read_text().replace("group g 2", "group g 1"))
    with pytest.raises(IntegrityError, match="changed since the plan"):
        AuditTrust.of_plan(plan)
    plan["registry"]["checkpoint_policy"] = {"file": str(policy)}
    with pytest.raises(FormatError, match="checkpoint_policy expected"):
        AuditTrust.of_plan(plan)
    plan["registry"]["checkpoint_policy"] = None
    assert "signature alone" in AuditTrust.of_plan(plan).describe()


def test_a_policy_without_the_log_is_refused(tmp_path: Path) -> None:
    _, _, policy = _setup(tmp_path)
    other = NoteSigner.generate(ORIGIN)
    with pytest.raises(ParameterError, match="does not list the registry's log key"):
        AuditTrust.from_file(other.verifier, policy)


def test_one_of_two_of_three_is_refused_two_accepted(tmp_path: Path) -> None:
    log, witnesses, policy = _setup(tmp_path)
    trust = AuditTrust.from_file(log.verifier, policy)
    tree = MerkleLog.in_memory()
    tree.append_many([b"a", b"b", b"c"])
    with pytest.raises(QuorumNotMet, match="cosigned by 1/3 known witnesses"):
        trust.verify(_cosigned(log, tree, 3, witnesses[:1]))
    assert trust.verify(_cosigned(log, tree, 3, witnesses[1:])).witnesses == {"W1", "W2"}
    # without a policy the operator's signature alone is enough
    assert AuditTrust(log.verifier).verify(_cosigned(log, tree, 3, [])).checkpoint.size == 3


def test_a_later_step_refuses_a_rollback_or_a_fork(tmp_path: Path) -> None:
    log, witnesses, policy = _setup(tmp_path)
    trust = AuditTrust.from_file(log.verifier, policy)
    folder = AuditFolder(tmp_path / "audit")
    tree = MerkleLog.in_memory()
    tree.append_many([f"e{i}".encode() for i in range(8)])
    with trust.state(folder) as step:  # one step accepts size 8
        step.accept(_cosigned(log, tree, 5, witnesses), ORIGIN, tree.consistency_proof)
        step.accept(_cosigned(log, tree, 8, witnesses), ORIGIN, tree.consistency_proof)
    assert folder.trust_state.exists()
    fork = MerkleLog.in_memory()
    fork.append_many([f"f{i}".encode() for i in range(8)])
    with trust.state(folder) as later:  # a later step (another process) remembers it
        with pytest.raises(RollbackError, match="older than the accepted size 8"):
            later.accept(_cosigned(log, tree, 5, witnesses), ORIGIN, tree.consistency_proof)
        with pytest.raises(IntegrityError, match="split view"):
            later.accept(_cosigned(log, fork, 8, witnesses), ORIGIN, fork.consistency_proof)
        assert later.accept(_cosigned(log, tree, 8, witnesses), ORIGIN).checkpoint.size == 8
