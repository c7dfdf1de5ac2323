"""Facts builders shared by the rules tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from computewatch.rules import (
    DeclaredFacts,
    Facts,
    HyperValue,
    PropertyEstimate,
    RuleSet,
    RunFacts,
    TrainingFacts,
    load_rules,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_RULES = ROOT / "examples" / "rules.yaml"


def make_facts(
    *,
    flops: float = 5e10,
    chip_hours: float = 0.2,
    chips: int = 4,
    steps: int = 300,
    data: dict[str, PropertyEstimate] | None = None,
    hyper: dict[str, HyperValue] | None = None,
    benchmarks: dict[str, float] | None = None,
    reported: bool = False,
    approvals: tuple[str, ...] = (),
    verified: bool = True,
    run_id: str = "run-a",
) -> Facts:
    """Facts of a small run; every part can be overridden."""
    return Facts(
        run=RunFacts(run_id, chips=chips, steps=steps),
        training=TrainingFacts(flops, chip_hours),
        data={} if data is None else data,
        hyper={} if hyper is None else hyper,
        benchmarks={} if benchmarks is None else benchmarks,
        declared=DeclaredFacts(reported=reported, approvals=approvals),
        verified=verified,
    )


def estimate(upper: float, *, sampled: int = 200, flagged: int = 0) -> PropertyEstimate:
    """A data-property estimate with the given upper bound."""
    est = flagged / sampled
    return PropertyEstimate(est, min(est, upper), max(est, upper), sampled, flagged)


def demo_facts(**overrides: Any) -> Facts:
    """Facts of the demo's compliant run (5e10 FLOPs, clean data, a weak model)."""
    args: dict[str, Any] = {
        "data": {"exploit_code": estimate(0.018)},
        "benchmarks": {"bits_per_byte": 2.9},
    }
    args.update(overrides)
    return make_facts(**args)


def rules(*lines: str, name: str = "rules.yaml") -> RuleSet:
    """A rule set from rule entries written as YAML flow mappings, one a line."""
    body = "".join(f"  - {line}\n" for line in lines)
    return load_rules(f"version: 1\nname: test regime\nrules:\n{body}", name=name)
