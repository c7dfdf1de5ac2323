"""`computewatch cluster ...`: the trusted cluster's verification job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from computewatch._validate import int_in_range, positive, text
from computewatch.cli._output import console, emit_json, say
from computewatch.cli._paths import input_file, input_folder, output_file
from computewatch.cli._policy import PolicyOption, read_policy
from computewatch.crypto import SigningKey
from computewatch.errors import FormatError, ParameterError
from computewatch.verification import ChipInput, ClusterJob, cluster_verify, write_verdict

app = typer.Typer(
    help="The trusted cluster: verify a transcript in isolation, sign the verdict (§5.2).",
    no_args_is_help=True,
)


def _chip(text: str) -> ChipInput:
    parts = text.split(",")
    if len(parts) != 3 or not all(parts):  # noqa: PLR2004 - serial, key, log
        msg = (
            f"--chip {text!r}: expected SERIAL,PUBLIC_KEY.pem,LOG "
            "(e.g. CW-1,keys/cw1.pub,chips/cw1/nvram.log)"
        )
        raise FormatError(msg)
    return ChipInput(parts[0], Path(parts[1]), Path(parts[2]))


def _fraction(name: str, value: float) -> None:
    """Refuse a replay fraction outside (0, 1] before the sandbox starts."""
    if not 0.0 < positive(name, value) <= 1.0:
        msg = f"{name}: expected a fraction of training in (0, 1], got {value!r}"
        raise ParameterError(msg)


@app.command("verify")
def verify_cmd(
    transcript: Annotated[
        Path,
        typer.Option("--transcript", help="The Prover's transcript folder.", parser=input_folder()),
    ],
    report: Annotated[
        Path, typer.Option("--report", help="The Prover's report (JSON).", parser=input_file())
    ],
    key: Annotated[
        Path, typer.Option("--key", help="The cluster's signing key.", parser=input_file())
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Where to write the signed verdict.", parser=output_file())
    ],
    chip: Annotated[
        list[str] | None,
        typer.Option(
            "--chip",
            help=(
                "An inspected chip: SERIAL,PUBLIC_KEY,LOG (repeat); LOG is the nvram.log of "
                "the chip's folder, whose chip attests the count the log is read against."
            ),
        ),
    ] = None,
    policy: PolicyOption = None,
    budget: Annotated[
        float | None,
        typer.Option(
            "--budget", help="Segment replay budget, fraction of training (overrides --policy)."
        ),
    ] = None,
    exact: Annotated[
        bool, typer.Option("--exact", help="Require bitwise replays (overrides --policy).")
    ] = False,
    max_compute: Annotated[
        float | None,
        typer.Option(
            "--max-compute",
            help="Cap on all replayed compute, twins included (fraction; overrides --policy).",
        ),
    ] = None,
    audit_fraction: Annotated[
        float | None,
        typer.Option(
            "--audit-fraction",
            help="Audit each step with this probability (ADR 0037; overrides --policy).",
        ),
    ] = None,
    answers: Annotated[
        Path | None,
        typer.Option(
            "--answers",
            help="Folder of the Prover's answers to step audits (state-<s>.safetensors).",
            parser=input_folder(),
        ),
    ] = None,
    compute_cap: Annotated[
        float | None,
        typer.Option(
            "--compute-cap",
            help="The cluster's own replay cap (fraction); a policy asking for more is refused.",
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict/--no-strict", help="Refuse to run without full isolation.")
    ] = True,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Secret seed for segment choice (random if omitted)."),
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Sandboxed replay workers run at once.")
    ] = 1,
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="Run replay workers on this Ray cluster (HOST:PORT)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    """Verify a transcript (its code only in sandboxed workers); exit 0 if it passes, 1 if not."""
    fractions = {
        "--budget": budget,
        "--max-compute": max_compute,
        "--compute-cap": compute_cap,
        "--audit-fraction": audit_fraction,
    }
    for flag, value in fractions.items():
        if value is not None:
            _fraction(flag, value)
    if seed is not None:
        int_in_range("--seed", seed, 0, 2**128 - 1)
    if ray_address is not None:
        text("--ray-address", ray_address, max_len=256)
    job = ClusterJob(
        transcript=transcript,
        report=report,
        chips=tuple(_chip(c) for c in chip or ()),
        seed=seed,
        workers=workers,
        ray_address=ray_address,
        hide=(key,) if key.exists() else (),
        policy=read_policy(
            policy,
            budget=budget,
            exact=True if exact else None,
            max_compute=max_compute,
            audit_fraction=audit_fraction,
        ),
        answers=answers,
    )
    envelope, verdict = cluster_verify(
        job, key=SigningKey.load(key), strict=strict, compute_cap=compute_cap
    )
    write_verdict(out, envelope)
    if as_json:
        emit_json(verdict.to_json())
    else:
        t = Table(title=f"verdict for run {verdict.run_id}: {'PASS' if verdict.passed else 'FAIL'}")
        for col in ("check", "result", "detail"):
            t.add_column(col)
        for c in verdict.checks:
            t.add_row(c.name, c.status.value, c.detail)
        console.print(t)
        layers = verdict.isolation.get("layers", {})
        active = ", ".join(name for name, on in layers.items() if on) or "none"
        say(
            f"replayed {verdict.replayed_steps}/{verdict.training_steps} steps "
            f"({verdict.compute_fraction:.1%} of training compute); "
            f"isolation: {active}; signed verdict in {out}"
        )
    if not verdict.passed:
        raise typer.Exit(1)
