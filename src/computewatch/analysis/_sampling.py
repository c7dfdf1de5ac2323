"""Equation 1 and Appendix B: how many chips to inspect.

A Prover owns `C` chips, each doing `a` FLOPs a day. A rule-breaking run of
`2H` FLOPs is targeted: snapshots taken during its first `H` FLOPs are not
incriminating, so the guarantee covers the second `H` (paper §3.2). That part
needs at least `H / (a T)` chips for `T` days, so a uniformly sampled chip was
in it with probability `b = H / (a T C)`, and it logged a snapshot in a
monitoring period of `T_m` days with probability `p_w = 1 - exp(-f T_m)`
(snapshots are a Poisson process of rate `f` a day). Equation 1 gives the
samples per monitoring period that detect the run with probability `p`::

    s >= log(1 - p) / log(1 - b * p_w) * T_m / T

Example::

    >>> from computewatch.analysis import SamplingParams, plan_samples
    >>> plan_samples(SamplingParams(flops=3.14e23, chips=100_000)).samples_per_year
    24337
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from computewatch._validate import (
    ceil_count,
    positive,
    positive_int,
    probability,
)
from computewatch.errors import InfeasibleRunError, ParameterError

__all__ = [
    "DAYS_PER_YEAR",
    "H100_FLOPS_PER_DAY",
    "SamplingParams",
    "SamplingPlan",
    "detection_probability",
    "min_chips",
    "plan_samples",
    "snapshot_probability",
]

#: Days in the year the paper uses for "samples per year" (365 * s / T_m).
DAYS_PER_YEAR = 365.0
#: Daily dense 16-bit FLOPs of an H100 SXM, the paper's `a` (Table 1).
H100_FLOPS_PER_DAY = 1e15 * 86_400
#: Beyond this many samples a plan is meaningless (and floats lose integers).
_MAX_SAMPLES = 1e15


def snapshot_probability(snapshots_per_day: float, days: float) -> float:
    """Probability `p_w = 1 - exp(-f d)` that a chip logs >= 1 snapshot in `d` days."""
    f = positive("snapshots_per_day", snapshots_per_day)
    d = positive("days", days)
    return -math.expm1(-f * d)


def min_chips(flops: float, chip_flops_per_day: float, run_days: float) -> float:
    """Fewest chips, `H / (a T)`, that can do `flops` in `run_days` (not rounded)."""
    h = positive("flops", flops)
    a = positive("chip_flops_per_day", chip_flops_per_day)
    t = positive("run_days", run_days)
    return h / (a * t)


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """The symbols of §3.2 and Appendix B, with the paper's Table 1 defaults.

    Attributes:
        flops: `H`, FLOPs of the incriminating half of the run.
        chips: `C`, chips the Prover owns (or the pooled stockpile).
        chip_flops_per_day: `a`, FLOPs one chip does in a day.
        snapshots_per_day: `f`, expected firmware snapshots per chip-day.
        run_days: `T`, length of the training run in days.
        period_days: `T_m`, length of a monitoring period in days.
        detection_probability: `p`, the wanted probability of catching the run.
    """

    flops: float
    chips: int
    chip_flops_per_day: float = H100_FLOPS_PER_DAY
    snapshots_per_day: float = 0.1
    run_days: float = DAYS_PER_YEAR
    period_days: float = 30.0
    detection_probability: float = 0.9

    def __post_init__(self) -> None:
        """Validate every field so an existing object is always usable."""
        positive("flops", self.flops)
        positive_int("chips", self.chips)
        positive("chip_flops_per_day", self.chip_flops_per_day)
        positive("snapshots_per_day", self.snapshots_per_day)
        positive("run_days", self.run_days)
        positive("period_days", self.period_days)
        probability("detection_probability", self.detection_probability)
        # each value can be finite while the run's size in chips is not (a
        # denormal a or T): refuse here, not as an overflow deep in Eq. 1
        chip_days = self.chip_flops_per_day * self.run_days
        if not (0 < chip_days < math.inf and math.isfinite(self.flops / chip_days)):
            msg = (
                f"flops / (chip_flops_per_day * run_days): expected a finite number of "
                f"chips, got {self.flops:.3g} / ({self.chip_flops_per_day:.3g} * "
                f"{self.run_days:.3g})"
            )
            raise ParameterError(msg)

    def with_chips(self, chips: int) -> SamplingParams:
        """Return a copy for a stockpile of `chips` chips."""
        return replace(self, chips=chips)

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as a JSON-ready mapping."""
        return {
            "flops": self.flops,
            "chips": self.chips,
            "chip_flops_per_day": self.chip_flops_per_day,
            "snapshots_per_day": self.snapshots_per_day,
            "run_days": self.run_days,
            "period_days": self.period_days,
            "detection_probability": self.detection_probability,
        }


@dataclass(frozen=True, slots=True)
class SamplingPlan:
    """The outcome of Equation 1 for one `SamplingParams`.

    Attributes:
        params: the inputs.
        min_chips_exact: `H / (a T)`.
        min_chips: `min_chips_exact` rounded up ("H100s to train in 1 yr").
        run_fraction: `b = H / (a T C)`, the chance a sampled chip was in the run.
        snapshot_probability: `p_w = 1 - exp(-f T_m)`.
        per_sample_detection: `b * p_w`, the chance one sample catches the run.
        samples_per_period_exact: `s` of Equation 1, unrounded.
        samples_per_period: `s` rounded up (at least 1).
        samples_per_year_exact: `365 s / T_m`, unrounded.
        samples_per_year: `365 s / T_m` rounded up, as in Table 1.
    """

    params: SamplingParams
    min_chips_exact: float
    min_chips: int
    run_fraction: float
    snapshot_probability: float
    per_sample_detection: float
    samples_per_period_exact: float
    samples_per_period: int
    samples_per_year_exact: float
    samples_per_year: int

    def to_dict(self) -> dict[str, Any]:
        """Return the plan as a JSON-ready mapping."""
        return {
            "params": self.params.to_dict(),
            "min_chips_exact": self.min_chips_exact,
            "min_chips": self.min_chips,
            "run_fraction": self.run_fraction,
            "snapshot_probability": self.snapshot_probability,
            "per_sample_detection": self.per_sample_detection,
            "samples_per_period_exact": self.samples_per_period_exact,
            "samples_per_period": self.samples_per_period,
            "samples_per_year_exact": self.samples_per_year_exact,
            "samples_per_year": self.samples_per_year,
        }


def plan_samples(params: SamplingParams) -> SamplingPlan:
    """Apply Equation 1 to `params`.

    Raises:
        InfeasibleRunError: the run needs more chips than the Prover owns.
        ParameterError: the run is so small relative to the stockpile that no
            practical number of samples detects it.
    """
    need = min_chips(params.flops, params.chip_flops_per_day, params.run_days)
    if need > params.chips:
        msg = (
            f"a run of {params.flops:.3g} FLOPs over {params.run_days:g} days needs "
            f"{math.ceil(need)} chips at {params.chip_flops_per_day:.3g} FLOPs/chip-day, "
            f"but the Prover owns {params.chips}"
        )
        raise InfeasibleRunError(msg)
    b = need / params.chips
    p_w = snapshot_probability(params.snapshots_per_day, params.period_days)
    q = b * p_w
    if q >= 1.0:
        total = 0.0  # every sample catches the run: one inspection suffices
    else:
        denom = math.log1p(-q)
        total = math.inf if denom == 0.0 else math.log1p(-params.detection_probability) / denom
    if not math.isfinite(total) or total * params.period_days / params.run_days > _MAX_SAMPLES:
        msg = (
            f"per-sample detection probability {q:.3g} is too small: detecting the run "
            f"with p={params.detection_probability} needs more than {_MAX_SAMPLES:.0e} samples"
        )
        raise ParameterError(msg)
    s = total * params.period_days / params.run_days
    per_year = DAYS_PER_YEAR * s / params.period_days
    return SamplingPlan(
        params=params,
        min_chips_exact=need,
        min_chips=ceil_count(need),
        run_fraction=b,
        snapshot_probability=p_w,
        per_sample_detection=q,
        samples_per_period_exact=s,
        samples_per_period=max(1, ceil_count(s)),
        samples_per_year_exact=per_year,
        samples_per_year=max(1, ceil_count(per_year)),
    )


def detection_probability(params: SamplingParams, samples_per_period: float) -> float:
    """Invert Equation 1: the chance `s` samples a period catch the run.

    `1 - (1 - b p_w) ** (s T / T_m)`, the probability that at least one of the
    run's `s T / T_m` samples lands on a run chip that holds a snapshot.
    """
    s = positive("samples_per_period", samples_per_period)
    need = min_chips(params.flops, params.chip_flops_per_day, params.run_days)
    if need > params.chips:
        msg = f"the run needs {math.ceil(need)} chips but the Prover owns {params.chips}"
        raise InfeasibleRunError(msg)
    q = need / params.chips * snapshot_probability(params.snapshots_per_day, params.period_days)
    draws = s * params.run_days / params.period_days
    if q >= 1.0:
        return 1.0
    return -math.expm1(draws * math.log1p(-q))
