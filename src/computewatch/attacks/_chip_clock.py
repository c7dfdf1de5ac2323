"""The chip clock set forward by its owner (issue 16), with its honest twin.

The TPM's owner, here the Prover, may move the TPM clock forward with
TPM2_ClockSet (on the file element, the host supplies the element's ticker:
the same power). Set forward by days after a firmware update, the update
looks older than it is, so `check_firmware_history`'s "no update shortly
before an inspection" passes if the chip clock is its only measure of time.

`ClockSetForward` boots new firmware between 1 hour and 3 days (truly)
before the inspection, then sets the chip clock 7 to 59 days ahead. The
defence is `inspect_chip(earlier=..., elapsed_ms=...)`: the attestation the
Verifier took at delivery and its own clock's time since, which the Prover
cannot move; the clock's advance beyond it is ``chip-clock-jump`` and the
update, logged since delivery, is judged by the Verifier's time
(``update-before-inspection``). The honest twin updates 30 days (truly)
before the inspection, its chip clock moved only as far as time passed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from computewatch.attacks._chip_evidence import (
    _NONCE,
    _STEP_S,
    _Chipset,
    _commitment,
    _found,
    _image,
    _Inspected,
)
from computewatch.attacks._harness import Attempt
from computewatch.chip import Chip, check_attestation
from computewatch.crypto import Digest, json_digest

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["ClockSetForward"]

_CODE = json_digest({"code": "train.py"})
_DAY_S = 86_400.0
_HONEST_AGE_S = 30 * _DAY_S  # the honest twin's update: a month before the inspection
_STEPS = 8


def _attested(folder: Path, serial: str) -> dict[str, Any]:
    """The attestation the Verifier takes (at delivery), read-only."""
    with Chip.open(folder, read_only=True) as chip:
        return check_attestation(chip.attest(_NONCE), chip.public_key, serial, _NONCE)


class ClockSetForward(_Inspected):
    """A firmware update made to look old by setting the chip clock forward."""

    name = "clock-set-forward"
    threat = "§4: the chip's owner sets its clock ahead (TPM2_ClockSet) to age a fresh update"
    expected = ("update-before-inspection", "chip-clock-jump")

    def build(self, folder: Path, trial: int, *, cheat: bool) -> Attempt:
        """Run, update to v3, let time pass (cheat: 1 h-3 days, then set 7-59 days ahead)."""
        serial = f"CW-CS-{trial}"
        cs = _Chipset(folder, serial)
        delivery = _attested(folder, serial)
        trusted_s = 0.0  # the Verifier's clock since delivery
        with cs.open() as chip:
            chip.boot(_image(2, snapshot_rate_per_kstep=1000.0))
            chip.precommit("run-a", Digest.parse(_commitment(trial)))
            chip.register("run-a", {"w": torch.zeros(4)}, _CODE, folder.parent / "o")
            for step in range(1, _STEPS + 1):
                cs.tick()
                trusted_s += _STEP_S
                chip.on_step(step)
            chip.snapshot_now(_STEPS + 1)
            chip.boot(_image(3, snapshot_rate_per_kstep=1000.0))
            age = 3600.0 * (1 + trial % 72) if cheat else _HONEST_AGE_S
            cs.tick(chip_s=age, host_s=age)
            trusted_s += age
            if cheat:  # TPM2_ClockSet (file element: its ticker) moves only the chip's clock
                jump = _DAY_S * (7 + trial % 53)
                cs.tick(chip_s=jump, host_s=jump)
            chip.boot(_image(3, snapshot_rate_per_kstep=1000.0))  # a restart before the visit
        data = _found(cs)
        data["earlier"] = delivery
        data["elapsed_ms"] = round(trusted_s * 1000)
        return Attempt(data=data)
