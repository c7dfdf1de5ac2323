"""`computewatch witness ...`: a C2SP transparency-log witness (tlog-witness).

``keygen`` writes a cosigning key (Ed25519 or ML-DSA-44) and prints its
vkey; ``serve`` runs ``add-checkpoint`` over HTTP for the logs given by
their note vkeys, keeping the latest cosigned checkpoint of each in SQLite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from computewatch.cli._output import emit_json, say
from computewatch.cli._paths import input_file, output_file
from computewatch.cli._registry_args import checked_text
from computewatch.crypto import CosignatureKind, NoteVerifier
from computewatch.errors import FormatError

app = typer.Typer(
    help="A transparency-log witness: cosigns only checkpoints consistent with its past.",
    no_args_is_help=True,
)


def _vkey(value: str) -> NoteVerifier:
    path = Path(value)
    text = value
    if "+" not in value or path.is_file():
        try:
            text = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as e:
            msg = f"--log {value!r:.60}: neither a vkey nor a readable file ({e})"
            raise FormatError(msg) from e
    return NoteVerifier.from_vkey(text)


@app.command("keygen")
def keygen_cmd(
    out: Annotated[
        Path, typer.Option("--out", help="Key file to write (0600).", parser=output_file())
    ],
    name: Annotated[str, typer.Option("--name", help="The witness's name, e.g. w1.example.")],
    mldsa: Annotated[bool, typer.Option("--mldsa", help="ML-DSA-44 instead of Ed25519.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Generate a witness cosigning key; prints its vkey (for tlog-policy files)."""
    from computewatch.supplychain import write_cosigner_key  # noqa: PLC0415

    checked_text("--name", name)
    kind = CosignatureKind.MLDSA44 if mldsa else CosignatureKind.ED25519
    cosigner = write_cosigner_key(out, name, kind)
    if as_json:
        emit_json({"key_file": str(out), "vkey": cosigner.key.vkey, "kind": kind.name})
    else:
        say(f"wrote {out} (0600); witness key: {cosigner.key.vkey}")


@app.command("serve")
def serve_cmd(
    db: Annotated[
        Path, typer.Option("--db", help="SQLite file of the witness's state.", parser=output_file())
    ],
    key: Annotated[
        list[Path],
        typer.Option("--key", help="Cosigning key file (repeatable).", parser=input_file()),
    ],
    log: Annotated[list[str], typer.Option("--log", help="A log's note vkey, or a file.")],
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8100,
) -> None:
    """Run the witness HTTP service (add-checkpoint) until interrupted."""
    import uvicorn  # noqa: PLC0415

    from computewatch.crypto import Witness  # noqa: PLC0415
    from computewatch.supplychain import create_witness_app, load_cosigner  # noqa: PLC0415

    cosigners = [load_cosigner(k) for k in key]
    logs: dict[str, list[NoteVerifier]] = {}
    for value in log:
        verifier = _vkey(value)
        logs.setdefault(verifier.name, []).append(verifier)
    witness = Witness.open(db, cosigners, logs)
    try:
        application = create_witness_app(witness)
    except BaseException:
        witness.close()
        raise
    names = ", ".join(c.key.vkey.split("+")[0] for c in cosigners)
    say(f"witness {names} on http://{host}:{port} for {', '.join(sorted(logs))}")
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)
