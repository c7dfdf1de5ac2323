"""`computewatch registry ...`: the chip-owner directory and receipt service (paper §6).

A thin shell over `computewatch.supplychain` (imported inside the commands,
so other commands do not pay for the web stack): ``serve`` runs the HTTP
service; ``request``/``cosign``/``submit`` build, co-sign and send signed
requests; ``chip``, ``actor``, ``checkpoint``, ``prove``, ``report`` and
``audit`` read and check the directory and its transparency log.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from computewatch._validate import int_in_range, text
from computewatch.cli import _registry_read
from computewatch.cli._output import console, emit_json, say
from computewatch.cli._paths import input_file, output_file
from computewatch.cli._registry_args import (
    JsonFlag,
    LogKey,
    PolicyFile,
    Registrar,
    Server,
    StateFile,
    check_request_options,
    checked_text,
    client_for,
    log_verifier,
    read_input,
    request_body,
)
from computewatch.crypto import Envelope, SigningKey, VerifyingKey
from computewatch.errors import FormatError, VerificationFailed

_DAY = 86_400.0

app = typer.Typer(
    help="Chip-owner directory, chain of custody and receipt service (paper §6).",
    no_args_is_help=True,
)


@app.command("keygen")
def keygen_cmd(
    out: Annotated[
        Path, typer.Option("--out", help="Note key file to write (0600).", parser=output_file())
    ],
    origin: Annotated[str, typer.Option("--origin", help="The log's origin (the key name).")],
    as_json: JsonFlag = False,
) -> None:
    """Generate the log's note signing key; prints its verifier key (vkey)."""
    from computewatch.supplychain import write_log_key  # noqa: PLC0415

    checked_text("--origin", origin, max_len=253)
    signer = write_log_key(out, origin)
    if as_json:
        emit_json({"key_file": str(out), "vkey": signer.verifier.vkey})
    else:
        say(f"wrote {out} (0600); log verifier key: {signer.verifier.vkey}")


@app.command("serve")
def serve_cmd(
    db: Annotated[str, typer.Option("--db", help="sqlite:///PATH or postgresql://...")],
    key: Annotated[
        Path, typer.Option("--key", help="The log's note key file (keygen).", parser=input_file())
    ],
    registrar: Registrar,
    registrar_id: Annotated[str, typer.Option("--registrar-id")] = "registrar",
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    max_skew: Annotated[float, typer.Option("--max-skew", help="Seconds.")] = 300.0,
    max_batch: Annotated[int, typer.Option("--max-batch", help="Writes per commit.")] = 512,
    never_registered_days: Annotated[float, typer.Option("--never-registered-days")] = 180.0,
    max_transit_days: Annotated[float, typer.Option("--max-transit-days")] = 30.0,
    mass_loss: Annotated[int, typer.Option("--mass-loss", help="Chips lost per actor.")] = 10,
    mass_loss_days: Annotated[float, typer.Option("--mass-loss-days")] = 365.0,
    witnesses: Annotated[
        Path | None,
        typer.Option(
            "--witnesses",
            help="tlog-policy file: push checkpoints to its witnesses.",
            parser=input_file(),
        ),
    ] = None,
) -> None:
    """Run the registry HTTP service (FastAPI on uvicorn) until interrupted."""
    import uvicorn  # noqa: PLC0415

    from computewatch.supplychain import (  # noqa: PLC0415
        HttpLimits,
        RegistrySettings,
        ReportPolicy,
        create_app,
        uvicorn_options,
    )

    # checked before anything is opened: uvicorn would take port 0 (or 65536,
    # modulo 2**16) as "any free port" and listen somewhere unannounced
    int_in_range("--port", port, 1, 65_535)
    text("--host", host, max_len=253)
    policy = ReportPolicy(
        never_registered_days * _DAY, max_transit_days * _DAY, mass_loss, mass_loss_days * _DAY
    )
    settings = RegistrySettings(
        db_url=db,
        log_key_file=key,
        registrar_key_file=registrar,
        registrar_id=registrar_id,
        max_skew_s=max_skew,
        max_batch=max_batch,
        policy=policy,
        witness_policy_file=witnesses,
    )
    signer = settings.load_signer()
    store = settings.open_store(signer.name)
    try:
        application = create_app(settings, store)
    except BaseException:
        store.close()
        raise
    say(
        f"registry {signer.name} on http://{host}:{port} ({store.backend}); "
        f"log key {signer.verifier.vkey}"
    )
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        **uvicorn_options(HttpLimits(max_body_bytes=settings.max_body_bytes)),
    )


@app.command("request")
def request_cmd(
    kind: Annotated[
        str,
        typer.Argument(
            help="register-actor, fabricate, transfer, receive, "
            "register-owner, resell, damage, destroy, lose, inspect, "
            "license-region, location-check"
        ),
    ],
    actor: Annotated[str, typer.Option("--actor", help="The submitting actor's id.")],
    key: Annotated[
        Path, typer.Option("--key", help="The submitting actor's private key.", parser=input_file())
    ],
    origin: Annotated[str, typer.Option("--origin", help="The registry's log origin.")],
    serial: Annotated[list[str] | None, typer.Option("--serial", help="A chip (repeat).")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Receiver (transfer, resell).")] = None,
    note: Annotated[str | None, typer.Option("--note")] = None,
    site: Annotated[str | None, typer.Option("--site", help="Site (register-owner).")] = None,
    found_holder: Annotated[str | None, typer.Option("--found-holder", help="(inspect)")] = None,
    seal_broken: Annotated[bool, typer.Option("--seal-broken", help="(inspect)")] = False,
    new_id: Annotated[
        str | None, typer.Option("--id", help="New actor id (register-actor).")
    ] = None,
    role: Annotated[str | None, typer.Option("--role", help="New actor role.")] = None,
    new_key: Annotated[
        Path | None,
        typer.Option("--new-key", help="New actor public key PEM.", parser=input_file()),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="New actor name.")] = None,
    chip: Annotated[
        list[str] | None, typer.Option("--chip", help="SERIAL=PUBKEY_PEM (fabricate).")
    ] = None,
    model: Annotated[str, typer.Option("--model", help="Chip model (fabricate).")] = "cw-emulated",
    capability: Annotated[list[str] | None, typer.Option("--capability")] = None,
    cosigner: Annotated[
        list[Path] | None,
        typer.Option("--cosign", help="Another party's key.", parser=input_file()),
    ] = None,
    region: Annotated[
        Path | None,
        typer.Option(
            "--region", help="Licensed region JSON (license-region).", parser=input_file()
        ),
    ] = None,
    check: Annotated[
        Path | None,
        typer.Option(
            "--check", help="`location check --json` output (location-check).", parser=input_file()
        ),
    ] = None,
    counter: Annotated[int | None, typer.Option("--counter", help="Default: time in us.")] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the signed request here.", parser=output_file()),
    ] = None,
    server: Annotated[str | None, typer.Option("--server", help="Submit to this registry.")] = None,
    log_key: Annotated[str | None, typer.Option("--log-key", help="Needed with --server.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Build and sign a request; write it (--out) or submit it (--server)."""
    from computewatch.supplychain import cosign, make_request, sign_request  # noqa: PLC0415

    texts = {"KIND": kind, "--actor": actor, "--origin": origin, "--to": to, "--note": note}
    texts |= {"--site": site, "--found-holder": found_holder, "--id": new_id, "--role": role}
    texts |= {"--name": name, "--model": model, "--log-key": log_key, "--server": server}
    lists = {"--serial": serial or [], "--chip": chip or [], "--capability": capability or []}
    check_request_options(texts, lists, counter, new_key, {"region": region, "check": check})
    opts = {
        "serial": serial or [],
        "to": to,
        "note": note,
        "site": site,
        "found_holder": found_holder,
        "seal_broken": seal_broken,
        "new_id": new_id,
        "role": role,
        "new_key": new_key,
        "name": name,
        "chip": chip or [],
        "model": model,
        "capability": capability or [],
        "region": region,
        "check": check,
    }
    now_us = time.time_ns() // 1000
    request = make_request(
        kind,
        registry=origin,
        actor=actor,
        counter=counter or now_us,
        time_us=now_us,
        body=request_body(kind, opts),
    )
    envelope = sign_request(request, [SigningKey.load(key)])
    for path in cosigner or []:
        envelope = cosign(envelope, SigningKey.load(path))
    if out is not None:
        out.write_bytes(envelope.to_json() + b"\n")
        say(f"wrote {kind} request by {actor} to {out} ({len(envelope.signatures)} signature(s))")
    if server is not None:
        if log_key is None:
            msg = "--server needs --log-key (the log's verifier key, to check the receipt)"
            raise FormatError(msg)
        _submit(server, log_key, envelope, as_json=as_json)
    elif out is None:
        sys_out = envelope.to_json().decode()
        console.print(sys_out, soft_wrap=True, markup=False)


def _submit(server: str, log_key: str, envelope: Envelope, *, as_json: bool) -> None:
    with client_for(server, log_key) as client:
        ack = client.submit(envelope)
    if as_json:
        emit_json(
            {"index": ack.index, "duplicate": ack.duplicate, "receipt": ack.receipt.to_text()}
        )
    else:
        say(
            f"logged at index {ack.index}; receipt verified against checkpoint size "
            f"{ack.receipt.checkpoint.checkpoint.size}"
        )


@app.command("cosign")
def cosign_cmd(
    file: Annotated[
        Path, typer.Argument(help="A signed request (from 'request --out').", parser=input_file())
    ],
    key: Annotated[Path, typer.Option("--key", help="Your private key.", parser=input_file())],
) -> None:
    """Add your signature to a request (the receiver of a transfer, a new actor)."""
    from computewatch.supplychain import cosign  # noqa: PLC0415

    envelope = cosign(Envelope.from_json(read_input(file, "request")), SigningKey.load(key))
    file.write_bytes(envelope.to_json() + b"\n")
    say(f"co-signed {file} ({len(envelope.signatures)} signatures)")


@app.command("submit")
def submit_cmd(
    file: Annotated[Path, typer.Argument(help="A signed request.", parser=input_file())],
    server: Server,
    log_key: LogKey,
    as_json: JsonFlag = False,
) -> None:
    """Submit a signed request; verifies the receipt."""
    _submit(
        server, log_key, Envelope.from_json(read_input(file, "request").strip()), as_json=as_json
    )


_registry_read.register(app)


@app.command("checkpoint")
def checkpoint_cmd(
    server: Server,
    log_key: LogKey,
    policy: PolicyFile = None,
    state: StateFile = None,
    since: Annotated[
        Path | None,
        typer.Option("--since", help="A saved checkpoint: prove consistency.", parser=input_file()),
    ] = None,
    save: Annotated[
        Path | None,
        typer.Option("--save", help="Save the verified checkpoint here.", parser=output_file()),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Fetch and verify the log's checkpoint (and its consistency with a saved one)."""
    from computewatch.crypto import verify_checkpoint  # noqa: PLC0415

    verifier = log_verifier(log_key)
    with client_for(server, log_key, policy, state) as client:
        if since is not None:
            client.last_checkpoint = verify_checkpoint(
                read_input(since, "--since"), [verifier], client.origin
            )
        old = client.last_checkpoint
        cp = client.checkpoint()
        signed = client.last_signed
    if save is not None and signed is not None:
        save.write_bytes(signed.to_bytes())
    doc = {
        "origin": cp.origin,
        "size": cp.size,
        "root": cp.root_hash.hex(),
        "consistent_with": old.size if old else None,
    }
    if as_json:
        emit_json(doc)
    else:
        extra = f"; consistent with the saved size {old.size}" if old else ""
        say(
            f"checkpoint {cp.origin}: size {cp.size}, root {cp.root_hash.hex()[:16]}…, "
            f"signature verified{extra}"
        )


@app.command("prove")
def prove_cmd(index: int, server: Server, log_key: LogKey, as_json: JsonFlag = False) -> None:
    """Fetch and verify a receipt (inclusion proof) for log entry INDEX."""
    with client_for(server, log_key) as client:
        receipt = client.receipt(index)
    if as_json:
        emit_json({"index": index, "receipt": receipt.to_text()})
    else:
        say(
            f"entry {index} is in the log (checkpoint size "
            f"{receipt.checkpoint.checkpoint.size}); receipt verified"
        )


@app.command("report")
def report_cmd(
    server: Server,
    log_key: LogKey,
    now_us: Annotated[
        int | None, typer.Option("--now-us", help="Report time (default now).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """The discrepancy report; exits 1 if there is anything to investigate."""
    with client_for(server, log_key) as client:
        report = client.discrepancies(now_us)
    if as_json:
        emit_json(report.to_json())
    else:
        for item in report.items:
            say(f"{item.kind.value}: {item.message}")
        say("no discrepancies" if report.clean else f"{len(report.items)} discrepancies")
    if not report.clean:
        raise typer.Exit(1)


@app.command("audit")
def audit_cmd(
    server: Server,
    log_key: LogKey,
    registrar: Registrar,
    registrar_id: Annotated[str, typer.Option("--registrar-id")] = "registrar",
    policy: PolicyFile = None,
    state: StateFile = None,
    as_json: JsonFlag = False,
) -> None:
    """Download the whole log, check it against the checkpoint and replay every rule."""
    from computewatch.crypto import MerkleLog  # noqa: PLC0415
    from computewatch.supplychain import Directory  # noqa: PLC0415

    with client_for(server, log_key, policy, state) as client:
        cp = client.checkpoint()
        entries = client.entries(0, cp.size)
        log = MerkleLog.in_memory()
        log.append_many(entries)
        if log.root() != cp.root_hash:
            msg = f"registry audit: the entries' root does not match checkpoint size {cp.size}"
            raise VerificationFailed(msg)
        directory = Directory.replay(
            entries, client.origin, registrar_id, VerifyingKey.load(registrar)
        )
        mismatched = [c.serial for c in directory.chips if client.chip(c.serial) != c]
    doc = {
        "size": cp.size,
        "actors": len(directory.actors),
        "chips": len(directory.chips),
        "mismatched": mismatched,
    }
    if as_json:
        emit_json(doc)
    else:
        say(
            f"audited {cp.size} entries: {doc['actors']} actors, {doc['chips']} chips; "
            f"{len(mismatched)} directory records differ from the replay"
        )
    if mismatched:
        msg = (
            f"registry audit: the directory differs from the log's replay: chips {mismatched[:10]}"
        )
        raise VerificationFailed(msg)


@app.command("verify")
def verify_cmd(
    receipt: Annotated[
        Path, typer.Argument(help="A receipt (c2sp.org/tlog-proof text).", parser=input_file())
    ],
    policy: Annotated[
        Path, typer.Option("--policy", help="tlog-policy file (logs, quorum).", parser=input_file())
    ],
    origin: Annotated[str, typer.Option("--origin", help="The log's origin.")],
    entry: Annotated[
        Path | None,
        typer.Option("--entry", help="The entry the receipt must prove.", parser=input_file()),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Verify an offline bundle: a receipt and a policy, no server (exit 1 if it fails)."""
    from computewatch.crypto import Policy, Receipt, verify_receipt  # noqa: PLC0415

    trust = Policy.parse(read_input(policy, "--policy"), str(policy))
    parsed = Receipt.from_text(read_input(receipt, "receipt"))
    data = None if entry is None else read_input(entry, "--entry")
    witnessed = trust.verify(parsed.checkpoint, origin)
    cp = verify_receipt(parsed, trust, origin, entry=data)
    names = sorted(witnessed.witnesses)
    doc = {"origin": cp.origin, "index": parsed.index, "size": cp.size, "witnesses": names}
    if as_json:
        emit_json(doc)
    else:
        names_text = ", ".join(names) or "none needed"
        say(f"entry {parsed.index} is in {cp.origin} at size {cp.size}; cosigned by {names_text}")
