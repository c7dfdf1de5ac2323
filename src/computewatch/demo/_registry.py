"""The demo's chip-owner directory: fab, custody and ownership, signed and logged."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from computewatch.crypto import MerkleLog, SigningKey, VerifyingKey
from computewatch.inspection import DirectoryRecord
from computewatch.supplychain import (
    ChipStatus,
    Directory,
    RequestKind,
    cosign,
    make_request,
    sign_request,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

ORIGIN = "computewatch.example/demo-registry"


class DemoRegistry:
    """An embedded registry: the custody rules over a directory and its Merkle log."""

    def __init__(self, log_path: Path | None = None) -> None:
        """Start a registry with a fresh registrar; its log in SQLite at `log_path`."""
        self.registrar = SigningKey.generate()
        self.directory = Directory(ORIGIN, "registrar", self.registrar.verifying_key)
        self.log = MerkleLog.open(log_path) if log_path is not None else MerkleLog.in_memory()
        self.keys: dict[str, SigningKey] = {"registrar": self.registrar}
        self._counters: dict[str, int] = {}
        self._time_us = 1_700_000_000_000_000

    def _submit(
        self,
        kind: RequestKind,
        actor: str,
        body: dict[str, Any],
        cosigner: str | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        self._counters[actor] = self._counters.get(actor, 0) + 1
        self._time_us += 1_000_000
        request = make_request(
            kind,
            registry=ORIGIN,
            actor=actor,
            counter=self._counters[actor],
            time_us=self._time_us,
            body=body,
        )
        signers = [self.keys[actor], *(self.keys[e] for e in extra)]
        envelope = sign_request(request, signers)
        if cosigner is not None:
            envelope = cosign(envelope, self.keys[cosigner])
        data = envelope.to_json()
        self.directory.submit(data)
        self.log.append(data)

    def register_actor(self, actor_id: str, role: str) -> SigningKey:
        """Register an actor (signed by the registrar and the actor)."""
        key = SigningKey.generate()
        self.keys[actor_id] = key
        body = {"id": actor_id, "role": role, "key": key.verifying_key.raw.hex()}
        self._submit(RequestKind.REGISTER_ACTOR, "registrar", body, extra=[actor_id])
        return key

    def fabricate(self, fab: str, chips: dict[str, VerifyingKey]) -> None:
        """The fab registers chips with their identity keys."""
        specs = [
            {
                "serial": s,
                "key": k.raw.hex(),
                "model": "cw-emulated-accelerator",
                "capabilities": [],
            }
            for s, k in chips.items()
        ]
        self._submit(RequestKind.FABRICATE, fab, {"chips": specs})

    def deliver(self, sender: str, receiver: str, serials: list[str]) -> None:
        """Transfer (signed by both), receipt, and registration to the new owner."""
        self._submit(
            RequestKind.TRANSFER, sender, {"serials": serials, "to": receiver}, cosigner=receiver
        )
        self._submit(RequestKind.RECEIVE, receiver, {"serials": serials})
        self._submit(RequestKind.REGISTER_OWNER, receiver, {"serials": serials})

    # -- the audit's view (inspection.ChipDirectory) -----------------------

    def chips_of(self, owner: str) -> list[str]:
        """Serials the directory says `owner` holds."""
        return sorted(
            c.serial
            for c in self.directory.chips
            if c.owner == owner and c.status is ChipStatus.HELD
        )

    def record(self, serial: str) -> DirectoryRecord | None:
        """The directory's record of a chip."""
        state = self.directory.chip(serial)
        if state is None or state.owner is None:
            return None
        return DirectoryRecord(serial, state.owner, VerifyingKey.from_raw(state.key))

    def checkpoint_root(self) -> bytes:
        """The root of the registry's Merkle log now."""
        return self.log.root()

    def summary(self) -> dict[str, object]:
        """For the demo's output."""
        return {
            "origin": ORIGIN,
            "log_size": self.log.size,
            "root": self.log.root().hex(),
            "chips": {c.serial: c.owner for c in self.directory.chips},
            "events": len(self.directory.events()),
        }
