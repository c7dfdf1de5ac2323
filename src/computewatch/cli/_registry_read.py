"""`computewatch registry chip|locations|actor`: reading one record from the directory.

Registered on the ``registry`` group by `_registry` (`register`), in the
place the group's help lists them.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from computewatch._validate import int_in_range
from computewatch.cli._output import emit_json, say
from computewatch.cli._registry_args import JsonFlag, LogKey, Server, checked_text, client_for
from computewatch.crypto import VerifyingKey

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the read commands to the ``registry`` group."""
    app.command("chip")(chip_cmd)
    app.command("locations")(locations_cmd)
    app.command("actor")(actor_cmd)


def chip_cmd(serial: str, server: Server, log_key: LogKey, as_json: JsonFlag = False) -> None:
    """A chip's directory record and custody history."""
    checked_text("SERIAL", serial)
    with client_for(server, log_key) as client:
        chip, history = client.chip(serial), client.history(serial)
    if as_json:
        emit_json({"chip": chip.to_json(), "history": [e.to_json() for e in history]})
        return
    owner = chip.owner or "none"
    say(
        f"chip S/N {chip.serial} ({chip.model}, fab {chip.fab}): {chip.status.value}, "
        f"holder {chip.holder}, owner {owner}"
    )
    for e in history:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.time_us / 1e6))
        other = f" -> {e.counterparty}" if e.counterparty else ""
        flag = " [FLAGGED]" if e.flagged else ""
        say(f"  #{e.log_index} {stamp} {e.kind.value} by {e.actor}{other}{flag}")


def locations_cmd(
    serial: str,
    server: Server,
    log_key: LogKey,
    limit: Annotated[int, typer.Option("--limit", help="The latest this many checks.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """A chip's licensed region and its latest logged location checks (docs/location.md)."""
    from computewatch.supplychain import UnknownEntity  # noqa: PLC0415

    checked_text("SERIAL", serial)
    int_in_range("--limit", limit, 1, 1000)
    with client_for(server, log_key) as client:
        try:
            region = client.region(serial)
        except UnknownEntity:
            region = None
        checks = client.locations(serial, limit=limit)
    if as_json:
        emit_json(
            {
                "serial": serial,
                "region": None if region is None else region.to_json(),
                "checks": [c.to_json() for c in checks],
            }
        )
        return
    say(
        f"chip S/N {serial}: "
        + ("no licensed region" if region is None else f"licensed to {region.region_id}")
    )
    for c in checks:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(c.time_us / 1e6))
        say(f"  #{c.log_index} {stamp} {c.summary}")


def actor_cmd(actor_id: str, server: Server, log_key: LogKey, as_json: JsonFlag = False) -> None:
    """A registered actor."""
    checked_text("ACTOR_ID", actor_id)
    with client_for(server, log_key) as client:
        actor = client.actor(actor_id)
    if as_json:
        emit_json(actor.to_json())
    else:
        say(
            f"{actor.actor_id}: {actor.role.value}, key {VerifyingKey.from_raw(actor.key).key_id}, "
            f"registered at log index {actor.log_index}"
        )
