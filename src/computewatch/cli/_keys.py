"""`computewatch keys ...`: Ed25519 key files for chipmakers, actors and servers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from computewatch.cli._output import emit_json, say
from computewatch.cli._paths import output_file
from computewatch.crypto import SigningKey

app = typer.Typer(help="Ed25519 key files (private 0600, public .pub).", no_args_is_help=True)


@app.command("generate")
def generate_cmd(
    path: Annotated[
        Path,
        typer.Argument(
            help="Private key file to write (PATH.pub gets the public key).",
            parser=output_file(),
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs.")] = False,
) -> None:
    """Generate a key pair; refuses to overwrite existing files."""
    key = SigningKey.generate()
    pub = path.with_name(path.name + ".pub")
    key.save(path)
    key.verifying_key.save(pub)
    if as_json:
        emit_json({"private": str(path), "public": str(pub), "key_id": key.key_id})
    else:
        say(f"wrote {path} (private, 0600) and {pub}; key id {key.key_id}")
