"""The audit's trust in registry checkpoints: the plan's tlog-policy and the folder's memory.

The plan may name a tlog-policy file (``audit plan --policy FILE``; the plan
keeps its path and its SHA-256). Every step that talks to the registry then
accepts a checkpoint only with the policy's quorum of witness cosignatures,
so a registry operator that shows the inspector a history the witnesses did
not cosign (a split view) is refused. The folder also keeps a
`TrustedCheckpoints` state (``checkpoints.db``): a later step refuses a
checkpoint smaller than, or inconsistent with, one an earlier step accepted
(a rollback or a fork between two steps). Without a policy the checkpoints
are trusted on the log operator's signature alone (the report says so); the
state still refuses rollbacks.

Example:
    >>> from computewatch.crypto import NoteSigner
    >>> from computewatch.inspection import AuditTrust
    >>> log = NoteSigner.generate("example.com/log")
    >>> trust = AuditTrust(log.verifier)
    >>> trust.describe()
    "checkpoints trusted on the log operator's signature alone (no tlog-policy in the plan)"
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from computewatch.crypto import NoteVerifier, Policy, TrustedCheckpoints
from computewatch.errors import FormatError, IntegrityError, ParameterError
from computewatch.inspection._folder import read_json

if TYPE_CHECKING:
    from collections.abc import Iterator

    from computewatch.crypto import WitnessedCheckpoint
    from computewatch.inspection._folder import AuditFolder
    from computewatch.supplychain import RegistryClient

__all__ = ["AuditTrust", "audit_registry"]

_MAX_POLICY_FILE = 1 << 16
NO_POLICY = "checkpoints trusted on the log operator's signature alone (no tlog-policy in the plan)"


def _read_policy(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_POLICY_FILE + 1)
    except OSError as e:
        msg = f"tlog-policy {path}: cannot read ({e.strerror})"
        raise FormatError(msg) from e
    if len(data) > _MAX_POLICY_FILE:
        msg = f"tlog-policy {path}: expected at most {_MAX_POLICY_FILE} bytes"
        raise FormatError(msg)
    return data


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


class AuditTrust:
    """How an audit accepts registry checkpoints: a policy (or the log key alone)."""

    def __init__(
        self,
        log_key: NoteVerifier,
        policy: Policy | None = None,
        *,
        policy_file: Path | None = None,
        policy_digest: str | None = None,
    ) -> None:
        """Trust ``log_key``'s checkpoints under ``policy`` (which must list that key).

        Raises:
            ParameterError: The policy does not list the log key.
        """
        if policy is not None and log_key not in policy.log_keys(log_key.name):
            where = f"tlog-policy {policy_file}" if policy_file is not None else "tlog-policy"
            msg = (
                f"{where}: does not list the registry's log key {log_key.name}+{log_key.key_id:08x}"
            )
            raise ParameterError(msg)
        self.log_key = log_key
        self.policy = policy
        self.policy_file = policy_file
        self.policy_digest = policy_digest

    @property
    def origin(self) -> str:
        """The registry log's origin."""
        return self.log_key.name

    @property
    def effective(self) -> Policy:
        """The policy checkpoints are accepted under (``quorum none`` without one)."""
        return self.policy if self.policy is not None else Policy.for_logs([self.log_key])

    @classmethod
    def from_file(cls, log_key: NoteVerifier, path: Path) -> AuditTrust:
        """Read a tlog-policy file (for a new plan)."""
        data = _read_policy(path)
        policy = Policy.parse(data, f"tlog-policy {path}")
        return cls(log_key, policy, policy_file=path, policy_digest=_sha256(data))

    @classmethod
    def of_plan(cls, plan: dict[str, Any]) -> AuditTrust:
        """The trust the plan names; the policy file must still hash to the plan's digest.

        Raises:
            IntegrityError: The policy file changed since the plan.
            FormatError: The plan's entry or the file is malformed.
        """
        reg = plan["registry"]
        log_key = NoteVerifier.from_vkey(str(reg["log_key"]))
        named = reg.get("checkpoint_policy")
        if named is None:
            return cls(log_key)
        try:
            path, digest = Path(str(named["file"])), str(named["sha256"])
        except (KeyError, TypeError) as e:
            msg = f"audit plan: checkpoint_policy expected {{file, sha256}}, got {named!r:.80}"
            raise FormatError(msg) from e
        data = _read_policy(path)
        if _sha256(data) != digest:
            msg = (
                f"tlog-policy {path}: changed since the plan (expected {digest[:19]}…, "
                f"got {_sha256(data)[:19]}…)"
            )
            raise IntegrityError(msg)
        policy = Policy.parse(data, f"tlog-policy {path}")
        return cls(log_key, policy, policy_file=path, policy_digest=digest)

    def to_plan(self) -> dict[str, str] | None:
        """The plan's ``registry.checkpoint_policy`` entry (None without a policy)."""
        if self.policy is None or self.policy_file is None or self.policy_digest is None:
            return None
        return {"file": str(self.policy_file), "sha256": self.policy_digest}

    def state(self, folder: AuditFolder) -> TrustedCheckpoints:
        """The folder's memory of accepted checkpoints (``checkpoints.db``)."""
        folder.root.mkdir(parents=True, exist_ok=True)
        return TrustedCheckpoints.open(folder.trust_state, self.effective)

    def check_client(self, client: RegistryClient, where: str) -> None:
        """Refuse a client that does not accept checkpoints as this trust does.

        Raises:
            ParameterError: Another policy, or no state of accepted checkpoints.
        """
        if client.policy.to_text() != self.effective.to_text() or client.state is None:
            msg = (
                f"{where}: the registry client does not accept checkpoints under the plan's "
                "trust (open it with audit_registry)"
            )
            raise ParameterError(msg)

    def verify(self, data: bytes) -> WitnessedCheckpoint:
        """Verify a stored signed checkpoint (``checkpoint.txt``) under the policy."""
        return self.effective.verify(data, self.origin)

    def describe(self, witnessed: WitnessedCheckpoint | None = None) -> str:
        """One line for the report: what a checkpoint had to carry to be accepted."""
        if self.policy is None:
            return NO_POLICY
        line = (
            f"checkpoints accepted under tlog-policy {self.policy_file} ({self.policy_digest}): "
            f"quorum {self.policy.quorum!r} of {len(self.policy.witnesses)} witnesses"
        )
        if witnessed is not None:
            names = ", ".join(sorted(witnessed.witnesses)) or "none"
            line += f"; the committed checkpoint was cosigned by {names}"
        return line


@contextlib.contextmanager
def audit_registry(
    folder: AuditFolder,
    trust: AuditTrust | None = None,
    server: str | None = None,
    *,
    timeout: float = 30.0,
) -> Iterator[RegistryClient]:
    """A registry client that accepts checkpoints as the audit does (policy and folder state).

    ``trust`` and ``server`` default to the plan's (for a new plan, pass both).
    """
    from computewatch.supplychain import RegistryClient  # noqa: PLC0415 - layer beside, lazily

    if trust is None or server is None:
        plan = read_json(folder.plan, "audit plan")
        trust = trust or AuditTrust.of_plan(plan)
        server = server or str(plan["registry"]["server"])
    with (
        trust.state(folder) as state,
        RegistryClient(server, trust.effective, trust.origin, timeout=timeout, state=state) as c,
    ):
        yield c
