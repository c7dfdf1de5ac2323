"""Hypothesis strategies for facts and rule conditions."""

from __future__ import annotations

from hypothesis import strategies as st

from computewatch.rules import (
    DeclaredFacts,
    Facts,
    PropertyEstimate,
    RuleKind,
    RunFacts,
    TrainingFacts,
)

KEYS = st.sampled_from(["x", "y"])
DOUBLES = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, 1e300, -1e-300])


@st.composite
def estimates(draw: st.DrawFn) -> PropertyEstimate:
    sampled = draw(st.integers(1, 10_000))
    flagged = draw(st.integers(0, sampled))
    est = flagged / sampled
    lower = draw(st.floats(0.0, est))
    upper = draw(st.floats(est, 1.0))
    return PropertyEstimate(est, lower, upper, sampled, flagged)


FACTS = st.builds(
    Facts,
    run=st.builds(
        RunFacts,
        id=st.text(st.characters(codec="utf-8", categories=["L", "N"]), min_size=1, max_size=20),
        chips=st.integers(0, 2**63 - 1),
        steps=st.integers(0, 2**63 - 1),
    ),
    training=st.builds(
        TrainingFacts,
        flops=st.floats(0.0, 1e300) | st.just(0.0),
        chip_hours=st.floats(0.0, 1e300),
    ),
    data=st.dictionaries(KEYS, estimates()),
    hyper=st.dictionaries(KEYS, DOUBLES | st.booleans() | st.sampled_from(["", "a", "x y"])),
    benchmarks=st.dictionaries(KEYS, DOUBLES),
    declared=st.builds(
        DeclaredFacts, st.booleans(), st.lists(st.sampled_from(["r0", "r1", "zz"])).map(tuple)
    ),
    verified=st.booleans(),
)

DOUBLE_TERMS = st.sampled_from(
    [
        "training.flops",
        "training.chip_hours",
        "data.x.upper",
        "data.y.estimate",
        "hyper.x",
        "hyper['y']",
        "benchmarks.x",
        "benchmarks.y",
        "double(run.chips)",
        "double(run.steps)",
        "1e11",
        "0.0",
        "-2.5",
    ]
)
INT_TERMS = st.sampled_from(
    [
        "run.chips",
        "run.steps",
        "data.x.flagged",
        "data.y.sampled",
        "size(declared.approvals)",
        "0",
        "9223372036854775807",
    ]
)


def _doubles() -> st.SearchStrategy[str]:
    return st.recursive(
        DOUBLE_TERMS,
        lambda inner: st.tuples(inner, st.sampled_from("+-*/"), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        max_leaves=4,
    )


def _ints() -> st.SearchStrategy[str]:
    return st.recursive(
        INT_TERMS,
        lambda inner: st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "%"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        max_leaves=3,
    )


COMPARE = st.sampled_from(["<", "<=", ">", ">=", "==", "!="])
BOOL_TERMS = (
    st.tuples(_doubles(), COMPARE, _doubles()).map(" ".join)
    | st.tuples(_ints(), COMPARE, _ints()).map(" ".join)
    | st.sampled_from(
        [
            "verified",
            "declared.reported",
            "'r0' in declared.approvals",
            "has(data.x)",
            "has(hyper.y)",
            "hyper.x",
            "hyper.y == 'a'",
            "run.id.startsWith('a')",
            "'x' in benchmarks",
        ]
    )
)
CONDITIONS = st.recursive(
    BOOL_TERMS,
    lambda inner: (
        st.tuples(inner, st.sampled_from(["&&", "||"]), inner).map(lambda t: f"({' '.join(t)})")
        | inner.map(lambda c: f"!({c})")
        | st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})")
    ),
    max_leaves=4,
)


@st.composite
def rule_sets(draw: st.DrawFn) -> list[str]:
    lines = []
    for n in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(list(RuleKind)))
        when = draw(CONDITIONS)
        extra = f', require: "{draw(CONDITIONS)}"' if kind is RuleKind.MITIGATION else ""
        lines.append(f'{{id: r{n}, kind: {kind.value}, when: "{when}"{extra}}}')
    return lines
