"""Rule files: YAML with CEL conditions, loaded strictly.

A rule file (paper §2.1) is YAML read with PyYAML's `safe_load` (after a
`compose` pass that refuses aliases, merge keys, duplicate keys and any
non-standard tag such as `!!python/object`)::

    version: 1                       # required; only 1 exists
    name: "example regime"           # required
    rules:                           # required, at least one
      - id: report-large-runs        # required, unique, [a-z0-9][a-z0-9-]*, <= 64
        kind: reporting              # required: reporting | ban | approval | mitigation
        description: "..."           # optional
        when: "training.flops > 1e18"   # required CEL over the facts, yields a bool
      - id: rl-code-needs-cyber-eval
        kind: mitigation
        when: "hyper.rl_fraction > 0.1 && training.flops > 1e19"
        require: "benchmarks.cyber_uplift < 0.2"   # mitigation rules only (required there)
    classifiers: [...]               # optional: what computes data.<name> (_resources.py)
    benchmarks: [...]                # optional: what computes benchmarks.<name>
    audit: {fraction: 0.2, min_steps: 400}  # optional: step audits demanded (_audit.py)

Every problem raises `FormatError` with one line that names the file, the
rule (by id, or by its 1-based position `#n` while the id is unknown) and
the field, e.g. ``rules.yaml rule 'no-exploit-code' field 'when': CEL
syntax error at column 12: unexpected '>'``.

Example::

    >>> from computewatch.rules import load_rules
    >>> rules = load_rules('''
    ... version: 1
    ... name: demo
    ... rules:
    ...   - id: no-exploit-code
    ...     kind: ban
    ...     when: "data.exploit_code.upper > 0.05"
    ... ''')
    >>> [(r.id, r.kind.value) for r in rules.rules]
    [('no-exploit-code', 'ban')]
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from computewatch.errors import FormatError
from computewatch.rules._audit import AuditDemand, parse_audit
from computewatch.rules._expr import CompiledExpr, compile_expr
from computewatch.rules._resources import (
    BenchmarkSpec,
    ClassifierSpec,
    parse_benchmarks,
    parse_classifiers,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["MAX_RULES", "MAX_RULE_FILE_BYTES", "Rule", "RuleKind", "RuleSet", "load_rules"]

#: Largest rule file accepted.
MAX_RULE_FILE_BYTES = 256 * 1024
#: Most rules in one file.
MAX_RULES = 1000
_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_MAX_NAME = 200
_MAX_DESCRIPTION = 2000
_TOP_KEYS = ("audit", "benchmarks", "classifiers", "name", "rules", "version")
_RULE_KEYS = ("description", "id", "kind", "require", "when")
_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")
)


class RuleKind(enum.StrEnum):
    """The paper's kinds of rule (§2.1)."""

    #: `when` holds -> the run must have been reported (`declared.reported`).
    REPORTING = "reporting"
    #: `when` holds -> violation.
    BAN = "ban"
    #: `when` holds -> the rule's id must be in `declared.approvals`.
    APPROVAL = "approval"
    #: `when` holds -> `require` must hold too (a mandatory safety mitigation).
    MITIGATION = "mitigation"


@dataclass(frozen=True)
class Rule:
    """One rule; its conditions are compiled and checked on construction.

    Raises:
        FormatError: bad id or kind, `require` given to a non-mitigation rule
            or missing from a mitigation rule, or a bad condition.
    """

    id: str
    kind: RuleKind
    when: str
    require: str | None = None
    description: str = ""
    _when: CompiledExpr = field(init=False, repr=False, compare=False)
    _require: CompiledExpr | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate the fields and compile the conditions."""
        rule_id: object = self.id
        if not isinstance(rule_id, str) or not _ID.fullmatch(rule_id):
            msg = (
                "rule field 'id': expected 1-64 of a-z, 0-9 and '-' "
                f"(starting with a letter or digit), got {rule_id!r:.80}"
            )
            raise FormatError(msg)
        where = f"rule {rule_id!r}"
        kind: object = self.kind
        if kind not in set(RuleKind):
            msg = f"{where} field 'kind': expected one of {', '.join(RuleKind)}, got {kind!r:.80}"
            raise FormatError(msg)
        object.__setattr__(self, "kind", RuleKind(str(kind)))
        description: object = self.description
        if not isinstance(description, str) or len(description) > _MAX_DESCRIPTION:
            msg = (
                f"{where} field 'description': expected text of at most "
                f"{_MAX_DESCRIPTION} characters, got {description!r:.80}"
            )
            raise FormatError(msg)
        if self.kind is RuleKind.MITIGATION and self.require is None:
            msg = f"{where} field 'require': missing; a mitigation rule needs one"
            raise FormatError(msg)
        if self.kind is not RuleKind.MITIGATION and self.require is not None:
            msg = (
                f"{where} field 'require': only mitigation rules take one, "
                f"got it on a {self.kind.value} rule"
            )
            raise FormatError(msg)
        ids = (rule_id,)
        object.__setattr__(self, "_when", compile_expr(self.when, f"{where} field 'when'", ids))
        require = (
            None
            if self.require is None
            else compile_expr(self.require, f"{where} field 'require'", ids)
        )
        object.__setattr__(self, "_require", require)

    def to_dict(self) -> dict[str, str]:
        """The rule as it would appear in a rule file."""
        out = {"id": self.id, "kind": self.kind.value}
        if self.description:
            out["description"] = self.description
        out["when"] = self.when
        if self.require is not None:
            out["require"] = self.require
        return out


@dataclass(frozen=True)
class RuleSet:
    """A named, non-empty list of rules with unique ids.

    Attributes:
        name: The regime's name.
        rules: The rules, in file order.
        source: Where it was loaded from (for messages), e.g. the file's path.
    """

    name: str
    rules: tuple[Rule, ...]
    source: str = "<rules>"
    classifiers: tuple[ClassifierSpec, ...] = ()
    benchmarks: tuple[BenchmarkSpec, ...] = ()
    audit: AuditDemand | None = None

    def __post_init__(self) -> None:
        """Check the name, that there is a rule, and that ids are unique."""
        name: object = self.name
        if not isinstance(name, str) or not 0 < len(name) <= _MAX_NAME or not name.isprintable():
            msg = (
                f"{self.source} field 'name': expected printable text of 1-{_MAX_NAME} "
                f"characters, got {name!r:.80}"
            )
            raise FormatError(msg)
        rules = tuple(self.rules)
        if not rules:
            msg = f"{self.source} field 'rules': expected at least one rule, got none"
            raise FormatError(msg)
        if len(rules) > MAX_RULES:
            msg = (
                f"{self.source} field 'rules': expected at most {MAX_RULES} rules, got {len(rules)}"
            )
            raise FormatError(msg)
        first: dict[str, int] = {}
        for n, item in enumerate(rules, 1):
            rule: object = item
            if not isinstance(rule, Rule):
                msg = f"{self.source} rule #{n}: expected a Rule, got {type(rule).__name__}"
                raise FormatError(msg)
            if rule.id in first:
                msg = (
                    f"{self.source} rule {rule.id!r} (#{n}) field 'id': "
                    f"duplicate id, already used by rule #{first[rule.id]}"
                )
                raise FormatError(msg)
            first[rule.id] = n
        object.__setattr__(self, "rules", rules)

    @property
    def ids(self) -> tuple[str, ...]:
        """The rule ids, in order."""
        return tuple(r.id for r in self.rules)

    def make_classifiers(self) -> list[Any]:
        """The data classifiers the file declares (``data.<name>``), in file order."""
        return [c.make() for c in self.classifiers]

    def make_benchmarks(self) -> list[Any]:
        """The benchmarks the file declares (``benchmarks.<name>``), in file order."""
        return [b.make() for b in self.benchmarks]


def load_rules(source: str | os.PathLike[str], *, name: str | None = None) -> RuleSet:
    """Load and check a rule file.

    Args:
        source: The file to read: a `pathlib.Path` (any `os.PathLike`) or a
            `str` without a newline; or the YAML text itself: a `str` with at
            least one newline (rule files always have several lines).
        name: What to call the source in messages (default: the path as
            given, or `<rules>` for text).

    Raises:
        FormatError: anything wrong with the file, as one line naming the
            file, the rule and the field.
    """
    given: object = source  # a caller's value: check it whatever its annotation says
    if isinstance(given, str) and "\n" in given:
        where = name or "<rules>"
        _check_size(where, len(given.encode("utf-8", "surrogatepass")))
        text = given
    elif isinstance(given, str | os.PathLike):
        where = name or str(given)
        text = _read(where, Path(given))
    else:
        msg = f"rules: expected a path or YAML text, got {type(given).__name__}"
        raise FormatError(msg)
    base = None if isinstance(given, str) and "\n" in given else Path(given).parent
    return _build(where, _parse_yaml(where, text), base)


def _read(where: str, path: Path) -> str:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_RULE_FILE_BYTES + 1)
    except OSError as e:
        msg = f"{where}: cannot read the rule file ({e.strerror or e})"
        raise FormatError(msg) from e
    _check_size(where, len(raw))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        msg = f"{where}: expected UTF-8 text, got an invalid byte at offset {e.start}"
        raise FormatError(msg) from e


def _check_size(where: str, size: int) -> None:
    if size > MAX_RULE_FILE_BYTES:
        msg = (
            f"{where}: rule file too large: expected at most {MAX_RULE_FILE_BYTES} bytes, got more"
        )
        raise FormatError(msg)


def _parse_yaml(where: str, text: str) -> object:
    """Compose (structure checks), then `safe_load` (values)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None:
            _check_nodes(where, root)
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(e.problem or e.context or "invalid YAML").split())
        msg = f"{where}:{at}: YAML error: {problem}"
        raise FormatError(msg) from e
    except yaml.YAMLError as e:
        msg = f"{where}: YAML error: {' '.join(str(e).split())}"
        raise FormatError(msg) from e


def _check_nodes(where: str, root: yaml.Node) -> None:
    """Refuse aliases, merge keys, duplicate keys and non-standard tags."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        line = node.start_mark.line + 1
        if id(node) in seen:
            msg = f"{where}: line {line}: YAML aliases are not allowed in rule files"
            raise FormatError(msg)
        seen.add(id(node))
        if node.tag not in _TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            msg = f"{where}: line {line}: YAML tag {tag!r} is not allowed in rule files"
            raise FormatError(msg)
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in keys:
                        msg = (
                            f"{where}: line {key.start_mark.line + 1}: duplicate key {key.value!r}"
                        )
                        raise FormatError(msg)
                    keys.add(key.value)
                stack.extend((key, value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _build(where: str, doc: object, base: Path | None = None) -> RuleSet:
    if not isinstance(doc, dict):
        msg = f"{where}: expected a mapping with version, name and rules, got {_yaml_type(doc)}"
        raise FormatError(msg)
    _keys_ok(where, doc, _TOP_KEYS, ("name", "rules", "version"))
    version = doc["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version != 1:
        msg = f"{where} field 'version': expected 1, got {version!r:.80}"
        raise FormatError(msg)
    items = doc["rules"]
    if not isinstance(items, list):
        msg = f"{where} field 'rules': expected a list of rules, got {_yaml_type(items)}"
        raise FormatError(msg)
    if not items:
        msg = f"{where} field 'rules': expected at least one rule, got none"
        raise FormatError(msg)
    if len(items) > MAX_RULES:
        msg = f"{where} field 'rules': expected at most {MAX_RULES} rules, got {len(items)}"
        raise FormatError(msg)
    rules: list[Rule] = []
    first: dict[str, int] = {}
    for n, item in enumerate(items, 1):
        rule = _build_rule(where, n, item, first)
        first[rule.id] = n
        rules.append(rule)
    return RuleSet(
        name=doc["name"],
        rules=tuple(rules),
        source=where,
        classifiers=parse_classifiers(where, doc.get("classifiers", []), base),
        benchmarks=parse_benchmarks(where, doc.get("benchmarks", []), base),
        audit=parse_audit(where, doc["audit"]) if "audit" in doc else None,
    )


def _build_rule(where: str, n: int, item: object, first: Mapping[str, int]) -> Rule:
    """Rule number `n` (1-based) of the file; `first` maps the ids seen to their numbers."""
    if not isinstance(item, dict):
        msg = f"{where} rule #{n}: expected a mapping, got {_yaml_type(item)}"
        raise FormatError(msg)
    rule_id = item.get("id")
    named = isinstance(rule_id, str) and _ID.fullmatch(rule_id) is not None
    at = f"{where} rule {rule_id!r}" if named else f"{where} rule #{n}"
    _keys_ok(at, item, _RULE_KEYS, ("id", "kind", "when"))
    for key in _RULE_KEYS:
        if key in item and not isinstance(item[key], str):
            msg = f"{at} field '{key}': expected a string, got {_yaml_type(item[key])}"
            raise FormatError(msg)
    if isinstance(rule_id, str) and rule_id in first:
        msg = (
            f"{where} rule {rule_id!r} (#{n}) field 'id': "
            f"duplicate id, already used by rule #{first[rule_id]}"
        )
        raise FormatError(msg)
    try:
        return Rule(
            id=item["id"],
            kind=item["kind"],
            when=item["when"],
            require=item.get("require"),
            description=item.get("description", ""),
        )
    except FormatError as e:
        message = e.message
        if message.startswith("rule field 'id'"):
            message = f"rule #{n}" + message.removeprefix("rule")
        msg = f"{where} {message}"
        raise FormatError(msg) from e


def _keys_ok(
    at: str, doc: dict[object, object], allowed: tuple[str, ...], required: tuple[str, ...]
) -> None:
    for key in doc:
        if key not in allowed:
            msg = f"{at} field {str(key)!r}: unknown key; expected one of {', '.join(allowed)}"
            raise FormatError(msg)
    for key in required:
        if key not in doc:
            msg = f"{at} field '{key}': missing"
            raise FormatError(msg)


def _yaml_type(value: object) -> str:
    names = {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
    }
    return "nothing" if value is None else names.get(type(value), type(value).__name__)
