"""The host clock does not own the snapshot schedule nor a snapshot's recorded time.

The chip's secure element keeps its own clock (the TPM's TPM2_ReadClock,
the file element's monotonic clock; here a simulated one driven as chip
time passes) and the firmware counts steps itself, so a Prover who slows
the host clock tenfold gets the honest number of snapshots per 1,000 steps.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import pytest
import torch
from scipy import stats

from computewatch.chip import (
    SECONDS_PER_DAY,
    Chip,
    FileSecureElement,
    ManualClock,
    PoissonScheduler,
    sign_firmware,
)
from computewatch.crypto import SigningKey, json_digest
from computewatch.errors import FormatError, ParameterError

if TYPE_CHECKING:
    from pathlib import Path

STEP_SECONDS = 60.0  # one optimizer step a chip-minute
STEPS = 5000
PER_DAY = SECONDS_PER_DAY / STEP_SECONDS * 0.01  # 0.01 snapshots per step from time
PER_KSTEP = 10.0  # and 0.01 per step from work


def _honest_mean(steps: int) -> float:
    p = -torch.expm1(torch.tensor(-(0.01 + PER_KSTEP / 1000.0), dtype=torch.float64)).item()
    return p * steps


def _run(tmp_path: Path, maker: SigningKey, host_seconds_per_step: float) -> tuple[int, list[int]]:
    """Train STEPS steps; the chip's clock moves a minute a step, the host's as given."""
    chip_clock = ManualClock(start=0.0)
    host = ManualClock()
    folder = tmp_path / f"chip-{host_seconds_per_step:g}"
    Chip.provision(folder, "CW-T", maker.verifying_key, clock=host).close()
    se = FileSecureElement.open(folder / "se", ticker=lambda: int(chip_clock.now() * 1e9))
    image = sign_firmware(
        name="fw",
        version=1,
        code=b"fw",
        chipmaker=maker,
        snapshot_rate_per_day=PER_DAY,
        snapshot_rate_per_kstep=PER_KSTEP,
    )
    taken = 0
    with Chip(folder, se, clock=host) as chip:
        chip.boot(image)
        chip.register("run", {"w": torch.zeros(4)}, json_digest({"c": 1}), tmp_path / "o")
        for step in range(STEPS):
            chip_clock.advance(STEP_SECONDS)
            host.advance(host_seconds_per_step)
            taken += chip.on_step(step)
        chip.flush()
        stamps = [
            int(e.chip_time["clock_ms"])
            for e in chip.log_entries()
            if e.kind == "snapshot" and e.chip_time is not None
        ]
    return taken, stamps


@pytest.mark.parametrize("host_seconds_per_step", [STEP_SECONDS, STEP_SECONDS / 10])
def test_slowing_the_host_clock_tenfold_keeps_the_honest_snapshot_rate(
    tmp_path: Path, maker: SigningKey, host_seconds_per_step: float
) -> None:
    taken, stamps = _run(tmp_path, maker, host_seconds_per_step)
    low, high = stats.poisson.interval(0.999, _honest_mean(STEPS))
    assert low <= taken <= high, (taken, low, high)
    per_kstep = 1000 * taken / STEPS
    assert per_kstep > 0
    # every snapshot's recorded chip time is a whole chip-minute: the element's
    # clock, not the host's (which ran at a tenth of the speed in one run)
    assert len(stamps) == taken
    # (after the few ms the element's clock ran while it was provisioned)
    assert all((b - a) % int(STEP_SECONDS * 1000) == 0 for a, b in itertools.pairwise(stamps))
    assert stamps == sorted(stamps)
    assert stamps[-1] - stamps[0] > STEP_SECONDS * 1000 * STEPS / 2


def test_a_host_clock_alone_would_have_been_slowed(tmp_path: Path) -> None:
    """The control: on the host's clock alone the slowed run falls outside the interval.

    Over `STEPS` the slowed mean (about 55) sits 1.7 of its deviations under
    the honest interval's low end (68), so the control failed about 1 run in
    25; over 4x the steps it sits 7.
    """
    steps = 4 * STEPS
    se = FileSecureElement.provision(tmp_path / "se", "CW-C", ticker=lambda: 0)
    host = ManualClock()
    sched = PoissonScheduler(PER_DAY, se, host, rate_per_kstep=PER_KSTEP)
    taken = 0
    for _ in range(steps):
        host.advance(STEP_SECONDS / 10)
        taken += sched.poll()
    low, _ = stats.poisson.interval(0.999, _honest_mean(steps))
    assert taken < low


def test_work_alone_drives_snapshots_when_no_clock_moves(tmp_path: Path) -> None:
    se = FileSecureElement.provision(tmp_path / "se", "CW-W", ticker=lambda: 0)
    sched = PoissonScheduler(1.0, se, ManualClock(), rate_per_kstep=100.0)
    taken = sum(sched.poll() for _ in range(4000))
    low, high = stats.poisson.interval(0.999, 4000 * 0.1)
    assert low <= taken <= high


def test_bad_work_rates_are_refused(tmp_path: Path, maker: SigningKey) -> None:
    se = FileSecureElement.provision(tmp_path / "se", "CW-B", ticker=lambda: 0)
    with pytest.raises(ParameterError, match="per 1,000 steps"):
        PoissonScheduler(1.0, se, ManualClock(), rate_per_kstep=-1.0)
    with pytest.raises(FormatError, match="per 1,000 steps"):
        sign_firmware(name="f", version=1, code=b"", chipmaker=maker, snapshot_rate_per_kstep=1e9)


def test_the_file_elements_clock_never_goes_back_across_reopen(tmp_path: Path) -> None:
    ticks = [10_000_000_000]
    se = FileSecureElement.provision(tmp_path / "se", "CW-R", ticker=lambda: ticks[0])
    ticks[0] += 5_000_000_000
    se.increment_counter("boot")  # a write seals the clock (5 s in)
    assert se.read_clock().clock_ms == 5000
    ticks[0] = 0  # a new process, its monotonic clock starting over
    again = FileSecureElement.open(tmp_path / "se", ticker=lambda: ticks[0])
    assert again.read_clock().clock_ms == 5000
    ticks[0] += 1_000_000
    assert again.read_clock().clock_ms == 5001
