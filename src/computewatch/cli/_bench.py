"""`computewatch bench attacks`: the attack corpus's detection benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from computewatch._validate import int_in_range, positive, text
from computewatch.cli._output import console, emit_json, err_console
from computewatch.cli._paths import output_file
from computewatch.errors import ParameterError

app = typer.Typer(help="Benchmarks of the framework's defences.", no_args_is_help=True)


#: The corpus's run scales (`computewatch.attacks.SCALES`), known before importing it.
SCALE_NAMES = ("tiny", "long")
#: Most trials per attack: each trial trains and verifies runs (seconds each).
MAX_TRIALS = 10_000


def _check_options(
    trials: int, only: list[str], budget: float | None, max_compute: float | None
) -> None:
    """Refuse bad options before the corpus (and torch) is even imported."""
    int_in_range("--trials", trials, 1, MAX_TRIALS)
    for name in only:
        text("--only", name, max_len=128)
    for flag, value in (("--budget", budget), ("--max-compute", max_compute)):
        if value is not None and not 0.0 < positive(flag, value) <= 1.0:
            msg = f"{flag}: expected a fraction of training in (0, 1], got {value!r}"
            raise ParameterError(msg)


@app.command("attacks")
def attacks_cmd(
    trials: Annotated[int, typer.Option("--trials", min=1, help="Trials per attack.")] = 3,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only this attack (repeatable).")
    ] = None,
    scale: Annotated[
        str, typer.Option("--scale", help="Run length: tiny (24 steps) or long (1200 steps).")
    ] = "tiny",
    budget: Annotated[
        float | None,
        typer.Option("--budget", help="Verifier's segment-replay budget (fraction of steps)."),
    ] = None,
    max_compute: Annotated[
        float | None,
        typer.Option(
            "--max-compute", help="Cap on all replayed compute, twins included (fraction)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print a Markdown table instead.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write a bar plot of detection rates (PNG).", parser=output_file()
        ),
    ] = None,
) -> None:
    """Run every attack of the corpus N times against the real defences."""
    _check_options(trials, only or [], budget, max_compute)
    if scale not in SCALE_NAMES:  # checked again against the corpus once it is imported
        msg = f"--scale {scale!r:.40}: expected one of {', '.join(SCALE_NAMES)}"
        raise ParameterError(msg)
    import dataclasses  # noqa: PLC0415

    from computewatch.attacks import (  # noqa: PLC0415
        SCALES,
        default_policy,
        markdown_table,
        plot_detection,
        run_benchmark,
    )

    if scale not in SCALES:
        err_console.print(f"error: --scale {scale!r}: expected one of {', '.join(SCALES)}")
        raise typer.Exit(2)
    chosen = SCALES[scale]
    policy = default_policy(chosen)
    try:
        if budget is not None:
            policy = dataclasses.replace(policy, budget=budget)
        if max_compute is not None:
            policy = dataclasses.replace(policy, max_compute=max_compute)
        results = run_benchmark(
            trials,
            only or (),
            scale=chosen,
            policy=policy,
            progress=None if as_json else err_console.print,
        )
    except (ValueError, ParameterError) as e:
        err_console.print(f"error: {e}")
        raise typer.Exit(2) from e
    if out is not None:
        plot_detection(results, out)
    if as_json:
        emit_json(results)
        return
    if markdown:
        console.print(markdown_table(results), markup=False, soft_wrap=True)
        return
    _print_table(results, f"attack detection ({trials} trials each, {scale} runs)")


def _print_table(results: dict[str, Any], title: str) -> None:
    table = Table(title=title)
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
    if fr["compute_fraction_mean"] is not None:
        console.print(f"compute replayed on honest runs: {fr['compute_fraction_mean']:.1%}")
