"""Protocol attacks on chips and inspections (paper §4, §6).

Each attack is built on a real provisioned chip (file secure element, signed
firmware, a registered weight region and logged snapshots) and checked by
the real defence: `verify_chip_log`, `Chip.boot` or `inspect_chip`.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

import torch

from computewatch.attacks._harness import SCALE, Attempt, Detection, Scale, maker_key
from computewatch.chip import Chip, ManualClock, read_chip_log, sign_firmware, verify_chip_log
from computewatch.crypto import SigningKey, VerifyingKey, canonical_json, json_digest
from computewatch.errors import ComputeWatchError
from computewatch.inspection import DirectoryRecord, inspect_chip
from computewatch.testing import claims_report

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import numpy as np

    from computewatch.attacks._harness import HonestRun
    from computewatch.datacenter import ProverReport
    from computewatch.verification import VerificationPolicy

__all__ = [
    "FirmwareRollback",
    "ForgedLogEntry",
    "HiddenSnapshot",
    "ReplayedLogEntry",
    "ResoldChip",
    "UnregisteredChip",
]

_OWNER = "lab-a"
_NONCE = bytes(range(16))
_RUN = "run-a"


def _logged_chip(folder: Path, serial: str, snapshots: int = 3) -> Chip:
    """A chip with firmware v2, a precommitted run, a region and some snapshots."""
    maker = maker_key()
    clock = ManualClock()
    chip = Chip.provision(folder, serial, maker.verifying_key, clock=clock)
    chip.boot(sign_firmware(name="fw", version=2, code=b"fw2", chipmaker=maker))
    chip.precommit("run-a", json_digest({"run": serial}))
    weights = torch.zeros(16)
    chip.register("run-a", {"w": weights}, json_digest({"code": 1}), folder.parent / "omega")
    for step in range(snapshots):
        clock.advance(10)
        weights.add_(1.0)
        chip.snapshot_now(step)
    return chip


def _report(chip: Chip, keep: int | None = None) -> ProverReport:
    """The Prover's report of the chip's snapshots (the first `keep` of them)."""
    snaps = [e for e in chip.log_entries() if e.kind == "snapshot"]
    snaps = snaps if keep is None else snaps[:keep]
    return claims_report(_RUN, str(chip.serial), snaps)


def _found(
    folder: Path,
    chip: Chip,
    *,
    owner: str = _OWNER,
    keep: int | None = None,
    registered_key: VerifyingKey | None = None,
) -> Attempt:
    """What an inspector finds: the chip at `owner`, its directory record, the reports.

    The directory registers the chip to lab-a with `registered_key` (its own
    key by default); the Prover reports the first `keep` snapshots (all by
    default). Closes the chip.
    """
    report = _report(chip, keep)
    record = DirectoryRecord(str(chip.serial), _OWNER, registered_key or chip.public_key)
    chip.close()
    return Attempt(data={"folder": folder, "record": record, "owner": owner, "reports": [report]})


def _log_check(chip_folder: Path, serial: str, key: object) -> Detection:
    """`verify_chip_log` on the chip's log file against the registered key."""
    try:
        verify_chip_log(read_chip_log(chip_folder / "nvram.log"), key, serial)  # type: ignore[arg-type]
    except ComputeWatchError as e:
        return Detection(
            detected=True, checks=(type(e).__name__,), detail=" ".join(e.message.split())[:200]
        )
    return Detection(detected=False, detail="the log verifies")


def _inspection(attempt: Attempt) -> Detection:
    """`inspect_chip` with the attempt's record, owner and reports."""
    result = inspect_chip(
        attempt.data["folder"],
        attempt.data["record"],
        expected_owner=attempt.data["owner"],
        nonce=_NONCE,
        reports=attempt.data["reports"],
    )
    kinds = tuple(sorted({f.kind for f in result.findings}))
    return Detection(
        bool(result.findings), kinds, detail="; ".join(f.detail for f in result.findings)[:200]
    )


class _ChipAttack:
    name = ""
    threat = ""
    expected: tuple[str, ...] = ()
    needs_base = False

    def create(
        self, workdir: Path, trial: int, bases: Sequence[HonestRun], scale: Scale = SCALE
    ) -> Attempt:
        """Build the attack on a fresh chip in its own folder (no run, no scale)."""
        del bases, scale  # chip-level attacks train no run
        return self.build(workdir / f"{self.name}-{trial}" / "chip", trial)

    def build(self, folder: Path, trial: int) -> Attempt:
        """Build the attack on a chip in `folder` (subclasses)."""
        raise NotImplementedError


class _InspectionAttack(_ChipAttack):
    """An attack that the Verifier's chip inspection (`inspect_chip`) must catch."""

    def detect(
        self, attempt: Attempt, policy: VerificationPolicy, rng: np.random.Generator
    ) -> Detection:
        """`inspect_chip`."""
        del policy, rng  # the chip-level checks take no verification policy
        return _inspection(attempt)


class HiddenSnapshot(_InspectionAttack):
    """A logged snapshot is left out of every report (a hidden run)."""

    name = "hidden-snapshot"
    threat = "§4: chip logs of a secret run not reported"
    expected = ("hidden-snapshot",)

    def build(self, folder: Path, trial: int) -> Attempt:
        """Log three snapshots, report two."""
        return _found(folder, _logged_chip(folder, f"CW-HS-{trial}"), keep=2)


class ResoldChip(_InspectionAttack):
    """A chip sold on to another lab without a registered resale."""

    name = "resold-chip"
    threat = "§6: chips resold outside the chip-owner directory"
    expected = ("owner-mismatch",)

    def build(self, folder: Path, trial: int) -> Attempt:
        """The directory names lab-a; the chip is found at lab-b."""
        return _found(folder, _logged_chip(folder, f"CW-RS-{trial}"), owner="lab-b")


class UnregisteredChip(_InspectionAttack):
    """A chip passed off under a registered serial (its key is not the registered one)."""

    name = "unregistered-chip"
    threat = "§6: an unregistered chip substituted for a registered one"
    expected = ("key-substituted", "attestation")

    def build(self, folder: Path, trial: int) -> Attempt:
        """The directory holds another key for the serial the rogue chip claims."""
        registered = SigningKey.from_seed(f"registered-chip-{trial:022d}".encode()[:32])
        chip = _logged_chip(folder, f"CW-UR-{trial}")
        return _found(folder, chip, registered_key=registered.verifying_key)


class ForgedLogEntry(_ChipAttack):
    """A snapshot entry edited to claim other weights (h replaced)."""

    name = "forged-log-entry"
    threat = "§4: chip log entries forged by the Prover"
    expected = ("IntegrityError",)

    def build(self, folder: Path, trial: int) -> Attempt:
        """Rewrite the last snapshot's h in the NVRAM log."""
        chip = _logged_chip(folder, f"CW-FL-{trial}")
        serial, key = str(chip.serial), chip.public_key
        chip.close()
        log = folder / "nvram.log"
        lines = log.read_bytes().splitlines(keepends=True)
        doc = json.loads(lines[-1])
        payload = json.loads(base64.b64decode(doc["payload"]))
        payload["body"]["h"] = "sha256:" + f"{trial:02x}" * 32
        doc["payload"] = base64.b64encode(canonical_json(payload)).decode()
        lines[-1] = json.dumps(doc).encode() + b"\n"
        log.write_bytes(b"".join(lines))
        return Attempt(data={"folder": folder, "serial": serial, "key": key})

    def detect(
        self, attempt: Attempt, policy: VerificationPolicy, rng: np.random.Generator
    ) -> Detection:
        """`verify_chip_log` against the registered key."""
        del policy, rng  # the chip-level checks take no verification policy
        return _log_check(attempt.data["folder"], attempt.data["serial"], attempt.data["key"])


class ReplayedLogEntry(ForgedLogEntry):
    """An earlier (benign) snapshot entry replayed at the end of the log."""

    name = "replayed-log-entry"
    threat = "§4: genuine log entries replayed to cover other weights"
    expected = ("IntegrityError",)

    def build(self, folder: Path, trial: int) -> Attempt:
        """Append a copy of an earlier snapshot entry."""
        chip = _logged_chip(folder, f"CW-RL-{trial}")
        serial, key = str(chip.serial), chip.public_key
        chip.close()
        log = folder / "nvram.log"
        lines = log.read_bytes().splitlines(keepends=True)
        log.write_bytes(b"".join([*lines, lines[-2 - trial % 2]]))
        return Attempt(data={"folder": folder, "serial": serial, "key": key})


class FirmwareRollback(_ChipAttack):
    """Boot an older signed firmware after an update (e.g. one without logging fixes)."""

    name = "firmware-rollback"
    threat = "§4: firmware rolled back to an older image"
    expected = ("IntegrityError",)

    def build(self, folder: Path, trial: int) -> Attempt:
        """A chip on firmware v2, and a genuine signed v1 image."""
        chip = _logged_chip(folder, f"CW-FR-{trial}", snapshots=0)
        chip.close()
        old = sign_firmware(name="fw", version=1, code=b"fw1", chipmaker=maker_key())
        return Attempt(data={"folder": folder, "image": old})

    def detect(
        self, attempt: Attempt, policy: VerificationPolicy, rng: np.random.Generator
    ) -> Detection:
        """`Chip.boot` must refuse the older image."""
        del policy, rng  # the chip-level checks take no verification policy
        with Chip.open(attempt.data["folder"]) as chip:
            try:
                chip.boot(attempt.data["image"])
            except ComputeWatchError as e:
                return Detection(
                    detected=True,
                    checks=(type(e).__name__,),
                    detail=" ".join(e.message.split())[:200],
                )
        return Detection(detected=False, detail="the chip booted the older firmware")
