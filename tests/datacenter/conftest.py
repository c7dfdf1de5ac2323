"""Fixtures: the example program, a tiny configuration, chips and specs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from computewatch.chip import Chip, ManualClock, sign_firmware
from computewatch.crypto import Envelope, SigningKey
from computewatch.datacenter import RunSpec

if TYPE_CHECKING:
    from collections.abc import Iterator

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tinygpt.py"

#: A configuration small enough for unit tests (about 30k parameters).
TINY: dict[str, Any] = {
    "n_layer": 1,
    "n_head": 2,
    "n_embd": 32,
    "block_size": 16,
    "corpus_bytes": 1 << 16,
    "lr": 3e-3,
    "min_lr": 3e-4,
    "warmup_steps": 3,
    "total_steps": 24,
    "weight_decay": 0.01,
    "beta1": 0.9,
    "beta2": 0.99,
}


def make_spec(run_id: str = "run-1", **kw: Any) -> RunSpec:
    base: dict[str, Any] = {
        "run_id": run_id,
        "program_path": EXAMPLE,
        "config": dict(TINY),
        "batch_size": 8,
        "steps": 24,
        "data_seed": 7,
        "checkpoint_every": 6,
        "threads": 1,
    }
    base.update(kw)
    return RunSpec(**base)


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
