"""A supply chain for tests: actors with keys and counters that sign registry requests.

Usage::

    world = World(ORIGIN, registrar_key)
    directory.submit(world.register("fab-1", "fab"))
    data, chip_keys = world.fabricate("fab-1", ["CW-1", "CW-2"])
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

from computewatch.chip import LOG_ENTRY_PAYLOAD_TYPE
from computewatch.crypto import SigningKey, canonical_json, sign_envelope
from computewatch.supplychain import make_request, sign_request

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["World", "chip_entry"]


def _seed(name: str) -> bytes:
    return hashlib.sha256(f"computewatch-test-key:{name}".encode()).digest()


def chip_entry(
    key: SigningKey, serial: str, seq: int, *, time_us: int = 1_700_000_000_000_000
) -> bytes:
    """A chip log entry envelope (a snapshot) signed by ``key``, as canonical bytes."""
    doc = {
        "serial": serial,
        "seq": seq,
        "time_us": time_us + seq,
        "kind": "snapshot",
        "body": {
            "step": seq,
            "h": "sha256:" + hashlib.sha256(f"{serial}/{seq}".encode()).hexdigest(),
        },
        "prev": "sha256:" + "00" * 32,
    }
    return sign_envelope(LOG_ENTRY_PAYLOAD_TYPE, canonical_json(doc), [key]).to_json()


class World:
    """Actors, their deterministic keys and counters; builds signed requests."""

    def __init__(
        self,
        origin: str,
        registrar: SigningKey,
        *,
        registrar_id: str = "registrar",
        clock: Callable[[], float] = time.time,
    ) -> None:
        """A world whose registrar holds ``registrar``."""
        self.origin = origin
        self.keys: dict[str, SigningKey] = {registrar_id: registrar}
        self.registrar_id = registrar_id
        self.chip_keys: dict[str, SigningKey] = {}
        self._counter = 0
        self.clock = clock

    def key(self, actor: str) -> SigningKey:
        """The actor's key (made on first use)."""
        if actor not in self.keys:
            self.keys[actor] = SigningKey.from_seed(_seed(actor))
        return self.keys[actor]

    def request(
        self,
        kind: str,
        actor: str,
        body: dict[str, Any],
        *,
        cosigners: Sequence[str] = (),
        counter: int | None = None,
        time_us: int | None = None,
        signers: Sequence[SigningKey] | None = None,
    ) -> bytes:
        """A signed request by ``actor`` (and ``cosigners``), as canonical envelope bytes."""
        self._counter += 1
        now = round(self.clock() * 1e6) if time_us is None else time_us
        req = make_request(
            kind,
            registry=self.origin,
            actor=actor,
            counter=counter or self._counter,
            time_us=now,
            body=body,
        )
        keys = list(signers) if signers is not None else [self.key(a) for a in (actor, *cosigners)]
        return sign_request(req, keys).to_json()

    def register(self, actor_id: str, role: str, *, name: str = "") -> bytes:
        """The registrar registers ``actor_id`` (signed by the registrar and the new key)."""
        body: dict[str, Any] = {
            "id": actor_id,
            "role": role,
            "key": self.key(actor_id).verifying_key.raw.hex(),
        }
        if name:
            body["name"] = name
        return self.request("register-actor", self.registrar_id, body, cosigners=[actor_id])

    def fabricate(self, fab: str, serials: Sequence[str], *, model: str = "cw-test") -> bytes:
        """``fab`` registers chips with fresh deterministic keys (kept in `chip_keys`)."""
        chips = []
        for serial in serials:
            key = SigningKey.from_seed(_seed(f"chip/{serial}"))
            self.chip_keys[serial] = key
            chips.append({"serial": serial, "key": key.verifying_key.raw.hex(), "model": model})
        return self.request("fabricate", fab, {"chips": chips})

    def custody(self, kind: str, actor: str, serials: Sequence[str], **body: Any) -> bytes:
        """A custody request; transfers and resales are co-signed by the receiver ``to``."""
        cosigners = [body["to"]] if kind in {"transfer", "resell"} else []
        return self.request(kind, actor, {"serials": list(serials), **body}, cosigners=cosigners)

    def entry(self, serial: str, seq: int) -> bytes:
        """A signed snapshot entry of a fabricated chip."""
        return chip_entry(self.chip_keys[serial], serial, seq)
