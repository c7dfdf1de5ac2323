"""`SQLLogStore` gives the same roots and proofs as the crypto layer's stores."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text, update

from computewatch.crypto import (
    MemoryLogStore,
    MerkleLog,
    SQLiteLogStore,
    StaleLogError,
    verify_consistency,
    verify_inclusion,
)
from computewatch.errors import FormatError, IntegrityError
from computewatch.supplychain import SQLLogStore, open_engine
from computewatch.supplychain._tables import log_leaves, metadata

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sqlalchemy import Engine


_ENGINES: list[Engine] = []


@pytest.fixture(autouse=True)
def _dispose_engines() -> Iterator[None]:
    yield
    while _ENGINES:
        _ENGINES.pop().dispose()


def _engine(url: str) -> Engine:
    engine = open_engine(url)
    _ENGINES.append(engine)
    return engine


def _sql_log(url: str, *, create: bool = True) -> MerkleLog:
    engine = _engine(url)
    if create:
        metadata.create_all(engine)
    return MerkleLog(SQLLogStore(engine))


def test_same_roots_and_proofs_as_memory_and_sqlite(db_url: str, tmp_path: Path) -> None:
    rng = random.Random(7)  # noqa: S311 - test data, not crypto
    logs = [
        _sql_log(db_url),
        MerkleLog(MemoryLogStore()),
        MerkleLog(SQLiteLogStore(tmp_path / "c.db")),
    ]
    n = 0
    for _ in range(25):
        batch = [rng.randbytes(rng.randint(1, 64)) for _ in range(rng.randint(1, 9))]
        ranges = {log.append_many(batch) for log in logs}
        assert len(ranges) == 1
        n += len(batch)
        roots = {log.root() for log in logs}
        assert len(roots) == 1
    assert logs[0].size == n
    for _ in range(40):
        size = rng.randint(1, n)
        index, old = rng.randrange(size), rng.randint(1, size)
        proofs = {log.inclusion_proof(index, size) for log in logs}
        assert len(proofs) == 1
        verify_inclusion(
            logs[1].entry(index),
            index=index,
            size=size,
            proof=proofs.pop(),
            root=logs[1].root(size),
        )
        cons = {log.consistency_proof(old, size) for log in logs}
        assert len(cons) == 1
        verify_consistency(
            old_size=old,
            new_size=size,
            proof=cons.pop(),
            old_root=logs[1].root(old),
            new_root=logs[1].root(size),
        )
    logs[0].audit()
    reopened = _sql_log(db_url, create=False)
    assert (reopened.size, reopened.root()) == (n, logs[1].root())
    for log in logs:
        log.close()


def test_log_tables_are_append_only(db_url: str) -> None:
    log = _sql_log(db_url)
    log.append_many([b"a", b"b", b"c"])
    engine = log.store._engine  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
        conn.execute(update(log_leaves).values(entry=b"x"))
    with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
        conn.execute(text("DELETE FROM log_nodes"))
    assert log.entry(1) == b"b"


def test_stale_writer_and_tampering_are_detected(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    first, second = _sql_log(url), _sql_log(url, create=False)
    first.append(b"one")
    with pytest.raises(StaleLogError):
        second.store.append(0, [(b"x", bytes(32))], [], bytes(32))
    second.refresh()
    second.append(b"two")  # after a reload the second writer goes on
    first.refresh()
    assert first.size == 2
    engine = first.store._engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER log_leaves_append_only_u"))
        conn.execute(update(log_leaves).where(log_leaves.c.idx == 0).values(entry=b"evil"))
    fresh = _sql_log(url, create=False)
    with pytest.raises(IntegrityError, match="does not match"):
        fresh.entry(0)
    with pytest.raises(IntegrityError):
        fresh.audit()


def test_engine_urls_are_checked(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="in-memory"):
        open_engine("sqlite://")
    with pytest.raises(FormatError, match="expected sqlite or postgresql"):
        open_engine("mysql://u@h/db")
    with pytest.raises(FormatError, match="expected sqlite"):
        open_engine("::not a url::")
    assert _engine("postgresql://u@127.0.0.1:1/db").url.drivername == "postgresql+psycopg"
    assert _engine(f"sqlite:///{tmp_path / 'x.db'}").dialect.name == "sqlite"
