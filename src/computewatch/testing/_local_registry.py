"""The registry and receipt service in process, on SQLite, for tests and the attack corpus.

`LocalRegistry` is the real `computewatch.supplychain.Registry` (its writer
thread, rules, SQL store and Merkle log) over a database file in a folder
the caller owns, with a registrar and one fab already registered. `enrol`
fabricates a chip in its directory under the chip's own identity key, after
which the registry acknowledges the chip's signed log entries; the
registry is then the chip's ``receipts=`` callable::

    with LocalRegistry.create(tmp_path / "registry") as registry:
        registry.enrol(chip.serial, chip.public_key)
        image = sign_firmware(..., receipt_log=registry.receipt_log)
        chip = Chip.open(folder, receipts=registry)

`high_water` is what an inspector asks the live service for
(`RegistryClient.high_water`), here read in process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from computewatch.chip import ReceiptLog
from computewatch.crypto import NoteSigner, SigningKey
from computewatch.supplychain import (
    HighWater,
    Registry,
    RegistryStore,
    high_water_receipt,
    make_request,
    sign_request,
)

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

    from computewatch.crypto import Envelope, Receipt, VerifyingKey

__all__ = ["LocalRegistry"]

_ORIGIN = "registry.local.computewatch/log"
_REGISTRAR = "registrar"
_FAB = "fab-local"


@dataclass
class LocalRegistry:
    """A running in-process registry with a registrar and a fab (close it, or use ``with``)."""

    registry: Registry
    signer: NoteSigner
    registrar: SigningKey
    fab: SigningKey
    _counter: int = field(default=0)

    @classmethod
    def create(cls, folder: Path, origin: str = _ORIGIN) -> LocalRegistry:
        """Start a fresh registry whose database is ``folder/registry.db``."""
        folder.mkdir(parents=True, exist_ok=True)
        signer = NoteSigner.generate(origin)
        registrar, fab = SigningKey.generate(), SigningKey.generate()
        store = RegistryStore.open(
            f"sqlite:///{folder / 'registry.db'}",
            origin=origin,
            registrar_id=_REGISTRAR,
            registrar_key=registrar.verifying_key,
        )
        reg = cls(Registry(store, signer).start(), signer, registrar, fab)
        body = {"id": _FAB, "role": "fab", "key": fab.verifying_key.raw.hex()}
        reg._write("register-actor", _REGISTRAR, body, [registrar, fab])
        return reg

    @property
    def origin(self) -> str:
        """The registry log's origin."""
        return self.signer.name

    @property
    def receipt_log(self) -> ReceiptLog:
        """What firmware must be told to check this registry's receipts (origin and key)."""
        return ReceiptLog(self.origin, (self.signer.verifier,))

    def _write(self, kind: str, actor: str, body: dict[str, Any], keys: list[SigningKey]) -> None:
        self._counter += 1
        req = make_request(
            kind,
            registry=self.origin,
            actor=actor,
            counter=self._counter,
            time_us=round(time.time() * 1e6),
            body=body,
        )
        self.registry.write(sign_request(req, keys).to_json())

    def enrol(self, serial: str, key: VerifyingKey, *, model: str = "cw-test") -> None:
        """The fab registers a chip (its serial and identity key) in the directory."""
        entry = {"serial": serial, "key": key.raw.hex(), "model": model}
        self._write("fabricate", _FAB, {"chips": [entry]}, [self.fab])

    def __call__(self, envelope: Envelope) -> Receipt:
        """Log a chip's signed entry; its receipt once durable (the chip's ``receipts=``)."""
        return self.registry.write(envelope.to_json(), entry=True).receipt

    def high_water(self, serial: str) -> HighWater | None:
        """The registry's mark for ``serial`` (its newest logged entry), if any."""
        receipt = high_water_receipt(self.registry, serial)
        if receipt is None or receipt.entry is None:
            return None
        return HighWater.from_entry(receipt.entry, log_index=receipt.index, receipt=receipt)

    def close(self) -> None:
        """Stop the writer and close the database."""
        self.registry.close()

    def __enter__(self) -> Self:
        """Use as a context manager that closes it."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the registry."""
        self.close()
