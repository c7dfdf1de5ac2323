"""Snapshot timing: a Poisson process of rate f that the Prover cannot predict."""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from scipy import stats

from computewatch.chip import (
    SECONDS_PER_DAY,
    FileSecureElement,
    ManualClock,
    PoissonScheduler,
    SecureElement,
)
from computewatch.errors import ParameterError

if TYPE_CHECKING:
    from pathlib import Path

RATE = 4.0  # snapshots per chip-day (high, so a few hundred days give power)
POLL = 60.0  # one optimizer step a minute
DAYS = 400


@pytest.fixture(scope="module")
def se(tmp_path_factory: pytest.TempPathFactory) -> SecureElement:
    """An element whose own clock stands still: the (simulated) host clock alone drives time."""
    return FileSecureElement.provision(
        tmp_path_factory.mktemp("se") / "se", "CW-SCHED", ticker=lambda: 0
    )


def _daily_counts(se: SecureElement, rate: float, days: int = DAYS) -> np.ndarray:
    clock = ManualClock(start=0.0)
    sched = PoissonScheduler(rate, se, clock)
    polls = int(SECONDS_PER_DAY / POLL)
    counts = np.zeros(days, dtype=np.int64)
    for day in range(days):
        n = 0
        for _ in range(polls):
            clock.advance(POLL)
            n += sched.poll()
        counts[day] = n
    return counts


def _poisson_gof_pvalue(counts: np.ndarray, rate: float) -> float:
    """Chi-square goodness of fit of daily counts to Poisson(rate), bins 0..9, 10+."""
    top = 10
    observed = np.bincount(np.minimum(counts, top), minlength=top + 1)
    probs = stats.poisson.pmf(np.arange(top), rate)
    probs = np.append(probs, 1 - probs.sum())
    expected = probs * len(counts)
    return float(stats.chisquare(observed, expected).pvalue)


def test_daily_snapshot_counts_fit_poisson_rate_f(se: SecureElement) -> None:
    counts = _daily_counts(se, RATE)
    assert counts.mean() == pytest.approx(RATE, rel=0.1)
    assert _poisson_gof_pvalue(counts, RATE) > 1e-4  # a 1-in-10,000 false alarm


def test_goodness_of_fit_rejects_a_wrong_rate(se: SecureElement) -> None:
    # the same test must fail when the firmware's rate is not f
    counts = _daily_counts(se, RATE * 1.4)
    assert _poisson_gof_pvalue(counts, RATE) < 1e-3


def test_gaps_between_snapshots_are_exponential(se: SecureElement) -> None:
    clock = ManualClock(start=0.0)
    sched = PoissonScheduler(RATE, se, clock)
    times = []
    for i in range(int(150 * SECONDS_PER_DAY / POLL)):
        clock.advance(POLL)
        if sched.poll():
            times.append(i * POLL)
    gaps = np.diff(times) / SECONDS_PER_DAY
    # discretised at POLL: compare with an exponential of mean 1/f, shifted half a poll
    res = stats.kstest(gaps - POLL / SECONDS_PER_DAY / 2, "expon", args=(0, 1 / RATE))
    assert res.pvalue > 1e-4


def test_prover_seeds_do_not_determine_snapshots(se: SecureElement) -> None:
    def pattern() -> list[bool]:
        random.seed(0)
        np.random.seed(0)  # noqa: NPY002 - the Prover's global generators
        torch.manual_seed(0)
        clock = ManualClock(start=0.0)
        sched = PoissonScheduler(SECONDS_PER_DAY / 600, se, clock)  # one per 10 min
        out = []
        for _ in range(2000):
            clock.advance(POLL)
            out.append(sched.poll())
        return out

    a, b = pattern(), pattern()
    assert a != b  # same clock, same seeds: still different snapshot times
    # and agreement is what independent draws give (~ p^2 + (1-p)^2)
    p = -math.expm1(-POLL / 600)
    agree = sum(x == y for x, y in zip(a, b, strict=True)) / len(a)
    assert agree == pytest.approx(p * p + (1 - p) * (1 - p), abs=0.05)


def test_no_future_snapshot_time_is_stored(se: SecureElement) -> None:
    sched = PoissonScheduler(1.0, se, ManualClock(start=5.0))
    # the only state is the rate, the SE, the clock and the last poll time:
    # there is no precomputed "next snapshot" for Prover code to read
    assert set(PoissonScheduler.__init__.__code__.co_names) >= {"_rate", "_se", "_clock", "_last"}
    assert sorted(vars(sched)) == ["_chip_last", "_clock", "_last", "_per_step", "_rate", "_se"]
    assert sched._last == 5.0


def test_host_clock_set_back_cannot_suppress_snapshots() -> None:
    from computewatch.chip import SystemClock  # noqa: PLC0415

    clock = SystemClock()
    first = clock.now()
    assert clock.now() >= first  # monotonic, whatever the host's wall clock does


def test_zero_interval_never_snapshots(se: SecureElement) -> None:
    sched = PoissonScheduler(1e6, se, ManualClock(start=0.0))
    assert not any(sched.poll() for _ in range(100))


@pytest.mark.parametrize("rate", [0.0, -1.0, math.inf, math.nan])
def test_bad_rates(se: SecureElement, rate: float) -> None:
    with pytest.raises(ParameterError, match="snapshot rate"):
        PoissonScheduler(rate, se, ManualClock())


def test_bad_clock_advance() -> None:
    with pytest.raises(ParameterError):
        ManualClock().advance(-1)


def test_scheduler_reports_rate(tmp_path: Path) -> None:
    se = FileSecureElement.provision(tmp_path / "se", "CW-R")
    assert PoissonScheduler(0.1, se, ManualClock()).rate_per_day == pytest.approx(0.1)
