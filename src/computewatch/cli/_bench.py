"""`computewatch bench attacks`: the attack corpus's detection benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from computewatch.cli._output import console, emit_json, err_console

app = typer.Typer(help="Benchmarks of the framework's defences.", no_args_is_help=True)


@app.command("attacks")
def attacks_cmd(
    trials: Annotated[int, typer.Option("--trials", min=1, help="Trials per attack.")] = 3,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only this attack (repeatable).")
    ] = None,
    budget: Annotated[
        float, typer.Option("--budget", help="Verifier's extra segment-replay budget.")
    ] = 0.05,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write a bar plot of detection rates (PNG).")
    ] = None,
) -> None:
    """Run every attack of the corpus N times against the real defences."""
    from computewatch.attacks import plot_detection, run_benchmark  # noqa: PLC0415
    from computewatch.verification import VerificationPolicy  # noqa: PLC0415

    try:
        results = run_benchmark(
            trials,
            only or (),
            policy=VerificationPolicy(budget=budget),
            progress=None if as_json else err_console.print,
        )
    except ValueError as e:
        err_console.print(f"error: {e}")
        raise typer.Exit(2) from e
    if out is not None:
        plot_detection(results, out)
    if as_json:
        emit_json(results)
        return
    table = Table(title=f"attack detection ({trials} trials each)")
    for col in ("attack", "detected", "95% CI", "by expected check", "compute replayed"):
        table.add_column(col)
    for row in results["attacks"]:
        d = row["detection"]
        cf = row["compute_fraction_mean"]
        table.add_row(
            row["name"],
            f"{d['count']}/{d['trials']}",
            f"[{d['ci95'][0]:.2f}, {d['ci95'][1]:.2f}]",
            f"{row['caught_by_expected']}/{d['trials']}",
            "-" if cf is None else f"{cf:.0%}",
        )
    console.print(table)
    fr = results["false_reject"]
    console.print(f"false rejects on honest runs: {fr['count']}/{fr['trials']}")
