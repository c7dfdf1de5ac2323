"""MerkleLog over SQLite and in-memory stores: durability, proofs, audit, tampering."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import pytest

from computewatch.crypto._log import MerkleLog
from computewatch.crypto._logstore import MemoryLogStore, SQLiteLogStore, StaleLogError
from computewatch.crypto._merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    verify_consistency,
    verify_inclusion,
)
from computewatch.crypto._note import NoteSigner
from computewatch.errors import FormatError, IntegrityError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from computewatch.crypto._logstore import Leaf, Node

ENTRIES = [f"entry {i}".encode() for i in range(100)]
HASHES = [leaf_hash(e) for e in ENTRIES]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "log.sqlite"


def _filled(path: Path, n: int = 100) -> None:
    with MerkleLog.open(path) as log:
        log.append_many(ENTRIES[:n])


def _tamper(path: Path, sql: str, args: tuple[object, ...] = ()) -> None:
    """Write directly into the database, as an attacker with file access can."""
    db = sqlite3.connect(path)
    for trigger in (
        "leaves_append_only_u",
        "leaves_append_only_d",
        "nodes_append_only_u",
        "nodes_append_only_d",
    ):
        db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    db.execute(sql, args)
    db.commit()
    db.close()


def test_new_log_is_empty(db_path: Path) -> None:
    with MerkleLog.open(db_path) as log:
        assert log.size == 0
        assert log.root() == EMPTY_ROOT
        assert log.append_many([]) == range(0)
        log.audit()


def test_append_and_reopen(db_path: Path) -> None:
    with MerkleLog.open(db_path) as log:
        assert log.append(ENTRIES[0]) == 0
        assert log.append(ENTRIES[1]) == 1
        assert log.append_many(ENTRIES[2:50]) == range(2, 50)
        root50 = log.root()
    with MerkleLog.open(db_path) as log:
        assert log.size == 50
        assert log.root() == root50 == merkle_root(HASHES[:50])
        assert log.append_many(ENTRIES[50:]) == range(50, 100)
        assert log.entry(73) == ENTRIES[73]
        assert log.leaf_hash(73) == HASHES[73]
    with MerkleLog.open(db_path) as log:
        assert log.size == 100
        log.audit()


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_proofs_equal_reference(kind: str, db_path: Path) -> None:
    log = MerkleLog.open(db_path) if kind == "sqlite" else MerkleLog.in_memory()
    with log:
        for e in ENTRIES[:37]:
            log.append(e)
        log.append_many(ENTRIES[37:])
        for size in range(1, 101, 3):
            assert log.root(size) == merkle_root(HASHES[:size])
            for index in range(0, size, 5):
                assert log.inclusion_proof(index, size) == inclusion_proof(HASHES, index, size)
            for old in range(1, size + 1, 4):
                assert log.consistency_proof(old, size) == consistency_proof(HASHES, old, size)
        verify_inclusion(
            ENTRIES[99], index=99, size=100, proof=log.inclusion_proof(99), root=log.root()
        )
        verify_consistency(
            old_size=1,
            new_size=100,
            proof=log.consistency_proof(1),
            old_root=log.root(1),
            new_root=log.root(),
        )


def test_bad_arguments_are_format_errors() -> None:
    log = MerkleLog.in_memory(max_entry_size=8)
    with pytest.raises(FormatError, match="expected at most 8 bytes"):
        log.append(b"123456789")
    with pytest.raises(FormatError, match="expected bytes"):
        log.append("text")  # type: ignore[arg-type]
    with pytest.raises(FormatError, match="tree is empty"):
        log.entry(0)
    log.append_many([b"a", b"b"])
    assert log.size == 2
    for call in (
        lambda: log.entry(2),
        lambda: log.inclusion_proof(2),
        lambda: log.inclusion_proof(0, 3),
        lambda: log.consistency_proof(0),
        lambda: log.consistency_proof(2, 1),
        lambda: log.root(3),
        lambda: log.root(-1),
    ):
        with pytest.raises(FormatError):
            call()
    assert log.consistency_proof(2) == ()
    assert log.root(0) == EMPTY_ROOT


def test_append_many_is_all_or_nothing() -> None:
    log = MerkleLog.in_memory(max_entry_size=4)
    with pytest.raises(FormatError):
        log.append_many([b"ok", b"too long"])
    assert log.size == 0


class _FailingStore(MemoryLogStore):
    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    def append(
        self, old_size: int, leaves: Sequence[Leaf], nodes: Sequence[Node], root: bytes
    ) -> None:
        if self.fail:
            msg = "disk full"
            raise OSError(msg)
        super().append(old_size, leaves, nodes, root)


def test_failed_commit_leaves_log_unchanged() -> None:
    store = _FailingStore()
    log = MerkleLog(store)
    log.append_many(ENTRIES[:5])
    store.fail = True
    with pytest.raises(OSError, match="disk full"):
        log.append(ENTRIES[5])
    assert log.size == 5
    assert log.root() == merkle_root(HASHES[:5])
    store.fail = False
    assert log.append_many(ENTRIES[5:9]) == range(5, 9)
    log.audit()


def test_two_writers_on_one_file(db_path: Path) -> None:
    with MerkleLog.open(db_path) as a, MerkleLog.open(db_path) as b:
        a.append(ENTRIES[0])
        assert b.append(ENTRIES[1]) == 1  # stale writer reloads and retries
        assert a.append(ENTRIES[2]) == 2
        a.audit()
        assert a.root() == merkle_root(HASHES[:3])


def test_store_refuses_stale_append() -> None:
    store = MemoryLogStore()
    store.append(0, [(b"a", leaf_hash(b"a"))], [], leaf_hash(b"a"))
    with pytest.raises(StaleLogError):
        store.append(0, [(b"b", leaf_hash(b"b"))], [], leaf_hash(b"b"))


def test_triggers_refuse_updates(db_path: Path) -> None:
    _filled(db_path, 4)
    db = sqlite3.connect(db_path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE leaves SET entry = x'00' WHERE idx = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM nodes")
    db.close()


def test_audit_detects_flipped_entry_byte(db_path: Path) -> None:
    _filled(db_path)
    flipped = bytes([ENTRIES[50][0] ^ 0x01]) + ENTRIES[50][1:]
    _tamper(db_path, "UPDATE leaves SET entry = ? WHERE idx = 50", (flipped,))
    with MerkleLog.open(db_path) as log:  # the cheap open check covers only the last leaf
        with pytest.raises(IntegrityError, match="leaf 50: stored hash"):
            log.audit()
        with pytest.raises(IntegrityError, match="leaf 50"):
            log.entry(50)


def test_open_detects_flipped_last_entry(db_path: Path) -> None:
    _filled(db_path)
    _tamper(db_path, "UPDATE leaves SET entry = x'00' WHERE idx = 99")
    with pytest.raises(IntegrityError, match="leaf 99"):
        MerkleLog.open(db_path)


def test_audit_detects_flipped_node(db_path: Path) -> None:
    _filled(db_path)
    _tamper(db_path, "UPDATE nodes SET hash = ? WHERE level = 2 AND idx = 3", (b"\x00" * 32,))
    with MerkleLog.open(db_path) as log, pytest.raises(IntegrityError, match=r"level 2, index 3"):
        log.audit()


def test_audit_detects_flipped_leaf_hash_and_missing_rows(db_path: Path) -> None:
    _filled(db_path)
    _tamper(db_path, "UPDATE leaves SET hash = ? WHERE idx = 7", (b"\x00" * 32,))
    with MerkleLog.open(db_path) as log, pytest.raises(IntegrityError, match="leaf 7"):
        log.audit()


def test_audit_detects_deleted_node(db_path: Path) -> None:
    _filled(db_path)
    _tamper(db_path, "DELETE FROM nodes WHERE level = 1 AND idx = 10")
    with MerkleLog.open(db_path) as log:
        with pytest.raises(IntegrityError, match="level 1"):
            log.audit()
        with pytest.raises(IntegrityError, match=r"node \(level 1, index 10\) is missing"):
            log.inclusion_proof(22)


def test_open_detects_flipped_frontier_node_or_head(db_path: Path) -> None:
    _filled(db_path)  # 100 = 64 + 32 + 4: the frontier is (6, 0), (5, 2), (2, 24)
    _tamper(db_path, "UPDATE nodes SET hash = ? WHERE level = 5 AND idx = 2", (b"\x01" * 32,))
    with pytest.raises(IntegrityError, match="stored root"):
        MerkleLog.open(db_path)


def test_open_detects_rewritten_head(db_path: Path) -> None:
    _filled(db_path)
    _tamper(db_path, "UPDATE head SET size = 99")
    with pytest.raises(IntegrityError):
        MerkleLog.open(db_path)


def test_memory_store_tamper_detected() -> None:
    store = MemoryLogStore()
    log = MerkleLog(store)
    log.append_many(ENTRIES[:20])
    log.audit()
    store.tamper(3, 1, b"\x00" * 32)
    with pytest.raises(IntegrityError, match="level 3, index 1"):
        log.audit()


def test_not_a_log_database(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t (x)")
    db.close()
    with pytest.raises(FormatError, match="expected a computewatch log database"):
        SQLiteLogStore(other)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(FormatError, match="not a usable SQLite database"):
        MerkleLog.open(garbage)


def test_receipt_from_log_refuses_foreign_checkpoint() -> None:
    signer = NoteSigner.from_seed("example.com/log", bytes(32))
    log, other = MerkleLog.in_memory(), MerkleLog.in_memory()
    log.append_many(ENTRIES[:10])
    other.append_many(ENTRIES[10:20])
    checkpoint = other.checkpoint(signer)
    with pytest.raises(IntegrityError, match="root expected"):
        log.receipt(3, checkpoint)
    receipt = log.receipt(3, log.checkpoint(signer), include_entry=False)
    assert receipt.entry is None
    assert receipt.proof == log.inclusion_proof(3, 10)


def test_checkpoint_of_log(db_path: Path) -> None:
    signer = NoteSigner.from_seed("example.com/log", bytes(32))
    with MerkleLog.open(db_path) as log:
        log.append_many(ENTRIES[:12])
        signed = log.checkpoint(signer)
        assert signed.checkpoint.size == 12
        assert signed.checkpoint.root_hash == log.root()
        assert signed.checkpoint.origin == "example.com/log"
        assert log.checkpoint(signer, origin="other/origin").checkpoint.origin == "other/origin"


@pytest.mark.slow
def test_large_log_proofs_are_fast(db_path: Path) -> None:
    with MerkleLog.open(db_path) as log:
        for start in range(0, 200_000, 20_000):
            log.append_many(i.to_bytes(8, "big") for i in range(start, start + 20_000))
        root = log.root()
        for index in (0, 1, 99_999, 199_999):
            verify_inclusion(
                index.to_bytes(8, "big"),
                index=index,
                size=log.size,
                proof=log.inclusion_proof(index),
                root=root,
            )
        log.audit()


def test_extra_rows_are_detected(db_path: Path) -> None:
    _filled(db_path, 10)
    with MerkleLog.open(db_path) as log:
        _tamper(db_path, "INSERT INTO leaves VALUES (10, x'00', ?)", (leaf_hash(b"\x00"),))
        with pytest.raises(IntegrityError, match="found leaf 10"):
            log.audit()
        with pytest.raises(IntegrityError, match="conflicts with stored rows"):
            log.append(b"next")  # the planted row collides with the next index
        assert log.size == 10
    _tamper(db_path, "DELETE FROM leaves WHERE idx = 10")
    _tamper(db_path, "INSERT INTO nodes VALUES (3, 1, ?)", (b"\x00" * 32,))
    with MerkleLog.open(db_path) as log, pytest.raises(IntegrityError, match="level 3"):
        log.audit()


def test_missing_leaf_and_head(db_path: Path) -> None:
    _filled(db_path, 10)
    _tamper(db_path, "DELETE FROM leaves WHERE idx = 4")
    with MerkleLog.open(db_path) as log:
        with pytest.raises(IntegrityError, match="expected leaf 4"):
            log.audit()
        with pytest.raises(IntegrityError, match="leaf 4 is missing"):
            log.entry(4)
    _tamper(db_path, "DELETE FROM head")
    with pytest.raises(IntegrityError, match="tree head row is missing"):
        MerkleLog.open(db_path)


def test_audit_checks_the_head_root(db_path: Path) -> None:
    _filled(db_path, 10)
    with MerkleLog.open(db_path) as log:
        _tamper(db_path, "UPDATE head SET root = ?", (b"\x00" * 32,))
        with pytest.raises(IntegrityError, match="tree head at size 10"):
            log.audit()


def test_missing_leaves_count(db_path: Path) -> None:
    _filled(db_path, 10)
    _tamper(db_path, "UPDATE head SET size = 11")
    store = SQLiteLogStore(db_path)
    log = MerkleLog.__new__(MerkleLog)  # skip the open check to reach audit
    log._store, log._size, log._frontier, log._suffixes = store, 0, [], None
    with pytest.raises(IntegrityError, match="expected 11 leaves, found 10"):
        log.audit()
    store.close()


class _AlwaysStale(MemoryLogStore):
    def append(self, *_args: object) -> None:
        msg = "someone else appended"
        raise StaleLogError(msg)


def test_stale_retries_are_bounded() -> None:
    log = MerkleLog(_AlwaysStale())
    with pytest.raises(StaleLogError):
        log.append(b"x")
    assert log.size == 0


def test_store_context_managers(db_path: Path) -> None:
    with SQLiteLogStore(db_path) as store:
        assert store.path == db_path
        assert store.tree_head() == (0, EMPTY_ROOT)
        assert store.nodes([]) == []
        log = MerkleLog(store)
        assert log.store is store
    with MemoryLogStore() as memory:
        with pytest.raises(IntegrityError, match="leaf 0 is missing"):
            memory.leaf(0)
        with pytest.raises(IntegrityError, match=r"node \(level 2, index 0\) is missing"):
            memory.node(2, 0)
        assert list(memory.iter_level(5)) == []


def test_memory_store_refuses_out_of_order_nodes() -> None:
    with pytest.raises(FormatError, match="out of order"):
        MemoryLogStore().append(0, [(b"a", leaf_hash(b"a"))], [(1, 3, b"\x00" * 32)], EMPTY_ROOT)
