"""A live registry with two Provers' chips, and the Provers' submissions on disk, for audit tests.

Usage::

    with audit_world(tmp_path, "sqlite:///...") as w:
        w.cli("audit", "plan", ...)

The registry is ``computewatch registry serve`` in a child process on
127.0.0.1 (`tests.supplychain.server`); the fab, the Provers and the
Verifier are registered actors whose requests are signed and submitted
through `RegistryClient`; every chip is a real emulated chip (provisioned
and booted with signed firmware) whose identity key is the one the fab
registers. ``lab-b`` presents none of its chips (each sampled chip is a
finding), unless ``present_b`` is set. With ``witnesses=N``, N live
``computewatch witness serve`` processes cosign every checkpoint the
registry signs, and ``AuditWorld.policy`` is a 2-of-N tlog-policy file.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from computewatch.chip import Chip, sign_firmware
from computewatch.cli import main
from computewatch.crypto import SigningKey
from computewatch.supplychain import RegistryClient
from tests.supplychain.server import ORIGIN, RegistryKeys, RegistryServer, registry_server
from tests.supplychain.witness_server import WitnessServer, witness_policy, witness_servers
from tests.supplychain.world import World

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["CHIPS", "PERIOD", "AuditWorld", "audit_world", "plan_args"]

CHIPS = 6
PERIOD = "2026-q4"
LABS = {"lab-a": "A", "lab-b": "B"}
_STARTS = 3


@dataclass
class AuditWorld:
    """The server, the actors' key files and the submissions folder."""

    root: Path
    server: RegistryServer
    keys: RegistryKeys
    world: World
    submissions: Path
    cluster_key: Path
    policy: Path | None = None
    witnesses: tuple[WitnessServer, ...] = ()

    @property
    def log_key(self) -> str:
        """The log's vkey."""
        return self.keys.log.verifier.vkey

    def key_file(self, actor: str) -> Path:
        """The actor's private key file."""
        return self.root / "keys" / f"{actor}.key"

    def cli(self, *args: str) -> int:
        """Run ``computewatch ARGS`` in this process; its exit status."""
        return main(list(args))


def _submit(client: RegistryClient, data: bytes) -> None:
    client.submit(data)


def plan_args(
    w: AuditWorld, folder: Path, period: str = PERIOD, server: str | None = None
) -> list[str]:
    """``audit plan`` for both labs: H = 4 chip-days of a 6-chip stockpile (b = 2/3)."""
    return [
        "audit",
        "plan",
        "--dir",
        str(folder),
        "--server",
        server or w.server.url,
        "--log-key",
        w.log_key,
        "--period",
        period,
        "--verifier",
        "reg-1",
        "--prover",
        "lab-a",
        "--prover",
        "lab-b",
        "--flops",
        "4",
        "--chip-flops-per-day",
        "1",
        "--run-days",
        "1",
        "--snapshots-per-day",
        "3",
        "--period-days",
        "1",
    ]


def _start(
    stack: contextlib.ExitStack, keys: RegistryKeys, db_url: str, args: tuple[str, ...] = ()
) -> RegistryServer:
    """Start the server; on a loaded machine its first start can miss the helper's 30 s."""
    for attempt in range(_STARTS):
        try:
            return stack.enter_context(registry_server(keys, db_url, args=args))
        except RuntimeError:
            if attempt == _STARTS - 1:
                raise
    raise AssertionError  # pragma: no cover - the loop returns or raises


@contextlib.contextmanager
def audit_world(
    root: Path, db_url: str, *, present_b: bool = False, witnesses: int = 0
) -> Iterator[AuditWorld]:
    """Start the registry, register everything, write the submissions; stop it afterwards."""
    keys = RegistryKeys.create(root / "registry")
    world = World(ORIGIN, keys.registrar)
    maker = SigningKey.generate()
    firmware = sign_firmware(name="fw", version=1, code=b"audit test", chipmaker=maker)
    (root / "keys").mkdir(parents=True)
    for actor in ("lab-a", "lab-b", "reg-1"):
        world.key(actor).save(root / "keys" / f"{actor}.key")
    cluster = SigningKey.generate()
    cluster.save(root / "keys" / "cluster.key")
    cluster.verifying_key.save(root / "keys" / "cluster.pub")
    submissions = root / "submissions"
    with contextlib.ExitStack() as stack:
        policy, servers = None, []
        args: tuple[str, ...] = ()
        if witnesses:
            servers = stack.enter_context(
                witness_servers(root / "witnesses", [keys.log.verifier], n=witnesses)
            )
            policy = root / "policy.txt"
            policy.write_text(witness_policy(keys.log.verifier, servers, quorum=2))
            args = ("--witnesses", str(policy))
        server = _start(stack, keys, db_url, args)
        with RegistryClient(server.url, keys.log.verifier) as client:
            for actor, role in (("fab-1", "fab"), ("reg-1", "verifier")):
                _submit(client, world.register(actor, role))
            for lab, tag in LABS.items():
                _submit(client, world.register(lab, "owner"))
                specs, serials = [], []
                for i in range(CHIPS):
                    serial = f"CW-{tag}{i:03d}"
                    folder = submissions / lab / "chips" / serial
                    with Chip.provision(folder, serial, maker.verifying_key) as chip:
                        chip.boot(firmware)
                        specs.append(
                            {"serial": serial, "key": chip.public_key.raw.hex(), "model": "cw"}
                        )
                    serials.append(serial)
                _submit(client, world.request("fabricate", "fab-1", {"chips": specs}))
                _submit(client, world.custody("transfer", "fab-1", serials, to=lab))
                _submit(client, world.custody("receive", lab, serials))
                _submit(client, world.custody("register-owner", lab, serials))
                shown = lab == "lab-a" or present_b
                doc = {
                    "prover": lab,
                    "chips": {s: f"chips/{s}" for s in serials} if shown else {},
                    "runs": {},
                    "declared": {},
                }
                (submissions / lab / "submission.json").write_text(json.dumps(doc))
        yield AuditWorld(
            root,
            server,
            keys,
            world,
            submissions,
            root / "keys" / "cluster.key",
            policy,
            tuple(servers),
        )
