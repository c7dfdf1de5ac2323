"""`computewatch demo`: the end-to-end audit on the embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from computewatch.cli._output import console, emit_json, err_console, say
from computewatch.cli._paths import output_folder
from computewatch.errors import FormatError

#: The demo's mark on its own output folder (`computewatch.demo`'s MARKER), checked
#: here before the slow import so a foreign folder is refused at once.
DEMO_MARKER = ".computewatch-demo"


def demo_cmd(
    out: Annotated[
        Path,
        typer.Option("--out", help="Folder for everything the demo makes.", parser=output_folder()),
    ] = Path("out/demo"),
    strict: Annotated[
        bool,
        typer.Option(
            "--strict/--no-strict", help="Refuse to verify without full sandbox isolation."
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
    scale: Annotated[
        str,
        typer.Option(
            "--scale", help="full (six chips per lab, minutes) or tiny (three, for tests)."
        ),
    ] = "full",
) -> None:
    """Run an audit of two Provers end to end; exit 1 if one is non-compliant."""
    if out.is_dir() and any(out.iterdir()) and not (out / DEMO_MARKER).is_file():
        msg = (
            f"demo --out {out}: expected a new or empty folder (or one an earlier demo "
            f"made, holding {DEMO_MARKER}), got a folder with other files"
        )
        raise FormatError(msg)
    from computewatch.demo import run_demo  # noqa: PLC0415 - heavy (torch)

    with err_console.status("starting", spinner="dots") as status:

        def progress(message: str) -> None:
            err_console.print(f"[dim]·[/dim] {message}", highlight=False)
            status.update(message)

        result = run_demo(out, progress=progress, strict=strict, scale=scale)
    doc = result.to_json()
    if as_json:
        emit_json(doc)
    else:
        t = Table(title=f"Audit of period demo-period-1 ({doc['seconds']} s)")
        for col in ("Prover", "verdict", "findings", "failing checks", "violated rules"):
            t.add_column(col)
        for name, p in doc["provers"].items():
            t.add_row(
                name,
                "[green]compliant[/green]" if p["compliant"] else "[red]NON-COMPLIANT[/red]",
                "\n".join(f"{f['kind']} ({f['serial']})" for f in p["findings"]) or "-",
                "\n".join(p["failing_checks"]) or "-",
                "\n".join(p["violated_rules"]) or "-",
            )
        console.print(t)
        say(f"report: {doc['html']} ({doc['markdown']}, JSON {doc['report']})")
    if not all(result.compliant.values()):
        raise typer.Exit(1)
