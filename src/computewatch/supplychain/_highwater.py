"""A chip's high-water mark: the newest of its log entries the registry has logged (§4, §6).

Every snapshot entry a chip posts for its receipt carries its log sequence
number and, in its body, the running firmware version and the secure
element's clock with its reset count. The registry keeps each entry in its
``receipts`` table (keyed by serial and seq) and its Merkle log, so the
entry with the highest seq is the most the registry has seen of the chip:
its log held at least ``seq + 1`` entries, its anti-rollback floor was at
least that firmware version, its element had been reset at least that
many times. A fresh attestation that shows less is an older copy of the
chip's state restored (`computewatch.inspection.compare_attestations`).

The mark travels as a receipt for that entry (``GET
/v1/chips/{serial}/high-water``), so a client checks it offline under the
log's key: the registry can only under-report a chip's progress, never
invent it.

Example::

    >>> from computewatch.chip import LOG_ENTRY_PAYLOAD_TYPE
    >>> from computewatch.crypto import SigningKey, canonical_json, sign_envelope
    >>> doc = {"serial": "CW-1", "seq": 6, "time_us": 1, "kind": "snapshot",
    ...        "chip_time": {"clock_ms": 9, "resets": 2, "restarts": 0, "safe": True},
    ...        "body": {"fw": {"v": 3, "h": "sha256:" + "00" * 32}}, "prev": ""}
    >>> data = sign_envelope(LOG_ENTRY_PAYLOAD_TYPE, canonical_json(doc),
    ...                      [SigningKey.generate()]).to_json()
    >>> mark = HighWater.from_entry(data, log_index=41)
    >>> mark.seq, mark.firmware, mark.resets
    (6, 3, 2)
    >>> mark.as_attestation()["log"]
    {'size': 7}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from computewatch.chip import LOG_ENTRY_PAYLOAD_TYPE
from computewatch.errors import FormatError
from computewatch.supplychain._requests import canonical_envelope

if TYPE_CHECKING:
    from computewatch.crypto import Receipt
    from computewatch.supplychain._registry import Registry

__all__ = ["HighWater", "high_water_receipt"]

_MAX_INT = 1 << 63


@dataclass(frozen=True, slots=True)
class HighWater:
    """The most the registry has seen of one chip (its newest logged entry).

    Attributes:
        serial: The chip.
        seq: The entry's sequence number in the chip's log (so the log held
            at least ``seq + 1`` entries).
        log_index: The entry's index in the registry's transparency log.
        firmware: The firmware version the entry names as running, if it does.
        resets: The secure element's reset count at the entry, if logged.
        receipt: The receipt that proves the entry is in the log, if the
            mark came from a client that verified one.
    """

    serial: str
    seq: int
    log_index: int
    firmware: int | None = None
    resets: int | None = None
    receipt: Receipt | None = None

    @classmethod
    def from_entry(
        cls, data: bytes, *, log_index: int, receipt: Receipt | None = None
    ) -> HighWater:
        """The mark of a chip log entry's envelope bytes (signature checked on receipt).

        Raises:
            FormatError: Not a chip log entry, or its seq is not an integer.
        """
        envelope = canonical_envelope(data, "chip log entry")
        if envelope.payload_type != LOG_ENTRY_PAYLOAD_TYPE:
            msg = f"high-water mark: log entry {log_index} is not a chip log entry"
            raise FormatError(msg)
        try:
            doc = json.loads(envelope.payload)
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            msg = f"high-water mark: log entry {log_index} payload is not JSON ({e})"
            raise FormatError(msg) from e
        if not isinstance(doc, dict):
            msg = f"high-water mark: log entry {log_index} payload is not an object"
            raise FormatError(msg)
        serial, seq = doc.get("serial"), _uint(doc.get("seq"))
        if not isinstance(serial, str) or seq is None:
            msg = f"high-water mark: log entry {log_index}: expected a serial and an integer seq"
            raise FormatError(msg)
        body = doc.get("body") if isinstance(doc.get("body"), dict) else {}
        fw = body.get("fw") if isinstance(body, dict) else None
        clock = doc.get("chip_time")
        return cls(
            serial=serial,
            seq=seq,
            log_index=log_index,
            firmware=_uint(fw.get("v")) if isinstance(fw, dict) else None,
            resets=_uint(clock.get("resets")) if isinstance(clock, dict) else None,
            receipt=receipt,
        )

    def as_attestation(self) -> dict[str, Any]:
        """The mark in the shape of an attestation, for `compare_attestations`.

        Only what the entry proves: the log size and ``log`` counter, and,
        where logged, the firmware floor and the element's reset count.
        """
        counters: dict[str, int] = {"log": self.seq + 1}
        doc: dict[str, Any] = {"serial": self.serial, "log": {"size": self.seq + 1}}
        if self.firmware is not None:
            counters["firmware"] = self.firmware
            doc["firmware"] = {"v": self.firmware}
        if self.resets is not None:
            doc["chip_time"] = {"resets": self.resets}
        doc["counters"] = counters
        return doc

    def to_json(self) -> dict[str, Any]:
        """The mark as plain values (what reports and the audit folder keep)."""
        return {
            "serial": self.serial,
            "seq": self.seq,
            "log_index": self.log_index,
            "firmware": self.firmware,
            "resets": self.resets,
        }


def high_water_receipt(registry: Registry, serial: str) -> Receipt | None:
    """A receipt for the chip's newest logged entry (None if it has logged none).

    Raises:
        CheckUnavailable: That entry is durable but not yet in a witnessed checkpoint.
    """
    last = registry.store.last_receipt(serial)
    return None if last is None else registry.receipt(last.index)


def _uint(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _MAX_INT:
        return value
    return None
