"""Receipts per second with witnessing, and add-checkpoint latency (computewatch.crypto.Witness).

A live ``computewatch registry serve`` process pushes every checkpoint it
signs (one per group-committed batch) to three live ``computewatch witness
serve`` processes (2-of-3 policy) and answers each chip's snapshot entry
with a receipt whose checkpoint carries their cosignatures; the chips post
over HTTP from several client processes, as in ``bench_registry.py``.
Measured on SQLite and on a throwaway PostgreSQL (skipped with its reason if
not installed), each beside the same load on the same backend *without*
witnesses (same-run ratio).

A sample of the receipts is verified offline under the 2-of-3 policy.

add-checkpoint latency: sequential requests to one witness process over a
keep-alive connection, each growing the log by a batch (HTTP, verify, prove,
cosign, SQLite commit with ``synchronous=FULL``), and the same calls
in-process (no HTTP) for the ratio.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from tests.supplychain.pg import pg_bindir, postgres_server
from tests.supplychain.server import ORIGIN, RegistryKeys, registry_server
from tests.supplychain.witness_server import witness_policy, witness_servers
from tests.supplychain.world import World

from bench_registry import PROCESSES, _load
from computewatch.crypto import (
    Cosigner,
    MerkleLog,
    NoteSigner,
    Policy,
    Receipt,
    Witness,
    add_checkpoint_body,
    verify_receipt,
)
from computewatch.supplychain import RegistryClient

GOAL_PER_S = 1000.0
WITHOUT_WITNESSES_BEFORE = {"sqlite": 722, "postgresql": 491}


def _receipts(
    url: str, folder: Path, *, chips: int, per_chip: int, witnessed: bool
) -> dict[str, Any]:
    keys = RegistryKeys.create(folder / "keys")
    world = World(ORIGIN, keys.registrar)
    serials = [f"BENCH-{i:05d}" for i in range(chips)]
    with ExitStack() as stack:
        args: tuple[str, ...] = ()
        policy = Policy.for_logs([keys.log.verifier])
        if witnessed:
            witnesses = stack.enter_context(witness_servers(folder / "w", [keys.log.verifier], 3))
            text = witness_policy(keys.log.verifier, witnesses, quorum=2)
            (folder / "policy").write_text(text)
            policy = Policy.parse(text)
            args = ("--witnesses", str(folder / "policy"))
        server = stack.enter_context(registry_server(keys, url, args=args))
        with RegistryClient(server.url, policy) as client:
            client.submit(world.register("fab-1", "fab"))
            for i in range(0, chips, 500):
                client.submit(world.fabricate("fab-1", serials[i : i + 500]))
        bodies = [[world.entry(s, seq) for seq in range(per_chip)] for s in serials]
        rate, sample = _load(server.port, bodies, "/v1/receipts")
        sizes = set()
        for body, answer in sample:  # real receipts: verified offline under the policy
            receipt = Receipt.from_text(answer)
            verify_receipt(receipt, policy, ORIGIN, entry=body)
            sizes.add(receipt.checkpoint.checkpoint.size)
    return {"receipts_per_s": round(rate), "verified_offline": len(sample), "sizes": len(sizes)}


def _backend(url: str, url2: str, folder: Path, *, chips: int, per_chip: int) -> dict[str, Any]:
    witnessed = _receipts(url, folder / "with", chips=chips, per_chip=per_chip, witnessed=True)
    plain = _receipts(url2, folder / "without", chips=chips, per_chip=per_chip, witnessed=False)
    rate = witnessed["receipts_per_s"]
    return {
        "receipts_per_s_witnessed_2_of_3": rate,
        "receipts_per_s_unwitnessed_same_run": plain["receipts_per_s"],
        "witnessed_over_unwitnessed": round(rate / max(1, plain["receipts_per_s"]), 3),
        "receipts_verified_offline_under_policy": witnessed["verified_offline"],
        "meets_goal": rate >= GOAL_PER_S,
    }


def _latency(folder: Path, n: int) -> dict[str, Any]:
    signer = NoteSigner.generate("bench.test/log")
    log = MerkleLog.in_memory()
    bodies = []
    old = 0
    for _ in range(n):
        log.append_many([f"e{log.size + i}".encode() for i in range(64)])
        proof = log.consistency_proof(old, log.size) if old else ()
        bodies.append(add_checkpoint_body(old, proof, log.checkpoint(signer).to_bytes()))
        old = log.size
    http_s = []
    with (
        witness_servers(folder / "lat", [signer.verifier], 1) as (server,),
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        for body in bodies:
            t0 = time.perf_counter()
            response = client.post("/add-checkpoint", content=body)
            http_s.append(time.perf_counter() - t0)
            if response.status_code != 200:
                msg = f"witness answered {response.status_code}: {response.text[:200]}"
                raise RuntimeError(msg)
    local_s = []
    with Witness.open(
        folder / "local.db", [Cosigner.generate("w.bench")], {signer.name: [signer.verifier]}
    ) as witness:
        for body in bodies:
            t0 = time.perf_counter()
            witness.add_checkpoint(body)
            local_s.append(time.perf_counter() - t0)

    def ms(values: list[float], q: float) -> float:
        return round(1000 * statistics.quantiles(values, n=100)[int(q) - 1], 2)

    return {
        "requests": n,
        "entries_per_checkpoint": 64,
        "http_ms_p50": ms(http_s, 50),
        "http_ms_p95": ms(http_s, 95),
        "in_process_ms_p50": ms(local_s, 50),
        "in_process_ms_p95": ms(local_s, 95),
        "http_over_in_process_p50": round(ms(http_s, 50) / max(ms(local_s, 50), 0.01), 2),
    }


def run(*, quick: bool) -> dict[str, Any]:
    """Measure witnessed receipts/s on SQLite and PostgreSQL, and add-checkpoint latency."""
    chips, per_chip = (24, 30) if quick else (64, 150)
    result: dict[str, Any] = {
        "chips": chips,
        "client_processes": PROCESSES,
        "entries": chips * per_chip,
        "witnesses": "3 live witness processes, 2-of-3 policy, pushed once per batch",
        "goal_per_s": GOAL_PER_S,
        "unwitnessed_before_this_change": WITHOUT_WITNESSES_BEFORE,
        "backends": {},
    }
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        base = Path(tmp)
        result["add_checkpoint_latency"] = _latency(base, 60 if quick else 300)
        result["backends"]["sqlite"] = _backend(
            f"sqlite:///{base / 'r.db'}",
            f"sqlite:///{base / 'r2.db'}",
            base / "s",
            chips=chips,
            per_chip=per_chip,
        )
        if pg_bindir() is None:
            result["backends"]["postgresql"] = {
                "skipped": "PostgreSQL not installed (apt-get install postgresql)"
            }
        else:
            pg = stack.enter_context(postgres_server())
            result["backends"]["postgresql"] = _backend(
                pg.create_database("wbench"),
                pg.create_database("wbench2"),
                base / "p",
                chips=chips,
                per_chip=per_chip,
            )
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=True), indent=2))
