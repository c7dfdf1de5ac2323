"""`computewatch audit ...`: a Verifier's audit of Provers, step by step, over a live registry.

In the paper's order: ``plan`` (sample sizes from Equation 1 and the
registry's chip counts), ``commit`` (each party logs its nonce commitment
before the period), ``start`` (the Verifier records the checkpoint that
starts the period), ``reveal`` (after it, each party logs its nonce), ``sample`` (the commit-reveal
order checked in the log, the sample drawn from the chips held at the
committed checkpoint), ``inspect``, ``verify`` (the trusted cluster),
``rules`` (each verdict bound to its run) and ``report``. Every step reads
and writes files in ``--dir`` (see `computewatch.inspection.AuditFolder`)
and can be rerun. Tutorial: docs/audit.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from computewatch.cli._output import console, emit_json, err_console, say
from computewatch.cli._paths import input_file, input_folder, output_file, output_folder
from computewatch.cli._policy import PolicyOption, read_policy
from computewatch.errors import FormatError

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from computewatch.crypto import SigningKey
    from computewatch.inspection import AuditFolder
    from computewatch.supplychain import RegistryClient

app = typer.Typer(
    help="A Verifier's audit over a live registry: plan, commit, start, reveal, sample, inspect, "
    "verify, rules, report (docs/audit.md).",
    no_args_is_help=True,
)

Dir = Annotated[
    Path,
    typer.Option(
        "--dir", help="The audit folder (plan.json and each step's files).", parser=input_folder()
    ),
]
NewDir = Annotated[
    Path,
    typer.Option(
        "--dir",
        help="The audit folder to plan into (new, empty, or an earlier plan's).",
        parser=output_folder(),
    ),
]
Submissions = Annotated[
    Path,
    typer.Option(
        "--submissions",
        help="Folder of the Provers' submissions (PROVER/submission.json).",
        parser=input_folder(),
    ),
]
ProverOpt = Annotated[
    list[str] | None,
    typer.Option("--prover", help="Only this Prover (repeat; default: all planned)."),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for programs.")]


def _folder(path: Path) -> AuditFolder:
    from computewatch.inspection import AuditFolder  # noqa: PLC0415 - keep the CLI fast

    return AuditFolder(path)


def _client(folder: AuditFolder) -> AbstractContextManager[RegistryClient]:
    """The registry of the plan, accepting checkpoints under its trust and the folder's state."""
    from computewatch.inspection import audit_registry, load_plan  # noqa: PLC0415

    load_plan(folder)  # a clear error for a folder without a plan
    return audit_registry(folder)


def _provers(folder: AuditFolder, only: list[str] | None) -> list[str]:
    from computewatch.inspection import load_plan  # noqa: PLC0415

    planned = sorted(load_plan(folder)["provers"])
    for p in only or []:
        if p not in planned:
            msg = f"--prover {p!r:.60}: not in the plan (planned: {', '.join(planned)})"
            raise FormatError(msg)
    return list(only) if only else planned


def _signer(path: Path) -> SigningKey:
    from computewatch.crypto import SigningKey  # noqa: PLC0415

    return SigningKey.load(path)


@app.command("plan")
def plan_cmd(
    folder: NewDir,
    server: Annotated[
        str, typer.Option("--server", help="Registry URL, e.g. http://127.0.0.1:8000.")
    ],
    log_key: Annotated[
        str, typer.Option("--log-key", help="The log's note verifier key (vkey text).")
    ],
    period: Annotated[str, typer.Option("--period", help="The monitoring period's label.")],
    verifier: Annotated[str, typer.Option("--verifier", help="The Verifier's actor id.")],
    prover: Annotated[list[str], typer.Option("--prover", help="A Prover's actor id (repeat).")],
    flops: Annotated[float, typer.Option("--flops", help="H: FLOPs of the run to catch.")],
    chip_flops_per_day: Annotated[float, typer.Option("--chip-flops-per-day", help="a.")] = 1.0,
    snapshots_per_day: Annotated[float, typer.Option("--snapshots-per-day", help="f.")] = 0.1,
    run_days: Annotated[float, typer.Option("--run-days", help="T.")] = 365.0,
    period_days: Annotated[float, typer.Option("--period-days", help="T_m.")] = 30.0,
    target: Annotated[float, typer.Option("--target", help="p: detection probability.")] = 0.9,
    rules: Annotated[
        Path | None,
        typer.Option("--rules", help="The rule file the cluster evaluates.", parser=input_file()),
    ] = None,
    policy: PolicyOption = None,
    budget: Annotated[
        float | None,
        typer.Option("--budget", help="Segment replay budget (overrides --policy)."),
    ] = None,
    max_compute: Annotated[
        float | None,
        typer.Option("--max-compute", help="Cap on all replay, fraction (overrides --policy)."),
    ] = None,
    as_json: JsonFlag = False,
    checkpoint_policy: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint-policy",
            help="tlog-policy file: every step accepts registry checkpoints only with its "
            "witness quorum (kept in the plan by path and SHA-256).",
            parser=input_file(),
        ),
    ] = None,
) -> None:
    """Plan the period: each Prover's sample size from Equation 1 and its chips in the registry."""
    from computewatch.analysis import SamplingParams  # noqa: PLC0415
    from computewatch.crypto import NoteVerifier  # noqa: PLC0415
    from computewatch.inspection import AuditTrust, audit_registry, plan_audit  # noqa: PLC0415

    if rules is not None and not rules.is_file():
        msg = f"--rules {rules}: not a readable file"
        raise FormatError(msg)
    params = SamplingParams(
        flops=flops,
        chips=1,
        chip_flops_per_day=chip_flops_per_day,
        snapshots_per_day=snapshots_per_day,
        run_days=run_days,
        period_days=period_days,
        detection_probability=target,
    )
    key = NoteVerifier.from_vkey(log_key)
    trust = (
        AuditTrust(key)
        if checkpoint_policy is None
        else AuditTrust.from_file(key, checkpoint_policy.resolve())
    )
    fold = _folder(folder)
    with audit_registry(fold, trust, server) as client:
        plan = plan_audit(
            fold,
            client,
            period=period,
            verifier=verifier,
            provers=prover,
            params=params,
            server=server,
            rules=rules.resolve() if rules is not None else None,
            policy=read_policy(policy, budget=budget, max_compute=max_compute),
            trust=trust,
        )
    if as_json:
        emit_json(plan)
        return
    t = Table(title=f"Audit plan for period {period}")
    for col in ("Prover", "chips", "sample", "b", "p_w"):
        t.add_column(col)
    for name, p in plan["provers"].items():
        t.add_row(
            name,
            str(p["chips"]),
            str(p["sample_size"]),
            f"{p['run_fraction']:.3f}",
            f"{p['snapshot_probability']:.3f}",
        )
    console.print(t)
    say(f"wrote {folder / 'plan.json'}")


@app.command("commit")
def commit_cmd(
    folder: Dir,
    actor: Annotated[str, typer.Option("--actor", help="Who commits (the Verifier or a Prover).")],
    key: Annotated[
        Path, typer.Option("--key", help="That actor's registry signing key.", parser=input_file())
    ],
    nonce_file: Annotated[
        Path | None,
        typer.Option(
            "--nonce-file", help="A Prover's file for its secret nonce.", parser=output_file()
        ),
    ] = None,
    nonce: Annotated[
        str | None, typer.Option("--nonce", help="The nonce as 64 hex digits (default: random).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Log a party's commitment to its secret nonce (before the period)."""
    from computewatch.inspection import commit  # noqa: PLC0415

    secret = None
    if nonce is not None:
        try:
            secret = bytes.fromhex(nonce)
        except ValueError as e:
            msg = f"--nonce: expected 64 hex digits ({e})"
            raise FormatError(msg) from e
    fold = _folder(folder)
    with _client(fold) as client:
        record = commit(
            fold, client, actor=actor, key=_signer(key), nonce=secret, nonce_file=nonce_file
        )
    if as_json:
        emit_json(record)
    else:
        say(f"{actor} committed {record['commitment']} (log index {record['index']})")


@app.command("start")
def start_cmd(folder: Dir, as_json: JsonFlag = False) -> None:
    """Start the period: record the registry checkpoint the sample will be drawn from."""
    from computewatch.inspection import start  # noqa: PLC0415

    fold = _folder(folder)
    with _client(fold) as client:
        record = start(fold, client)
    if as_json:
        emit_json(record)
    else:
        say(
            f"period started at checkpoint {record['size']}; committed: "
            f"{', '.join(record['committed']) or 'nobody'}"
        )


@app.command("reveal")
def reveal_cmd(
    folder: Dir,
    actor: Annotated[str, typer.Option("--actor", help="Who reveals.")],
    key: Annotated[
        Path, typer.Option("--key", help="That actor's registry signing key.", parser=input_file())
    ],
    nonce_file: Annotated[
        Path | None,
        typer.Option("--nonce-file", help="A Prover's nonce file.", parser=input_file()),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Log a party's nonce (after the period)."""
    from computewatch.inspection import reveal  # noqa: PLC0415

    fold = _folder(folder)
    with _client(fold) as client:
        record = reveal(fold, client, actor=actor, key=_signer(key), nonce_file=nonce_file)
    if as_json:
        emit_json(record)
    else:
        say(f"{actor} revealed its nonce (log index {record['index']})")


@app.command("sample")
def sample_cmd(folder: Dir, prover: ProverOpt = None, as_json: JsonFlag = False) -> None:
    """Check the commit-reveal in the log and draw each Prover's sample."""
    from computewatch.inspection import sample  # noqa: PLC0415

    fold = _folder(folder)
    docs = {}
    with _client(fold) as client:
        for name in _provers(fold, prover):
            docs[name] = sample(fold, client, name)
    if as_json:
        emit_json({n: d["draw"]["chips"] for n, d in docs.items()})
        return
    for name, d in docs.items():
        chips = d["draw"]["chips"]
        say(f"{name}: sampled {', '.join(chips)} of {len(d['holdings'])} chips")


@app.command("inspect")
def inspect_cmd(
    folder: Dir, submissions: Submissions, prover: ProverOpt = None, as_json: JsonFlag = False
) -> None:
    """Inspect each sampled chip (identity, attestation, seal, log, snapshots in reports)."""
    from computewatch.inspection import inspect  # noqa: PLC0415

    fold = _folder(folder)
    docs = {}
    with err_console.status("inspecting", spinner="dots") as status:
        for name in _provers(fold, prover):
            status.update(f"inspecting {name}'s sampled chips")
            docs[name] = inspect(fold, submissions, name)
    if as_json:
        emit_json({n: d["findings"] for n, d in docs.items()})
        return
    for name, d in docs.items():
        say(f"{name}: {len(d['inspections'])} chips inspected, {len(d['findings'])} findings")


@app.command("verify")
def verify_cmd(
    folder: Dir,
    submissions: Submissions,
    cluster_key: Annotated[
        Path,
        typer.Option(
            "--cluster-key", help="The trusted cluster's signing key.", parser=input_file()
        ),
    ],
    strict: Annotated[
        bool,
        typer.Option("--strict/--no-strict", help="Refuse to verify without full isolation."),
    ] = True,
    prover: ProverOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Verify every run the sampled chips name in the trusted cluster (signed verdicts)."""
    from computewatch.inspection import verify  # noqa: PLC0415

    fold = _folder(folder)
    key = _signer(cluster_key)
    docs = {}
    with err_console.status("verifying", spinner="dots") as status:

        def progress(message: str) -> None:
            err_console.print(f"[dim]·[/dim] {message}", highlight=False)
            status.update(message)

        for name in _provers(fold, prover):
            docs[name] = verify(
                fold, submissions, name, cluster_key=key, strict=strict, progress=progress
            )
    if as_json:
        emit_json({n: sorted(d["runs"]) for n, d in docs.items()})
        return
    for name, d in docs.items():
        say(f"{name}: {len(d['runs'])} runs verified, {len(d['findings'])} findings")


@app.command("rules")
def rules_cmd(
    folder: Dir,
    submissions: Submissions,
    cluster_pub: Annotated[
        Path,
        typer.Option(
            "--cluster-pub", help="The trusted cluster's public key.", parser=input_file()
        ),
    ],
    prover: ProverOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Bind each verdict to the run it is filed under and collect its rule outcomes."""
    from computewatch.crypto import VerifyingKey  # noqa: PLC0415
    from computewatch.inspection import check_verdicts  # noqa: PLC0415

    fold = _folder(folder)
    pub = VerifyingKey.load(cluster_pub)
    docs = {n: check_verdicts(fold, submissions, n, pub) for n in _provers(fold, prover)}
    summary = {
        n: {run: r["verdict"]["verdict"] for run, r in d["runs"].items()} for n, d in docs.items()
    }
    if as_json:
        emit_json(summary)
        return
    for name, runs in summary.items():
        say(f"{name}: " + (", ".join(f"{r} {v}" for r, v in runs.items()) or "no runs"))


@app.command("report")
def report_cmd(folder: Dir, as_json: JsonFlag = False) -> None:
    """Write report/audit.json, audit.md, audit.html; exit 1 if a Prover is non-compliant."""
    import json  # noqa: PLC0415

    from computewatch.inspection import write_folder_report  # noqa: PLC0415

    paths = write_folder_report(_folder(folder))
    doc = json.loads(paths.json.read_text())
    if as_json:
        emit_json({"compliant": doc["compliant"], "report": str(paths.json)})
    else:
        t = Table(title=f"Audit of period {doc['plan']['period']}")
        for col in ("Prover", "verdict", "findings"):
            t.add_column(col)
        for a in doc["provers"]:
            t.add_row(
                a["prover"],
                "[green]compliant[/green]" if a["compliant"] else "[red]NON-COMPLIANT[/red]",
                "\n".join(f"{f['kind']} ({f['serial']})" for f in a["findings"]) or "-",
            )
        console.print(t)
        say(f"report: {paths.markdown} and {paths.json.with_name('audit.html')}")
    if not all(doc["compliant"].values()):
        raise typer.Exit(1)
