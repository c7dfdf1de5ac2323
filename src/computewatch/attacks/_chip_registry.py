"""Attacks on chip evidence that the registry's own records defeat (issue 16), with honest twins.

Each trial runs the real registry and receipt service in process
(`computewatch.testing.LocalRegistry`: SQLite, its writer thread, rules and
Merkle log), enrols the chip under its own identity key and boots firmware
whose signed image names that registry's log, so every snapshot waits for
a receipt the firmware checks itself.

* `RolledBackState`: the chip's whole folder (secure-element files and log)
  restored to a copy from before its latest receipted snapshots; the
  inspection holds the fresh attestation against the registry's high-water
  mark for the chip (`inspect_chip(high_water=...)`).
* `ReceiptWithheld`: the host keeps a snapshot entry from the registry and
  hands the firmware a receipt of its own making (an old one, one from a
  log under another key, or one for another chip's entry); the firmware's
  check halts training (`SnapshotStalledError`).
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import torch

from computewatch.attacks._chip_evidence import (
    _NONCE,
    _Chipset,
    _commitment,
    _EvidenceAttack,
    _from_error,
    _from_findings,
    _image,
    _reports,
)
from computewatch.attacks._harness import Attempt, Detection
from computewatch.chip import Chip, SnapshotStalledError, read_chip_log, verify_chip_log
from computewatch.crypto import Digest, json_digest
from computewatch.inspection import DirectoryRecord, inspect_chip
from computewatch.testing import LocalRegistry

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from computewatch.crypto import Envelope, Receipt, VerifyingKey

__all__ = ["ReceiptWithheld", "RolledBackState"]

_CODE = json_digest({"code": "train.py"})
_OLD, _FOREIGN_KEY, _ANOTHER_CHIP = 0, 1, 2  # the ways of receipt-withheld, by trial % 3


def _run(
    cs: _Chipset,
    registry: LocalRegistry,
    run: str,
    trial: int,
    *,
    snapshots: int,
    receipts: Callable[[Envelope], Any] | None = None,
) -> None:
    """Boot the registry-bound firmware, precommit and register ``run``, take ``snapshots``."""
    with cs.open(receipts=receipts or registry) as chip:
        chip.boot(_image(snapshot_rate_per_kstep=1000.0, receipt_log=registry.receipt_log))
        chip.precommit(run, Digest.parse(_commitment(trial, run)))
        w = torch.zeros(8)
        chip.register(run, {"w": w}, _CODE, cs.folder.parent / "omega")
        for step in range(1, snapshots + 1):
            cs.tick()
            w.add_(1.0)
            chip.snapshot_now(step)


def _key(folder: Path) -> VerifyingKey:
    with Chip.open(folder, read_only=True) as chip:
        return chip.public_key


def _enrolled(folder: Path, serial: str) -> tuple[_Chipset, LocalRegistry]:
    cs = _Chipset(folder, serial)
    registry = LocalRegistry.create(folder.parent / "registry")
    registry.enrol(serial, _key(folder))
    return cs, registry


class RolledBackState(_EvidenceAttack):
    """The chip's whole folder (log and file element) restored to an older copy."""

    name = "rolled-back-state"
    threat = "§4: an older copy of the secure element's files and log restored"
    # file element: below the registry's mark; TPM: its NV counters held, so the log is short
    expected = ("state-rolled-back", "log-tampered")

    def build(self, folder: Path, trial: int, *, cheat: bool) -> Attempt:
        """Back up after run-a; run-b's snapshots reach the registry; restore the backup."""
        serial = f"CW-RB-{trial}"
        cs, registry = _enrolled(folder, serial)
        try:
            _run(cs, registry, "run-a", trial, snapshots=2)
            backup = folder.parent / "backup"
            shutil.copytree(folder, backup)
            _run(cs, registry, "run-b", trial, snapshots=1 + trial % 3)
            if cheat:  # run-b never happened, as far as the chip now shows
                shutil.rmtree(folder)
                shutil.copytree(backup, folder)
            mark = registry.high_water(serial)  # what the live service answers
        finally:
            registry.close()
        with Chip.open(folder, read_only=True) as chip:
            record = DirectoryRecord(serial, "lab-a", chip.public_key)
        # what the Prover reports: the log as it now reads under the chip's key
        entries = verify_chip_log(read_chip_log(folder / "nvram.log"), record.public_key, serial)
        data = {
            "folder": folder,
            "record": record,
            "reports": _reports(entries, serial),  # the Prover reports what the chip shows
            "mark": mark,
        }
        return Attempt(data=data)

    def check(self, attempt: Attempt) -> Detection:
        """`inspect_chip` with the registry's high-water mark for the chip."""
        d = attempt.data
        if d["mark"] is None:
            return Detection(detected=True, detail="the registry holds no mark for the chip")
        result = inspect_chip(
            d["folder"],
            d["record"],
            expected_owner="lab-a",
            nonce=_NONCE,
            reports=d["reports"],
            high_water=d["mark"],
        )
        return _from_findings(result.findings)


class ReceiptWithheld(_EvidenceAttack):
    """The host keeps a snapshot from the registry and gives the firmware a receipt it made."""

    name = "receipt-withheld"
    threat = "§4: training resumes on a receipt that does not prove the entry just written"
    expected = ("SnapshotStalledError",)

    def build(self, folder: Path, trial: int, *, cheat: bool) -> Attempt:
        """The first snapshot goes through; the second's receipt is old, foreign or another's."""
        serial = f"CW-RW-{trial}"
        cs, registry = _enrolled(folder, serial)
        seen: list[Receipt] = []
        variant = trial % 3
        other = None
        if (
            cheat and variant == _ANOTHER_CHIP
        ):  # a second enrolled chip whose entries the host relays
            other = _Chipset(folder.parent / "other", f"CW-RWO-{trial}")
            registry.enrol(other.serial, _key(other.folder))
        key = _key(folder)

        def host(envelope: Envelope) -> Receipt:
            if not cheat or not seen:
                seen.append(registry(envelope))
                return seen[-1]
            if variant == _OLD:
                return seen[0]  # the previous snapshot's receipt
            if variant == _FOREIGN_KEY:  # the same entry in a log the host runs under its own key
                with LocalRegistry.create(folder.parent / "rogue", registry.origin) as rogue:
                    rogue.enrol(serial, key)
                    return rogue(envelope)
            assert other is not None
            with other.open(receipts=registry) as chip:  # another chip's entry, genuinely logged
                chip.boot(_image(snapshot_rate_per_kstep=1000.0, receipt_log=registry.receipt_log))
                chip.register("run-o", {"w": torch.zeros(2)}, _CODE, folder.parent / "o")
                return chip.snapshot_now(1).receipt  # type: ignore[no-any-return]

        return Attempt(data={"cs": cs, "registry": registry, "host": host, "trial": trial})

    def check(self, attempt: Attempt) -> Detection:
        """Train through two snapshots: the firmware must halt on a receipt it cannot check."""
        d = attempt.data
        registry: LocalRegistry = d["registry"]
        try:
            _run(d["cs"], registry, "run-a", d["trial"], snapshots=2, receipts=d["host"])
        except SnapshotStalledError as e:
            return _from_error(e)
        finally:
            registry.close()
        return Detection(detected=False, detail="training resumed after both snapshots")
