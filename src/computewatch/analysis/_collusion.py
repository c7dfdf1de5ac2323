"""Collusion (§3.2): several Provers pooled into one monitored stockpile.

Provers that each lend a few chips to one large run are handled by
monitoring them as a single Prover that owns all their chips: Equation 1 is
applied to the pooled stockpile, and the pooled sample is split among the
Provers in proportion to their chips (stratified sampling, which detects at
least as well as drawing from the pool uniformly).

Example::

    >>> from computewatch.analysis import SamplingParams, pooled_plan
    >>> plan = pooled_plan({"A": 600, "B": 400}, SamplingParams(flops=5.76e23, chips=1))
    >>> plan.plan.samples_per_year, plan.samples_per_year
    (132, {'A': 79, 'B': 53})
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from computewatch._validate import positive_int
from computewatch.analysis._sampling import SamplingParams, SamplingPlan, plan_samples
from computewatch.errors import ParameterError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["PooledPlan", "allocate", "pooled_plan"]


def allocate(total: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Split `total` samples across Provers in proportion to `weights`.

    Largest-remainder rounding: the parts sum to `total` exactly and each
    differs from its exact share by less than one. Ties go to the name that
    sorts first, so the split is reproducible.
    """
    if not weights:
        msg = "allocate: expected at least one Prover, got none"
        raise ParameterError(msg)
    if total < 0:
        msg = f"allocate: expected a total >= 0, got {total}"
        raise ParameterError(msg)
    for name, w in weights.items():
        positive_int(f"chips of Prover {name!r}", w)
    pool = sum(weights.values())
    exact = {name: total * w / pool for name, w in weights.items()}
    parts = {name: math.floor(x) for name, x in exact.items()}
    short = total - sum(parts.values())
    by_remainder = sorted(exact, key=lambda n: (-(exact[n] - parts[n]), n))
    for name in by_remainder[:short]:
        parts[name] += 1
    return parts


@dataclass(frozen=True, slots=True)
class PooledPlan:
    """Equation 1 on the pooled stockpile, and each Prover's share of it.

    Attributes:
        stockpiles: Prover -> chips owned.
        plan: the plan for the pooled stockpile.
        samples_per_period: Prover -> its share of the pooled `s`.
        samples_per_year: Prover -> its share of the pooled samples a year.
    """

    stockpiles: dict[str, int]
    plan: SamplingPlan
    samples_per_period: dict[str, int]
    samples_per_year: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """Return the pooled plan as a JSON-ready mapping."""
        return {
            "stockpiles": self.stockpiles,
            "plan": self.plan.to_dict(),
            "samples_per_period": self.samples_per_period,
            "samples_per_year": self.samples_per_year,
        }


def pooled_plan(stockpiles: Mapping[str, int], params: SamplingParams) -> PooledPlan:
    """Plan for colluding Provers monitored as one (`params.chips` is ignored)."""
    if not stockpiles:
        msg = "pooled_plan: expected at least one Prover stockpile, got none"
        raise ParameterError(msg)
    clean = {name: positive_int(f"chips of Prover {name!r}", c) for name, c in stockpiles.items()}
    plan = plan_samples(params.with_chips(sum(clean.values())))
    return PooledPlan(
        stockpiles=clean,
        plan=plan,
        samples_per_period=allocate(plan.samples_per_period, clean),
        samples_per_year=allocate(plan.samples_per_year, clean),
    )
