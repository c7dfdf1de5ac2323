"""Loading rule files: the schema, strict YAML, and one-line errors that say where."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from computewatch.errors import FormatError
from computewatch.rules import MAX_RULE_FILE_BYTES, Rule, RuleKind, RuleSet, load_rules
from tests.rules.facts import EXAMPLE_RULES

if TYPE_CHECKING:
    from pathlib import Path

VALID = """\
version: 1
name: "example regime"
rules:
  - id: report-large-runs
    kind: reporting
    description: "Runs above 1e18 FLOPs are reported."
    when: "training.flops > 1e18"
  - id: no-exploit-code
    kind: ban
    when: "data.exploit_code.upper > 0.01"
  - id: approval-for-frontier
    kind: approval
    when: "training.flops > 1e20"
  - id: rl-code-needs-cyber-eval
    kind: mitigation
    when: "hyper.rl_fraction > 0.1 && training.flops > 1e19"
    require: "benchmarks.cyber_uplift < 0.2"
"""


def one_rule(body: str) -> str:
    """A file with one rule whose YAML mapping lines are `body` (indented)."""
    lines = "".join(f"    {line}\n" for line in body.splitlines())
    return f"version: 1\nname: t\nrules:\n  -\n{lines}"


def test_valid_file_loads_every_kind() -> None:
    rules = load_rules(VALID)
    assert rules.name == "example regime"
    assert rules.ids == (
        "report-large-runs",
        "no-exploit-code",
        "approval-for-frontier",
        "rl-code-needs-cyber-eval",
    )
    assert [r.kind for r in rules.rules] == list(RuleKind)
    assert rules.rules[0].description == "Runs above 1e18 FLOPs are reported."
    assert rules.rules[3].require == "benchmarks.cyber_uplift < 0.2"
    assert rules.source == "<rules>"


def test_load_from_path_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(VALID.replace("> 1e20", "> "), encoding="utf-8")
    with pytest.raises(FormatError) as e:
        load_rules(path)
    assert e.value.message == (
        f"{path} rule 'approval-for-frontier' field 'when': "
        "CEL syntax error at column 16: unexpected end of expression"
    )
    path.write_text(VALID, encoding="utf-8")
    assert load_rules(path).source == str(path)
    assert load_rules(path, name="rules.yaml").source == "rules.yaml"


def test_example_rule_file_loads() -> None:
    rules = load_rules(EXAMPLE_RULES)
    assert set(rules.ids) >= {
        "report-large-runs",
        "no-exploit-code",
        "approval-for-frontier",
        "capable-models-need-eval",
    }
    assert {r.kind for r in rules.rules} == set(RuleKind)


# (file text, the exact one-line message with name="rules.yaml")
MALFORMED = [
    pytest.param(
        one_rule("id: no-exploit-code\nkind: ban\nwhen: 'data.exploit_code.upper >> 0.01'"),
        "rules.yaml rule 'no-exploit-code' field 'when': CEL syntax error at column 26: "
        "unexpected '>'",
        id="cel-syntax",
    ),
    pytest.param(
        one_rule('id: a\nkind: ban\nwhen: "training.flops > 1.0 &&\\n run.chips >"'),
        "rules.yaml rule 'a' field 'when': CEL syntax error at line 2 column 12: "
        "unexpected end of expression",
        id="cel-syntax-second-line",
    ),
    pytest.param(
        one_rule("id: a\nkind: ban\nwhen: 'training.flops > 1 $ 2'"),
        "rules.yaml rule 'a' field 'when': CEL syntax error at column 20: unexpected character '$'",
        id="cel-bad-character",
    ),
    pytest.param(
        one_rule("id: a\nkind: mitigation\nwhen: 'true'\nrequire: 'benchmarks.x <'"),
        "rules.yaml rule 'a' field 'require': CEL syntax error at column 14: "
        "unexpected end of expression",
        id="cel-syntax-in-require",
    ),
    pytest.param(
        one_rule("id: a\nkind: ban\nwhen: 'weights.norm > 1.0'"),
        "rules.yaml rule 'a' field 'when': unknown fact namespace 'weights'; expected one of "
        "benchmarks, data, declared, hyper, run, training, verified",
        id="unknown-namespace",
    ),
    pytest.param(
        one_rule("id: a\nkind: ban\nwhen: 'training.flop > 1.0'"),
        "rules.yaml rule 'a' field 'when': unknown fact 'training.flop'; "
        "expected one of chip_hours, flops",
        id="unknown-field",
    ),
    pytest.param(
        one_rule("id: a\nkind: ban\nwhen: 'data.exploit_code.mean > 0.1'"),
        "rules.yaml rule 'a' field 'when': unknown fact 'data.exploit_code.mean'; "
        "a data property has estimate, flagged, lower, sampled, upper",
        id="unknown-data-field",
    ),
    pytest.param(
        one_rule("id: a\nkind: ban\nwhen: 'verified.really'"),
        "rules.yaml rule 'a' field 'when': 'verified.really' goes below a scalar fact",
        id="below-scalar",
    ),
    pytest.param(
        one_rule("id: a\nkind: ban\nwhen: 'shell(\"ls\")'"),
        "rules.yaml rule 'a' field 'when': unknown function 'shell'",
        id="unknown-function",
    ),
    pytest.param(
        one_rule("id: a\nkind: ban\nwhen: 'run.chips > 2.5'"),
        "rules.yaml rule 'a' field 'when': type error: no operator '>' for (int, double)",
        id="type-error",
    ),
    pytest.param(
        one_rule("id: a\nkind: ban\nwhen: 'training.flops'"),
        "rules.yaml rule 'a' field 'when': expected the expression to yield a bool, got double",
        id="not-bool",
    ),
    pytest.param(
        one_rule("id: a\nkind: ban\nwhen: ''"),
        "rules.yaml rule 'a' field 'when': expected a CEL expression, got ''",
        id="empty-expression",
    ),
    pytest.param(
        one_rule("id: a\nkind: ban\nwhen: '" + "true && " * 300 + "true'"),
        "rules.yaml rule 'a' field 'when': expression too long: expected at most 2000 "
        "characters, got 2404",
        id="expression-too-long",
    ),
    pytest.param(
        one_rule("id: a\nkind: ban\nwhen: '" + "(" * 300 + "true" + ")" * 300 + "'"),
        "rules.yaml rule 'a' field 'when': expression nested too deeply to evaluate",
        id="too-deep",
    ),
    pytest.param(
        one_rule("id: a\nkind: ban\nwhen: 'true'\nrequire: 'true'"),
        "rules.yaml rule 'a' field 'require': only mitigation rules take one, got it on a ban rule",
        id="require-on-ban",
    ),
    pytest.param(
        one_rule("id: a\nkind: mitigation\nwhen: 'true'"),
        "rules.yaml rule 'a' field 'require': missing; a mitigation rule needs one",
        id="mitigation-without-require",
    ),
    pytest.param(
        one_rule("id: a\nkind: banned\nwhen: 'true'"),
        "rules.yaml rule 'a' field 'kind': expected one of reporting, ban, approval, "
        "mitigation, got 'banned'",
        id="unknown-kind",
    ),
    pytest.param(
        one_rule("id: No_Exploits\nkind: ban\nwhen: 'true'"),
        "rules.yaml rule #1 field 'id': expected 1-64 of a-z, 0-9 and '-' (starting with a "
        "letter or digit), got 'No_Exploits'",
        id="bad-id",
    ),
    pytest.param(
        one_rule("id: 7\nkind: ban\nwhen: 'true'"),
        "rules.yaml rule #1 field 'id': expected a string, got an integer",
        id="id-not-string",
    ),
    pytest.param(
        one_rule("kind: ban\nwhen: 'true'"),
        "rules.yaml rule #1 field 'id': missing",
        id="missing-id",
    ),
    pytest.param(
        one_rule("id: a\nwhen: 'true'"),
        "rules.yaml rule 'a' field 'kind': missing",
        id="missing-kind",
    ),
    pytest.param(
        one_rule("id: a\nkind: ban"),
        "rules.yaml rule 'a' field 'when': missing",
        id="missing-when",
    ),
    pytest.param(
        one_rule("id: a\nkind: ban\nwhen: 'true'\nseverity: high"),
        "rules.yaml rule 'a' field 'severity': unknown key; expected one of description, id, "
        "kind, require, when",
        id="unknown-rule-key",
    ),
    pytest.param(
        one_rule("id: a\nkind: ban\nwhen: true"),
        "rules.yaml rule 'a' field 'when': expected a string, got a boolean",
        id="when-not-string",
    ),
    pytest.param(
        one_rule("id: a\nkind: ban\nwhen: 'true'\ndescription: [x]"),
        "rules.yaml rule 'a' field 'description': expected a string, got a list",
        id="description-not-string",
    ),
    pytest.param(
        "version: 1\nname: t\nrules:\n  - {id: a, kind: ban, when: 'true'}\n"
        "  - {id: b, kind: ban, when: 'true'}\n  - {id: a, kind: ban, when: 'false'}\n",
        "rules.yaml rule 'a' (#3) field 'id': duplicate id, already used by rule #1",
        id="duplicate-id",
    ),
    pytest.param(
        "version: 1\nname: t\nrules:\n  - {id: a, kind: ban, when: 'true'}\n  - just text\n",
        "rules.yaml rule #2: expected a mapping, got a string",
        id="rule-not-mapping",
    ),
    pytest.param(
        "version: 1\nname: t\nrules: []\n",
        "rules.yaml field 'rules': expected at least one rule, got none",
        id="empty-rule-set",
    ),
    pytest.param(
        "version: 1\nname: t\nrules: {id: a}\n",
        "rules.yaml field 'rules': expected a list of rules, got a mapping",
        id="rules-not-list",
    ),
    pytest.param(
        "version: 2\nname: t\nrules: [{id: a, kind: ban, when: 'true'}]\n",
        "rules.yaml field 'version': expected 1, got 2",
        id="bad-version",
    ),
    pytest.param(
        "version: true\nname: t\nrules: [{id: a, kind: ban, when: 'true'}]\n",
        "rules.yaml field 'version': expected 1, got True",
        id="bool-version",
    ),
    pytest.param(
        "version: 1.0\nname: t\nrules: [{id: a, kind: ban, when: 'true'}]\n",
        "rules.yaml field 'version': expected 1, got 1.0",
        id="float-version",
    ),
    pytest.param(
        "name: t\nrules: [{id: a, kind: ban, when: 'true'}]\n",
        "rules.yaml field 'version': missing",
        id="missing-version",
    ),
    pytest.param(
        "version: 1\nname: ''\nrules: [{id: a, kind: ban, when: 'true'}]\n",
        "rules.yaml field 'name': expected printable text of 1-200 characters, got ''",
        id="empty-name",
    ),
    pytest.param(
        "version: 1\nname: t\nrules: [{id: a, kind: ban, when: 'true'}]\nowner: me\n",
        "rules.yaml field 'owner': unknown key; expected one of audit, benchmarks, classifiers, "
        "name, rules, version",
        id="unknown-top-key",
    ),
    pytest.param(
        "- 1\n- 2\n",
        "rules.yaml: expected a mapping with version, name and rules, got a list",
        id="top-not-mapping",
    ),
    pytest.param(
        "\n",
        "rules.yaml: expected a mapping with version, name and rules, got nothing",
        id="empty-file",
    ),
    pytest.param(
        "version: 1\nname: [unclosed\n",
        "rules.yaml: line 3 column 1: YAML error: expected ',' or ']', but got '<stream end>'",
        id="yaml-syntax",
    ),
    pytest.param(
        "version: 1\nversion: 1\nname: t\n",
        "rules.yaml: line 2: duplicate key 'version'",
        id="duplicate-key",
    ),
    pytest.param(
        "version: 1\nname: t\nrules:\n  - {id: a, kind: ban, when: 'true', when: 'false'}\n",
        "rules.yaml: line 4: duplicate key 'when'",
        id="duplicate-rule-key",
    ),
    pytest.param(
        "base: &b {kind: ban, when: 'true'}\nversion: 1\nname: t\nrules: [*b]\n",
        "rules.yaml: line 1: YAML aliases are not allowed in rule files",
        id="alias",
    ),
    pytest.param(
        "version: 1\nname: t\nrules:\n  - {<<: {kind: ban}, id: a, when: 'true'}\n",
        "rules.yaml: line 4: YAML tag '!!merge' is not allowed in rule files",
        id="merge-key",
    ),
    pytest.param(
        "--- {version: 1}\n--- {version: 1}\n",
        "rules.yaml: line 2 column 1: YAML error: but found another document",
        id="two-documents",
    ),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_malformed_rule_file_gives_one_line_error(text: str, message: str) -> None:
    with pytest.raises(FormatError) as e:
        load_rules(text, name="rules.yaml")
    assert e.value.message == message
    assert "\n" not in e.value.diagnostics()
    assert e.value.exit_code == 2


@pytest.mark.parametrize(
    "tagged",
    [
        "!!python/object:os.system\nx: 1\n",
        "version: !!python/object/apply:os.system ['echo pwned']\n",
        "version: 1\nname: !!python/name:os.system ''\nrules: []\n",
        "version: !custom 1\n",
        "version: !!binary aGVsbG8=\n",
    ],
)
def test_python_and_custom_tags_are_refused(tagged: str) -> None:
    with pytest.raises(FormatError, match=r"^rules.yaml: line \d+: YAML tag '.+' is not allowed"):
        load_rules(tagged, name="rules.yaml")


def test_file_too_large(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (MAX_RULE_FILE_BYTES + 1))
    with pytest.raises(FormatError, match=r"big.yaml: rule file too large: expected at most"):
        load_rules(path)
    with pytest.raises(FormatError, match=r"^<rules>: rule file too large"):
        load_rules("#\n" * (MAX_RULE_FILE_BYTES // 2 + 1))


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"missing.yaml: cannot read the rule file"):
        load_rules(tmp_path / "missing.yaml")
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(FormatError, match=r"expected UTF-8 text, got an invalid byte at offset 9"):
        load_rules(path)


def test_a_str_without_newline_is_a_path(tmp_path: Path) -> None:
    assert load_rules(str(EXAMPLE_RULES)).source == str(EXAMPLE_RULES)
    with pytest.raises(FormatError, match=r"^examples/nope.yaml: cannot read the rule file"):
        load_rules("examples/nope.yaml")
    with pytest.raises(FormatError, match=r"cannot read the rule file"):
        load_rules(str(tmp_path))  # a folder


def test_source_of_the_wrong_type() -> None:
    with pytest.raises(FormatError, match="expected a path or YAML text, got bytes"):
        load_rules(b"version: 1")  # type: ignore[arg-type]


def test_rule_constructor_enforces_invariants() -> None:
    rule = Rule("a", RuleKind.BAN, "verified")
    assert Rule("a", "ban", "verified") == rule  # type: ignore[arg-type]
    assert hash(Rule("a", RuleKind.BAN, "verified")) == hash(rule)
    assert rule.to_dict() == {"id": "a", "kind": "ban", "when": "verified"}
    mitigation = Rule("m", RuleKind.MITIGATION, "verified", "true", "why")
    assert mitigation.to_dict() == {
        "id": "m",
        "kind": "mitigation",
        "description": "why",
        "when": "verified",
        "require": "true",
    }
    with pytest.raises(FormatError, match=r"^rule 'a' field 'when': unknown fact namespace"):
        Rule("a", RuleKind.BAN, "x > 1")
    with pytest.raises(FormatError, match=r"^rule 'a' field 'description': expected text"):
        Rule("a", RuleKind.BAN, "true", description=None)  # type: ignore[arg-type]


def test_ruleset_constructor_enforces_invariants() -> None:
    rule = Rule("a", RuleKind.BAN, "verified")
    assert RuleSet("r", (rule,)).rules == (rule,)
    with pytest.raises(FormatError, match=r"^<rules> field 'rules': expected at least one rule"):
        RuleSet("r", ())
    with pytest.raises(FormatError, match=r"duplicate id, already used by rule #1"):
        RuleSet("r", (rule, rule))
    with pytest.raises(FormatError, match=r"rule #1: expected a Rule, got str"):
        RuleSet("r", ("a",))  # type: ignore[arg-type]
    with pytest.raises(FormatError, match=r"field 'rules': expected at most 1000 rules"):
        RuleSet("r", (rule,) * 1001)


def loads_or_format_error(text: str) -> str:
    """'ok', or the one-line diagnostics of the FormatError (nothing else may escape)."""
    try:
        load_rules(text)
    except FormatError as e:
        return e.diagnostics()
    return "ok"


@given(st.text(max_size=300))
def test_any_text_loads_or_raises_format_error(text: str) -> None:
    assert "\n" not in loads_or_format_error(text + "\n")  # with a newline, str is YAML text


@given(st.integers(0, len(VALID) - 1), st.sampled_from(list("\"':{}[]-&*!%|> \n\tx1")))
def test_mutated_valid_file_loads_or_raises_format_error(at: int, char: str) -> None:
    assert "\n" not in loads_or_format_error(VALID[:at] + char + VALID[at + 1 :])
