"""Evaluate a rule set on one run's facts; fail closed.

Each rule gives a `RuleResult`:

=============  ===========================================================
kind           `when` true                              `when` false
=============  ===========================================================
`ban`          violation                                not applicable
`reporting`    compliant if `declared.reported`, else   not applicable
               violation
`approval`     compliant if the rule's id is in          not applicable
               `declared.approvals`, else violation
`mitigation`   compliant if `require` is true, else     not applicable
               violation
=============  ===========================================================

A condition that cannot be evaluated on the facts (a missing fact, a type
error, a result that is not a bool) gives status `error`, which counts as
non-compliant; so do facts given as JSON-shaped data that do not fit the
schema. Nothing raises out of `evaluate` for any facts.

Example::

    >>> from computewatch.rules import Facts, RunFacts, TrainingFacts, evaluate, load_rules
    >>> rules = load_rules('''
    ... version: 1
    ... name: demo
    ... rules:
    ...   - {id: big-runs-report, kind: reporting, when: "training.flops > 1e11"}
    ... ''')
    >>> facts = Facts(RunFacts("r1", chips=4, steps=300), TrainingFacts(2e11, 0.1))
    >>> report = evaluate(rules, facts)
    >>> report.compliant, report.results[0].status.value
    (False, 'violation')
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celpy import celtypes

from computewatch.errors import FormatError
from computewatch.rules._expr import EvalError, cel_type_name
from computewatch.rules._facts import Facts
from computewatch.rules._ruleset import Rule, RuleKind, RuleSet

if TYPE_CHECKING:
    from computewatch.rules._expr import CompiledExpr

__all__ = ["RuleReport", "RuleResult", "RuleStatus", "evaluate"]


class RuleStatus(enum.StrEnum):
    """The outcome of one rule on one run."""

    COMPLIANT = "compliant"
    VIOLATION = "violation"
    #: `when` is false: the rule does not apply (and is not broken).
    NOT_APPLICABLE = "not_applicable"
    #: The rule could not be evaluated: counts as non-compliant (fail closed).
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule's outcome with a one-line reason."""

    rule_id: str
    kind: RuleKind
    status: RuleStatus
    detail: str

    @property
    def ok(self) -> bool:
        """True for compliant and not applicable; False for violation and error."""
        return self.status in {RuleStatus.COMPLIANT, RuleStatus.NOT_APPLICABLE}

    def to_dict(self) -> dict[str, str]:
        """The result as JSON-ready data."""
        return {
            "rule": self.rule_id,
            "kind": self.kind.value,
            "status": self.status.value,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class RuleReport:
    """Every rule's result for one run; compliant only if no violation or error."""

    ruleset: str
    run_id: str
    results: tuple[RuleResult, ...]

    @property
    def compliant(self) -> bool:
        """True if every rule is compliant or not applicable."""
        return all(r.ok for r in self.results)

    @property
    def violations(self) -> tuple[RuleResult, ...]:
        """The results with status violation."""
        return tuple(r for r in self.results if r.status is RuleStatus.VIOLATION)

    @property
    def errors(self) -> tuple[RuleResult, ...]:
        """The results with status error (non-compliant: fail closed)."""
        return tuple(r for r in self.results if r.status is RuleStatus.ERROR)

    def __bool__(self) -> bool:
        """`compliant`."""
        return self.compliant

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "ruleset": self.ruleset,
            "run": self.run_id,
            "compliant": self.compliant,
            "results": [r.to_dict() for r in self.results],
        }


def evaluate(rules: RuleSet, facts: Facts | Mapping[str, Any]) -> RuleReport:
    """Evaluate every rule of `rules` on `facts`.

    Args:
        rules: A loaded rule set.
        facts: The run's facts, as `Facts` or as JSON-shaped data in the same
            schema (converted with `Facts.from_dict`). Facts that do not fit
            the schema make every rule an `error` (fail closed).

    Raises:
        FormatError: only if `rules` is not a `RuleSet`. Evaluation problems
            never raise: they are results with status `error`.
    """
    given: object = rules  # check whatever the annotation says
    if not isinstance(given, RuleSet):
        msg = f"rules: expected a RuleSet (see load_rules), got {type(given).__name__}"
        raise FormatError(msg)
    doc: object = facts  # JSON-shaped data, or anything: check it
    if not isinstance(doc, Facts):
        try:
            facts = Facts.from_dict(dict(doc) if isinstance(doc, Mapping) else doc)
        except FormatError as e:
            detail = f"bad facts: {' '.join(e.message.split())}"
            return RuleReport(
                ruleset=rules.name,
                run_id=_run_id(doc),
                results=tuple(
                    RuleResult(r.id, r.kind, RuleStatus.ERROR, detail) for r in rules.rules
                ),
            )
    else:
        facts = doc
    activation = facts.to_cel()
    return RuleReport(
        ruleset=rules.name,
        run_id=facts.run.id,
        results=tuple(_evaluate_rule(rule, facts, activation) for rule in rules.rules),
    )


def _run_id(doc: object) -> str:
    """The run id of malformed facts, if it can be read."""
    run = doc.get("run") if isinstance(doc, Mapping) else None
    run_id = run.get("id") if isinstance(run, Mapping) else None
    return run_id if isinstance(run_id, str) and run_id.isprintable() else "unknown"


def _condition(
    expr: CompiledExpr, field: str, facts: Facts, activation: Mapping[str, celtypes.Value]
) -> bool:
    """Evaluate `expr` to a Python bool or raise `EvalError` naming `field`."""
    try:
        value = expr.evaluate(activation)
    except EvalError as e:
        detail = e.detail
        if detail.startswith("missing fact"):
            absent = sorted(p for p in expr.paths if not facts.has(p))
            if absent:
                detail = f"missing fact '{'.'.join(_first_absent(absent[0], facts))}'"
        msg = f"field '{field}': {detail}"
        raise EvalError(msg) from e
    if not isinstance(value, celtypes.BoolType):
        msg = f"field '{field}': expected a bool, got {cel_type_name(value)}"
        raise EvalError(msg)
    return bool(value)


def _first_absent(path: tuple[str, ...], facts: Facts) -> tuple[str, ...]:
    """The shortest prefix of `path` that is not a fact."""
    for n in range(1, len(path) + 1):
        if not facts.has(path[:n]):
            return path[:n]
    return path  # pragma: no cover - only called with an absent path


def _evaluate_rule(
    rule: Rule, facts: Facts, activation: Mapping[str, celtypes.Value]
) -> RuleResult:
    try:
        status, detail = _judge(rule, facts, activation)
    except EvalError as e:
        status, detail = RuleStatus.ERROR, e.detail
    return RuleResult(rule.id, rule.kind, status, detail)


def _judge(
    rule: Rule, facts: Facts, activation: Mapping[str, celtypes.Value]
) -> tuple[RuleStatus, str]:
    """The rule's status and reason; raises `EvalError` if a condition fails."""
    if not _condition(rule._when, "when", facts, activation):  # noqa: SLF001
        return RuleStatus.NOT_APPLICABLE, f"when is false: {rule.when}"
    if rule.kind is RuleKind.REPORTING:
        return _reporting(rule, facts)
    if rule.kind is RuleKind.APPROVAL:
        return _approval(rule, facts)
    if rule.kind is RuleKind.MITIGATION:
        return _mitigation(rule, facts, activation)
    return RuleStatus.VIOLATION, f"banned: when holds: {rule.when}"


def _reporting(rule: Rule, facts: Facts) -> tuple[RuleStatus, str]:
    if facts.declared.reported:
        return RuleStatus.COMPLIANT, "reported, as required"
    detail = f"the run must be reported (when holds: {rule.when}) but declared.reported is false"
    return RuleStatus.VIOLATION, detail


def _approval(rule: Rule, facts: Facts) -> tuple[RuleStatus, str]:
    if rule.id in facts.declared.approvals:
        return RuleStatus.COMPLIANT, f"approval {rule.id!r} declared"
    detail = (
        f"needs approval (when holds: {rule.when}): expected {rule.id!r} "
        f"in declared.approvals, got {list(facts.declared.approvals)}"
    )
    return RuleStatus.VIOLATION, detail


def _mitigation(
    rule: Rule, facts: Facts, activation: Mapping[str, celtypes.Value]
) -> tuple[RuleStatus, str]:
    require = rule._require  # noqa: SLF001
    if require is None:  # pragma: no cover - Rule guarantees it for mitigations
        return RuleStatus.ERROR, "field 'require': missing"
    if _condition(require, "require", facts, activation):
        return RuleStatus.COMPLIANT, f"mitigation holds: {require.text}"
    detail = f"mitigation required (when holds: {rule.when}) but require is false: {require.text}"
    return RuleStatus.VIOLATION, detail
