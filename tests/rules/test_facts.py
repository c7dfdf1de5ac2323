"""The facts schema: validation, JSON round trip, and the CEL types rules see."""

from __future__ import annotations

import math
from typing import Any

import pytest
from celpy import celtypes
from hypothesis import given

from computewatch.errors import FormatError, ParameterError
from computewatch.rules import (
    NAMESPACES,
    DeclaredFacts,
    Facts,
    PropertyEstimate,
    RunFacts,
    TrainingFacts,
)
from tests.rules.facts import estimate, make_facts
from tests.rules.strategies import FACTS


def wrong(value: object) -> Any:
    """A value of the wrong type, passed on purpose: constructors check at run time."""
    return value


def full_facts() -> Facts:
    return make_facts(
        data={"exploit_code": estimate(0.03, sampled=100, flagged=1)},
        hyper={"lr": 3e-3, "batch_size": 32, "optimizer": "adamw", "use_rl": False},
        benchmarks={"bits_per_byte": 2.5},
        reported=True,
        approvals=("approval-for-frontier",),
    )


def test_to_cel_types_follow_the_schema() -> None:
    cel = full_facts().to_cel()
    assert set(cel) == set(NAMESPACES)
    s = celtypes.StringType
    run, training = cel["run"], cel["training"]
    assert isinstance(run, celtypes.MapType)
    assert isinstance(training, celtypes.MapType)
    assert isinstance(run[s("chips")], celtypes.IntType)
    assert isinstance(run[s("id")], celtypes.StringType)
    assert isinstance(training[s("flops")], celtypes.DoubleType)
    hyper = cel["hyper"]
    assert isinstance(hyper, celtypes.MapType)
    # integers in the configuration become doubles; strings and bools stay
    assert isinstance(hyper[s("batch_size")], celtypes.DoubleType)
    assert isinstance(hyper[s("optimizer")], celtypes.StringType)
    assert isinstance(hyper[s("use_rl")], celtypes.BoolType)
    data = cel["data"]
    assert isinstance(data, celtypes.MapType)
    prop = data[s("exploit_code")]
    assert isinstance(prop, celtypes.MapType)
    assert isinstance(prop[s("upper")], celtypes.DoubleType)
    assert isinstance(prop[s("flagged")], celtypes.IntType)
    declared = cel["declared"]
    assert isinstance(declared, celtypes.MapType)
    assert isinstance(declared[s("approvals")], celtypes.ListType)
    assert isinstance(cel["verified"], celtypes.BoolType)


def test_integers_are_stored_as_floats() -> None:
    facts = Facts(RunFacts("r", 1, 2), TrainingFacts(5, 1), hyper={"n": 3}, benchmarks={"b": 1})
    assert isinstance(facts.training.flops, float)
    assert isinstance(facts.hyper["n"], float)
    assert isinstance(facts.benchmarks["b"], float)


def test_mappings_are_read_only_and_facts_unhashable() -> None:
    facts = full_facts()
    with pytest.raises(TypeError):
        facts.hyper["lr"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError, match="unhashable"):
        hash(facts)
    assert facts == full_facts()
    assert facts != make_facts()


def test_has() -> None:
    facts = full_facts()
    assert facts.has(("data", "exploit_code", "upper"))
    assert facts.has(("hyper",))
    assert not facts.has(("data", "missing"))
    assert not facts.has(("training", "flops", "x"))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: RunFacts("", 1, 1), "facts run.id: expected printable text"),
        (lambda: RunFacts("r", -1, 1), "facts run.chips: expected an integer in"),
        (lambda: RunFacts("r", 1, wrong(1.5)), "facts run.steps: expected an integer in"),
        (lambda: TrainingFacts(math.nan, 1), "facts training.flops: expected a finite number"),
        (lambda: TrainingFacts(1, -1), "facts training.chip_hours: expected a finite number >= 0"),
        (
            lambda: DeclaredFacts(reported=wrong(1)),
            "facts declared.reported: expected a bool, got 1",
        ),
        (lambda: DeclaredFacts(approvals=wrong("a")), "facts declared.approvals: expected a list"),
        (lambda: DeclaredFacts(approvals=("",)), r"facts declared.approvals\[0\]: expected"),
        (
            lambda: Facts(RunFacts("r", 1, 1), wrong(None)),
            "facts training: expected a TrainingFacts, got None",
        ),
        (
            lambda: make_facts(hyper={"lr": math.inf}),
            "facts hyper.lr: expected a finite number, got inf",
        ),
        (
            lambda: make_facts(hyper={"x": wrong(None)}),
            "facts hyper.x: expected a finite number, got None",
        ),
        (
            lambda: make_facts(hyper={"x": "a\nb"}),
            "facts hyper.x: expected printable text of at most 1024 characters",
        ),
        (
            lambda: make_facts(benchmarks={"b": True}),
            "facts benchmarks.b: expected a finite number, got True",
        ),
        (lambda: make_facts(data={"p": wrong(0.1)}), "facts data.p: expected a PropertyEstimate"),
        (lambda: make_facts(hyper={"": 1.0}), "facts hyper key: expected printable text"),
        (lambda: make_facts(hyper=wrong([1.0])), r"facts hyper: expected a mapping, got \[1.0\]"),
        (lambda: make_facts(verified=wrong(None)), "facts verified: expected a bool, got None"),
    ],
)
def test_constructors_validate(build: Any, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        build()


def test_from_dict_round_trip_and_defaults() -> None:
    facts = full_facts()
    assert Facts.from_dict(facts.to_dict()) == facts
    minimal = Facts.from_dict(
        {
            "run": {"id": "r", "chips": 4, "steps": 10},
            "training": {"flops": 5, "chip_hours": 0},
        }
    )
    assert minimal.declared == DeclaredFacts(reported=False, approvals=())
    assert minimal.verified is False
    assert dict(minimal.data) == {}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("run"), "facts.json: missing key 'run'"),
        (lambda d: d.update(extra=1), "facts.json: unknown key 'extra'; expected one of"),
        (lambda d: d["run"].pop("steps"), "facts.json field 'run': missing key 'steps'"),
        (
            lambda d: d["training"].update(flop=1),
            "facts.json field 'training': unknown key 'flop'; expected one of chip_hours, flops",
        ),
        (
            lambda d: d["training"].update(flops="1e18"),
            "facts.json field 'training.flops': expected a number >= 0, got '1e18'",
        ),
        (
            lambda d: d["run"].update(chips=True),
            "facts.json field 'run.chips': expected an integer in",
        ),
        (lambda d: d.update(data=[]), "facts.json field 'data': expected an object, got list"),
        (
            lambda d: d["data"]["exploit_code"].pop("upper"),
            "facts.json field 'data.exploit_code': missing key 'upper'",
        ),
        (
            lambda d: d["data"]["exploit_code"].update(upper=0.0),
            "facts.json field 'data.exploit_code': expected lower <= estimate <= upper",
        ),
        (
            lambda d: d["declared"].update(approvals="all"),
            "facts.json field 'declared.approvals': expected a list of rule ids",
        ),
        (
            lambda d: d.update(verified="yes"),
            "facts.json field 'verified': expected a bool, got 'yes'",
        ),
        (
            lambda d: d["hyper"].update(nested={"a": 1}),
            "facts.json field 'hyper.nested': expected a finite number",
        ),
    ],
)
def test_from_dict_errors_name_the_field(change: Any, message: str) -> None:
    doc = full_facts().to_dict()
    change(doc)
    with pytest.raises(FormatError, match=f"^{message}"):
        Facts.from_dict(doc, where="facts.json")


def test_from_dict_of_a_non_object() -> None:
    with pytest.raises(FormatError, match=r"^facts: expected an object, got list"):
        Facts.from_dict([])


@given(FACTS)
def test_json_round_trip(facts: Facts) -> None:
    assert Facts.from_dict(facts.to_dict()) == facts


def test_property_estimate_validates() -> None:
    assert PropertyEstimate(0, 0, 1, 1, 0).upper == 1.0
    with pytest.raises(ParameterError, match="expected 0 <= flagged <= sampled"):
        PropertyEstimate(0.5, 0.1, 0.9, 2, 3)
    with pytest.raises(ParameterError, match="sampled: expected a whole number >= 0"):
        PropertyEstimate(0.5, 0.1, 0.9, -2, 1)
    with pytest.raises(ParameterError, match="upper: expected a number in"):
        PropertyEstimate(0.5, 0.1, 1.5, 2, 1)
    with pytest.raises(ParameterError, match="expected lower <= estimate <= upper"):
        PropertyEstimate(0.5, 0.6, 0.9, 2, 1)
