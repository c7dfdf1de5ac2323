"""The sampling mathematics of compute monitoring (paper §3.2, Appendices B-C).

How many chips must a Verifier inspect to catch a large rule-breaking
training run? This package answers with Equation 1 (`plan_samples`),
reproduces Table 1 (`table1`) and footnote 5 (`estimate_inspectors`), pools
colluding Provers (`pooled_plan`), analyses evasion by reshaping the run
(`figure2`, `check_theorem1`), and simulates the whole regime by Monte Carlo
(`simulate`).

Example::

    >>> from computewatch.analysis import SamplingParams, plan_samples
    >>> plan = plan_samples(SamplingParams(flops=9.9e24, chips=100_000))
    >>> plan.min_chips, plan.samples_per_year
    (314, 771)
"""

from typing import TYPE_CHECKING

from computewatch._lazy import lazy_exports

if TYPE_CHECKING:
    from computewatch.analysis._collusion import PooledPlan, allocate, pooled_plan
    from computewatch.analysis._evasion import (
        Figure2,
        Theorem1Check,
        check_theorem1,
        compressed_detection,
        figure2,
        stretched_detection,
    )
    from computewatch.analysis._figures import plot_figure2
    from computewatch.analysis._sampling import (
        DAYS_PER_YEAR,
        H100_FLOPS_PER_DAY,
        SamplingParams,
        SamplingPlan,
        detection_probability,
        min_chips,
        plan_samples,
        snapshot_probability,
    )
    from computewatch.analysis._simulator import (
        Engine,
        Placement,
        Scenario,
        SimulationResult,
        Strategy,
        simulate,
    )
    from computewatch.analysis._table1 import (
        TABLE1_MODELS,
        TABLE1_STOCKPILES,
        InspectorEstimate,
        Table1Row,
        estimate_inspectors,
        table1,
    )

if not TYPE_CHECKING:  # every name is imported from its module on first use (ADR 0043)
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "PooledPlan": "computewatch.analysis._collusion",
            "allocate": "computewatch.analysis._collusion",
            "pooled_plan": "computewatch.analysis._collusion",
            "Figure2": "computewatch.analysis._evasion",
            "Theorem1Check": "computewatch.analysis._evasion",
            "check_theorem1": "computewatch.analysis._evasion",
            "compressed_detection": "computewatch.analysis._evasion",
            "figure2": "computewatch.analysis._evasion",
            "stretched_detection": "computewatch.analysis._evasion",
            "plot_figure2": "computewatch.analysis._figures",
            "DAYS_PER_YEAR": "computewatch.analysis._sampling",
            "H100_FLOPS_PER_DAY": "computewatch.analysis._sampling",
            "SamplingParams": "computewatch.analysis._sampling",
            "SamplingPlan": "computewatch.analysis._sampling",
            "detection_probability": "computewatch.analysis._sampling",
            "min_chips": "computewatch.analysis._sampling",
            "plan_samples": "computewatch.analysis._sampling",
            "snapshot_probability": "computewatch.analysis._sampling",
            "Engine": "computewatch.analysis._simulator",
            "Placement": "computewatch.analysis._simulator",
            "Scenario": "computewatch.analysis._simulator",
            "SimulationResult": "computewatch.analysis._simulator",
            "Strategy": "computewatch.analysis._simulator",
            "simulate": "computewatch.analysis._simulator",
            "TABLE1_MODELS": "computewatch.analysis._table1",
            "TABLE1_STOCKPILES": "computewatch.analysis._table1",
            "InspectorEstimate": "computewatch.analysis._table1",
            "Table1Row": "computewatch.analysis._table1",
            "estimate_inspectors": "computewatch.analysis._table1",
            "table1": "computewatch.analysis._table1",
        },
    )

__all__ = [
    "DAYS_PER_YEAR",
    "H100_FLOPS_PER_DAY",
    "TABLE1_MODELS",
    "TABLE1_STOCKPILES",
    "Engine",
    "Figure2",
    "InspectorEstimate",
    "Placement",
    "PooledPlan",
    "SamplingParams",
    "SamplingPlan",
    "Scenario",
    "SimulationResult",
    "Strategy",
    "Table1Row",
    "Theorem1Check",
    "allocate",
    "check_theorem1",
    "compressed_detection",
    "detection_probability",
    "estimate_inspectors",
    "figure2",
    "min_chips",
    "plan_samples",
    "plot_figure2",
    "pooled_plan",
    "simulate",
    "snapshot_probability",
    "stretched_detection",
    "table1",
]
