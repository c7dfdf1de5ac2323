"""A Monte Carlo simulator of the inspection regime (§3.2, Appendices B-C).

A Prover owns `C` chips and does the incriminating `H` FLOPs of a large run
on some of them, placed by a `Strategy`. Every chip in the run logs firmware
snapshots as a Poisson process of rate `f` per chip-day. In each monitoring
period of `T_m` days the Verifier inspects `s` distinct chips drawn
uniformly (without replacement) from the stockpile; the run is detected when
an inspected chip holds a snapshot it logged while in the run during that
period, which is the detection model behind Equation 1.

Two engines simulate the same model:

* ``chip``: explicit chips and events. Each trial places the run on random
  chip identities, draws every run chip's snapshot times, draws the
  Verifier's sample of chip identities in every period, and intersects them.
  Cost grows with the run's chips and snapshots: use it for validation.
* ``aggregate``: vectorised over trials. By exchangeability only counts
  matter: the inspected chips that were in the run in a period are
  hypergeometric, and each holds a snapshot independently with probability
  `1 - exp(-f w)` for `w` days in the run that period. A year of 10^7 chips
  and 10^5 trials takes well under a second.

Both report the empirical detection probability with an exact
(Clopper-Pearson) confidence interval, beside two analytic values for the
same configuration: ``closed_form``, the paper's formula
`1 - prod_j (1 - (c/C) p_w(w_j)) ** s` (sampling with replacement), and
``exact``, the exact probability for sampling without replacement.

Example::

    >>> import numpy as np
    >>> from computewatch.analysis import Scenario, SamplingParams, simulate
    >>> sc = Scenario(SamplingParams(flops=5.76e23, chips=1000))
    >>> r = simulate(sc, trials=20_000, rng=np.random.default_rng(7))
    >>> r.ci_low <= r.closed_form <= r.ci_high
    True
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from computewatch._validate import (
    choice,
    non_negative,
    positive,
    positive_int,
    probability,
)
from computewatch.analysis._collusion import allocate
from computewatch.analysis._sampling import SamplingParams, plan_samples
from computewatch.errors import InfeasibleRunError, ParameterError

__all__ = [
    "Engine",
    "Placement",
    "Scenario",
    "SimulationResult",
    "Strategy",
    "simulate",
]

#: Trials per vectorised batch of the aggregate engine (bounds memory).
_BATCH = 1 << 20
#: Snapshot events one chip-engine trial may draw before we refuse (memory).
_MAX_CHIP_EVENTS = 5_000_000
#: Most trials one call runs: the aggregate engine does about `_TRIALS_PER_S`
#: a second, so this is minutes of work, never an unbounded hang.
MAX_TRIALS = 100_000_000
_TRIALS_PER_S = 500_000

ProgressFn = Callable[[int, int], None]


class Strategy(StrEnum):
    """Where the Prover places its run (Appendix C)."""

    #: The fewest chips, `ceil(H / (a T))`, for the planned `T` days.
    BASELINE = "baseline"
    #: C.1: `k` times fewer chips for `k` times longer.
    STRETCH = "stretch"
    #: C.2 / Theorem 1: more chips for a shorter time `t < T`.
    COMPRESS = "compress"
    #: The run starts mid-period, so it straddles monitoring periods.
    SPLIT = "split"
    #: Several colluding Provers each lend part of the run's chips; the
    #: Verifier monitors them pooled, its sample split by stockpile.
    COLLUDE = "collude"


class Engine(StrEnum):
    """How the simulation is carried out (see the module docstring)."""

    AGGREGATE = "aggregate"
    CHIP = "chip"


@dataclass(frozen=True, slots=True)
class Scenario:
    """One simulated regime: the Verifier's plan and the Prover's strategy.

    Attributes:
        params: the Verifier's planning parameters (`H`, `C`, `a`, `f`,
            `T`, `T_m`, `p`); `s` comes from Equation 1 on them unless
            `samples_per_period` is given.
        strategy: how the Prover places the run.
        stretch: `k` for `STRETCH` (>= 1).
        run_days: `t` for `COMPRESS` (0 < t <= T).
        offset_days: start of the run, in days after the first period starts
            (`SPLIT` uses `T_m / 2` when this is 0).
        provers: number of colluding Provers for `COLLUDE` (the stockpile
            `C` is split evenly among them).
        samples_per_period: override for the Verifier's `s`.
    """

    params: SamplingParams
    strategy: Strategy = Strategy.BASELINE
    stretch: float = 1.0
    run_days: float | None = None
    offset_days: float = 0.0
    provers: int = 1
    samples_per_period: int | None = None

    def __post_init__(self) -> None:
        """Validate the strategy's own parameters."""
        choice("strategy", self.strategy, Strategy)
        if positive("stretch", self.stretch) < 1.0:
            msg = f"stretch: expected k >= 1, got {self.stretch!r}"
            raise ParameterError(msg)
        if self.run_days is not None and positive("run_days", self.run_days) > self.params.run_days:
            msg = (
                f"run_days: a compressed run must be no longer than the planned "
                f"{self.params.run_days:g} days, got {self.run_days!r}"
            )
            raise ParameterError(msg)
        non_negative("offset_days", self.offset_days)
        if positive_int("provers", self.provers) > self.params.chips:
            msg = (
                f"provers: expected at most one Prover per chip "
                f"({self.params.chips}), got {self.provers}"
            )
            raise ParameterError(msg)
        if self.samples_per_period is not None:
            positive_int("samples_per_period", self.samples_per_period)

    def placement(self) -> Placement:
        """Resolve the strategy into chips, times and the Verifier's samples."""
        p = self.params
        duration = p.run_days
        offset = self.offset_days
        if self.strategy is Strategy.STRETCH:
            duration = p.run_days * self.stretch
        elif self.strategy is Strategy.COMPRESS:
            duration = self.run_days if self.run_days is not None else p.run_days / 2
        elif self.strategy is Strategy.SPLIT and offset == 0.0:
            offset = p.period_days / 2
        chips_needed = math.ceil(p.flops / (p.chip_flops_per_day * duration) * (1 - 1e-12))
        if chips_needed > p.chips:
            msg = (
                f"strategy {self.strategy.value}: the run needs {chips_needed} chips for "
                f"{duration:g} days but the Prover owns {p.chips}"
            )
            raise InfeasibleRunError(msg)
        s = self.samples_per_period or plan_samples(p).samples_per_period
        provers = self.provers if self.strategy is Strategy.COLLUDE else 1
        names = [f"prover-{i}" for i in range(provers)]
        stock = allocate(p.chips, dict.fromkeys(names, 1))
        run = allocate(chips_needed, stock)
        sample = allocate(s, stock)
        if s > p.chips:
            msg = f"samples_per_period: {s} exceeds the stockpile of {p.chips} chips"
            raise ParameterError(msg)
        first = math.floor(offset / p.period_days)
        last = math.ceil((offset + duration) / p.period_days)
        windows = []
        for j in range(first, last):
            lo = max(offset, j * p.period_days)
            hi = min(offset + duration, (j + 1) * p.period_days)
            if hi > lo:
                windows.append((j, hi - lo))
        return Placement(
            stockpiles=tuple(stock[n] for n in names),
            run_chips=tuple(run[n] for n in names),
            samples=tuple(sample[n] for n in names),
            start_day=offset,
            duration_days=duration,
            windows=tuple(windows),
            snapshots_per_day=p.snapshots_per_day,
            period_days=p.period_days,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the scenario as a JSON-ready mapping."""
        return {
            "params": self.params.to_dict(),
            "strategy": self.strategy.value,
            "stretch": self.stretch,
            "run_days": self.run_days,
            "offset_days": self.offset_days,
            "provers": self.provers,
            "samples_per_period": self.samples_per_period,
        }


@dataclass(frozen=True, slots=True)
class Placement:
    """A resolved scenario: per-Prover chips, run chips and samples, and time.

    Attributes:
        stockpiles: chips each (colluding) Prover owns.
        run_chips: chips each Prover lends to the run.
        samples: chips the Verifier inspects at each Prover every period.
        start_day: day the run starts.
        duration_days: days the run lasts.
        windows: `(period index, days the run spends in it)` for every
            monitoring period the run touches.
        snapshots_per_day: `f`.
        period_days: `T_m`.
    """

    stockpiles: tuple[int, ...]
    run_chips: tuple[int, ...]
    samples: tuple[int, ...]
    start_day: float
    duration_days: float
    windows: tuple[tuple[int, float], ...]
    snapshots_per_day: float
    period_days: float

    def snapshot_probabilities(self) -> list[float]:
        """`p_w = 1 - exp(-f w)` for each window."""
        return [-math.expm1(-self.snapshots_per_day * w) for _, w in self.windows]

    def closed_form(self) -> float:
        """The paper's formula for this placement (independent samples)."""
        log_miss = 0.0
        for pw in self.snapshot_probabilities():
            for big_c, c, s in zip(self.stockpiles, self.run_chips, self.samples, strict=True):
                q = c / big_c * pw
                if q >= 1.0:
                    return 1.0
                log_miss += s * math.log1p(-q)
        return -math.expm1(log_miss)

    def exact(self) -> float:
        """Exact detection probability for sampling without replacement.

        Per period and Prover, the run chips holding a snapshot number
        `K ~ Binomial(c, p_w)`, and an `s`-sample misses all of them with
        the hypergeometric probability `P(0; C, K, s)`.
        """
        from scipy import stats  # noqa: PLC0415 - slow import, needed only here

        log_miss = 0.0
        for pw in self.snapshot_probabilities():
            for big_c, c, s in zip(self.stockpiles, self.run_chips, self.samples, strict=True):
                if c == 0 or s == 0:
                    continue
                lo = int(stats.binom.ppf(1e-16, c, pw))
                hi = int(stats.binom.isf(1e-16, c, pw))
                k = np.arange(max(lo - 1, 0), min(hi + 1, c) + 1)
                weights = stats.binom.pmf(k, c, pw)
                miss = stats.hypergeom.pmf(0, big_c, k, s)
                total = float(np.sum(weights * miss))
                if total <= 0.0:
                    return 1.0
                log_miss += math.log(total)
        return -math.expm1(log_miss)

    def to_dict(self) -> dict[str, Any]:
        """Return the placement as a JSON-ready mapping."""
        return {
            "stockpiles": list(self.stockpiles),
            "run_chips": list(self.run_chips),
            "samples_per_period": list(self.samples),
            "start_day": self.start_day,
            "duration_days": self.duration_days,
            "periods": [{"index": j, "days_in_run": w} for j, w in self.windows],
        }


@dataclass(frozen=True)
class SimulationResult:
    """The outcome of `simulate`.

    Attributes:
        scenario: what was simulated.
        placement: the resolved placement.
        engine: which engine ran.
        trials: number of simulated monitoring regimes.
        detections: trials in which the run was caught.
        estimate: `detections / trials`.
        confidence: level of the interval (0.99 by default).
        ci_low: lower end of the exact (Clopper-Pearson) interval.
        ci_high: upper end.
        closed_form: the paper's formula for this placement.
        exact: the exact probability for sampling without replacement.
        seed: the root entropy of the generator, so the run can be repeated.
        spawn_key: the generator's spawn key (empty for a root generator).
        elapsed_s: wall-clock seconds spent simulating.
    """

    scenario: Scenario
    placement: Placement
    engine: Engine
    trials: int
    detections: int
    estimate: float
    confidence: float
    ci_low: float
    ci_high: float
    closed_form: float
    exact: float
    seed: int | list[int] | None
    spawn_key: tuple[int, ...] = field(default=())
    elapsed_s: float = 0.0

    @property
    def agrees(self) -> bool:
        """Whether the closed form lies inside the confidence interval."""
        return self.ci_low <= self.closed_form <= self.ci_high

    @property
    def chip_periods(self) -> int:
        """Chip-periods covered: stockpile x periods x trials."""
        return sum(self.placement.stockpiles) * len(self.placement.windows) * self.trials

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-ready mapping."""
        return {
            "scenario": self.scenario.to_dict(),
            "placement": self.placement.to_dict(),
            "engine": self.engine.value,
            "trials": self.trials,
            "detections": self.detections,
            "estimate": self.estimate,
            "confidence": self.confidence,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "closed_form": self.closed_form,
            "exact": self.exact,
            "agrees_with_closed_form": self.agrees,
            "seed": self.seed,
            "spawn_key": list(self.spawn_key),
            "elapsed_s": self.elapsed_s,
            "chip_periods": self.chip_periods,
        }


def _aggregate(
    pl: Placement, trials: int, rng: np.random.Generator, progress: ProgressFn | None
) -> int:
    detections = 0
    done = 0
    pws = pl.snapshot_probabilities()
    while done < trials:
        n = min(_BATCH, trials - done)
        caught = np.zeros(n, dtype=bool)
        for pw in pws:
            for big_c, c, s in zip(pl.stockpiles, pl.run_chips, pl.samples, strict=True):
                if c == 0 or s == 0:
                    continue
                # inspected chips that were in the run this period
                in_run = rng.hypergeometric(c, big_c - c, s, size=n)
                # ... of which each logged >= 1 snapshot with probability p_w
                caught |= rng.binomial(in_run, pw) > 0
        detections += int(np.count_nonzero(caught))
        done += n
        if progress is not None:
            progress(done, trials)
    return detections


def _chip_trial(pl: Placement, rng: np.random.Generator) -> bool:
    f = pl.snapshots_per_day
    n_windows = len(pl.windows)
    first = pl.windows[0][0]
    for big_c, c, s in zip(pl.stockpiles, pl.run_chips, pl.samples, strict=True):
        if c == 0 or s == 0:
            continue
        # the run's chips, by identity
        run_ids = rng.choice(big_c, size=c, replace=False)
        # each run chip's snapshots: a Poisson process over the run's span
        counts = rng.poisson(f * pl.duration_days, size=c)
        times = pl.start_day + pl.duration_days * rng.random(int(counts.sum()))
        owners = np.repeat(run_ids, counts)
        period = np.floor(times / pl.period_days).astype(np.int64) - first
        logged = np.unique(owners.astype(np.int64) * n_windows + period)
        for idx in range(n_windows):
            inspected = rng.choice(big_c, size=s, replace=False).astype(np.int64)
            if np.isin(inspected * n_windows + idx, logged, assume_unique=True).any():
                return True
    return False


def _chip(pl: Placement, trials: int, rng: np.random.Generator, progress: ProgressFn | None) -> int:
    expected_events = pl.snapshots_per_day * pl.duration_days * sum(pl.run_chips)
    if expected_events > _MAX_CHIP_EVENTS:
        msg = (
            f"engine chip: about {expected_events:.3g} snapshot events per trial exceed the "
            f"limit of {_MAX_CHIP_EVENTS:.0e}; use the aggregate engine"
        )
        raise ParameterError(msg)
    detections = 0
    step = max(1, trials // 100)
    for i in range(trials):
        detections += _chip_trial(pl, rng)
        if progress is not None and ((i + 1) % step == 0 or i + 1 == trials):
            progress(i + 1, trials)
    return detections


def simulate(
    scenario: Scenario,
    trials: int,
    *,
    rng: np.random.Generator | None = None,
    engine: Engine = Engine.AGGREGATE,
    confidence: float = 0.99,
    progress: ProgressFn | None = None,
) -> SimulationResult:
    """Estimate the detection probability of `scenario` over `trials` trials.

    Args:
        scenario: the regime to simulate.
        trials: number of independent monitoring regimes.
        rng: the randomness; a fresh, recorded seed is drawn when omitted.
        engine: `Engine.AGGREGATE` (fast) or `Engine.CHIP` (explicit chips).
        confidence: level of the Clopper-Pearson interval.
        progress: called as `progress(done, trials)` while it runs.
    """
    n = positive_int("trials", trials)
    if n > MAX_TRIALS:
        msg = (
            f"trials: expected at most {MAX_TRIALS:,} (about {MAX_TRIALS // _TRIALS_PER_S:,} s "
            f"of work), got {n:,}"
        )
        raise ParameterError(msg)
    level = probability("confidence", confidence)
    choice("engine", engine, Engine)
    if rng is None:
        rng = np.random.default_rng(np.random.SeedSequence())
    seq = getattr(rng.bit_generator, "seed_seq", None)
    entropy = getattr(seq, "entropy", None)
    spawn_key = tuple(getattr(seq, "spawn_key", ()))
    pl = scenario.placement()
    start = time.perf_counter()
    run = _aggregate if engine is Engine.AGGREGATE else _chip
    detections = run(pl, n, rng, progress)
    elapsed = time.perf_counter() - start
    from scipy import stats  # noqa: PLC0415 - slow import, needed only here

    ci = stats.binomtest(detections, n).proportion_ci(confidence_level=level, method="exact")
    return SimulationResult(
        scenario=scenario,
        placement=pl,
        engine=engine,
        trials=n,
        detections=detections,
        estimate=detections / n,
        confidence=level,
        ci_low=float(ci.low),
        ci_high=float(ci.high),
        closed_form=pl.closed_form(),
        exact=pl.exact(),
        seed=entropy if isinstance(entropy, int | list | None) else None,
        spawn_key=spawn_key,
        elapsed_s=elapsed,
    )
