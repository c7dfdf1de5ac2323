"""Fixtures: the example program, a tiny configuration, chips and specs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from computewatch.chip import Chip, ManualClock, sign_firmware
from computewatch.crypto import Envelope, SigningKey
from computewatch.testing import EXAMPLE, TINY
from computewatch.testing import tiny_spec as make_spec

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

# The tiny example run is defined once, in the testing kit.
__all__ = ["EXAMPLE", "TINY", "SteppingClock", "make_spec"]


@pytest.fixture
def maker() -> SigningKey:
    return SigningKey.from_seed(b"datacenter-tests-chipmaker-seed!")


@pytest.fixture
def stress_firmware(maker: SigningKey) -> Envelope:
    """One snapshot per chip-minute: with a manual clock moving a minute a step."""
    return sign_firmware(
        name="cw-fw", version=1, code=b"fw", chipmaker=maker, snapshot_rate_per_day=1440.0
    )


class SteppingClock(ManualClock):
    """A clock that moves one minute every time firmware reads it."""

    def now(self) -> float:
        self.advance(20.0)
        return super().now()


@pytest.fixture
def chip(tmp_path: Path, maker: SigningKey, stress_firmware: Envelope) -> Iterator[Chip]:
    c = Chip.provision(tmp_path / "chip", "CW-DC-0", maker.verifying_key, clock=SteppingClock())
    c.boot(stress_firmware)
    yield c
    c.close()
