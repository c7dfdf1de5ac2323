"""Rules on training runs (paper §2.1), checked on verified facts.

A rule file (YAML, see `load_rules` and `docs/rules.md`) lists rules of four
kinds (reporting, ban, approval, mitigation) whose conditions are Common
Expression Language (CEL) expressions over the facts of one verified run
(`Facts`): training compute, data properties estimated from a random sample
with a confidence bound (`estimate_property` with a pluggable `Classifier`),
hyperparameters, benchmark scores of the final model (pluggable
`Benchmark`), what the Prover declared, and whether the transcript verified.
`evaluate` gives each rule a `RuleResult` and fails closed: a rule that
cannot be evaluated is an error, and an error is not compliance.

The trusted cluster computes the facts and calls `evaluate`; this package
imports no other computewatch layer.

Example::

    >>> from computewatch.rules import Facts, RunFacts, TrainingFacts, evaluate, load_rules
    >>> rules = load_rules('''
    ... version: 1
    ... name: demo regime
    ... rules:
    ...   - id: report-large-runs
    ...     kind: reporting
    ...     when: "training.flops > 1e11"
    ...   - id: approval-for-frontier
    ...     kind: approval
    ...     when: "training.flops > 1.5e11"
    ... ''')
    >>> facts = Facts(RunFacts("run-a", chips=4, steps=300), TrainingFacts(5e10, 0.2))
    >>> evaluate(rules, facts).compliant
    True
    >>> big = Facts(RunFacts("run-b", chips=4, steps=900), TrainingFacts(2e11, 0.6))
    >>> [(r.rule_id, r.status.value) for r in evaluate(rules, big).results]
    [('report-large-runs', 'violation'), ('approval-for-frontier', 'violation')]
"""

from typing import TYPE_CHECKING

from computewatch._lazy import lazy_exports

if TYPE_CHECKING:
    from computewatch.rules._audit import AuditDemand
    from computewatch.rules._benchmarks import (
        BENCHMARK_KINDS,
        Benchmark,
        FileBitsPerByte,
        HeldOutBitsPerByte,
        make_benchmark,
    )
    from computewatch.rules._estimate import (
        Classifier,
        ExploitCodeClassifier,
        PropertyEstimate,
        clopper_pearson,
        estimate_property,
    )
    from computewatch.rules._evaluate import RuleReport, RuleResult, RuleStatus, evaluate
    from computewatch.rules._expr import MAX_EXPR_CHARS
    from computewatch.rules._facts import (
        NAMESPACES,
        DeclaredFacts,
        Facts,
        HyperValue,
        RunFacts,
        TrainingFacts,
    )
    from computewatch.rules._resources import BenchmarkSpec, ClassifierSpec, PatternClassifier
    from computewatch.rules._ruleset import (
        MAX_RULE_FILE_BYTES,
        MAX_RULES,
        Rule,
        RuleKind,
        RuleSet,
        load_rules,
    )

if not TYPE_CHECKING:  # every name is imported from its module on first use (ADR 0043)
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "AuditDemand": "computewatch.rules._audit",
            "BENCHMARK_KINDS": "computewatch.rules._benchmarks",
            "Benchmark": "computewatch.rules._benchmarks",
            "FileBitsPerByte": "computewatch.rules._benchmarks",
            "HeldOutBitsPerByte": "computewatch.rules._benchmarks",
            "make_benchmark": "computewatch.rules._benchmarks",
            "Classifier": "computewatch.rules._estimate",
            "ExploitCodeClassifier": "computewatch.rules._estimate",
            "PropertyEstimate": "computewatch.rules._estimate",
            "clopper_pearson": "computewatch.rules._estimate",
            "estimate_property": "computewatch.rules._estimate",
            "RuleReport": "computewatch.rules._evaluate",
            "RuleResult": "computewatch.rules._evaluate",
            "RuleStatus": "computewatch.rules._evaluate",
            "evaluate": "computewatch.rules._evaluate",
            "MAX_EXPR_CHARS": "computewatch.rules._expr",
            "NAMESPACES": "computewatch.rules._facts",
            "DeclaredFacts": "computewatch.rules._facts",
            "Facts": "computewatch.rules._facts",
            "HyperValue": "computewatch.rules._facts",
            "RunFacts": "computewatch.rules._facts",
            "TrainingFacts": "computewatch.rules._facts",
            "BenchmarkSpec": "computewatch.rules._resources",
            "ClassifierSpec": "computewatch.rules._resources",
            "PatternClassifier": "computewatch.rules._resources",
            "MAX_RULE_FILE_BYTES": "computewatch.rules._ruleset",
            "MAX_RULES": "computewatch.rules._ruleset",
            "Rule": "computewatch.rules._ruleset",
            "RuleKind": "computewatch.rules._ruleset",
            "RuleSet": "computewatch.rules._ruleset",
            "load_rules": "computewatch.rules._ruleset",
        },
    )

__all__ = [
    "BENCHMARK_KINDS",
    "MAX_EXPR_CHARS",
    "MAX_RULES",
    "MAX_RULE_FILE_BYTES",
    "NAMESPACES",
    "AuditDemand",
    "Benchmark",
    "BenchmarkSpec",
    "Classifier",
    "ClassifierSpec",
    "DeclaredFacts",
    "ExploitCodeClassifier",
    "Facts",
    "FileBitsPerByte",
    "HeldOutBitsPerByte",
    "HyperValue",
    "PatternClassifier",
    "PropertyEstimate",
    "Rule",
    "RuleKind",
    "RuleReport",
    "RuleResult",
    "RuleSet",
    "RuleStatus",
    "RunFacts",
    "TrainingFacts",
    "clopper_pearson",
    "estimate_property",
    "evaluate",
    "load_rules",
    "make_benchmark",
]
