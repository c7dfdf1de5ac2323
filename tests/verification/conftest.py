"""Fixtures: honest runs on a chip, and a spoofer's toolkit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from computewatch.chip import Chip, read_chip_log, sign_firmware
from computewatch.crypto import SigningKey
from computewatch.datacenter import (
    TranscriptPaths,
    train,
)
from computewatch.verification import ChipEvidence, Verdict, VerificationPolicy, verify_transcript
from tests.datacenter.conftest import make_spec

if TYPE_CHECKING:
    from pathlib import Path

#: Snapshots every few steps in real time (steps take tens of milliseconds).
FAST_RATE = 86_400.0 * 40


@dataclass
class Run:
    """An honest run: its folder, its chip, and the Verifier's view of the chip."""

    run_dir: Path
    chip: Chip
    maker: SigningKey

    def evidence(self) -> list[ChipEvidence]:
        return [
            ChipEvidence.from_log(
                str(self.chip.serial), self.chip.public_key, read_chip_log(self.chip.log_path)
            )
        ]

    def verify(self, **policy: Any) -> Verdict:
        return verify_transcript(
            self.run_dir,
            TranscriptPaths(self.run_dir).report,
            self.evidence(),
            VerificationPolicy(**{"budget": 0.25, **policy}),
            np.random.default_rng(5),
        )


def run_on_chip(tmp_path: Path, name: str = "run", serial: str = "CW-V-0", **spec: Any) -> Run:
    maker = SigningKey.from_seed(b"verification-tests-maker-seed-00")
    chip = Chip.provision(tmp_path / f"chip-{serial}", serial, maker.verifying_key)
    chip.boot(
        sign_firmware(
            name="fw", version=1, code=b"fw", chipmaker=maker, snapshot_rate_per_day=FAST_RATE
        )
    )
    train(make_spec(**{"steps": 24, "checkpoint_every": 6, **spec}), tmp_path / name, chip=chip)
    chip.flush()
    return Run(tmp_path / name, chip, maker)


@pytest.fixture
def honest(tmp_path: Path) -> Run:
    return run_on_chip(tmp_path)
