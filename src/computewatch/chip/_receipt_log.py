"""The receipt log a firmware image trusts, and the firmware's own check of each receipt (§4).

A firmware image may name the Verifier-trusted log that must acknowledge
every snapshot (`ReceiptLog`: the log's origin and note keys, signed into
the image by the chipmaker, so the host cannot swap in a log of its own).
Then the firmware does not let training resume after a snapshot until it
holds a receipt that proves *the entry it just wrote*: the receipt's entry
bytes are that signed entry (so its chip, log sequence number and entry
hash), its inclusion proof at its log index leads to a checkpoint signed
under the image's key for that origin, and its index is above the last
receipt's (the log is append-only). A missing, old, reused, foreign or
forged receipt stops the chip (`SnapshotStalledError`), as a receipt
server that never answers does.

Example::

    >>> from computewatch.crypto import NoteSigner
    >>> log = ReceiptLog("example.com/log", (NoteSigner.generate("example.com/log").verifier,))
    >>> ReceiptLog.from_json(log.to_json()) == log
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from computewatch.crypto import NoteVerifier, Receipt, verify_receipt
from computewatch.errors import ComputeWatchError, FormatError, IntegrityError

if TYPE_CHECKING:
    from computewatch.chip._chiplog import LogEntry

__all__ = ["ReceiptLog"]

_MAX_KEYS = 16
_MAX_ORIGIN = 256


@dataclass(frozen=True, slots=True)
class ReceiptLog:
    """The log whose receipts the firmware accepts: its origin and trusted note keys."""

    origin: str
    keys: tuple[NoteVerifier, ...]

    def __post_init__(self) -> None:
        """Validate: a non-empty origin and 1-16 keys."""
        if not 0 < len(self.origin) <= _MAX_ORIGIN:
            msg = (
                f"receipt log origin: expected 1-{_MAX_ORIGIN} characters, got {self.origin!r:.60}"
            )
            raise FormatError(msg)
        if not 0 < len(self.keys) <= _MAX_KEYS or not all(
            isinstance(k, NoteVerifier) for k in self.keys
        ):
            msg = f"receipt log {self.origin}: expected 1-{_MAX_KEYS} note verifier keys"
            raise FormatError(msg)

    def to_json(self) -> dict[str, Any]:
        """The form signed into a firmware image."""
        return {"origin": self.origin, "keys": [k.vkey for k in self.keys]}

    @classmethod
    def from_json(cls, doc: object) -> ReceiptLog:
        """Parse the signed form.

        Raises:
            FormatError: Not an object with an origin and a list of verifier keys.
        """
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            msg = "firmware receipt log: expected {origin, keys: [verifier key, ...]}"
            raise FormatError(msg)
        keys = doc["keys"]
        if not all(isinstance(k, str) for k in keys):
            msg = "firmware receipt log keys: expected verifier key strings"
            raise FormatError(msg)
        return cls(str(doc.get("origin", "")), tuple(NoteVerifier.from_vkey(k) for k in keys))

    def check(self, ack: object, entry: LogEntry, *, after_index: int = -1) -> Receipt:
        """The firmware's check of the acknowledgement it got for ``entry``.

        Returns:
            The verified receipt.

        Raises:
            IntegrityError: No receipt, or one that does not prove this very
                entry in this log under its key, or an index not above
                ``after_index`` (the last receipt's).
        """
        where = f"chip S/N {entry.serial} log entry seq {entry.seq}"
        if not isinstance(ack, (Receipt, str, bytes)):
            msg = f"{where}: expected a receipt from {self.origin}, got {type(ack).__name__}"
            raise IntegrityError(msg)
        try:
            receipt = ack if isinstance(ack, Receipt) else Receipt.from_text(ack)
            verify_receipt(receipt, self.keys, self.origin, entry=entry.envelope.to_json())
        except ComputeWatchError as e:
            detail = " ".join(e.message.split())[:200]
            msg = f"{where}: the receipt does not prove this entry in {self.origin} ({detail})"
            raise IntegrityError(msg) from e
        if receipt.index <= after_index:
            msg = (
                f"{where}: receipt index {receipt.index} is not above the last receipt's "
                f"{after_index}: an old receipt"
            )
            raise IntegrityError(msg)
        return receipt
