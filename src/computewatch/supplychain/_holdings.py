"""What an audit reads from the registry's log at a checkpoint (paper §3.2, §6).

An audit samples a Prover's chips from the chips the registry says the
Prover held *at the committed checkpoint* (not now: custody moved after the
commitment must not change the sample), and it orders the two parties'
sampling commitments and reveals by their place in the same log. Both are
derived here from the log's first ``size`` entries by replaying them
through the custody rules (`Directory.replay`), so whoever holds the
entries of a verified checkpoint gets the same answer as the server.

Example:
    >>> view = audit_view([], "example/log", "registrar", registrar_key)  # doctest: +SKIP
    >>> view.holdings("lab-a")  # doctest: +SKIP
    ()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from computewatch.crypto import Envelope
from computewatch.errors import FormatError
from computewatch.supplychain._directory import Directory
from computewatch.supplychain._model import ChipStatus
from computewatch.supplychain._requests import PAYLOAD_TYPE_PREFIX, Request, RequestKind

if TYPE_CHECKING:
    from collections.abc import Sequence

    from computewatch.crypto import VerifyingKey

__all__ = ["AuditView", "Holding", "LoggedCommitment", "audit_view"]

_SAMPLE_KINDS = {RequestKind.SAMPLE_COMMIT, RequestKind.SAMPLE_REVEAL}


@dataclass(frozen=True, slots=True)
class Holding:
    """A chip an actor held at a checkpoint.

    Attributes:
        serial: The chip.
        key: Its registered identity key (raw, hex).
        last_index: The log index of its last custody event (prove it against the checkpoint).
    """

    serial: str
    key: str
    last_index: int

    def to_json(self) -> dict[str, Any]:
        """For the service and the audit's files."""
        return {"serial": self.serial, "key": self.key, "last_index": self.last_index}


@dataclass(frozen=True, slots=True)
class LoggedCommitment:
    """A sampling commitment or reveal as it stands in the log.

    Attributes:
        index: Its log index (its place in the order of events).
        kind: ``commit`` or ``reveal``.
        actor: Who logged it.
        role: The actor's role (``verifier`` or ``owner``, the Prover).
        period: The monitoring period it is for.
        value: The commitment (``sha256:…``) or the revealed nonce (hex).
    """

    index: int
    kind: str
    actor: str
    role: str
    period: str
    value: str

    def to_json(self) -> dict[str, Any]:
        """For the service and the audit's files."""
        return {
            "index": self.index,
            "kind": self.kind,
            "actor": self.actor,
            "role": self.role,
            "period": self.period,
            "value": self.value,
        }


@dataclass(frozen=True)
class AuditView:
    """The directory and the sampling commitments at one tree size."""

    size: int
    directory: Directory
    commitments: tuple[LoggedCommitment, ...]

    def holdings(self, actor: str) -> tuple[Holding, ...]:
        """The chips `actor` held (owner, status held) at this size, by serial."""
        return tuple(
            Holding(c.serial, c.key.hex(), c.last_index)
            for c in sorted(self.directory.chips, key=lambda c: c.serial)
            if c.owner == actor and c.status is ChipStatus.HELD
        )

    def for_period(self, period: str) -> tuple[LoggedCommitment, ...]:
        """The commitments and reveals logged for `period`, in log order."""
        return tuple(c for c in self.commitments if c.period == period)


def _sample_request(data: bytes) -> Request | None:
    try:
        envelope = Envelope.from_json(data)
    except FormatError:
        return None
    if not envelope.payload_type.startswith(PAYLOAD_TYPE_PREFIX):
        return None
    request = Request.from_payload(envelope.payload_type, envelope.payload)
    return request if request.kind in _SAMPLE_KINDS else None


def audit_view(
    entries: Sequence[bytes], origin: str, registrar_id: str, registrar_key: VerifyingKey
) -> AuditView:
    """Replay `entries` (the log from index 0) and collect what an audit needs.

    Raises:
        IntegrityError: An entry breaks a rule or a signature (`Directory.replay`).
    """
    directory = Directory.replay(entries, origin, registrar_id, registrar_key)
    found = []
    for index, data in enumerate(entries):
        request = _sample_request(data)
        if request is None:
            continue
        actor = directory.actor(request.actor)
        commit = request.kind is RequestKind.SAMPLE_COMMIT
        found.append(
            LoggedCommitment(
                index=index,
                kind="commit" if commit else "reveal",
                actor=request.actor,
                role=actor.role.value if actor is not None else "",
                period=str(request.body["period"]),
                value=str(request.body["commitment" if commit else "nonce"]),
            )
        )
    return AuditView(len(entries), directory, tuple(found))
