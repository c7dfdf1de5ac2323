"""Fixtures for the chip tests: a chipmaker, firmware images and a fresh chip."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from computewatch.chip import Chip, ManualClock, sign_firmware
from computewatch.crypto import Envelope, SigningKey

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def maker() -> SigningKey:
    return SigningKey.from_seed(b"chipmaker-seed-for-tests-0000000")


@pytest.fixture
def firmware(maker: SigningKey) -> dict[int, Envelope]:
    """Firmware v1..v3 at one snapshot a minute (a stress rate)."""
    return {
        v: sign_firmware(
            name="cw-fw",
            version=v,
            code=f"code v{v}".encode(),
            chipmaker=maker,
            snapshot_rate_per_day=1440.0,
        )
        for v in (1, 2, 3)
    }


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_700_000_000.0)


@pytest.fixture
def chip(tmp_path: Path, maker: SigningKey, clock: ManualClock) -> Iterator[Chip]:
    c = Chip.provision(tmp_path / "chip", "CW-0001", maker.verifying_key, clock=clock)
    yield c
    c.close()
