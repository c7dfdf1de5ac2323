"""Attacks on what the Prover reports of its chips' evidence (issue 16), with honest twins.

One snapshot, one claim (`check_claims` over every report of a period),
every run a log names reported, and every snapshot holding its own receipt
from the Verifier-trusted log (`check_receipts`). Built like the attacks of
`computewatch.attacks._chip_evidence`, on real chips and a real Merkle log.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch

from computewatch.attacks._chip_clock import ClockSetForward
from computewatch.attacks._chip_evidence import (
    CodeHashLie,
    EmptiedLog,
    FirmwareUpdateBeforeInspection,
    HugeFirmwareVersion,
    PrecommitmentLie,
    SlowedHostClock,
    StepNumberLie,
    TruncatedLog,
    _Chipset,
    _entries,
    _EvidenceAttack,
    _from_findings,
    _image,
    _logged,
    _reports,
)
from computewatch.attacks._chip_registry import ReceiptWithheld, RolledBackState
from computewatch.attacks._harness import Attempt, Detection
from computewatch.crypto import Envelope, MerkleLog, NoteSigner, Receipt, json_digest
from computewatch.inspection import check_claims, check_receipts

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["CHIP_EVIDENCE_ATTACKS", "DoubleClaim", "ReceiptMisuse", "UnreportedRun"]

_ORIGIN = "registry.computewatch.example/log"


class _Claims(_EvidenceAttack):
    """Checked by `check_claims` over all of the Prover's reports."""

    def check(self, attempt: Attempt) -> Detection:
        """One snapshot, one claim; every run the log names reported."""
        d = attempt.data
        entries, _ = _entries(d["folder"], d["serial"])
        return _from_findings(check_claims({d["serial"]: entries}, d["reports"]))


class DoubleClaim(_Claims):
    """One logged snapshot claimed by two runs' reports (evidence counted twice)."""

    name = "double-claim"
    threat = "§4: one snapshot claimed by two reports of a period"
    expected = ("double-claim",)

    def build(self, folder: Path, trial: int, *, cheat: bool) -> Attempt:
        """Two runs; run-b's report also claims one of run-a's snapshots."""
        serial = f"CW-DC-{trial}"
        cs = _logged(folder, serial, trial, runs=("run-a", "run-b"), steps=6, forced=True)
        entries, _ = _entries(cs.folder, serial)
        reports = _reports(entries, serial, ["run-a", "run-b"])
        if cheat:
            stolen = reports[0].snapshots[trial % len(reports[0].snapshots)]
            reports[1] = replace(reports[1], snapshots=(*reports[1].snapshots, stolen))
        return Attempt(data={"folder": folder, "serial": serial, "reports": reports})


class UnreportedRun(_Claims):
    """A run the chip's log names, left out of every report."""

    name = "unreported-run"
    threat = "§3.1: a run on a monitored chip never reported"
    expected = ("hidden-snapshot", "unreported-run")

    def build(self, folder: Path, trial: int, *, cheat: bool) -> Attempt:
        """Two runs on the chip; only run-a is reported."""
        serial = f"CW-UR2-{trial}"
        cs = _logged(folder, serial, trial, runs=("run-a", "run-b"), steps=3, forced=True)
        entries, _ = _entries(cs.folder, serial)
        reports = _reports(entries, serial, ["run-a"] if cheat else ["run-a", "run-b"])
        return Attempt(data={"folder": folder, "serial": serial, "reports": reports})


class _Registry:
    """The receipt server's transparency log (a real Merkle log, in memory)."""

    def __init__(self, signer: NoteSigner) -> None:
        self.log = MerkleLog.in_memory()
        self.signer = signer

    def __call__(self, envelope: Envelope) -> Receipt:
        index = self.log.append(envelope.to_json())
        return self.log.receipt(index, self.log.checkpoint(self.signer, origin=_ORIGIN))


class ReceiptMisuse(_EvidenceAttack):
    """A snapshot shown with no receipt, an old receipt reused, or one from another log."""

    name = "receipt-misuse"
    threat = "§4: snapshots not acknowledged by the Verifier-trusted log for that very entry"
    expected = ("receipt-missing", "receipt-invalid")

    def build(self, folder: Path, trial: int, *, cheat: bool) -> Attempt:
        """Three snapshots with receipts; the cheat drops, reuses or swaps in a foreign one."""
        signer = NoteSigner.generate(_ORIGIN)
        serial = f"CW-RM-{trial}"
        cs = _Chipset(folder, serial)
        with cs.open(receipts=_Registry(signer)) as chip:
            chip.boot(_image())
            chip.register(
                "run-a", {"w": torch.zeros(4)}, json_digest({"c": 1}), folder.parent / "o"
            )
            for step in range(3):
                cs.tick()
                chip.snapshot_now(step)
            receipts: dict[int, Any] = {r.seq: r.receipt for r in chip.snapshots}
        seqs = sorted(receipts)
        if cheat:
            variant = trial % 3
            if variant == 0:
                del receipts[seqs[1]]
            elif variant == 1:
                receipts[seqs[2]] = receipts[seqs[0]]  # an old receipt for a newer snapshot
            else:
                rogue = _Registry(NoteSigner.generate(_ORIGIN))
                receipts[seqs[1]] = rogue(Envelope.from_json(receipts[seqs[1]].entry))
        return Attempt(
            data={"folder": folder, "serial": serial, "receipts": receipts, "key": signer.verifier}
        )

    def check(self, attempt: Attempt) -> Detection:
        """`check_receipts` against the log's trusted key."""
        d = attempt.data
        entries, _ = _entries(d["folder"], d["serial"])
        return _from_findings(
            check_receipts(entries, d["receipts"], [d["key"]], _ORIGIN, serial=d["serial"])
        )


#: The attacks of issue 16, in the order the chip benchmark runs them.
CHIP_EVIDENCE_ATTACKS: tuple[_EvidenceAttack, ...] = (
    TruncatedLog(),
    EmptiedLog(),
    SlowedHostClock(),
    StepNumberLie(),
    CodeHashLie(),
    PrecommitmentLie(),
    DoubleClaim(),
    UnreportedRun(),
    HugeFirmwareVersion(),
    FirmwareUpdateBeforeInspection(),
    RolledBackState(),
    ReceiptMisuse(),
    ReceiptWithheld(),
    ClockSetForward(),
)
