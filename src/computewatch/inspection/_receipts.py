"""Every logged snapshot has its own receipt from the Verifier-trusted log (pure check).

A receipt (C2SP tlog-proof, `computewatch.crypto.Receipt`) proves that one
exact byte string, here the chip's signed snapshot entry, is in the
registry's transparency log. The entry names the chip, its log sequence
number and (through its payload) its entry hash, and the receipt its index
in the registry's log, so checking each receipt against *that* entry binds
all four. An old receipt, one for another snapshot or chip, one from another
log, or none at all is a finding.

An offline bundle is the receipts plus a tlog-policy: pass the `Policy` as
``trusted`` and each receipt's checkpoint must also carry the policy's
witness quorum (a receipt from a checkpoint the witnesses did not cosign,
say one of a split view, is ``receipt-invalid``).

Example::

    >>> check_receipts([], {}, [], "example.com/log", serial="CW-1")
    []
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from typing import TYPE_CHECKING

from computewatch.crypto import Policy, Receipt, verify_receipt
from computewatch.errors import ComputeWatchError
from computewatch.inspection._inspect import Finding

_MAX_RECEIPT = 1 << 20

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path

    from computewatch.chip import LogEntry
    from computewatch.crypto import NoteVerifier

__all__ = ["HeldReceipts", "check_receipts", "receipts_beside"]


@dataclass(frozen=True)
class HeldReceipts:
    """The receipts a Prover shows for a chip's snapshots, and the log they must prove entries in.

    Attributes:
        receipts: receipt (text or parsed) by the snapshot's log seq.
        trusted: the registry log's note keys, or a tlog-policy (witness quorum too).
        origin: the registry log's origin.
    """

    receipts: Mapping[int, Receipt | str | bytes]
    trusted: Sequence[NoteVerifier] | Policy
    origin: str


def receipts_beside(folders: Iterable[Path], serial: str) -> dict[int, bytes]:
    """The receipts the firmware kept beside its ω copies (``SERIAL-SEQ.receipt``) in folders."""
    found: dict[int, bytes] = {}
    for folder in folders:
        for path in sorted(folder.glob(f"{glob.escape(serial)}-*.receipt")):
            seq = path.stem.removeprefix(f"{serial}-")
            if seq.isdigit() and path.is_file() and not path.is_symlink():
                found[int(seq)] = path.read_bytes()[:_MAX_RECEIPT]
    return found


def check_receipts(
    entries: Sequence[LogEntry],
    receipts: Mapping[int, Receipt | str | bytes],
    trusted: Iterable[NoteVerifier] | Policy,
    origin: str,
    *,
    serial: str,
) -> list[Finding]:
    """Check the receipt the Prover holds for each snapshot entry (keyed by log seq).

    Findings: ``receipt-missing`` (a snapshot with no receipt),
    ``receipt-invalid`` (malformed, from another log, or proving another
    entry: an old, reused or foreign receipt; two snapshots cannot share one
    receipt, since it proves one entry's bytes; under a `Policy`, also a
    receipt whose checkpoint lacks the witness quorum).
    """
    keys = trusted if isinstance(trusted, Policy) else list(trusted)
    found: list[Finding] = []
    for entry in entries:
        if entry.kind != "snapshot":
            continue
        raw = receipts.get(entry.seq)
        if raw is None:
            found.append(
                Finding(serial, "receipt-missing", f"snapshot seq {entry.seq} has no receipt")
            )
            continue
        try:
            receipt = raw if isinstance(raw, Receipt) else Receipt.from_text(raw)
            verify_receipt(receipt, keys, origin, entry=entry.envelope.to_json())
        except ComputeWatchError as e:
            detail = " ".join(e.message.split())[:160]
            found.append(Finding(serial, "receipt-invalid", f"snapshot seq {entry.seq}: {detail}"))
    return found
