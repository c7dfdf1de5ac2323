"""The audit accepts registry checkpoints only under the plan's tlog-policy, never rolled back.

A live registry cosigned by three live witnesses (``computewatch witness
serve``), audited through the CLI under a 2-of-3 policy: a checkpoint that
only one witness cosigned is refused by ``audit sample``, one that two
cosigned is accepted; a registry operator that serves an older (validly
cosigned) checkpoint to a later step than the one that accepted a newer one
is refused; the report says what the checkpoints were accepted under.
"""

from __future__ import annotations

import json
from itertools import count
from typing import TYPE_CHECKING

import httpx
import pytest

from computewatch.supplychain import RegistryClient
from tests.inspection.audit_world import AuditWorld, audit_world, plan_args
from tests.inspection.stale_proxy import StaleProxy

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.slow

V_NONCE = "11" * 32
_extra = count()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    """One registry witnessed by three witnesses for the module; each test audits its own period."""
    root = tmp_path_factory.mktemp("audit-policy-world")
    with audit_world(root, f"sqlite:///{root / 'registry.db'}", witnesses=3) as w:
        yield w


def _policy(w: AuditWorld) -> Path:
    assert w.policy is not None
    return w.policy


def _through_reveal(w: AuditWorld, folder: Path, server: str | None = None) -> None:
    """Plan under the 2-of-3 policy, commit, start and reveal (all witnesses up)."""
    args = [
        *plan_args(w, folder, folder.parent.name, server),
        "--checkpoint-policy",
        str(_policy(w)),
    ]
    assert w.cli(*args) == 0
    d = ["--dir", str(folder)]
    assert w.cli("audit", "commit", *d, "--actor", "reg-1",
                 "--key", str(w.key_file("reg-1")), "--nonce", V_NONCE) == 0  # fmt: skip
    for lab in ("lab-a", "lab-b"):
        assert w.cli("audit", "commit", *d, "--actor", lab, "--key", str(w.key_file(lab)),
                     "--nonce-file", str(folder.parent / f"{lab}.nonce")) == 0  # fmt: skip
    assert w.cli("audit", "start", *d) == 0
    for actor in ("reg-1", "lab-a", "lab-b"):
        extra = [] if actor == "reg-1" else ["--nonce-file", str(folder.parent / f"{actor}.nonce")]
        assert w.cli("audit", "reveal", *d, "--actor", actor,
                     "--key", str(w.key_file(actor)), *extra) == 0  # fmt: skip


def _grow_the_log(w: AuditWorld) -> None:
    """Log one more entry, so the registry signs (and has cosigned) a new checkpoint."""
    with RegistryClient(w.server.url, w.keys.log.verifier) as client:
        client.submit(w.world.register(f"extra-{next(_extra)}", "owner"))


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def test_one_of_a_two_of_three_quorum_is_refused_and_two_accepted(
    world: AuditWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "audit"
    _through_reveal(world, folder)
    plan = json.loads((folder / "plan.json").read_text())
    named = plan["registry"]["checkpoint_policy"]
    assert named["file"] == str(_policy(world).resolve())
    assert named["sha256"].startswith("sha256:")
    first, second, third = world.witnesses
    second.stop()
    third.stop()
    try:
        _grow_the_log(world)  # the registry's newest checkpoint: cosigned by one witness only
        capsys.readouterr()
        assert world.cli("audit", "sample", "--dir", str(folder)) == 1
        err = _one_line_error(capsys)
        assert "quorum not met" in err
        assert f"cosigned by 1/3 known witnesses ({first.name})" in err
        assert not (folder / "sample" / "lab-a.json").exists()
        second.start()
        _grow_the_log(world)  # two of three cosign the next one
        assert world.cli("audit", "sample", "--dir", str(folder)) == 0
    finally:
        for w in (second, third):
            if w.proc is None or w.proc.poll() is not None:
                w.start()
    doc = json.loads((folder / "sample" / "lab-a.json").read_text())
    assert doc["checkpoint"]["witnesses"] == sorted(w.name for w in world.witnesses)
    d, s = ["--dir", str(folder)], ["--submissions", str(world.submissions)]
    assert world.cli("audit", "inspect", *d, *s) == 0
    assert world.cli("audit", "verify", *d, *s, "--cluster-key", str(world.cluster_key)) == 0
    pub = str(world.root / "keys" / "cluster.pub")
    assert world.cli("audit", "rules", *d, *s, "--cluster-pub", pub) == 0
    assert world.cli("audit", "report", *d) == 1  # lab-b presents no chips
    report = json.loads((folder / "report" / "audit.json").read_text())
    trust = report["plan"]["checkpoint_trust"]
    assert trust.startswith(f"checkpoints accepted under tlog-policy {named['file']}")
    assert "quorum 'all-witnesses' of 3 witnesses" in trust
    assert trust in (folder / "report" / "audit.md").read_text()


def test_a_rollback_between_two_audit_steps_is_refused(
    world: AuditWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "audit"
    with StaleProxy(world.server.url) as operator:
        old = httpx.get(f"{world.server.url}/v1/log/checkpoint", timeout=30).content
        _through_reveal(world, folder, operator.url)  # 'start' accepted a newer checkpoint
        operator.frozen = old  # validly signed and cosigned, but older than the accepted one
        capsys.readouterr()
        assert world.cli("audit", "sample", "--dir", str(folder)) == 1
        err = _one_line_error(capsys)
        assert "rollback detected" in err
        assert "is older than the accepted size" in err
        assert not (folder / "sample" / "lab-a.json").exists()
        operator.frozen = None  # the real log: the same folder goes on
        assert world.cli("audit", "sample", "--dir", str(folder)) == 0


def test_a_policy_file_changed_after_the_plan_is_refused(
    world: AuditWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.txt"
    policy.write_bytes(_policy(world).read_bytes())
    folder = tmp_path / "audit"
    assert (
        world.cli(*plan_args(world, folder, tmp_path.name), "--checkpoint-policy", str(policy)) == 0
    )
    policy.write_text(policy.read_text().replace("group all-witnesses 2", "group all-witnesses 1"))
    capsys.readouterr()
    v = ["--actor", "reg-1", "--key", str(world.key_file("reg-1"))]
    assert world.cli("audit", "commit", "--dir", str(folder), *v) == 1
    err = _one_line_error(capsys)
    assert "tampering detected" in err
    assert "changed since the plan" in err


def test_a_policy_without_the_registry_log_is_refused_at_plan(
    world: AuditWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _policy(world).read_text().splitlines()
    other = tmp_path / "policy.txt"
    other.write_text("\n".join(line for line in text if not line.startswith("log ")) + "\n")
    capsys.readouterr()
    folder = tmp_path / "audit"
    assert (
        world.cli(*plan_args(world, folder, tmp_path.name), "--checkpoint-policy", str(other)) == 2
    )
    assert "does not list the registry's log key" in _one_line_error(capsys)
    assert not (folder / "plan.json").exists()
