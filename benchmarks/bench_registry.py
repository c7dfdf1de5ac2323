"""Registry receipts acknowledged per second with N concurrent chips (computewatch.supplychain).

A live ``computewatch registry serve`` process on 127.0.0.1 (uvicorn, one
writer with group commit) receives chips' signed snapshot entries over
HTTP from N concurrent chips (client threads spread over a few processes,
keep-alive connections, entries signed in advance); every answer is a
receipt acknowledged only after its transaction committed (SQLite WAL with
``synchronous=FULL``; PostgreSQL with ``fsync`` on). Measured on SQLite and
on a throwaway PostgreSQL (skipped with its reason if not installed).

Same-run baselines, for ratios:

* ``http_floor_per_s``: ``GET /healthz`` at the same concurrency (the HTTP
  stack alone, nothing verified or stored);
* ``in_process_per_s``: the same entries through `Registry.submit` with no
  HTTP (the writer alone: verify, store, prove);
* ``raw_commits_per_s``: one durable single-row transaction at a time on
  the same database (what acknowledging each entry on its own would cost).

The need: 10**7 chips at the paper's f = 0.1 snapshots per chip-day is
about 12 receipts/s; the goal on this machine is 1,000/s. Client and
server share this machine's cores.
"""

from __future__ import annotations

import http.client
import multiprocessing as mp
import os
import random
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Column, LargeBinary, MetaData, Table, insert
from tests.supplychain.pg import pg_bindir, postgres_server
from tests.supplychain.server import ORIGIN, RegistryKeys, registry_server
from tests.supplychain.world import World

from computewatch.crypto import Receipt, verify_receipt
from computewatch.supplychain import Registry, RegistryClient, RegistryStore, open_engine

NEED_PER_S = 1e7 * 0.1 / 86_400
GOAL_PER_S = 1000.0
PROCESSES = 4


def _client(port: int, groups: list[list[bytes]], path: str, out: Any) -> None:
    """One client process: a thread (one keep-alive connection) per chip."""
    sample: list[tuple[bytes, bytes]] = []

    def chip(bodies: list[bytes]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for body in bodies:
            if path == "/healthz":
                conn.request("GET", path)
            else:
                conn.request("POST", path, body=body, headers={"content-type": "application/json"})
            response = conn.getresponse()
            text = response.read()
            if response.status != 200:
                msg = f"HTTP {response.status}: {text[:200]!r}"
                raise RuntimeError(msg)
            if path != "/healthz" and random.random() < 0.01:  # noqa: S311 - sampling, not crypto
                sample.append((body, text))
        conn.close()

    threads = [threading.Thread(target=chip, args=(g,)) for g in groups]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((sum(len(g) for g in groups), sample))


def _load(
    port: int, bodies: list[list[bytes]], path: str
) -> tuple[float, list[tuple[bytes, bytes]]]:
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_client, args=(port, bodies[k::PROCESSES], path, out))
        for k in range(PROCESSES)
    ]
    start = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    elapsed = time.perf_counter() - start
    for p in procs:
        p.join()
        if p.exitcode:
            msg = f"client process exited with {p.exitcode}"
            raise RuntimeError(msg)
    done = sum(n for n, _ in results)
    return done / elapsed, [s for _, sample in results for s in sample]


def _raw_commits(url: str, n: int) -> float:
    engine = open_engine(url)
    table = Table(
        "bench_raw",
        MetaData(),
        Column("idx", BigInteger, primary_key=True),
        Column("entry", LargeBinary),
    )
    table.create(engine)
    row = os.urandom(600)
    start = time.perf_counter()
    for i in range(n):
        with engine.begin() as conn:
            conn.execute(insert(table).values(idx=i, entry=row))
    rate = n / (time.perf_counter() - start)
    engine.dispose()
    return rate


def _in_process(url: str, keys: RegistryKeys, bodies: list[bytes]) -> float:
    store = RegistryStore.open(
        url, origin=ORIGIN, registrar_id="registrar", registrar_key=keys.registrar.verifying_key
    )
    with Registry(store, keys.log) as registry:
        start = time.perf_counter()
        futures = [registry.submit(b) for b in bodies]
        for f in futures:
            f.result()
        return len(bodies) / (time.perf_counter() - start)


def _backend(
    url: str, extra_url: str, folder: Path, *, chips: int, per_chip: int, raw_commits: int
) -> dict[str, Any]:
    keys = RegistryKeys.create(folder / "keys")
    world = World(ORIGIN, keys.registrar)
    serials = [f"BENCH-{i:05d}" for i in range(chips)]
    with registry_server(keys, url) as server:
        with RegistryClient(server.url, keys.log.verifier) as client:
            client.submit(world.register("fab-1", "fab"))
            for i in range(0, chips, 500):
                client.submit(world.fabricate("fab-1", serials[i : i + 500]))
        bodies = [[world.entry(s, seq) for seq in range(per_chip)] for s in serials]
        floor, _ = _load(server.port, bodies, "/healthz")
        rate, sample = _load(server.port, bodies, "/v1/receipts")
        for body, text in sample:  # the answers are real receipts: check a sample offline
            verify_receipt(Receipt.from_text(text), [keys.log.verifier], ORIGIN, entry=body)
    # the writer alone, on a fresh database of the same backend
    world2 = World(ORIGIN, keys.registrar)
    store = RegistryStore.open(
        extra_url,
        origin=ORIGIN,
        registrar_id="registrar",
        registrar_key=keys.registrar.verifying_key,
    )
    with Registry(store, keys.log) as registry:
        registry.write(world2.register("fab-1", "fab"))
        for i in range(0, chips, 500):
            registry.write(world2.fabricate("fab-1", serials[i : i + 500]))
    flat = [world2.entry(s, seq) for seq in range(per_chip) for s in serials]
    in_process = _in_process(extra_url, keys, flat)
    raw = _raw_commits(extra_url, raw_commits)
    return {
        "receipts_per_s": round(rate),
        "http_floor_per_s": round(floor),
        "receipts_over_http_floor": round(rate / floor, 3),
        "in_process_per_s": round(in_process),
        "raw_commits_per_s": round(raw),
        "group_commit_gain_over_raw": round(rate / raw, 2),
        "receipts_verified_offline": len(sample),
        "meets_goal": rate >= GOAL_PER_S,
        "meets_need": rate >= NEED_PER_S,
    }


def run(*, quick: bool) -> dict[str, Any]:
    """Measure receipts/s on SQLite and PostgreSQL (see the module docs)."""
    chips, per_chip = (24, 30) if quick else (64, 150)
    raw = 100 if quick else 300
    result: dict[str, Any] = {
        "chips": chips,
        "client_processes": PROCESSES,
        "entries": chips * per_chip,
        "durability": "acknowledged after commit: SQLite WAL synchronous=FULL; PostgreSQL fsync on",
        "need_per_s_1e7_chips_f_0.1_per_day": round(NEED_PER_S, 1),
        "goal_per_s": GOAL_PER_S,
        "backends": {},
    }
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        base = Path(tmp)
        result["backends"]["sqlite"] = _backend(
            f"sqlite:///{base / 'r.db'}",
            f"sqlite:///{base / 'r2.db'}",
            base / "s",
            chips=chips,
            per_chip=per_chip,
            raw_commits=raw,
        )
        if pg_bindir() is None:
            result["backends"]["postgresql"] = {
                "skipped": "PostgreSQL not installed (apt-get install postgresql)"
            }
        else:
            pg = stack.enter_context(postgres_server())
            result["backends"]["postgresql"] = _backend(
                pg.create_database("bench"),
                pg.create_database("bench2"),
                base / "p",
                chips=chips,
                per_chip=per_chip,
                raw_commits=raw,
            )
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=True), indent=2))
