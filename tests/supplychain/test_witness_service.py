"""The witness over HTTP (a live `computewatch witness serve`), killed with SIGKILL mid-request.

The status codes and bodies of tlog-witness over real HTTP, and the crash
property: whatever instant the process dies, it never cosigns a checkpoint
inconsistent with one it cosigned before (its SQLite state is committed
before any cosignature leaves it).
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
import pytest

from computewatch.crypto import (
    Checkpoint,
    MerkleLog,
    NoteSignature,
    NoteSigner,
    SignedCheckpoint,
    add_checkpoint_body,
)
from tests.crypto import c2sp_facts as spec
from tests.supplychain.witness_server import WitnessServer, witness_servers

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.slow
ORIGIN = "log.test/witnessed"


@pytest.fixture(scope="module")
def signer() -> NoteSigner:
    return NoteSigner.generate(ORIGIN)


@pytest.fixture(scope="module")
def witness(
    tmp_path_factory: pytest.TempPathFactory, signer: NoteSigner
) -> Iterator[WitnessServer]:
    with witness_servers(tmp_path_factory.mktemp("w"), [signer.verifier], n=1) as (server,):
        yield server


def _post(server: WitnessServer, body: bytes) -> httpx.Response:
    return httpx.post(f"{server.url}/add-checkpoint", content=body, timeout=30)


def test_status_codes_over_http(witness: WitnessServer, signer: NoteSigner) -> None:
    log = MerkleLog.in_memory()
    log.append_many([b"a", b"b", b"c"])
    at3 = log.checkpoint(signer)
    ok = _post(witness, add_checkpoint_body(0, (), at3.to_bytes()))
    assert ok.status_code == 200, ok.text
    line = NoteSignature.from_line(ok.text.rstrip("\n"), 1)
    assert witness.cosigner.key.verify(at3.checkpoint, line)
    # 409 with the latest size as the body, in text/x.tlog.size
    conflict = _post(witness, add_checkpoint_body(0, (), at3.to_bytes()))
    assert conflict.status_code == spec.STATUS_SIZE_MISMATCH
    assert conflict.content == b"3\n"
    assert conflict.headers["content-type"] == spec.SIZE_CONTENT_TYPE
    # 400 old > new, 403 bad key, 404 unknown origin, 422 bad proof
    assert _post(witness, add_checkpoint_body(4, (), at3.to_bytes())).status_code == 400
    stranger = SignedCheckpoint.sign(at3.checkpoint, [NoteSigner.generate(ORIGIN)])
    assert _post(witness, add_checkpoint_body(3, (), stranger.to_bytes())).status_code == 403
    other = NoteSigner.generate("other.test/log")
    unknown = SignedCheckpoint.sign(Checkpoint("other.test/log", 0, log.root(0)), [other])
    assert _post(witness, add_checkpoint_body(0, (), unknown.to_bytes())).status_code == 404
    log.append_many([b"d"])
    bad = _post(
        witness, add_checkpoint_body(3, (bytes(32),) * 3, log.checkpoint(signer).to_bytes())
    )
    assert bad.status_code == spec.STATUS_BAD_PROOF
    assert bad.text.startswith("tampering detected")
    # the monitoring endpoint serves the latest cosigned checkpoint
    origin_hash = hashlib.sha256(ORIGIN.encode()).hexdigest()
    latest = httpx.get(f"{witness.url}/{origin_hash}/checkpoint", timeout=30)
    assert SignedCheckpoint.parse(latest.content).checkpoint == at3.checkpoint
    assert httpx.get(f"{witness.url}/{'0' * 64}/checkpoint", timeout=30).status_code == 404


def test_bodies_are_bounded_before_reading(witness: WitnessServer) -> None:
    huge = b"old 0\n" + b"A" * (3 << 20)
    assert _post(witness, huge).status_code == 413
    assert _post(witness, b"garbage").status_code == 400


def _fork(size: int, at: int) -> MerkleLog:
    """A log whose entries equal the honest log's up to ``at`` and differ after."""
    log = MerkleLog.in_memory()
    log.append_many([f"e{i}".encode() if i < at else f"forged {i}".encode() for i in range(size)])
    return log


@dataclass
class _Pushers:
    """Threads pushing random checkpoints of the honest log (two) and of a fork (one)."""

    server: WitnessServer
    signer: NoteSigner
    sources: tuple[MerkleLog, ...]
    cosigned: list[tuple[int, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def push(self, stop: threading.Event, source: MerkleLog, seed: float) -> None:
        r = random.Random(seed)  # noqa: S311 - test scheduling, not cryptography
        old = 0
        while not stop.is_set():
            size = r.randrange(1, source.size)
            if old > size:
                size = min(source.size, old + r.randrange(0, 20))
            proof = source.consistency_proof(old, size) if 0 < old < size else ()
            body = add_checkpoint_body(old, proof, _signed_at(source, size, self.signer).to_bytes())
            try:
                response = httpx.post(f"{self.server.url}/add-checkpoint", content=body, timeout=5)
            except httpx.HTTPError:
                time.sleep(0.01)
                continue
            if response.status_code == spec.STATUS_SIZE_MISMATCH:
                old = int(response.text)
            elif response.status_code == 200:
                line = NoteSignature.from_line(response.text.rstrip("\n"), 1)
                cp = Checkpoint(ORIGIN, size, source.root(size))
                assert self.server.cosigner.key.verify(cp, line), "a cosignature that fails"
                with self.lock:
                    self.cosigned.append((size, source.root(size)))
                old = size

    def round(self, rng: random.Random) -> None:
        """Push from all sources, SIGKILL the witness at a random instant, restart it."""
        stop = threading.Event()
        threads = [
            threading.Thread(target=self.push, args=(stop, src, rng.random()))
            for src in self.sources
        ]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.05, 0.6))
        self.server.kill()  # SIGKILL, whatever the witness is doing
        stop.set()
        for t in threads:
            t.join()
        self.server.start()


def test_sigkill_mid_add_checkpoint_never_cosigns_an_inconsistent_checkpoint(
    tmp_path: Path, signer: NoteSigner
) -> None:
    """Kill the witness at random instants while honest and forked checkpoints race in.

    Every cosignature ever returned must be on one single history: one root
    per size, and never both the honest and the forked side past the fork
    point; after the last restart the stored checkpoint is at least as large
    as every cosignature handed out.
    """
    rng = random.Random(18)  # noqa: S311 - test scheduling, not cryptography
    honest = MerkleLog.in_memory()
    honest.append_many([f"e{i}".encode() for i in range(400)])
    fork_at = 40
    forked = _fork(400, fork_at)
    with witness_servers(tmp_path, [signer.verifier], n=1) as (server,):
        pushers = _Pushers(server, signer, (honest, honest, forked))
        for _kill in range(8):
            pushers.round(rng)
        origin_hash = hashlib.sha256(ORIGIN.encode()).hexdigest()
        latest = httpx.get(f"{server.url}/{origin_hash}/checkpoint", timeout=30)
        stored = SignedCheckpoint.parse(latest.content).checkpoint
    cosigned = pushers.cosigned
    assert cosigned, "the witness never cosigned anything"
    roots: dict[int, set[bytes]] = {}
    for size, root in cosigned:
        roots.setdefault(size, set()).add(root)
    assert all(len(r) == 1 for r in roots.values()), "two roots cosigned for one size"
    honest_past_fork = [s for s, r in cosigned if s > fork_at and r == honest.root(s)]
    forged_past_fork = [s for s, r in cosigned if s > fork_at and r == forked.root(s)]
    assert not (honest_past_fork and forged_past_fork), "cosigned both sides of a fork"
    assert stored.size >= max(size for size, _ in cosigned)
    side = honest if stored.size <= fork_at or honest_past_fork else forked
    assert stored.root_hash == side.root(stored.size)


def _signed_at(log: MerkleLog, size: int, signer: NoteSigner) -> SignedCheckpoint:
    return SignedCheckpoint.sign(Checkpoint(ORIGIN, size, log.root(size)), [signer])
