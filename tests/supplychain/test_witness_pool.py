"""The registry's `WitnessPool` against three live witnesses: one proof per cycle, all cosign."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from computewatch.crypto import MerkleLog, NoteSigner, Policy
from computewatch.supplychain import WitnessPool
from tests.supplychain.witness_server import witness_policy, witness_servers

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

pytestmark = pytest.mark.slow
ORIGIN = "pool.test/log"


def test_witnesses_at_one_size_share_one_consistency_proof(tmp_path: Path) -> None:
    signer = NoteSigner.generate(ORIGIN)
    log = MerkleLog.in_memory()
    asked: list[tuple[int, int]] = []

    def consistency(old: int, new: int) -> Sequence[bytes]:
        asked.append((old, new))
        return log.consistency_proof(old, new)

    with witness_servers(tmp_path, [signer.verifier], n=3) as servers:
        policy = Policy.parse(witness_policy(signer.verifier, servers, quorum=2))
        pool = WitnessPool(policy)
        try:
            for size in (3, 8, 20):
                log.append_many([f"e{i}".encode() for i in range(log.size, size)])
                cosigned = pool.cosign(log.checkpoint(signer, origin=ORIGIN), consistency)
                witnessed = policy.verify(cosigned, ORIGIN)
                assert witnessed.witnesses == {s.name for s in servers}
        finally:
            pool.close()
    # the first push needs no proof (size 0 to 3); then one proof per cycle, not one per witness
    assert asked == [(3, 8), (8, 20)]
