"""`computewatch chip ...`: create, boot, inspect and attest emulated chips."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from computewatch._validate import text
from computewatch.chip import (
    Chip,
    LogEntry,
    check_attestation,
    read_chip_log,
    sign_firmware,
    verify_attested_log,
)
from computewatch.cli._output import console, emit_json, say
from computewatch.cli._paths import (
    input_bytes,
    input_file,
    input_folder,
    output_file,
    output_folder,
)
from computewatch.crypto import SigningKey, VerifyingKey
from computewatch.errors import FormatError

app = typer.Typer(
    help="Emulated ML chips: firmware, logs, attestation (paper §4).", no_args_is_help=True
)

_SHOWN = 24  # characters of a log detail shown in the table

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for programs.")]
ChipDir = Annotated[Path, typer.Argument(help="The chip's folder.", parser=input_folder())]
NewChipDir = Annotated[Path, typer.Argument(help="The new chip's folder.", parser=output_folder())]


@app.command("create")
def create_cmd(
    folder: NewChipDir,
    serial: Annotated[str, typer.Option("--serial", help="Burned-in serial number.")],
    chipmaker: Annotated[
        Path, typer.Option("--chipmaker", help="Chipmaker public key (PEM).", parser=input_file())
    ],
    se_uri: Annotated[
        str | None, typer.Option("--se", help="Secure element URI (default file:FOLDER/se).")
    ] = None,
    capacity: Annotated[
        int, typer.Option("--capacity", help="Log capacity in entries.")
    ] = 1_000_000,
    as_json: JsonFlag = False,
) -> None:
    """Manufacture a chip: secure element, burned-in serial, sealed chipmaker key."""
    if folder.is_dir() and any(folder.iterdir()) and not (folder / "chip.json").exists():
        msg = f"chip create {folder}: expected a new or empty folder, got one with files"
        raise FormatError(msg)
    if se_uri is not None:
        text("--se", se_uri, max_len=1024)
    with Chip.provision(
        folder, serial, VerifyingKey.load(chipmaker), se_uri=se_uri, capacity=capacity
    ) as chip:
        doc = {"folder": str(folder), "serial": chip.serial, "key_id": chip.public_key.key_id}
    if as_json:
        emit_json(doc)
    else:
        say(f"created chip {doc['serial']} in {folder}; identity key {doc['key_id']}")


@app.command("firmware")
def firmware_cmd(
    key: Annotated[
        Path, typer.Option("--chipmaker-key", help="Chipmaker private key.", parser=input_file())
    ],
    code: Annotated[
        Path, typer.Option("--code", help="The firmware code file.", parser=input_bytes())
    ],
    version: Annotated[int, typer.Option("--version", help="Version (anti-rollback).")],
    out: Annotated[
        Path, typer.Option("--out", help="Signed image to write (JSON).", parser=output_file())
    ],
    name: Annotated[str, typer.Option("--name", help="Firmware name.")] = "computewatch-fw",
    rate: Annotated[
        float, typer.Option("--snapshots-per-day", help="f, set by the Verifier (Eq. 1).")
    ] = 0.1,
) -> None:
    """Sign a firmware image as the chipmaker."""
    try:
        data = code.read_bytes()
    except OSError as e:
        msg = f"--code {code}: cannot read ({e.strerror})"
        raise FormatError(msg) from e
    env = sign_firmware(
        name=name,
        version=version,
        code=data,
        chipmaker=SigningKey.load(key),
        snapshot_rate_per_day=rate,
    )
    out.write_bytes(env.to_json() + b"\n")
    say(f"wrote {out}: {name} v{version}, f = {rate:g}/chip-day")


@app.command("boot")
def boot_cmd(
    folder: ChipDir,
    firmware: Annotated[
        Path, typer.Option("--firmware", help="Signed firmware image.", parser=input_file())
    ],
) -> None:
    """Boot signed firmware (refuses unsigned and rolled-back images)."""
    try:
        env = firmware.read_bytes()
    except OSError as e:
        msg = f"--firmware {firmware}: cannot read ({e.strerror})"
        raise FormatError(msg) from e
    with Chip.open(folder) as chip:
        image = chip.boot(env)
    say(f"chip {chip.serial} booted {image.name} v{image.version}")


@app.command("log")
def log_cmd(
    folder: ChipDir,
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            help="Verify against this public key instead of the chip's.",
            parser=input_file(),
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the chip's verified log."""
    entries = _verified_entries(folder, key)
    if as_json:
        emit_json(
            [
                {
                    "seq": e.seq,
                    "time_us": e.time_us,
                    "kind": e.kind,
                    "body": e.body,
                    "entry_hash": str(e.entry_hash),
                }
                for e in entries
            ]
        )
        return
    t = Table(title=f"log of chip {folder.name}: {len(entries)} entries, verified")
    for col in ("seq", "time (UTC)", "kind", "details"):
        t.add_column(col)
    for e in entries:
        details = ", ".join(f"{k}={_short(v)}" for k, v in sorted(e.body.items()))
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.time))
        t.add_row(str(e.seq), stamp, e.kind, details)
    console.print(t)


def _short(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "…"


def _verified_entries(folder: Path, key: Path | None) -> list[LogEntry]:
    """The log, checked against the count the chip attests now under a fresh nonce.

    The chip is opened read-only: verifying never repairs or rewrites the
    evidence, so a torn, cut or emptied log is reported as tampering.
    """
    nonce = secrets.token_bytes(32)
    with Chip.open(folder, read_only=True) as chip:
        public_key = VerifyingKey.load(key) if key is not None else chip.public_key
        serial = str(chip.serial)
        claims = check_attestation(chip.attest(nonce), public_key, serial, nonce)
        path = chip.log_path
    envelopes = read_chip_log(path) if path.exists() else []
    return verify_attested_log(envelopes, claims, public_key, serial)


@app.command("verify")
def verify_cmd(
    folder: ChipDir,
    key: Annotated[
        Path | None,
        typer.Option("--key", help="Registered public key to verify against.", parser=input_file()),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Verify the chip's log (signatures, chain, attested count); exit 1 on tampering."""
    entries = _verified_entries(folder, key)
    kinds: dict[str, int] = {}
    for e in entries:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    if as_json:
        emit_json({"verified": True, "entries": len(entries), "kinds": kinds})
    else:
        summary = ", ".join(f"{k} {n}" for k, n in kinds.items())
        say(f"log verified: {len(entries)} entries ({summary})")


@app.command("attest")
def attest_cmd(
    folder: ChipDir,
    nonce: Annotated[str, typer.Option("--nonce", help="The Verifier's nonce (hex, 8-256 bytes).")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the envelope here.", parser=output_file())
    ] = None,
) -> None:
    """Produce a signed attestation for the Verifier's nonce."""
    try:
        raw = bytes.fromhex(nonce)
    except ValueError as e:
        msg = f"--nonce {nonce[:20]!r}: expected hex"
        raise FormatError(msg) from e
    with Chip.open(folder, read_only=True) as chip:
        env = chip.attest(raw)
    if out is not None:
        out.write_bytes(env.to_json() + b"\n")
        say(f"wrote attestation of chip {chip.serial} to {out}")
    else:
        emit_json({"payloadType": env.payload_type, "payload": json.loads(env.payload)})
