"""`computewatch sampling ...`: Equation 1, Table 1, Figure 2, inspectors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from computewatch.analysis import (
    H100_FLOPS_PER_DAY,
    SamplingParams,
    check_theorem1,
    estimate_inspectors,
    figure2,
    plan_samples,
    plot_figure2,
    pooled_plan,
    table1,
)
from computewatch.cli._output import console, emit_json, say, sig3
from computewatch.cli._paths import output_file
from computewatch.errors import FormatError

app = typer.Typer(
    help="How many chips to inspect: Equation 1, Table 1, Figure 2 (paper §3.2, App. B-C).",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for programs.")]
Flops = Annotated[float, typer.Option("--flops", help="H: FLOPs of the run's second half.")]
Chips = Annotated[int, typer.Option("--chips", help="C: chips the Prover owns.")]
ChipFlops = Annotated[
    float,
    typer.Option("--chip-flops-per-day", help="a: FLOPs per chip per day (H100 dense 16-bit)."),
]
Rate = Annotated[float, typer.Option("--snapshots-per-day", help="f: snapshots per chip-day.")]
RunDays = Annotated[float, typer.Option("--run-days", help="T: run length in days.")]
PeriodDays = Annotated[float, typer.Option("--period-days", help="T_m: monitoring period in days.")]
Prob = Annotated[float, typer.Option("--p", help="p: wanted detection probability.")]


@app.command("table1")
def table1_cmd(as_json: JsonFlag = False) -> None:
    """Reproduce the paper's Table 1 from Equation 1."""
    rows = table1()
    if as_json:
        emit_json([r.to_dict() for r in rows])
        return
    t = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        title="Table 1: samples a year that detect a run with p = 0.9",
        caption="f = 0.1/day, T = 365 d, T_m = 30 d, a = 1e15*86400; —: run needs > C chips",
    )
    for col in ("Model", "H FLOPs", "H100-days", "H100s 1yr"):
        t.add_column(col, justify="right" if col != "Model" else "left", no_wrap=True)
    for c in rows[0].samples_per_year:
        t.add_column(f"C={sig3(c)}", justify="right", no_wrap=True)
    for r in rows:
        t.add_row(
            r.model,
            sig3(r.flops),
            sig3(r.chip_days),
            sig3(r.chips_for_one_year),
            *(sig3(n) for n in r.samples_per_year.values()),
        )
    console.print(t)


def _params(
    flops: float, chips: int, a: float, f: float, run_days: float, period_days: float, p: float
) -> SamplingParams:
    return SamplingParams(
        flops=flops,
        chips=chips,
        chip_flops_per_day=a,
        snapshots_per_day=f,
        run_days=run_days,
        period_days=period_days,
        detection_probability=p,
    )


@app.command("plan")
def plan_cmd(
    flops: Flops,
    chips: Chips,
    chip_flops_per_day: ChipFlops = H100_FLOPS_PER_DAY,
    snapshots_per_day: Rate = 0.1,
    run_days: RunDays = 365.0,
    period_days: PeriodDays = 30.0,
    p: Prob = 0.9,
    as_json: JsonFlag = False,
) -> None:
    """Samples per monitoring period and per year for one run (Equation 1)."""
    plan = plan_samples(
        _params(flops, chips, chip_flops_per_day, snapshots_per_day, run_days, period_days, p)
    )
    if as_json:
        emit_json(plan.to_dict())
        return
    t = Table(title="Sampling plan (Equation 1)", show_header=False)
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_row("chips the run needs, H/(aT)", f"{plan.min_chips_exact:.4g} -> {plan.min_chips}")
    t.add_row("chance a sampled chip was in the run, b", f"{plan.run_fraction:.4g}")
    t.add_row("chance it logged a snapshot in T_m, p_w", f"{plan.snapshot_probability:.4g}")
    t.add_row(
        "samples per period, s",
        f"{plan.samples_per_period_exact:.4g} -> {plan.samples_per_period}",
    )
    t.add_row("samples per year", f"{plan.samples_per_year_exact:.6g} -> {plan.samples_per_year}")
    console.print(t)


@app.command("inspectors")
def inspectors_cmd(
    flops: Flops = 1e25,
    chips: Chips = 10_000_000,
    chip_flops_per_day: ChipFlops = 3e15 * 86_400,
    snapshots_per_day: Rate = 0.1,
    run_days: RunDays = 30.0,
    period_days: PeriodDays = 30.0,
    p: Prob = 0.9,
    chips_per_inspector: Annotated[
        int, typer.Option("--chips-per-inspector", help="Chips one inspector covers a year.")
    ] = 1_000,
    as_json: JsonFlag = False,
) -> None:
    """Inspectors needed for a plan (defaults: the paper's footnote 5)."""
    plan = plan_samples(
        _params(flops, chips, chip_flops_per_day, snapshots_per_day, run_days, period_days, p)
    )
    est = estimate_inspectors(plan.samples_per_year, chips_per_inspector)
    if as_json:
        emit_json({"plan": plan.to_dict(), **est.to_dict()})
        return
    say(
        f"{est.samples_per_year:,} chip inspections a year at {est.chips_per_inspector_per_year:,} "
        f"per inspector -> [bold]{est.inspectors:,} inspectors[/bold] "
        "(the IAEA employs about 280)"
    )


def _parse_stockpile(text: str) -> tuple[str, int]:
    name, sep, count = text.partition("=")
    if not sep or not name or not count.strip().isdigit():
        msg = f"--prover {text!r}: expected NAME=CHIPS, for example --prover labA=40000"
        raise FormatError(msg)
    return name, int(count)


@app.command("pool")
def pool_cmd(
    prover: Annotated[
        list[str], typer.Option("--prover", help="A colluding Prover as NAME=CHIPS (repeat).")
    ],
    flops: Flops,
    chip_flops_per_day: ChipFlops = H100_FLOPS_PER_DAY,
    snapshots_per_day: Rate = 0.1,
    run_days: RunDays = 365.0,
    period_days: PeriodDays = 30.0,
    p: Prob = 0.9,
    as_json: JsonFlag = False,
) -> None:
    """Monitor colluding Provers as one pooled stockpile (§3.2, collusion)."""
    stock: dict[str, int] = {}
    for item in prover:
        name, count = _parse_stockpile(item)
        if name in stock:
            msg = f"--prover {name!r}: given twice"
            raise FormatError(msg)
        stock[name] = count
    pooled = pooled_plan(
        stock, _params(flops, 1, chip_flops_per_day, snapshots_per_day, run_days, period_days, p)
    )
    if as_json:
        emit_json(pooled.to_dict())
        return
    t = Table(
        title=f"Pooled plan: {pooled.plan.samples_per_year} samples a year, {len(stock)} Provers"
    )
    for col in ("Prover", "chips", "samples/period", "samples/yr"):
        t.add_column(col, justify="right" if col != "Prover" else "left")
    for name, c in pooled.stockpiles.items():
        t.add_row(
            name, f"{c:,}", str(pooled.samples_per_period[name]), str(pooled.samples_per_year[name])
        )
    console.print(t)


@app.command("figure2")
def figure2_cmd(
    out: Annotated[Path, typer.Option("--out", help="PNG file to write.", parser=output_file())],
    p: Prob = 0.9,
    as_json: JsonFlag = False,
) -> None:
    """Draw Figure 2 (Appendix C.1): p_d(k)/p over stretch k and fraction b."""
    fig = figure2(p)
    path = plot_figure2(fig, out)
    if as_json:
        emit_json({"out": str(path), **fig.to_dict()})
        return
    say(
        f"wrote {path}: min p_d(k)/p = {fig.min_ratio:.4f} at k={fig.argmin[0]:g}, "
        f"b={fig.argmin[1]:g} (the paper: > 0.95)"
    )


@app.command("theorem1")
def theorem1_cmd(as_json: JsonFlag = False) -> None:
    """Check Theorem 1 (Appendix C.2) numerically on a grid."""
    res = check_theorem1()
    if as_json:
        emit_json(res.to_dict())
    else:
        verdict = "holds" if res else "VIOLATED"
        say(
            f"Theorem 1 {verdict} on {res.cases} cases x {res.points} run lengths "
            f"(largest increase of p_d with t: {res.max_increase:.3g})"
        )
    if not res:
        raise typer.Exit(1)
