"""Durability: SIGKILL the registry under concurrent receipt load; no acknowledged entry is lost.

Chips (threads, each its own `ReceiptClient`) post signed entries as fast as
the server acknowledges them. The server process is killed with SIGKILL in
the middle of that load, several times, and restarted on the same database.
After each restart:

* every entry the server had acknowledged is in the log at the index its
  receipt named (the log is downloaded and its root recomputed);
* the checkpoint after the restart is consistent with the largest one the
  chips saw before the kill (the server's consistency proof verifies), so
  the log was extended, never rewritten.

A server that answered before its transaction committed would fail this.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pytest

from computewatch.crypto import Envelope, MerkleLog, verify_consistency
from computewatch.errors import CheckUnavailable
from computewatch.supplychain import ReceiptClient, RegistryClient
from tests.supplychain.server import ORIGIN, RegistryKeys, registry_server
from tests.supplychain.world import World

if TYPE_CHECKING:
    from computewatch.crypto import Checkpoint, Receipt
    from tests.supplychain.pg import PostgresServer

pytestmark = pytest.mark.slow

CHIPS = 6
LOAD_S = 0.8


class Load:
    """Chips posting entries concurrently; records what was acknowledged."""

    def __init__(self, url: str, keys: RegistryKeys, world: World, serials: list[str]) -> None:
        self.acked: dict[int, bytes] = {}
        self.largest: Checkpoint | None = None
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._chip, args=(url, keys, world, s), daemon=True)
            for s in serials
        ]

    def wait_for(self, acked: int, *, at_least_s: float, at_most_s: float = 30.0) -> None:
        """Let the load run ``at_least_s``, and until ``acked`` entries are acknowledged."""
        start = time.monotonic()
        time.sleep(at_least_s)
        while len(self.acked) < acked and time.monotonic() - start < at_most_s and not self.errors:
            time.sleep(0.05)

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _chip(self, url: str, keys: RegistryKeys, world: World, serial: str) -> None:
        with ReceiptClient(url, [keys.log.verifier], ORIGIN, timeout=0.5) as client:
            seq = 0
            while not self._stop.is_set():
                data = world.entry(serial, seq)
                try:
                    receipt: Receipt = client(Envelope.from_json(data))
                except CheckUnavailable:
                    continue  # the server is down: retry the same entry (idempotent)
                except Exception as e:  # noqa: BLE001 - any other refusal fails the test
                    self.errors.append(f"{serial} seq {seq}: {e}")
                    return
                with self._lock:
                    if receipt.index in self.acked and self.acked[receipt.index] != data:
                        self.errors.append(f"index {receipt.index} acknowledged for two entries")
                    self.acked[receipt.index] = data
                    cp = client.last_checkpoint
                    if cp is not None and (self.largest is None or cp.size > self.largest.size):
                        self.largest = cp
                seq += 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_under_load_loses_no_acknowledged_receipt(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> None:
    folder = tmp_path_factory.mktemp(f"durability-{backend}")
    if backend == "sqlite":
        url, cycles = f"sqlite:///{folder / 'registry.db'}", 3
    else:
        pg: PostgresServer = request.getfixturevalue("postgres")
        url, cycles = pg.create_database("cw_durability"), 2
    keys = RegistryKeys.create(folder / "keys")
    world = World(ORIGIN, keys.registrar)
    serials = [f"DUR-{i}" for i in range(CHIPS)]
    with registry_server(keys, url) as server:
        with RegistryClient(server.url, keys.log.verifier) as setup:
            setup.submit(world.register("fab-1", "fab"))
            setup.submit(world.fabricate("fab-1", serials))
        load = Load(server.url, keys, world, serials)
        load.start()
        try:
            for cycle in range(cycles):
                load.wait_for(len(load.acked) + 4 * CHIPS, at_least_s=LOAD_S)
                server.kill()  # mid-load: no shutdown, no flush
                with load._lock:  # what the server had acknowledged when it died
                    acked, before = dict(load.acked), load.largest
                assert acked, f"cycle {cycle}: no receipt acknowledged under load"
                assert before is not None
                server.start()
                with RegistryClient(server.url, keys.log.verifier) as auditor:
                    after = auditor.checkpoint()
                    assert after.size >= before.size
                    proof = (
                        auditor.consistency_proof(before.size, after.size)
                        if after.size > before.size
                        else ()
                    )
                    if proof:
                        verify_consistency(
                            old_size=before.size,
                            new_size=after.size,
                            proof=proof,
                            old_root=before.root_hash,
                            new_root=after.root_hash,
                        )
                    else:
                        assert after.root_hash == before.root_hash
                    entries = auditor.entries(0, after.size)
                log = MerkleLog.in_memory()
                log.append_many(entries)
                assert log.root() == after.root_hash
                missing = [
                    i for i, data in acked.items() if i >= len(entries) or entries[i] != data
                ]
                assert not missing, f"cycle {cycle}: acknowledged entries lost: {missing[:10]}"
                assert not load.errors, load.errors[:5]
        finally:
            load.stop()
    assert len(load.acked) > cycles * CHIPS
