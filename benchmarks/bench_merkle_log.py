"""Durable Merkle log throughput and proof latency (computewatch.crypto.MerkleLog on SQLite).

Measures, in a temporary directory on the machine's disk:

* durable appends per second, one transaction (one fsync) per entry, and in
  batches of 100 and 1000 entries per transaction (group commit, what a
  receipt server does);
* the same-run baseline: raw SQLite inserts of the same rows (entry, leaf
  hash) with the same durability settings and no tree maintenance, and the
  ratio of the log's rate to it;
* for a log of 10**6 entries (quick: 10**4), the mean time to generate and to
  verify an inclusion proof and a consistency proof over random queries, the
  time to reopen the log (its O(log n) check) and to audit it fully.

Published single-node figures for comparison (not measured here): Trillian
about 1,200 appends/s, Tessera about 2,900 appends/s.
"""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from computewatch.crypto._log import MerkleLog
from computewatch.crypto._merkle import leaf_hash, verify_consistency, verify_inclusion

ENTRY_SIZE = 256  # bytes: about one signed custody event
SEED = 20230320


def _entry(i: int) -> bytes:
    return hashlib.sha256(i.to_bytes(8, "big")).digest() * (ENTRY_SIZE // 32)


def _entries(start: int, n: int) -> list[bytes]:
    return [_entry(i) for i in range(start, start + n)]


def _log_rate(path: Path, entries: list[bytes], batch: int) -> float:
    with MerkleLog.open(path) as log:
        t0 = time.perf_counter()
        if batch == 1:
            for e in entries:
                log.append(e)
        else:
            for i in range(0, len(entries), batch):
                log.append_many(entries[i : i + batch])
        elapsed = time.perf_counter() - t0
        assert log.size == len(entries)
    return len(entries) / elapsed


def _raw_rate(path: Path, entries: list[bytes], batch: int) -> float:
    """Baseline: the same rows into a plain SQLite table, same pragmas, no tree."""
    rows = [(i, e, leaf_hash(e)) for i, e in enumerate(entries)]
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE leaves (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL, hash BLOB NOT NULL)"
    )
    t0 = time.perf_counter()
    for i in range(0, len(rows), batch):
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO leaves VALUES (?, ?, ?)", rows[i : i + batch])
        db.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    db.close()
    return len(rows) / elapsed


def _mean_us(fn: Any, args: list[Any]) -> float:
    t0 = time.perf_counter()
    for a in args:
        fn(*a)
    return (time.perf_counter() - t0) / len(args) * 1e6


def _proofs(path: Path, size: int, queries: int) -> dict[str, Any]:
    rng = np.random.default_rng(SEED)
    t0 = time.perf_counter()
    with MerkleLog.open(path) as log:
        for start in range(0, size, 10_000):
            log.append_many(_entries(start, min(10_000, size - start)))
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    log = MerkleLog.open(path)
    open_ms = (time.perf_counter() - t0) * 1e3
    root = log.root()
    indices = [int(i) for i in rng.integers(0, size, queries)]
    olds = [int(i) for i in rng.integers(1, size, queries)]
    incl = [(i, log.inclusion_proof(i)) for i in indices]
    cons = [(m, log.consistency_proof(m)) for m in olds]
    old_roots = {m: log.root(m) for m in olds}
    entries = {i: _entry(i) for i in indices}
    result = {
        "size": size,
        "queries": queries,
        "build_appends_per_s": round(size / build_s),
        "open_ms": round(open_ms, 2),
        "inclusion_generate_us": round(_mean_us(log.inclusion_proof, [(i,) for i in indices]), 1),
        "inclusion_verify_us": round(
            _mean_us(
                lambda i, p: verify_inclusion(entries[i], index=i, size=size, proof=p, root=root),
                incl,
            ),
            1,
        ),
        "consistency_generate_us": round(_mean_us(log.consistency_proof, [(m,) for m in olds]), 1),
        "consistency_verify_us": round(
            _mean_us(
                lambda m, p: verify_consistency(
                    old_size=m, new_size=size, proof=p, old_root=old_roots[m], new_root=root
                ),
                cons,
            ),
            1,
        ),
        "historical_root_us": round(_mean_us(log.root, [(m,) for m in olds]), 1),
        "mean_inclusion_proof_hashes": round(sum(len(p) for _, p in incl) / queries, 1),
        "db_mib": round(path.stat().st_size / 2**20, 1),
    }
    t0 = time.perf_counter()
    log.audit()
    result["audit_s"] = round(time.perf_counter() - t0, 2)
    log.close()
    return result


def run(quick: bool) -> dict[str, Any]:  # noqa: FBT001 - the runner's interface
    """Measure durable append rates and proof latency; see the module docstring."""
    single_n = 300 if quick else 3_000
    batch_n = 20_000 if quick else 200_000
    big = 10_000 if quick else 1_000_000
    with tempfile.TemporaryDirectory(prefix="cw-bench-merkle-") as tmp:
        d = Path(tmp)
        single = _entries(0, single_n)
        batched = _entries(0, batch_n)
        appends = {
            "single_tx_per_append": round(_log_rate(d / "s.db", single, 1)),
            "batch_100": round(_log_rate(d / "b100.db", batched, 100)),
            "batch_1000": round(_log_rate(d / "b1000.db", batched, 1000)),
        }
        raw = {
            "single_tx_per_append": round(_raw_rate(d / "rs.db", single, 1)),
            "batch_100": round(_raw_rate(d / "rb100.db", batched, 100)),
            "batch_1000": round(_raw_rate(d / "rb1000.db", batched, 1000)),
        }
        ratio = {k: round(appends[k] / raw[k], 3) for k in appends}
        proofs = _proofs(d / "big.db", big, 1000)
    return {
        "entry_bytes": ENTRY_SIZE,
        "durability": "SQLite WAL, synchronous=FULL, one commit per transaction",
        "appends_per_s": appends,
        "raw_sqlite_inserts_per_s": raw,
        "log_over_raw_ratio": ratio,
        "goal_appends_per_s": 3000,
        "meets_goal": {k: v >= 3000 for k, v in appends.items()},
        "published_reference_appends_per_s": {"trillian": 1200, "tessera": 2900},
        "proofs": proofs,
    }
