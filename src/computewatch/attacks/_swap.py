"""Weights swapped in just before a predictable snapshot (paper §4).

A Prover training a secret model copies benign weights into the chip's
registered region whenever it expects the firmware to snapshot, and swaps
the secret weights back afterwards. Against a FIXED schedule (a snapshot
every ``period`` steps: `FixedScheduler`, a deliberately unsafe firmware
variant that exists only here) every logged ω is benign and the attack
succeeds. Against the real `PoissonScheduler` the Prover cannot know when to
swap, and snapshots land on the secret weights.

The defence modelled is the snapshot check of `verify_transcript`: every
chip-logged ω must hash to the weights the Prover claims for that step (here,
the benign trajectory).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from computewatch.attacks._harness import SCALE, Attempt, Detection, Scale, maker_key
from computewatch.chip import (
    SECONDS_PER_DAY,
    Chip,
    ManualClock,
    read_chip_log,
    sign_firmware,
    verify_chip_log,
)
from computewatch.crypto import json_digest, shard_hash

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import numpy as np

    from computewatch.attacks._harness import HonestRun
    from computewatch.verification import VerificationPolicy

__all__ = ["FixedScheduler", "SnapshotSwap"]

_STEP_SECONDS = 60.0
_NUMEL = 64


class FixedScheduler:
    """UNSAFE firmware variant: a snapshot at every ``period``-th poll.

    Exists to show why the real firmware draws snapshot times from a Poisson
    process with secret randomness.
    """

    def __init__(self, period: int) -> None:
        """Snapshot at polls period, 2 period, ..."""
        self.period = period
        self._polls = 0

    def poll(self) -> bool:
        """Whether to snapshot now."""
        self._polls += 1
        return self._polls % self.period == 0


def _weights(kind: int, step: int, trial: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(kind * 1_000_003 + trial * 1009 + step)
    return torch.randn(_NUMEL, generator=gen)


def benign(step: int, trial: int) -> torch.Tensor:
    """The benign trajectory the Prover claims."""
    return _weights(1, step, trial)


class SnapshotSwap:
    """Swap benign weights in at the steps a fixed schedule would snapshot."""

    threat = "§4: weights swapped just before a predictable snapshot"
    expected = ("snapshot",)
    needs_base = False

    def __init__(self, *, fixed: bool, period: int = 5, steps: int = 60) -> None:
        """Against the fixed schedule (``fixed``) or the real Poisson one."""
        self.fixed = fixed
        self.period = period
        self.steps = steps
        self.name = "swap-fixed-schedule" if fixed else "swap-poisson-schedule"

    def create(
        self, workdir: Path, trial: int, bases: Sequence[HonestRun], scale: Scale = SCALE
    ) -> Attempt:
        """Train (secret weights), swapping benign ones in where a snapshot is predicted."""
        del bases, scale  # chip-level attacks train no run
        maker = maker_key()
        clock = ManualClock()
        folder = workdir / f"{self.name}-{trial}"
        chip = Chip.provision(folder / "chip", f"CW-SW-{trial}", maker.verifying_key, clock=clock)
        # the same expected snapshot rate for both schedules: one per `period` steps
        per_second = -math.log1p(-1.0 / self.period) / _STEP_SECONDS
        chip.boot(
            sign_firmware(
                name="fw",
                version=1,
                code=b"fw",
                chipmaker=maker,
                snapshot_rate_per_day=per_second * SECONDS_PER_DAY,
            )
        )
        if self.fixed:
            chip._scheduler = FixedScheduler(self.period)  # type: ignore[assignment]  # noqa: SLF001
        chip.precommit("run-s", json_digest({"trial": trial}))
        w = torch.zeros(_NUMEL)
        chip.register("run-s", {"w": w}, json_digest({"code": 1}), folder / "omega")
        for step in range(self.steps):
            clock.advance(_STEP_SECONDS)
            w.copy_(_weights(2, step, trial))  # the secret model's weights after this step
            if (step + 1) % self.period == 0:  # the Prover's prediction of the schedule
                w.copy_(benign(step, trial))
            chip.on_step(step)
            chip.flush()
        serial, key = str(chip.serial), chip.public_key
        chip.close()
        return Attempt(
            data={"folder": folder / "chip", "serial": serial, "key": key, "trial": trial}
        )

    def detect(
        self, attempt: Attempt, policy: VerificationPolicy, rng: np.random.Generator
    ) -> Detection:
        """Every logged ω must hash to the claimed benign weights of its step."""
        del policy, rng  # the chip-level checks take no verification policy
        entries = verify_chip_log(
            read_chip_log(attempt.data["folder"] / "nvram.log"),
            attempt.data["key"],
            attempt.data["serial"],
        )
        snaps = [e for e in entries if e.kind == "snapshot"]
        trial = attempt.data["trial"]
        caught = [
            e for e in snaps if e.body["h"] != str(shard_hash(benign(int(e.body["step"]), trial)))
        ]
        attempt.data["snapshots"] = len(snaps)
        attempt.data["on_secret"] = len(caught)
        return Detection(
            detected=bool(caught),
            checks=("snapshot",) if caught else (),
            detail=f"{len(caught)} of {len(snaps)} logged snapshots hold the secret weights",
        )
