"""The receipt endpoint's rule: a chip's signed log entry against the directory (§4, §6).

`check_receipt` is pure like `check_request`: the chip must be in the
directory and not destroyed or lost, the entry signed by the key the fab
registered for its serial, and its sequence number must not go backwards;
another entry with the same sequence number is a fork. A byte-identical
resubmission is answered with the index it already has, so a chip can
retry safely after a lost answer.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any, TypeGuard

from computewatch.chip import ENTRY_KINDS, LOG_ENTRY_PAYLOAD_TYPE
from computewatch.crypto import VerifyingKey, leaf_hash, verify_envelope
from computewatch.errors import FormatError, IntegrityError
from computewatch.supplychain._model import (
    ChipStatus,
    CustodyViolation,
    ReplayError,
    Rule,
    UnknownEntity,
    check_serial,
)
from computewatch.supplychain._requests import canonical_envelope
from computewatch.supplychain._rules import ReceiptEffects, ReceiptRecord

if TYPE_CHECKING:
    from computewatch.crypto import Envelope
    from computewatch.supplychain._rules import StateView

__all__ = ["check_receipt"]


def check_receipt(view: StateView, data: bytes, *, index: int) -> ReceiptEffects | ReceiptRecord:
    """Check a chip's signed log entry for the receipt endpoint.

    Args:
        view: The directory's state.
        data: The entry's envelope bytes, as received.
        index: The log index it will get.

    Returns:
        Its effects, or, for a byte-identical resubmission, the record it
        already has in the log.

    Raises:
        FormatError: Malformed envelope or entry.
        UnknownEntity: The serial is not in the directory.
        IntegrityError: The signature does not verify against the directory's
            key for the serial, or another entry holds its seq (a fork).
        ReplayError: Its seq is below the chip's last logged seq.
        CustodyViolation: The chip was destroyed or reported lost.
    """
    envelope = canonical_envelope(data, "chip log entry")
    if envelope.payload_type != LOG_ENTRY_PAYLOAD_TYPE:
        msg = (
            f"chip log entry: expected payload type {LOG_ENTRY_PAYLOAD_TYPE!r}, "
            f"got {envelope.payload_type[:100]!r}"
        )
        raise FormatError(msg)
    doc = _entry_doc(envelope)
    serial = check_serial(doc.get("serial"), "chip log entry serial")
    chip = view.chip(serial)
    if chip is None:
        msg = f"chip log entry: chip S/N {serial} is not in the directory (never fabricated)"
        raise UnknownEntity(msg)
    key = _chip_key(chip.key)
    try:
        verify_envelope(envelope, {key.key_id: key}, payload_type=LOG_ENTRY_PAYLOAD_TYPE)
    except IntegrityError as e:
        msg = (
            f"chip S/N {serial} log entry: signature does not verify against the directory's "
            f"key {key.key_id} for this serial ({e.message})"
        )
        raise IntegrityError(msg) from e
    seq, time_us, kind = doc.get("seq"), doc.get("time_us"), doc.get("kind")
    if not (_is_uint(seq) and _is_uint(time_us) and kind in ENTRY_KINDS):
        msg = f"chip S/N {serial} log entry: expected integer seq and time_us and a known kind"
        raise FormatError(msg)
    where = f"chip S/N {serial} log entry seq {seq}"
    if chip.status in {ChipStatus.DESTROYED, ChipStatus.LOST}:
        rule = (
            Rule.NOTHING_AFTER_DESTRUCTION
            if chip.status is ChipStatus.DESTROYED
            else Rule.NOTHING_AFTER_LOSS
        )
        msg = f"{where}: the chip is {chip.status.value} (log index {chip.last_index})"
        raise CustodyViolation(rule, msg)
    leaf = leaf_hash(data)
    existing = view.receipt_at(serial, seq)
    if existing is not None:
        if existing.leaf == leaf:
            return existing
        msg = f"{where}: already logged at index {existing.index} with a different entry (a fork)"
        raise IntegrityError(msg)
    last = view.last_receipt(serial)
    if last is not None and seq < last.seq:
        msg = f"{where}: out of order; expected a seq above the last logged {last.seq}"
        raise ReplayError(msg)
    return ReceiptEffects(serial, seq, time_us, kind, leaf, index)


@functools.lru_cache(maxsize=65536)
def _chip_key(raw: bytes) -> VerifyingKey:
    """A chip's parsed identity key (parsing a P-256 point costs more than a lookup)."""
    return VerifyingKey.from_raw(raw)


def _is_uint(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < (1 << 63)


def _entry_doc(envelope: Envelope) -> dict[str, Any]:
    try:
        doc = json.loads(envelope.payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        msg = f"chip log entry payload: expected JSON ({e})"
        raise FormatError(msg) from e
    if not isinstance(doc, dict):
        msg = f"chip log entry payload: expected an object, got {type(doc).__name__}"
        raise FormatError(msg)
    return doc
