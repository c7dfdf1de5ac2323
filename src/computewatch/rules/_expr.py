"""Rule conditions in CEL: compile, check against the facts schema, evaluate.

Conditions are Google's Common Expression Language, run by `cel-python`'s
tree-walking interpreter (`celpy.InterpretedRunner`; never its
`CompiledRunner`, which transpiles to Python and `exec`s it). CEL has no
loops, side effects or I/O, so a rule file can say what to check but can
never run code.

At load time each expression is:

1. parsed (a syntax error names its line and column);
2. checked statically: every top-level name must be a fact namespace, every
   field of `run`, `training`, `declared` and `data.<property>` must exist,
   and every function must be one CEL (or celpy) defines;
3. dry-run on two sample fact sets (all zero or false, then large or true),
   with each referenced `hyper` key tried as a double, a string and a bool:
   an expression that is a type error, or does not yield a bool, under every
   typing is refused. celpy has no static type checker, so this catches
   the errors on the paths the samples take (`run.chips > 2.5`: CEL has no
   int-double comparison; `training.flops`: not a bool), not every error
   hidden behind a short-circuit.

Example::

    >>> from computewatch.rules._expr import compile_expr
    >>> expr = compile_expr("training.flops > 1e11 && verified", "example")
    >>> sorted(expr.paths)
    [('training', 'flops'), ('verified',)]
"""

from __future__ import annotations

import functools
import itertools
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import celpy
import lark
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError, base_functions

from computewatch.errors import FormatError
from computewatch.rules._estimate import PropertyEstimate
from computewatch.rules._facts import (
    DATA_FIELDS,
    FIXED_FIELDS,
    NAMESPACES,
    DeclaredFacts,
    Facts,
    HyperValue,
    RunFacts,
    TrainingFacts,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

__all__ = ["MAX_EXPR_CHARS", "CompiledExpr", "EvalError", "cel_type_name", "compile_expr"]

#: Longest condition accepted (characters).
MAX_EXPR_CHARS = 2000
_MAX_KEY = 128  # as in Facts
#: Most `hyper` keys whose types are tried in every combination at load time.
_MAX_TYPED_HYPER = 4

_MACROS = frozenset({"has", "dyn", "map", "filter", "all", "exists", "exists_one", "reduce", "min"})
_BINDING_MACROS = frozenset({"map", "filter", "all", "exists", "exists_one", "reduce"})
_FUNCTIONS = _MACROS | {name for name in base_functions if name.isidentifier()}

_CEL_TYPES = {
    "BoolType": "bool",
    "IntType": "int",
    "UintType": "uint",
    "DoubleType": "double",
    "StringType": "string",
    "BytesType": "bytes",
    "ListType": "list",
    "MapType": "map",
    "NoneType": "null",
    "DurationType": "duration",
    "TimestampType": "timestamp",
    "TypeType": "type",
    "CELEvalError": "error",
}
_OPERATORS = {
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_in": "in",
    "addition_add": "+",
    "addition_sub": "-",
    "multiplication_mul": "*",
    "multiplication_div": "/",
    "multiplication_mod": "%",
    "unary_neg": "-",
    "unary_not": "!",
}
_OVERLOAD = re.compile(
    r"found no matching overload for (?:Token\('RULE', '(\w+)'\)|(\S+)) applied to '\((.*)\)'"
)
_CLASS = re.compile(r"<class '(?:[\w.]+\.)?(\w+)'>")


class EvalError(Exception):
    """A condition could not be evaluated (its `detail` says why)."""

    def __init__(self, detail: str) -> None:
        """Keep the one-line `detail`."""
        super().__init__(detail)
        self.detail = detail


def cel_type_name(value: object) -> str:
    """CEL's name for the type of `value` (`double`, `map`, ...)."""
    name = type(value).__name__
    return _CEL_TYPES.get(name, name)


@functools.cache
def _environment() -> celpy.Environment:
    # celpy's Environment sets the process-wide recursion limit to 2500; put it
    # back. An expression too deep for the caller's limit is refused as "nested
    # too deeply" (at load time, by the dry run) instead.
    limit = sys.getrecursionlimit()
    try:
        return celpy.Environment(runner_class=celpy.InterpretedRunner)
    finally:
        sys.setrecursionlimit(limit)


@dataclass(frozen=True, eq=False)
class CompiledExpr:
    """A checked CEL condition, ready to evaluate.

    Attributes:
        text: The source.
        paths: The static fact paths it reads, e.g. `("data", "exploit_code", "upper")`.
    """

    text: str
    paths: frozenset[tuple[str, ...]]
    _runner: celpy.Runner

    def evaluate(self, activation: Mapping[str, celtypes.Value]) -> celtypes.Value:
        """Evaluate on CEL facts; raise `EvalError` with a clean message on any failure."""
        try:
            return self._runner.evaluate(dict(activation))
        except CELEvalError as e:
            raise EvalError(describe(e)) from e
        except RecursionError as e:
            msg = "expression nested too deeply to evaluate"
            raise EvalError(msg) from e
        except Exception as e:  # fail closed on any interpreter fault
            msg = f"evaluation failed ({type(e).__name__}: {_first_line(str(e))})"
            raise EvalError(msg) from e


def describe(error: CELEvalError) -> str:
    """A one-line, readable message for a celpy evaluation error."""
    args = error.args  # (message, Python exception class, its args), as celpy builds them
    message = str(args[0]) if args else "evaluation error"
    kind = args[1] if len(args) > 1 and isinstance(args[1], type) else None
    if m := _OVERLOAD.search(message):
        rule, function, types = m.groups()
        op = _OPERATORS[rule] if rule in _OPERATORS else (rule or function).strip("_")
        operands = ", ".join(_CEL_TYPES.get(c, c) for c in _CLASS.findall(types))
        detail = f"type error: no operator '{op}' for ({operands})"
    elif message == "no such overload":
        reason = str(args[2][0]) if len(args) > 2 and args[2] else ""  # noqa: PLR2004
        reason = re.sub(r"'(\w+Type)'", lambda t: f"'{_CEL_TYPES.get(t[1], t[1])}'", reason)
        detail = f"type error: no such overload ({_first_line(reason)})" if reason else "type error"
    elif m := re.match(r"undeclared reference to '([^']*)'", message):
        detail = f"undeclared reference to '{m.group(1)}'"
    elif m := re.match(r"no such member in mapping: '([^']*)'", message):
        detail = f"missing fact: no key '{m.group(1)}'"
    elif kind is KeyError:
        detail = "missing fact: no such key"
    elif kind is ZeroDivisionError:
        detail = "division by zero"
    else:
        detail = _first_line(message)
        if kind is not None and kind.__name__ not in detail:
            detail = f"{detail} ({kind.__name__})"
    return detail


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def compile_expr(text: str, where: str, rule_ids: tuple[str, ...] = ()) -> CompiledExpr:
    """Parse and check a condition; `where` prefixes any `FormatError` message.

    `rule_ids` are granted as approvals in the dry run's "true" sample.

    Raises:
        FormatError: empty, too long, a CEL syntax error, an unknown fact or
            function, or a type error / non-bool result on the sample facts.
    """
    source: object = text  # from a file: check it whatever its annotation says
    if not isinstance(source, str) or not source.strip():
        msg = f"{where}: expected a CEL expression, got {source!r:.80}"
        raise FormatError(msg)
    if len(source) > MAX_EXPR_CHARS:
        msg = (
            f"{where}: expression too long: expected at most {MAX_EXPR_CHARS} characters, "
            f"got {len(source)}"
        )
        raise FormatError(msg)
    env = _environment()
    try:
        ast = env.compile(text)
    except CELParseError as e:
        msg = f"{where}: CEL syntax error {_position(e)}: {_unexpected(e)}"
        raise FormatError(msg) from e
    except RecursionError as e:
        msg = f"{where}: expression nested too deeply"
        raise FormatError(msg) from e
    paths = _check_names(ast, where)
    expr = CompiledExpr(text, paths, env.program(ast))
    _dry_run(expr, where, rule_ids)
    return expr


def _position(error: CELParseError) -> str:
    line, column = getattr(error, "line", None), getattr(error, "column", None)
    if line is None or column is None:
        return "at an unknown position"
    return f"at column {column}" if line == 1 else f"at line {line} column {column}"


def _unexpected(error: CELParseError) -> str:
    cause = error.__context__
    if isinstance(cause, lark.exceptions.UnexpectedToken):
        token = cause.token
        if token.type == "$END":
            return "unexpected end of expression"
        return f"unexpected {str(token)!r}"
    if isinstance(cause, lark.exceptions.UnexpectedCharacters):
        return f"unexpected character {cause.char!r}"
    return _first_line(str(error.args[0]) if error.args else "syntax error")


# --- static checks over the parse tree ------------------------------------------------


def _children(tree: lark.Tree[lark.Token]) -> list[lark.Tree[lark.Token]]:
    return [c for c in tree.children if isinstance(c, lark.Tree)]


def _string_literal(tree: lark.Tree[lark.Token]) -> str | None:
    """The value of a plain quoted string literal, or None for anything else."""
    node = tree
    while len(node.children) == 1:
        child = node.children[0]
        if isinstance(child, lark.Token):
            raw = str(child)
            if (
                child.type == "STRING_LIT"
                and len(raw) >= 2  # noqa: PLR2004 - two quotes
                and raw[0] == raw[-1]
                and raw[0] in "'\""
                and "\\" not in raw
                and raw[0] not in raw[1:-1]
            ):
                return raw[1:-1]
            return None
        node = child
    return None


def _path(tree: lark.Tree[lark.Token]) -> tuple[str, ...] | None:
    """The static fact path a member expression reads (`a.b['c']`), else None."""
    kind, trees = tree.data, _children(tree)
    path: tuple[str, ...] | None = None
    if kind == "member" and len(trees) == 1:
        path = _path(trees[0])
    elif kind == "primary" and len(trees) == 1 and trees[0].data in {"ident", "dot_ident"}:
        path = (str(trees[0].children[0]),)
    elif kind == "member_dot" and trees:
        base = _path(trees[0])
        path = None if base is None else (*base, str(tree.children[1]))
    elif kind == "member_index" and len(trees) == 2:  # noqa: PLR2004 - base and index
        base, key = _path(trees[0]), _string_literal(trees[1])
        path = None if base is None or key is None else (*base, key)
    return path


def _functions(ast: lark.Tree[lark.Token]) -> Iterator[tuple[str, list[lark.Tree[lark.Token]]]]:
    """(name, argument trees) of every function and method call."""
    for node in ast.iter_subtrees():
        if node.data == "ident_arg":
            name, args = str(node.children[0]), node.children[1:]
        elif node.data == "member_dot_arg":
            name, args = str(node.children[1]), node.children[2:]
        else:
            continue
        exprs = [e for a in args if isinstance(a, lark.Tree) for e in _children(a)]
        yield name, exprs


def _check_names(ast: lark.Tree[lark.Token], where: str) -> frozenset[tuple[str, ...]]:
    bound: set[str] = set()
    for name, args in _functions(ast):
        if name not in _FUNCTIONS:
            msg = f"{where}: unknown function '{name}'"
            raise FormatError(msg)
        if name in _BINDING_MACROS:
            for arg in args[:-1]:
                path = _bare_path(arg)
                if path is not None and len(path) == 1:
                    bound.add(path[0])
    paths = {
        p
        for node in ast.iter_subtrees()
        if node.data in {"primary", "member_dot", "member_index"}
        and (p := _path(node)) is not None
        and p[0] not in bound
    }
    for path in sorted(paths):
        if problem := _schema_problem(path):
            msg = f"{where}: {problem}"
            raise FormatError(msg)
    # keep only the longest paths (a.b.c implies a.b and a)
    return frozenset(p for p in paths if not any(q[: len(p)] == p and q != p for q in paths))


def _bare_path(tree: lark.Tree[lark.Token]) -> tuple[str, ...] | None:
    node = tree
    while (
        node.data != "member"
        and len(node.children) == 1
        and isinstance(node.children[0], lark.Tree)
    ):
        node = node.children[0]
    return _path(node) if node.data == "member" else None


def _schema_problem(path: tuple[str, ...]) -> str | None:
    """Why `path` is not a fact of the schema, or None if it may be one."""
    root, rest = path[0], path[1:]
    dotted = ".".join(path)
    if root not in NAMESPACES:
        return f"unknown fact namespace '{root}'; expected one of {', '.join(NAMESPACES)}"
    if root in FIXED_FIELDS:
        fields = FIXED_FIELDS[root]
        if rest and rest[0] not in fields:
            return f"unknown fact '{root}.{rest[0]}'; expected one of {', '.join(fields)}"
        depth = 1
    elif root == "data":
        if len(rest) >= 2 and rest[1] not in DATA_FIELDS:  # noqa: PLR2004 - data.<prop>.<field>
            return f"unknown fact '{dotted}'; a data property has {', '.join(DATA_FIELDS)}"
        depth = 2
    elif root == "verified":
        depth = 0
    else:  # hyper, benchmarks: open maps of scalars
        depth = 1
    if len(rest) > depth:
        return f"'{dotted}' goes below a scalar fact"
    return None


# --- the dry run ------------------------------------------------------------------------


def _sample_facts(
    paths: frozenset[tuple[str, ...]],
    hyper: Mapping[str, HyperValue],
    ids: tuple[str, ...],
    *,
    high: bool,
) -> dict[str, celtypes.Value]:
    estimate = (
        PropertyEstimate(0.5, 0.25, 0.75, 100, 50)
        if high
        else PropertyEstimate(0.0, 0.0, 0.0, 1, 0)
    )
    data = dict.fromkeys(_keys(paths, "data"), estimate)
    benchmarks = dict.fromkeys(_keys(paths, "benchmarks"), 1.0 if high else 0.0)
    facts = Facts(
        run=RunFacts("sample-run", 1024, 10**6) if high else RunFacts("s", 0, 0),
        training=TrainingFacts(1e30, 1e9) if high else TrainingFacts(0.0, 0.0),
        data=data,
        hyper=hyper,
        benchmarks=benchmarks,
        declared=DeclaredFacts(reported=high, approvals=ids if high else ()),
        verified=high,
    )
    return facts.to_cel()


def _keys(paths: frozenset[tuple[str, ...]], namespace: str) -> list[str]:
    """The keys of an open map that `paths` read (those a `Facts` can hold)."""
    keys = {p[1] for p in paths if p[0] == namespace and len(p) > 1}
    return sorted(k for k in keys if 0 < len(k) <= _MAX_KEY and k.isprintable())


def _dry_run(expr: CompiledExpr, where: str, rule_ids: tuple[str, ...]) -> None:
    keys = _keys(expr.paths, "hyper")
    choices: tuple[tuple[HyperValue, HyperValue], ...] = ((0.0, 1.0), ("", "x"), (False, True))
    if len(keys) <= _MAX_TYPED_HYPER:
        typings = list(itertools.product(range(len(choices)), repeat=len(keys)))
    else:
        typings = [(t,) * len(keys) for t in range(len(choices))]
    first_problem = None
    for typing in typings:
        problem = None
        for high in (False, True):
            hyper = {k: choices[t][high] for k, t in zip(keys, typing, strict=True)}
            try:
                value = expr.evaluate(_sample_facts(expr.paths, hyper, rule_ids, high=high))
            except EvalError as e:
                if e.detail.startswith("type error") or "nested too deeply" in e.detail:
                    problem = e.detail
                    break
                continue  # depends on the data (a missing key, division by zero): fine
            if not isinstance(value, celtypes.BoolType):
                problem = f"expected the expression to yield a bool, got {cel_type_name(value)}"
                break
        if problem is None:
            return
        first_problem = first_problem or problem
    msg = f"{where}: {first_problem}"
    raise FormatError(msg)
