"""`computewatch rules ...`: check a rule file; evaluate it on a run's facts (§2.1)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from computewatch.cli._output import console, emit_json, say
from computewatch.cli._paths import input_file
from computewatch.errors import FormatError
from computewatch.rules import Facts, RuleKind, RuleStatus, evaluate, load_rules

app = typer.Typer(
    help="Rule files (YAML with CEL conditions) on verified facts (paper §2.1).",
    no_args_is_help=True,
)

#: Largest facts file accepted.
MAX_FACTS_BYTES = 1 << 20

RuleFile = Annotated[
    Path, typer.Argument(help="The rule file (YAML).", show_default=False, parser=input_file())
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for programs.")]

_STYLE = {
    RuleStatus.COMPLIANT: "green",
    RuleStatus.NOT_APPLICABLE: "dim",
    RuleStatus.VIOLATION: "bold red",
    RuleStatus.ERROR: "bold red",
}


@app.command("check")
def check_cmd(file: RuleFile, as_json: JsonFlag = False) -> None:
    """Validate a rule file: exit 0 with a summary, or 2 with the first problem."""
    rules = load_rules(file)
    kinds = Counter(rule.kind for rule in rules.rules)
    if as_json:
        emit_json(
            {
                "file": str(file),
                "name": rules.name,
                "rules": [rule.to_dict() for rule in rules.rules],
            }
        )
        return
    counts = ", ".join(f"{kinds[k]} {k.value}" for k in RuleKind if kinds[k])
    say(escape(f"{file}: ok, {rules.name!r}: {len(rules.rules)} rules ({counts})"))


def _read_facts(path: Path) -> Facts:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FACTS_BYTES + 1)
    except OSError as e:
        msg = f"{path}: cannot read the facts file ({e.strerror or e})"
        raise FormatError(msg) from e
    if len(raw) > MAX_FACTS_BYTES:
        msg = f"{path}: facts file too large: expected at most {MAX_FACTS_BYTES} bytes, got more"
        raise FormatError(msg)

    def no_constant(name: str) -> Any:
        msg = f"{path}: expected finite JSON numbers, got {name}"
        raise FormatError(msg)

    try:
        doc = json.loads(raw, parse_constant=no_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        msg = f"{path}: expected JSON facts, got invalid JSON ({e})"
        raise FormatError(msg) from e
    return Facts.from_dict(doc, where=str(path))


@app.command("eval")
def eval_cmd(
    file: RuleFile,
    facts: Annotated[
        Path,
        typer.Option(
            "--facts",
            help="The run's facts (JSON; see docs/rules.md).",
            show_default=False,
            parser=input_file(MAX_FACTS_BYTES),
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Evaluate a rule file on one run's facts: exit 0 compliant, 1 not, 2 bad input."""
    rules = load_rules(file)
    report = evaluate(rules, _read_facts(facts))
    if as_json:
        emit_json(report.to_dict())
    else:
        t = Table(box=box.SIMPLE_HEAD, title=Text(f"{rules.name}: run {report.run_id}"))
        t.add_column("rule", no_wrap=True)
        t.add_column("kind")
        t.add_column("status", no_wrap=True)
        t.add_column("detail")
        for r in report.results:
            t.add_row(
                Text(r.rule_id),
                r.kind.value,
                Text(r.status.value, style=_STYLE[r.status]),
                Text(r.detail),
            )
        console.print(t)
        verdict = "compliant" if report.compliant else "NOT compliant"
        say(
            f"run {escape(report.run_id)}: {verdict} "
            f"({len(report.violations)} violations, {len(report.errors)} errors)"
        )
    if not report.compliant:
        raise typer.Exit(1)
