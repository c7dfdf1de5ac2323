"""CEL conditions: readable error messages, the dry run, and failing closed."""

from __future__ import annotations

import pytest
from celpy.evaluation import CELEvalError

from computewatch.errors import FormatError
from computewatch.rules import load_rules
from computewatch.rules._expr import CompiledExpr, EvalError, compile_expr, describe


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            CELEvalError(
                "found no matching overload for Token('RULE', 'relation_eq') applied to "
                "'(<class 'celpy.celtypes.DoubleType'>, <class 'celpy.celtypes.IntType'>)'",
                TypeError,
                (),
            ),
            "type error: no operator '==' for (double, int)",
        ),
        (
            CELEvalError("undeclared reference to 'foo' (in activation 'Activation(...)')"),
            "undeclared reference to 'foo'",
        ),
        (
            CELEvalError(
                "found no matching overload for _&&_ applied to '(<class "
                "'celpy.evaluation.CELEvalError'>, <class 'celpy.evaluation.CELEvalError'>)'",
                TypeError,
                (),
            ),
            "type error: no operator '&&' for (error, error)",
        ),
        (CELEvalError("no such key", KeyError, ("k",)), "missing fact: no such key"),
        (
            CELEvalError(
                "no such overload", AttributeError, ("'DoubleType' object has no attribute 'x'",)
            ),
            "type error: no such overload ('double' object has no attribute 'x')",
        ),
        (CELEvalError("no such overload", TypeError, ()), "type error"),
        (
            CELEvalError("return error for overflow", ValueError, ()),
            "return error for overflow (ValueError)",
        ),
        (CELEvalError("line one\nline two"), "line one"),
        (CELEvalError(), "evaluation error"),
    ],
)
def test_describe_makes_one_readable_line(error: CELEvalError, message: str) -> None:
    assert describe(error) == message


class BrokenRunner:
    def evaluate(self, activation: object) -> object:
        del activation
        msg = "interpreter bug"
        raise RuntimeError(msg)


def test_any_interpreter_fault_is_an_eval_error() -> None:
    expr = CompiledExpr("verified", frozenset(), BrokenRunner())  # type: ignore[arg-type]
    with pytest.raises(EvalError) as e:
        expr.evaluate({})
    assert e.value.detail == "evaluation failed (RuntimeError: interpreter bug)"


def test_compile_records_the_longest_fact_paths() -> None:
    expr = compile_expr(
        "data.exploit_code.upper > 0.1 && has(data.x) && hyper['lr'] > 0.0 "
        "&& [1].exists(v, v > run.chips)",
        "t",
    )
    assert expr.paths == frozenset(
        {
            ("data", "exploit_code", "upper"),
            ("data", "x"),
            ("hyper", "lr"),
            ("run", "chips"),
        }
    )


def test_hyper_keys_may_have_any_of_their_types() -> None:
    compile_expr("hyper.opt == 'adam' && hyper.lr > 0.1 && hyper.rl", "t")
    # more keys than are tried in every combination: still accepted when all share a type
    five = " && ".join(f"hyper.k{i} > 0.5" for i in range(5))
    compile_expr(five, "t")
    with pytest.raises(FormatError, match=r"^t: type error: "):
        compile_expr(five + " && size(hyper.k0) > 0.5", "t")


def test_too_many_rules() -> None:
    body = "".join(f"  - {{id: r{n}, kind: ban, when: 'verified'}}\n" for n in range(1001))
    with pytest.raises(FormatError, match=r"field 'rules': expected at most 1000 rules, got 1001"):
        load_rules(f"version: 1\nname: t\nrules:\n{body}")
