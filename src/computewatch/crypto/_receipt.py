"""Offline-verifiable log receipts in the C2SP tlog-proof format (c2sp.org/tlog-proof).

A receipt proves that an entry is in a transparency log: the entry's index,
its inclusion proof, and a checkpoint signed by the log::

    c2sp.org/tlog-proof@v1
    extra <base64 entry bytes>        (optional)
    index <decimal>
    <base64 proof hash>               (zero or more lines)

    <signed checkpoint, verbatim>

computewatch puts the logged entry itself in the optional ``extra`` line, so
a receipt can be self-contained; it is never trusted on its own, only bound
to the log by the inclusion proof. `verify_receipt` fails closed: it checks
the checkpoint's origin and signature first and then the inclusion proof.

Example:
    >>> from computewatch.crypto import Checkpoint, NoteSigner, Receipt, SignedCheckpoint
    >>> from computewatch.crypto import leaf_hash, verify_receipt
    >>> signer = NoteSigner.generate("example.com/log")
    >>> cp = Checkpoint("example.com/log", 1, leaf_hash(b"event"))
    >>> receipt = Receipt(0, (), SignedCheckpoint.sign(cp, [signer]), entry=b"event")
    >>> text = receipt.to_text()
    >>> verify_receipt(Receipt.from_text(text), [signer.verifier], "example.com/log").size
    1
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING

from computewatch.crypto._checkpoint import Checkpoint, SignedCheckpoint, parse_decimal
from computewatch.crypto._merkle import HASH_SIZE, check_uint, leaf_hash, verify_leaf_inclusion
from computewatch.crypto._note import (
    MAX_NOTE_SIZE,
    check_bytes,
    check_note_chars,
    strict_b64decode,
)
from computewatch.crypto._policy import Policy
from computewatch.errors import FormatError, IntegrityError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from computewatch.crypto._note import NoteVerifier

__all__ = ["RECEIPT_HEADER", "Receipt", "verify_receipt"]

#: First line of every receipt.
RECEIPT_HEADER = "c2sp.org/tlog-proof@v1"
#: Largest receipt text accepted, in bytes (entry, proof and checkpoint).
MAX_RECEIPT_SIZE = 2 * MAX_NOTE_SIZE
#: Most proof lines a receipt may hold (a tree of 2**64 leaves needs 64).
_MAX_PROOF_LINES = 64


def _parse_head(lines: list[str]) -> tuple[int, tuple[bytes, ...], bytes | None]:
    """Parse the receipt lines before the checkpoint: header, extra, index, proof."""
    if lines[0] != RECEIPT_HEADER:
        msg = f"receipt line 1: expected {RECEIPT_HEADER!r}, got {lines[0][:40]!r}"
        raise FormatError(msg)
    pos, entry = 1, None
    if pos < len(lines) and lines[pos].startswith("extra "):
        entry = strict_b64decode(lines[pos][len("extra ") :], "receipt line 2 (extra)")
        pos += 1
    if pos >= len(lines) or not lines[pos].startswith("index "):
        msg = f"receipt line {pos + 1}: expected 'index <decimal>'"
        raise FormatError(msg)
    index = parse_decimal(lines[pos][len("index ") :], f"receipt line {pos + 1} (index)")
    proof_lines = lines[pos + 1 :]
    if len(proof_lines) > _MAX_PROOF_LINES:
        msg = f"receipt: expected at most {_MAX_PROOF_LINES} proof lines, got {len(proof_lines)}"
        raise FormatError(msg)
    proof = []
    for n, line in enumerate(proof_lines, start=pos + 2):
        value = strict_b64decode(line, f"receipt line {n} (proof hash)")
        if len(value) != HASH_SIZE:
            msg = f"receipt line {n} (proof hash): expected {HASH_SIZE} bytes, got {len(value)}"
            raise FormatError(msg)
        proof.append(value)
    return index, tuple(proof), entry


@dataclass(frozen=True)
class Receipt:
    """An offline-verifiable proof that an entry is in a log (valid once constructed).

    Attributes:
        index: Zero-based index of the entry in the log.
        proof: Inclusion proof of the entry in the checkpoint's tree.
        checkpoint: The log's signed checkpoint (unverified until `verify_receipt`).
        entry: The logged bytes, carried in the ``extra`` line; optional.
    """

    index: int
    proof: tuple[bytes, ...]
    checkpoint: SignedCheckpoint
    entry: bytes | None = None

    def __post_init__(self) -> None:
        """Check the field shapes (the proof itself is checked by `verify_receipt`)."""
        check_uint(self.index, "receipt index")
        if len(self.proof) > _MAX_PROOF_LINES:
            msg = (
                f"receipt proof: expected at most {_MAX_PROOF_LINES} hashes, got {len(self.proof)}"
            )
            raise FormatError(msg)
        for i, p in enumerate(self.proof):
            check_bytes(p, f"receipt proof hash {i}", HASH_SIZE)
        if self.entry is not None:
            check_bytes(self.entry, "receipt entry")

    def to_text(self) -> str:
        """Return the receipt in the tlog-proof text format."""
        lines = [RECEIPT_HEADER]
        if self.entry is not None:
            lines.append("extra " + base64.b64encode(self.entry).decode())
        lines.append(f"index {self.index}")
        lines.extend(base64.b64encode(p).decode() for p in self.proof)
        head = "\n".join(lines) + "\n\n"
        return head + self.checkpoint.to_bytes().decode()

    @classmethod
    def from_text(cls, data: str | bytes) -> Receipt:
        """Parse a receipt from its tlog-proof text; nothing is verified.

        Raises:
            FormatError: Naming the line that breaks the grammar.
        """
        raw = data.encode() if isinstance(data, str) else bytes(data)
        if len(raw) > MAX_RECEIPT_SIZE:
            msg = f"receipt: expected at most {MAX_RECEIPT_SIZE} bytes, got {len(raw)}"
            raise FormatError(msg)
        try:
            text = raw.decode("utf-8", errors="strict")
        except UnicodeDecodeError as e:
            msg = f"receipt: expected UTF-8, got an invalid byte at offset {e.start}"
            raise FormatError(msg) from e
        check_note_chars(text, "receipt")
        head, sep, note = text.partition("\n\n")
        if not sep:
            msg = "receipt: expected an empty line between the proof and the checkpoint"
            raise FormatError(msg)
        index, proof, entry = _parse_head(head.split("\n"))
        try:
            checkpoint = SignedCheckpoint.parse(note)
        except FormatError as e:
            first = head.count("\n") + 3
            msg = f"receipt checkpoint (from line {first}): {e.message}"
            raise FormatError(msg) from e
        return cls(index, proof, checkpoint, entry)


def verify_receipt(
    receipt: Receipt,
    trusted_keys: Iterable[NoteVerifier] | Policy,
    origin: str,
    *,
    entry: bytes | None = None,
    leaf: bytes | None = None,
) -> Checkpoint:
    """Verify a receipt offline and return the log checkpoint it is anchored to.

    The entry checked is ``entry`` (or its precomputed leaf hash ``leaf``)
    if given, else the entry the receipt carries. Order of checks: origin
    and checkpoint signature first, then the inclusion proof.

    Args:
        receipt: The parsed receipt.
        trusted_keys: The log's trusted note keys, or a `Policy`: then the
            checkpoint must also carry a quorum of witness cosignatures (an
            offline bundle is the receipt plus the policy).
        origin: The origin line of the log the caller expects.
        entry: The entry the caller expects the receipt to prove.
        leaf: Alternatively, that entry's RFC 9162 leaf hash.

    Returns:
        The verified checkpoint (keep it to check later ones for consistency).

    Raises:
        FormatError: If there is no entry to check, or an input is malformed.
        IntegrityError: If the checkpoint signature is forged or missing, the
            origin differs, the receipt's entry differs from ``entry``, or
            the inclusion proof does not lead to the checkpoint's root.
        QuorumNotMet: Under a policy, too few witnesses cosigned.
    """
    if entry is not None and leaf is not None:
        msg = "verify receipt: expected an entry or a leaf hash, got both"
        raise FormatError(msg)
    if isinstance(trusted_keys, Policy):
        checkpoint = trusted_keys.verify(receipt.checkpoint, origin).checkpoint
    else:
        checkpoint = receipt.checkpoint.verify(trusted_keys, origin)
    if entry is not None:
        if receipt.entry is not None and receipt.entry != entry:
            msg = f"receipt for index {receipt.index}: carries an entry other than the expected one"
            raise IntegrityError(msg)
        leaf = leaf_hash(entry)
    elif leaf is None:
        if receipt.entry is None:
            msg = f"receipt for index {receipt.index}: no entry given and none carried"
            raise FormatError(msg)
        leaf = leaf_hash(receipt.entry)
    elif receipt.entry is not None and leaf_hash(receipt.entry) != leaf:
        msg = f"receipt for index {receipt.index}: carries an entry other than the expected one"
        raise IntegrityError(msg)
    verify_leaf_inclusion(
        leaf,
        index=receipt.index,
        size=checkpoint.size,
        proof=receipt.proof,
        root=checkpoint.root_hash,
    )
    return checkpoint
