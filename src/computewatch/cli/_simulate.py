"""`computewatch simulate`: Monte Carlo of the inspection regime."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from computewatch._validate import int_in_range, positive, positive_int
from computewatch.analysis import (
    H100_FLOPS_PER_DAY,
    Engine,
    SamplingParams,
    Scenario,
    Strategy,
    simulate,
)
from computewatch.cli._output import console, emit_json, err_console


def simulate_cmd(
    strategy: Annotated[
        Strategy, typer.Option("--strategy", help="How the Prover places the run.")
    ] = Strategy.BASELINE,
    trials: Annotated[
        int, typer.Option("--trials", help="Simulated monitoring regimes.")
    ] = 100_000,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Root seed (recorded; random if omitted).")
    ] = None,
    engine: Annotated[
        Engine, typer.Option("--engine", help="aggregate (fast) or chip (explicit chips).")
    ] = Engine.AGGREGATE,
    flops: Annotated[float, typer.Option("--flops", help="H: FLOPs of the run.")] = 5.76e23,
    chips: Annotated[int, typer.Option("--chips", help="C: chips the Prover owns.")] = 1_000,
    chip_flops_per_day: Annotated[
        float, typer.Option("--chip-flops-per-day", help="a: FLOPs per chip-day.")
    ] = H100_FLOPS_PER_DAY,
    snapshots_per_day: Annotated[
        float, typer.Option("--snapshots-per-day", help="f: snapshots per chip-day.")
    ] = 0.1,
    run_days: Annotated[
        float, typer.Option("--run-days", help="T: run length the Verifier plans for.")
    ] = 365.0,
    period_days: Annotated[float, typer.Option("--period-days", help="T_m in days.")] = 30.0,
    p: Annotated[float, typer.Option("--p", help="p the Verifier sizes s for.")] = 0.9,
    stretch: Annotated[float, typer.Option("--stretch", help="k for --strategy stretch.")] = 10.0,
    compressed_days: Annotated[
        float | None, typer.Option("--compressed-days", help="t for --strategy compress.")
    ] = None,
    offset_days: Annotated[
        float, typer.Option("--offset-days", help="Run start after period start (split).")
    ] = 0.0,
    provers: Annotated[int, typer.Option("--provers", help="Provers for --strategy collude.")] = 4,
    samples_per_period: Annotated[
        int | None, typer.Option("--samples-per-period", help="Override the Verifier's s.")
    ] = None,
    confidence: Annotated[float, typer.Option("--confidence", help="CI level.")] = 0.99,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs.")] = False,
) -> None:
    """Simulate inspections and compare detection with the closed form."""
    # every option is checked, also those the chosen strategy does not use
    positive("--stretch", stretch)
    if compressed_days is not None:
        positive("--compressed-days", compressed_days)
    positive_int("--provers", provers)
    if seed is not None:
        int_in_range("--seed", seed, 0, 2**128 - 1)
    params = SamplingParams(
        flops=flops,
        chips=chips,
        chip_flops_per_day=chip_flops_per_day,
        snapshots_per_day=snapshots_per_day,
        run_days=run_days,
        period_days=period_days,
        detection_probability=p,
    )
    scenario = Scenario(
        params,
        strategy=strategy,
        stretch=stretch if strategy is Strategy.STRETCH else 1.0,
        run_days=compressed_days if strategy is Strategy.COMPRESS else None,
        offset_days=offset_days,
        provers=provers if strategy is Strategy.COLLUDE else 1,
        samples_per_period=samples_per_period,
    )
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    with Progress(
        TextColumn("simulating {task.fields[strategy]}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} trials"),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("simulate", total=trials, strategy=strategy.value)
        result = simulate(
            scenario,
            trials,
            rng=rng,
            engine=engine,
            confidence=confidence,
            progress=lambda done, _total: bar.update(task, completed=done),
        )
    if as_json:
        emit_json(result.to_dict())
        return
    pl = result.placement
    t = Table(
        title=f"Simulation: strategy {strategy.value}, engine {engine.value}", show_header=False
    )
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_row("run chips / stockpile", f"{sum(pl.run_chips):,} / {sum(pl.stockpiles):,}")
    t.add_row("run days, periods touched", f"{pl.duration_days:g}, {len(pl.windows)}")
    t.add_row("samples per period", f"{sum(pl.samples):,}")
    t.add_row("trials, detections", f"{result.trials:,}, {result.detections:,}")
    t.add_row(
        f"detection (simulated, {result.confidence:.0%} CI)",
        f"{result.estimate:.4f} [{result.ci_low:.4f}, {result.ci_high:.4f}]",
    )
    t.add_row("detection (closed form)", f"{result.closed_form:.4f}")
    t.add_row("detection (exact, no replacement)", f"{result.exact:.4f}")
    t.add_row("closed form inside the CI", "yes" if result.agrees else "NO")
    t.add_row("seed", str(result.seed))
    t.add_row("elapsed", f"{result.elapsed_s:.3g} s")
    console.print(t)
