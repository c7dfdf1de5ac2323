"""The demo's supply chain: fab, custody and ownership, signed and sent to the live registry."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from computewatch.crypto import SigningKey
from computewatch.supplychain import RequestKind, cosign, make_request, sign_request

if TYPE_CHECKING:
    from collections.abc import Sequence

    from computewatch.crypto import VerifyingKey
    from computewatch.supplychain import RegistryClient

__all__ = ["DemoSupplyChain"]


class DemoSupplyChain:
    """The registrar, the fab and the owners, each signing its own requests to the registry."""

    def __init__(self, client: RegistryClient, registrar: SigningKey) -> None:
        """Submit through `client`; `registrar` is the registry's registrar key."""
        self.client = client
        self.keys: dict[str, SigningKey] = {"registrar": registrar}

    def _submit(
        self,
        kind: RequestKind,
        actor: str,
        body: dict[str, Any],
        cosigner: str | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        now = time.time_ns() // 1000
        request = make_request(
            kind, registry=self.client.origin, actor=actor, counter=now, time_us=now, body=body
        )
        envelope = sign_request(request, [self.keys[actor], *(self.keys[e] for e in extra)])
        if cosigner is not None:
            envelope = cosign(envelope, self.keys[cosigner])
        self.client.submit(envelope)

    def register_actor(self, actor_id: str, role: str) -> SigningKey:
        """Register an actor (signed by the registrar and the actor); its new key."""
        key = SigningKey.generate()
        self.keys[actor_id] = key
        body = {"id": actor_id, "role": role, "key": key.verifying_key.raw.hex()}
        self._submit(RequestKind.REGISTER_ACTOR, "registrar", body, extra=[actor_id])
        return key

    def fabricate(self, fab: str, chips: dict[str, VerifyingKey]) -> None:
        """The fab registers chips with their identity keys."""
        specs = [
            {"serial": s, "key": k.raw.hex(), "model": "cw-emulated-accelerator"}
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
