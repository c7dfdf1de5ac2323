"""Table 1 of the paper, and footnote 5's inspector headcount.

Table 1 lists, for six models, the samples a year that detect a training run
of `H` FLOPs with probability 0.9, computed from Equation 1 with
`a = 1e15 * 86400` (an H100 SXM's dense 16-bit FLOPs a day), `f = 0.1`,
`T = 365` days and `T_m = 30` days, for Provers owning 1e3, 1e5 and 1e7
chips. A cell is empty ("-") where the run needs more chips than the Prover
owns.

Example::

    >>> from computewatch.analysis import table1
    >>> [row.samples_per_year[1000] for row in table1()]
    [243, 132, 29, 7, None, None]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from computewatch._validate import ceil_count, positive, positive_int
from computewatch.analysis._sampling import (
    DAYS_PER_YEAR,
    H100_FLOPS_PER_DAY,
    SamplingParams,
    min_chips,
    plan_samples,
)
from computewatch.errors import InfeasibleRunError

__all__ = [
    "TABLE1_MODELS",
    "TABLE1_STOCKPILES",
    "InspectorEstimate",
    "Table1Row",
    "estimate_inspectors",
    "table1",
]

#: The models of Table 1 and their training FLOPs `H`.
TABLE1_MODELS: tuple[tuple[str, float], ...] = (
    ("GPT-3", 3.14e23),
    ("Chinchilla", 5.76e23),
    ("PaLM", 2.56e24),
    ("Chinchilla-280B", 9.9e24),
    ("Chinchilla-1T", 1.27e26),
    ("Chinchilla-10T", 1.3e28),
)
#: The Prover stockpiles `C` of Table 1's three sample columns.
TABLE1_STOCKPILES: tuple[int, ...] = (1_000, 100_000, 10_000_000)


@dataclass(frozen=True, slots=True)
class Table1Row:
    """One row of Table 1.

    Attributes:
        model: the model's name.
        flops: `H`.
        chip_days: `H / a`, H100-days of training.
        chips_for_one_year: `H / (a * 365)` rounded up.
        samples_per_year: stockpile `C` -> samples a year, `None` where the
            run needs more chips than `C`.
    """

    model: str
    flops: float
    chip_days: float
    chips_for_one_year: int
    samples_per_year: dict[int, int | None]

    def to_dict(self) -> dict[str, Any]:
        """Return the row in the CLI's JSON contract."""
        return {
            "model": self.model,
            "flops": self.flops,
            "chip_days": self.chip_days,
            "chips_for_one_year": self.chips_for_one_year,
            "samples_per_year": {str(c): n for c, n in self.samples_per_year.items()},
        }


def table1(
    *,
    chip_flops_per_day: float = H100_FLOPS_PER_DAY,
    snapshots_per_day: float = 0.1,
    run_days: float = DAYS_PER_YEAR,
    period_days: float = 30.0,
    detection_probability: float = 0.9,
    models: tuple[tuple[str, float], ...] = TABLE1_MODELS,
    stockpiles: tuple[int, ...] = TABLE1_STOCKPILES,
) -> list[Table1Row]:
    """Compute Table 1 from Equation 1 (defaults are the paper's)."""
    rows: list[Table1Row] = []
    for model, flops in models:
        per_stockpile: dict[int, int | None] = {}
        for chips in stockpiles:
            params = SamplingParams(
                flops=flops,
                chips=chips,
                chip_flops_per_day=chip_flops_per_day,
                snapshots_per_day=snapshots_per_day,
                run_days=run_days,
                period_days=period_days,
                detection_probability=detection_probability,
            )
            try:
                per_stockpile[chips] = plan_samples(params).samples_per_year
            except InfeasibleRunError:
                per_stockpile[chips] = None
        rows.append(
            Table1Row(
                model=model,
                flops=flops,
                chip_days=flops / positive("chip_flops_per_day", chip_flops_per_day),
                chips_for_one_year=ceil_count(min_chips(flops, chip_flops_per_day, run_days)),
                samples_per_year=per_stockpile,
            )
        )
    return rows


@dataclass(frozen=True, slots=True)
class InspectorEstimate:
    """Inspectors needed to carry out a sampling plan (footnote 5).

    Attributes:
        samples_per_year: chip inspections a year.
        chips_per_inspector_per_year: what one inspector covers in a year.
        inspectors: `samples_per_year / chips_per_inspector_per_year`, rounded up.
    """

    samples_per_year: int
    chips_per_inspector_per_year: int
    inspectors: int

    def to_dict(self) -> dict[str, Any]:
        """Return the estimate as a JSON-ready mapping."""
        return {
            "samples_per_year": self.samples_per_year,
            "chips_per_inspector_per_year": self.chips_per_inspector_per_year,
            "inspectors": self.inspectors,
        }


def estimate_inspectors(
    samples_per_year: int, chips_per_inspector_per_year: int = 1_000
) -> InspectorEstimate:
    """Inspectors a plan needs when each covers `chips_per_inspector_per_year`."""
    n = positive_int("samples_per_year", samples_per_year)
    per = positive_int("chips_per_inspector_per_year", chips_per_inspector_per_year)
    return InspectorEstimate(
        samples_per_year=n,
        chips_per_inspector_per_year=per,
        inspectors=-(-n // per),
    )
