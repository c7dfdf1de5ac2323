"""Evaluating rules: every kind and outcome, combinations, and failing closed."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings

from computewatch.errors import FormatError
from computewatch.rules import (
    Facts,
    RuleKind,
    RuleReport,
    RuleResult,
    RuleSet,
    RuleStatus,
    evaluate,
    load_rules,
)
from tests.rules.facts import EXAMPLE_RULES, demo_facts, estimate, make_facts, rules
from tests.rules.strategies import FACTS, rule_sets

C, V, NA, ERR = (
    RuleStatus.COMPLIANT,
    RuleStatus.VIOLATION,
    RuleStatus.NOT_APPLICABLE,
    RuleStatus.ERROR,
)


def status(rule: str, facts: Facts) -> RuleStatus:
    report = evaluate(rules(rule), facts)
    assert len(report.results) == 1
    return report.results[0].status


@pytest.mark.parametrize(
    ("flops", "upper", "want"),
    [(1e12, 0.0, V), (1e10, 0.0, NA), (1e10, 0.2, V)],
)
def test_ban(flops: float, upper: float, want: RuleStatus) -> None:
    rule = "{id: b, kind: ban, when: 'training.flops > 1e11 || data.exploit_code.upper > 0.05'}"
    facts = make_facts(flops=flops, data={"exploit_code": estimate(upper)})
    assert status(rule, facts) is want


@pytest.mark.parametrize(
    ("flops", "declared", "want"),
    [(2e11, "reported", C), (2e11, "silent", V), (5e10, "silent", NA), (5e10, "reported", NA)],
)
def test_reporting(flops: float, declared: str, want: RuleStatus) -> None:
    rule = "{id: report-large-runs, kind: reporting, when: 'training.flops > 1e11'}"
    assert status(rule, make_facts(flops=flops, reported=declared == "reported")) is want


@pytest.mark.parametrize(
    ("flops", "approvals", "want"),
    [
        (2e11, ("frontier",), C),
        (2e11, ("frontier", "other"), C),
        (2e11, (), V),
        (2e11, ("other",), V),
        (1e11, (), NA),
    ],
)
def test_approval(flops: float, approvals: tuple[str, ...], want: RuleStatus) -> None:
    rule = "{id: frontier, kind: approval, when: 'training.flops > 1.5e11'}"
    assert status(rule, make_facts(flops=flops, approvals=approvals)) is want


@pytest.mark.parametrize(
    ("rl_fraction", "flops", "uplift", "want"),
    [
        (0.5, 1e20, 0.1, C),  # applies, require holds
        (0.5, 1e20, 0.3, V),  # applies, require fails
        (0.05, 1e20, 0.9, NA),  # little RL: does not apply
        (0.5, 1e18, 0.9, NA),  # small run: does not apply
    ],
)
def test_mitigation(rl_fraction: float, flops: float, uplift: float, want: RuleStatus) -> None:
    rule = (
        "{id: rl-code-needs-cyber-eval, kind: mitigation, "
        "when: 'hyper.rl_fraction > 0.1 && training.flops > 1e19', "
        "require: 'benchmarks.cyber_uplift < 0.2'}"
    )
    facts = make_facts(
        flops=flops, hyper={"rl_fraction": rl_fraction}, benchmarks={"cyber_uplift": uplift}
    )
    assert status(rule, facts) is want


@pytest.mark.parametrize(
    ("when", "want"),
    [
        ("training.flops > 1e10 && run.chips >= 4", V),
        ("training.flops > 1e12 && run.chips >= 4", NA),
        ("training.flops > 1e12 || run.chips >= 4", V),
        ("!(training.flops > 1e12 || run.chips > 4)", V),
        ("data.exploit_code.flagged > 0 || data.exploit_code.sampled < 100", NA),
        ("data['exploit_code'].upper > 0.01 && hyper.optimizer == 'adamw'", V),
        ("hyper.optimizer.startsWith('sgd') || !hyper.use_rl", V),
        ("'approval-x' in declared.approvals", NA),
        ("size(declared.approvals) == 0 && !declared.reported", V),
        ("verified && run.id == 'run-a' && run.steps == 300", V),
        ("has(benchmarks.cyber_uplift) && benchmarks.cyber_uplift > 0.1", NA),
        ("training.chip_hours * 3600.0 > 100.0", V),
        ("double(run.chips) * training.chip_hours > 0.5", V),
        ("training.flops / double(run.steps) > 1e8", V),
        ("hyper.batch_size >= 32.0 ? training.flops > 1e10 : false", V),
        ("[1, 2, 3].exists(x, x > run.chips)", NA),
        ("benchmarks.all(k, benchmarks[k] < 1.0)", NA),
    ],
)
def test_combinations_and_nested_facts(when: str, want: RuleStatus) -> None:
    facts = make_facts(
        data={"exploit_code": estimate(0.03)},
        hyper={"optimizer": "adamw", "use_rl": False, "batch_size": 32},
        benchmarks={"bits_per_byte": 2.5},
    )
    assert status(f'{{id: c, kind: ban, when: "{when}"}}', facts) is want


@pytest.mark.parametrize(
    ("rule", "facts", "detail"),
    [
        (
            "{id: e, kind: ban, when: 'data.exploit_code.upper > 0.05'}",
            make_facts(),
            "field 'when': missing fact 'data.exploit_code'",
        ),
        (
            "{id: e, kind: mitigation, when: 'true', require: 'benchmarks.cyber_uplift < 0.2'}",
            make_facts(),
            "field 'require': missing fact 'benchmarks.cyber_uplift'",
        ),
        (
            "{id: e, kind: reporting, when: 'hyper.rl_fraction > 0.1'}",
            make_facts(hyper={"lr": 0.1}),
            "field 'when': missing fact 'hyper.rl_fraction'",
        ),
        (
            "{id: e, kind: ban, when: 'hyper.rl_fraction > 0.1'}",
            make_facts(hyper={"rl_fraction": "lots"}),
            "field 'when': type error: no operator '>' for (string, double)",
        ),
        (
            "{id: e, kind: ban, when: 'run.chips / (run.steps - 300) > 1'}",
            make_facts(steps=300),
            "field 'when': division by zero",
        ),
        (
            "{id: e, kind: ban, when: \"hyper.opt == 'adam' ? true : hyper.opt\"}",
            make_facts(hyper={"opt": "sgd"}),
            "field 'when': expected a bool, got string",
        ),
        (
            "{id: e, kind: approval, when: \"hyper['learning rate'] > 0.0\"}",
            make_facts(hyper={"lr": 0.1}),
            "field 'when': missing fact 'hyper.learning rate'",
        ),
        (
            '{id: e, kind: ban, when: "run.id.matches(hyper.pattern)"}',
            make_facts(hyper={"pattern": "("}),
            "field 'when': match error (Error)",
        ),
    ],
)
def test_evaluation_error_is_error_status_and_not_compliant(
    rule: str, facts: Facts, detail: str
) -> None:
    report = evaluate(rules(rule), facts)
    (result,) = report.results
    assert result.status is ERR
    assert result.detail == detail
    assert not result.ok
    assert not report.compliant
    assert report.errors == (result,)
    assert report.violations == ()


def test_report_properties_and_json() -> None:
    ruleset = rules(
        "{id: r, kind: reporting, when: 'training.flops > 1e10'}",
        "{id: b, kind: ban, when: 'training.flops > 1e12'}",
        "{id: e, kind: ban, when: 'benchmarks.x > 1.0'}",
        "{id: a, kind: approval, when: 'true'}",
    )
    report = evaluate(ruleset, make_facts(reported=True, run_id="run-z"))
    assert isinstance(report, RuleReport)
    assert [r.status for r in report.results] == [C, NA, ERR, V]
    assert not report
    assert not report.compliant
    assert [r.rule_id for r in report.violations] == ["a"]
    assert [r.rule_id for r in report.errors] == ["e"]
    doc = report.to_dict()
    assert doc["ruleset"] == "test regime"
    assert doc["run"] == "run-z"
    assert doc["compliant"] is False
    assert doc["results"][0] == {
        "rule": "r",
        "kind": "reporting",
        "status": "compliant",
        "detail": "reported, as required",
    }
    ok = evaluate(rules("{id: b, kind: ban, when: 'training.flops > 1e12'}"), make_facts())
    assert ok
    assert ok.compliant
    assert ok.results[0] == RuleResult(
        "b", RuleKind.BAN, NA, "when is false: training.flops > 1e12"
    )


def test_details_say_why() -> None:
    ruleset = rules(
        "{id: r, kind: reporting, when: 'training.flops > 1e10'}",
        "{id: a, kind: approval, when: 'training.flops > 1e10'}",
        "{id: m, kind: mitigation, when: 'true', require: 'verified'}",
        "{id: b, kind: ban, when: 'verified'}",
    )
    details = [r.detail for r in evaluate(ruleset, make_facts(verified=False)).results]
    assert details == [
        (
            "the run must be reported (when holds: training.flops > 1e10) "
            "but declared.reported is false"
        ),
        (
            "needs approval (when holds: training.flops > 1e10): expected 'a' in "
            "declared.approvals, got []"
        ),
        "mitigation required (when holds: true) but require is false: verified",
        "when is false: verified",
    ]


def test_example_rules_split_the_demo_runs() -> None:
    ruleset = load_rules(EXAMPLE_RULES)
    compliant = evaluate(ruleset, demo_facts())
    assert compliant.compliant, compliant.to_dict()
    breaking = evaluate(
        ruleset,
        demo_facts(
            flops=2e11,
            data={"exploit_code": estimate(0.4, flagged=60)},
            run_id="run-b",
        ),
    )
    assert not breaking.compliant
    assert {r.rule_id for r in breaking.violations} == {
        "report-large-runs",
        "no-exploit-code",
        "approval-for-frontier",
    }
    # reported, approved and on clean data, the big run complies
    approved = evaluate(
        ruleset, demo_facts(flops=2e11, reported=True, approvals=("approval-for-frontier",))
    )
    assert approved.compliant, approved.to_dict()
    # no estimate of the data or no benchmark: fail closed
    missing = evaluate(ruleset, make_facts())
    assert {r.rule_id for r in missing.errors} == {"no-exploit-code", "capable-models-need-eval"}


def test_facts_as_json_data_are_accepted() -> None:
    ruleset = load_rules(EXAMPLE_RULES)
    assert evaluate(ruleset, demo_facts().to_dict()) == evaluate(ruleset, demo_facts())


@pytest.mark.parametrize(
    ("doc", "run_id", "detail"),
    [
        (
            {"run": {"id": "run-x", "chips": 4, "steps": 1}},
            "run-x",
            "bad facts: facts: missing key 'training'",
        ),
        (
            {
                "run": {"id": "run-x", "chips": 4, "steps": 1},
                "training": {"flops": 1.0, "chip_hours": 0.0},
                "hyper": {"lr": float("nan")},
            },
            "run-x",
            "bad facts: facts field 'hyper.lr': expected a finite number, got nan",
        ),
        ([1, 2], "unknown", "bad facts: facts: expected an object, got list"),
        (None, "unknown", "bad facts: facts: expected an object, got NoneType"),
    ],
)
def test_malformed_facts_make_every_rule_an_error(doc: object, run_id: str, detail: str) -> None:
    ruleset = load_rules(EXAMPLE_RULES)
    report = evaluate(ruleset, doc)  # type: ignore[arg-type]
    assert not report.compliant
    assert report.run_id == run_id
    assert [r.status for r in report.results] == [ERR] * len(ruleset.rules)
    assert {r.detail for r in report.results} == {detail}


def test_evaluate_checks_its_rules_argument() -> None:
    with pytest.raises(FormatError, match=r"rules: expected a RuleSet \(see load_rules\), got str"):
        evaluate("rules.yaml", make_facts())  # type: ignore[arg-type]


# --- property test: random facts and conditions never raise -----------------------


# Loading compiles and dry-runs every condition (tens of ms): fewer, richer examples.
@settings(max_examples=max(10, settings().max_examples // 4))
@given(FACTS, rule_sets())
def test_random_facts_and_conditions_never_raise(facts: Facts, lines: list[str]) -> None:
    try:
        ruleset = rules(*lines)
    except FormatError:
        return  # refused at load time (a type error the dry run found): fine
    report = evaluate(ruleset, facts)
    assert [r.rule_id for r in report.results] == list(ruleset.ids)
    for result in report.results:
        assert result.status in set(RuleStatus)
        assert result.detail
        assert "\n" not in result.detail
    assert report.compliant == all(
        r.status in {RuleStatus.COMPLIANT, RuleStatus.NOT_APPLICABLE} for r in report.results
    )
    assert evaluate(ruleset, facts) == report  # deterministic


@functools.cache
def example_rules() -> RuleSet:
    return load_rules(EXAMPLE_RULES)


@given(FACTS)
def test_random_facts_on_the_example_rules(facts: Facts) -> None:
    report = evaluate(example_rules(), facts)
    for result in report.results:
        if result.status is RuleStatus.ERROR:
            assert result.detail.startswith(("field 'when'", "field 'require'"))
