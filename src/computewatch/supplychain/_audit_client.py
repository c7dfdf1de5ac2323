"""The audit's client side of the registry: holdings and commitments at a checkpoint, checked.

`AuditQueries` wraps a `RegistryClient`. Every item the server returns
comes with its log entry and an inclusion proof; each proof is checked
against the checkpoint the auditor holds (verified against the log key),
and the entry is checked to say what the item says. `replay` fetches the
checkpoint's entries, checks that they hash to its root, and replays them
(`audit_view`): the complete, server-independent answer; `holdings` and
`commitments` must agree with it.

Example::

    >>> queries = AuditQueries(RegistryClient(url, log_key))  # doctest: +SKIP
    >>> queries.holdings("lab-a", checkpoint)  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from computewatch.crypto import Checkpoint, VerifyingKey, leaf_hash, verify_inclusion
from computewatch.crypto.hazmat import merkle_root
from computewatch.errors import IntegrityError
from computewatch.supplychain._holdings import AuditView, Holding, LoggedCommitment, audit_view

if TYPE_CHECKING:
    from computewatch.supplychain._client import RegistryClient

__all__ = ["AuditQueries"]


def _proved_entry(item: dict[str, Any], checkpoint: Checkpoint, what: str) -> bytes:
    try:
        entry = base64.b64decode(item["entry"], validate=True)
        proof = [base64.b64decode(h, validate=True) for h in item["proof"]]
        index = int(item["last_index"] if "last_index" in item else item["index"])
    except (KeyError, TypeError, ValueError) as e:
        msg = f"registry audit query {what}: malformed item ({e})"
        raise IntegrityError(msg) from e
    verify_inclusion(
        entry, index=index, size=checkpoint.size, proof=proof, root=checkpoint.root_hash
    )
    return entry


class AuditQueries:
    """The audit's registry queries, every answer checked against a held checkpoint."""

    def __init__(self, client: RegistryClient) -> None:
        """Query through `client` (its log key is the trust root)."""
        self.client = client

    def holdings(self, actor: str, checkpoint: Checkpoint) -> tuple[Holding, ...]:
        """The chips `actor` held at `checkpoint`, each proved to be in its tree.

        Raises:
            IntegrityError: A proof fails, or an entry does not name the chip.
        """
        doc = self.client.get_json(f"/v1/audit/holdings/{actor}", size=checkpoint.size)
        out = []
        for item in _list(doc, "chips"):
            entry = _proved_entry(item, checkpoint, f"holdings of {actor}")
            try:
                holding = Holding(str(item["serial"]), str(item["key"]), int(item["last_index"]))
            except (KeyError, TypeError, ValueError) as e:
                msg = f"registry audit query holdings of {actor}: malformed item ({e!r:.80})"
                raise IntegrityError(msg) from e
            if holding.serial.encode() not in base64.b64decode(_payload_of(entry)):
                msg = f"registry audit query: the proved entry does not name {holding.serial}"
                raise IntegrityError(msg)
            out.append(holding)
        return tuple(out)

    def commitments(self, period: str, checkpoint: Checkpoint) -> tuple[LoggedCommitment, ...]:
        """The sampling commitments and reveals for `period` at `checkpoint`, proved.

        Raises:
            IntegrityError: A proof fails, or an entry does not carry the value.
        """
        doc = self.client.get_json("/v1/audit/commitments", period=period, size=checkpoint.size)
        out = []
        for item in _list(doc, "commitments"):
            entry = _proved_entry(item, checkpoint, f"commitments of {period}")
            try:
                logged = LoggedCommitment(
                    int(item["index"]),
                    str(item["kind"]),
                    str(item["actor"]),
                    str(item["role"]),
                    str(item["period"]),
                    str(item["value"]),
                )
            except (KeyError, TypeError, ValueError) as e:
                msg = f"registry audit query commitments of {period}: malformed item ({e!r:.80})"
                raise IntegrityError(msg) from e
            payload = base64.b64decode(_payload_of(entry))
            if logged.value.encode() not in payload or logged.actor.encode() not in payload:
                msg = f"registry audit query: the proved entry {logged.index} is not that item"
                raise IntegrityError(msg)
            out.append(logged)
        return tuple(out)

    def replay(
        self, checkpoint: Checkpoint, registrar_id: str, registrar_key: VerifyingKey
    ) -> AuditView:
        """Fetch the checkpoint's entries, check their root, and replay them.

        Raises:
            IntegrityError: The entries do not hash to the checkpoint's root,
                or one breaks a custody rule.
        """
        entries = self.client.entries(0, checkpoint.size)
        if merkle_root([leaf_hash(e) for e in entries]) != checkpoint.root_hash:
            msg = (
                f"registry log: its first {checkpoint.size} entries do not hash to the "
                "checkpoint's root"
            )
            raise IntegrityError(msg)
        return audit_view(entries, checkpoint.origin, registrar_id, registrar_key)


def _list(doc: dict[str, Any], field: str) -> list[dict[str, Any]]:
    items = doc.get(field)
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        msg = f"registry audit query: expected a list of objects in {field!r}"
        raise IntegrityError(msg)
    return items


def _payload_of(entry: bytes) -> str:
    try:
        payload = json.loads(entry)["payload"]
    except (ValueError, KeyError, TypeError) as e:
        msg = f"registry audit query: a proved entry is not an envelope ({e})"
        raise IntegrityError(msg) from e
    return str(payload)
