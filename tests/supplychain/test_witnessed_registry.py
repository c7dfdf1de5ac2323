"""A registry witnessed by three live witnesses, read under a 2-of-3 policy, and its tiles."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from computewatch.cli import main
from computewatch.crypto import (
    Envelope,
    MerkleLog,
    Policy,
    QuorumNotMet,
    Receipt,
    SignedCheckpoint,
    TilePath,
    TrustedCheckpoints,
    decode_entry_bundle,
    leaf_hash,
    split_tile,
    verify_receipt,
)
from computewatch.supplychain import ReceiptClient, RegistryClient
from tests.supplychain.server import ORIGIN, RegistryKeys, registry_server
from tests.supplychain.witness_server import witness_policy, witness_servers
from tests.supplychain.world import World

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow


def test_registry_checkpoints_carry_a_quorum_of_cosignatures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = RegistryKeys.create(tmp_path / "keys")
    world = World(ORIGIN, keys.registrar)
    with witness_servers(tmp_path / "w", [keys.log.verifier], n=3) as witnesses:
        text = witness_policy(keys.log.verifier, witnesses, quorum=2)
        (tmp_path / "policy").write_text(text)
        policy = Policy.parse(text)
        args = ("--witnesses", str(tmp_path / "policy"))
        db = f"sqlite:///{tmp_path / 'r.db'}"
        with (
            registry_server(keys, db, args=args) as server,
            TrustedCheckpoints.open(tmp_path / "client.db", policy) as state,
            RegistryClient(server.url, policy, state=state) as client,
            ReceiptClient(server.url, policy, ORIGIN, state=state) as chip,
        ):
            ack = client.submit(world.register("fab-1", "fab"))
            serials = [f"W-{i:03d}" for i in range(300)]
            client.submit(world.fabricate("fab-1", serials))
            for n in range(3):
                chip(Envelope.from_json(world.entry(serials[n], 0)))
            cp = client.checkpoint()
            assert cp.size == 5
            witnessed = policy.verify(client.last_signed or b"", ORIGIN)
            assert witnessed.witnesses == {w.name for w in witnesses}
            assert verify_receipt(ack.receipt, policy, ORIGIN).size >= 1
            cli = ["registry", "checkpoint", "--server", server.url]
            cli += ["--log-key", keys.log.verifier.vkey, "--policy", str(tmp_path / "policy")]
            cli += ["--state", str(tmp_path / "cli-state.db"), "--json"]
            assert main(cli) == 0, capsys.readouterr().err
            # one witness down: 2 of 3 still cosign, the client still accepts
            witnesses[0].stop()
            chip(Envelope.from_json(world.entry(serials[3], 0)))
            assert client.checkpoint().size == 6
            assert policy.verify(client.last_signed or b"", ORIGIN).witnesses == {
                witnesses[1].name,
                witnesses[2].name,
            }
            # two down: the receipt comes back, but fails the 2-of-3 policy
            witnesses[1].stop()
            with pytest.raises(QuorumNotMet):
                chip(Envelope.from_json(world.entry(serials[4], 0)))
            capsys.readouterr()
            assert main(cli) == 1  # the newest checkpoint lacks the quorum
            assert "quorum not met" in capsys.readouterr().err
            _check_tiles(server.url, state.latest(ORIGIN))


def _check_tiles(url: str, latest: object) -> None:
    checkpoint = SignedCheckpoint.parse(httpx.get(f"{url}/checkpoint", timeout=30).content)
    cp = checkpoint.checkpoint
    tile = httpx.get(f"{url}/{TilePath(0, 0, cp.size).to_path()}", timeout=30)
    assert tile.status_code == 200
    assert "immutable" in tile.headers["cache-control"]
    bundle = httpx.get(f"{url}/{TilePath(None, 0, cp.size).to_path()}", timeout=30)
    entries = decode_entry_bundle(bundle.content)
    assert split_tile(tile.content) == [leaf_hash(e) for e in entries]
    log = MerkleLog.in_memory()
    log.append_many(entries)
    assert log.root() == cp.root_hash  # the tiles rebuild the checkpoint's tree
    assert latest is not None
    too_far = TilePath(0, 0, cp.size + 1).to_path()
    assert httpx.get(f"{url}/{too_far}", timeout=30).status_code == 404
    assert httpx.get(f"{url}/tile/0/01", timeout=30).status_code == 400
    receipt_text = httpx.get(f"{url}/v1/log/receipt/0", timeout=30).text
    assert Receipt.from_text(receipt_text).checkpoint.checkpoint.size == cp.size
